"""Killing ``spark-submit jobs/main.py`` runs: the kill-anywhere tests' launcher.

A run is started the way the contract's job command starts it, as its own process group,
and SIGKILLed (JVM and Python alike, no shutdown hook) at a :mod:`jobs.fault` point
(``PIPELINE_FAULT``: deterministic) or after a delay (random kills). ``make test`` kills
``maintain`` and ``silver`` this way (tests/integration/e2e/test_gate_and_maintain.py,
tests/integration/e2e/test_properties.py); ``make chaos`` kills chains of ``all`` runs
(tests/integration/e2e/test_kill_anywhere.py). :func:`together` starts several runs at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tools.run_tests import SHORT_JVM_OPTS

REPO = Path(__file__).resolve().parents[2]
# Runs killed (True) and drawn kills the run finished before (False), for the summary that
# tests/integration/e2e/conftest.py prints at the end of the session.
KILLED: Counter[bool] = Counter()
# Wall seconds of every submitted run that was meant to be killed (for the same summary).
SECONDS: list[float] = []


@dataclass
class Kill:
    """One kill: a ``PIPELINE_FAULT`` point, or a delay after which the run is killed.

    A drawn kill (``drawn=True``) may find the run already past it: the run then ends
    normally, which is a valid case too.
    """

    point: str | None = None
    after_s: float | None = None
    drawn: bool = False

    def __str__(self) -> str:
        return self.point or f"at {self.after_s:.2f}s"


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a job run: this one's, without a fault or a parent gateway."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYSPARK_GATEWAY", "PIPELINE_FAULT"))} | (extra or {})
    # Short-lived JVMs on tiny data: the quick JIT (see tools/run_tests.py) unless set.
    return env | {"PIPELINE_RUNNER": "local", "PIPELINE_METRICS": "off",
                  "PYTHONPATH": str(REPO),
                  "SPARK_SUBMIT_OPTS": env.get("SPARK_SUBMIT_OPTS", SHORT_JVM_OPTS)}


def job_command(lake: Path, landing: Path, step: str, ds: str,
                pipeline: str = "tpch") -> list[str]:
    """The contract's job command line for one step of one drop of a pipeline."""
    return [str(Path(sys.executable).parent / "spark-submit"), str(REPO / "jobs" / "main.py"),
            step, "--ds", ds, "--pipeline", pipeline, "--lake", str(lake), "--landing",
            str(landing)]


def submit(lake: Path, landing: Path, step: str, ds: str, kill: Kill,
           extra: dict[str, str] | None = None,
           timeout: float = 300, pipeline: str = "tpch") -> subprocess.CompletedProcess[str]:
    """Run ``spark-submit jobs/main.py`` as its own process group and kill it as asked.

    A run meant to be killed (not a drawn kill) that ends otherwise fails the test: its
    point was not reached.
    """
    env = job_env(extra)
    if kill.point:
        env["PIPELINE_FAULT"] = kill.point
    cmd = job_command(lake, landing, step, ds, pipeline)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if kill.after_s is not None:
        try:
            proc.wait(timeout=kill.after_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=timeout)
    SECONDS.append(time.monotonic() - started)
    KILLED[proc.returncode == -signal.SIGKILL] += 1
    if kill.drawn:
        assert proc.returncode in (0, -signal.SIGKILL), out[-3000:]
    else:
        assert proc.returncode == -signal.SIGKILL, \
            f"{kill} was not reached (exit {proc.returncode}):\n{out[-3000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


def together(root: Path, landing: Path, runs: list[tuple[str, str]],
             timeout: float = 900) -> list[subprocess.CompletedProcess[str]]:
    """Start several ``spark-submit`` runs on one lake at the same moment; wait for all.

    Each run writes to its own file, not a pipe: a run whose output outgrew the pipe's
    buffer while another was waited for would block in its logger, holding its lock."""
    env = job_env()
    logs = [tempfile.TemporaryFile("w+") for _ in runs]
    procs: list[subprocess.Popen[str]] = []
    try:
        for (step, ds), log in zip(runs, logs, strict=True):
            procs.append(subprocess.Popen(
                job_command(root, landing, step, ds), cwd=REPO, env=env, stdout=log,
                stderr=subprocess.STDOUT, text=True, start_new_session=True))
        codes = [p.wait(timeout) for p in procs]
        results = []
        for proc, code, log in zip(procs, codes, logs, strict=True):
            log.seek(0)
            results.append(subprocess.CompletedProcess(proc.args, code, log.read()))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:  # timed out: take its JVM down with it
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()


def assert_done_or_retry(result: subprocess.CompletedProcess[str]) -> None:
    """A run that lost to concurrent ones: 0, or 1 (Airflow retries it) with a one-line
    message and no traceback after it."""
    assert result.returncode in (0, 1), result.stdout[-3000:]
    if result.returncode == 1:
        assert "error:" in result.stdout and "Traceback" not in result.stdout.split(
            "error:")[-1], result.stdout[-3000:]
