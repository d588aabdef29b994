"""A local Airflow for the project's DAGs: environment, set-up, serve, dag-test, demo.

``make airflow``, ``make dag-test`` and ``make demo`` call this module, and the live
Airflow test starts its components through the same :func:`start` on a free port, so
what is tested is what a developer runs.

    python tools/airflow_local.py serve [--port 8080]     # API server + UI, scheduler,
                                                          # DAG processor, triggerer
    python tools/airflow_local.py dag-test --ds YYYY-MM-DD [--pipeline NAME]
    python tools/airflow_local.py demo --landing PATH [--pipeline NAME]
                                        # <name>_daily for every drop of the landing zone,
                                        # a line per finished task

State lives in ``$AIRFLOW_HOME`` (default ``.airflow/`` in the repository): the SQLite
metadata database, logs, the JWT secret shared by the components and the generated
admin password. Set ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` to use Postgres instead.
Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

__all__ = [
    "Airflow",
    "FinishedTask",
    "airflow_env",
    "complete_drops",
    "finished_tasks",
    "init",
    "main",
    "sqlite_database",
    "start",
]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
POOL = ("lake_writer", "1", "one writer of the lake at a time, across DAGs")
ADMIN = "admin"
DEFAULT_PIPELINE = "tpch"
# States a task try ends in; up_for_retry ends a try that will be retried.
_TRY_ENDED = ("success", "failed", "skipped", "upstream_failed", "up_for_retry", "removed")
# How often the demo looks at the metadata database while a DAG run executes.
_POLL_SECONDS = 2.0


def airflow_env(home: Path, port: int = 8080, base: Mapping[str, str] | None = None,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process of a local deployment.

    The home, the API address and the JWT secret are always this deployment's; other
    values already set in ``base`` win (e.g. a Postgres ``SQL_ALCHEMY_CONN`` or a
    ``spark_default`` connection pointing elsewhere).

    :param home: ``AIRFLOW_HOME``.
    :param port: API server port on 127.0.0.1.
    :param base: starting environment (default: this process's).
    :param extra: values that override everything (tests).
    :return: the environment.
    """
    env = dict(os.environ if base is None else base)
    home.mkdir(parents=True, exist_ok=True)
    secret_file = home / "jwt_secret"
    if not secret_file.exists():
        # One secret for all components: the API server signs the task tokens that
        # the scheduler's workers present. Generated here, never stored in the repo.
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    # Where this deployment lives and how its components find each other: always ours.
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
    })
    defaults = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        # The local runner: spark-submit from this venv on local[2]; the drop sensor
        # reads absolute paths through the filesystem connection.
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "AIRFLOW_CONN_FS_DEFAULT": json.dumps({"conn_type": "fs", "extra": {"path": "/"}}),
        "PIPELINE_RUNNER": "local",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    # The triggerer imports deadline-alert callbacks (dags/lakehouse/alerts.py) by dotted
    # path without the DAG bundle on sys.path, so the DAG folder goes on PYTHONPATH.
    pythonpath = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT / "dags") not in pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "dags"), *pythonpath])
    path = env.get("PATH", "")
    if str(VENV_BIN) not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join([str(VENV_BIN), path]) if path else str(VENV_BIN)
    env.update(extra or {})
    return env


def _airflow(env: Mapping[str, str], *args: str, check: bool = True,
             quiet: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "airflow"), *args], env=dict(env), check=check, text=True,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
    )


def init(env: Mapping[str, str]) -> None:
    """Migrate the metadata database (idempotent) and create the lake writer pool."""
    _airflow(env, "db", "migrate", quiet=True)
    _airflow(env, "pools", "set", *POOL, quiet=True)


@dataclass
class Airflow:
    """Running Airflow components.

    :param env: their environment.
    :param port: the API server's port on 127.0.0.1.
    :param processes: component name -> process.
    """

    env: dict[str, str]
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the API server and UI."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """``AIRFLOW_HOME``."""
        return Path(self.env["AIRFLOW_HOME"])

    def wait_healthy(self, timeout: float = 180.0) -> None:
        """Wait until the API server answers and the scheduler reports healthy."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited with status {proc.returncode}; "
                                       f"see {self.home / 'logs' / (name + '.log')}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as r:
                    health = json.load(r)
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
                last = json.dumps(health)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(2)
        raise TimeoutError(f"Airflow at {self.url} not healthy after {timeout:.0f}s: {last}")

    def stop(self, timeout: float = 60.0) -> dict[str, int]:
        """Stop every component (SIGTERM, then SIGKILL after ``timeout``).

        :return: component -> exit status.
        """
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for name, proc in self.processes.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = proc.wait()
        return codes


def start(env: dict[str, str], port: int) -> Airflow:
    """Initialise, then start the API server, scheduler, DAG processor and triggerer.

    Each component runs in its own process group (so stopping it stops its task
    subprocesses too) and logs to ``$AIRFLOW_HOME/logs/<component>.log``.

    :param env: from :func:`airflow_env`.
    :param port: API server port.
    :return: the running deployment.
    """
    init(env)
    airflow = Airflow(env, port)
    logs = airflow.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name in COMPONENTS:
        args = [name, "--host", "127.0.0.1", "--port", str(port)] if name == "api-server" \
            else [name]
        with (logs / f"{name}.log").open("ab") as out:
            airflow.processes[name] = subprocess.Popen(
                [str(VENV_BIN / "airflow"), *args], env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
            )
    return airflow


def admin_password(home: Path) -> str:
    """The admin password the API server generated (simple auth manager)."""
    stored = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    return str(stored[ADMIN])


def complete_drops(landing: Path) -> list[str]:
    """The ``ds`` of every drop that has its ``_SUCCESS`` marker, oldest first."""
    if not landing.is_dir():
        return []
    return sorted(p.name[3:] for p in landing.iterdir()
                  if p.name.startswith("ds=") and (p / "_SUCCESS").is_file())


def _serve(env: dict[str, str], port: int) -> int:
    airflow = start(env, port)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        airflow.wait_healthy()
        print(f"Airflow is up: {airflow.url}  (user '{ADMIN}', password: "
              f"{admin_password(airflow.home)}; stored in {airflow.home}/"
              "simple_auth_manager_passwords.json.generated)")
        print(f"Component logs: {airflow.home / 'logs'}/<component>.log. Ctrl-C stops.")
        while not stopping and all(p.poll() is None for p in airflow.processes.values()):
            time.sleep(1)
    finally:
        codes = airflow.stop()
        print("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    return 0


def _in_process(env: dict[str, str]) -> dict[str, str]:
    """Environment for ``airflow dags test``: deadline alerts off (see lakehouse.config)."""
    return {**env, "PIPELINE_RUN_DEADLINE_MINUTES": "0"}


def _dag_test(env: dict[str, str], ds: str, pipeline: str = DEFAULT_PIPELINE) -> int:
    env = _in_process(env)
    init(env)
    return _airflow(env, "dags", "test", f"{pipeline}_daily", ds, check=False).returncode


@dataclass(frozen=True)
class FinishedTask:
    """One ended try of a task instance, as the metadata database records it."""

    task_id: str
    map_index: int
    try_number: int
    state: str
    seconds: float | None
    ended_at: dt.datetime

    @property
    def key(self) -> tuple[str, int, int, str]:
        """What identifies the try: task, map index, try number and the state it ended in."""
        return (self.task_id, self.map_index, self.try_number, self.state)

    def line(self, ds: str) -> str:
        """The progress line: ``1998-07-30  silver            success   41.2 s``."""
        name = self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"
        took = "" if self.seconds is None else f"{self.seconds:.1f} s"
        return f"{ds}  {name:<17} {self.state:<8}{took:>8}".rstrip()


def _utc(value: str | None) -> dt.datetime | None:
    """A metadata-database timestamp as an aware datetime (SQLite holds them naive, in UTC)."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def sqlite_database(conn: str) -> Path | None:
    """The file of a SQLite SQLAlchemy URL (``sqlite:////abs/airflow.db``), else ``None``."""
    prefix = "sqlite:///"
    if not conn.startswith(prefix):
        return None
    path = conn[len(prefix):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def finished_tasks(database: Path, dag_id: str, ds: str, since: dt.datetime
                   ) -> tuple[list[FinishedTask], str | None]:
    """The task tries of ``dag_id``'s run for ``ds`` that ended at or after ``since``.

    Read-only. ``airflow dags test`` reuses the run of a ``ds`` it ran before (its task
    instances cleared first), so tries of an earlier invocation are told apart by their
    end time.

    :param database: the SQLite metadata database.
    :param dag_id: the DAG.
    :param ds: the run's logical date (``YYYY-MM-DD``).
    :param since: only tries that ended at this moment or later (aware UTC).
    :return: the tries in the order they ended, and the run's state (``None`` without a run).
    :raises sqlite3.Error: when the database cannot be read at the moment (locked, or not
        migrated yet).
    """
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1.0)
    try:
        run = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? "
            "AND substr(logical_date, 1, 10) = ? ORDER BY id DESC LIMIT 1", (dag_id, ds),
        ).fetchone()
        if run is None:
            return [], None
        rows = db.execute(
            "SELECT task_id, map_index, try_number, state, start_date, end_date "
            "FROM task_instance WHERE dag_id = ? AND run_id = ? "
            f"AND state IN ({', '.join('?' * len(_TRY_ENDED))})",
            (dag_id, run[0], *_TRY_ENDED),
        ).fetchall()
    finally:
        db.close()
    found = []
    for task_id, map_index, try_number, state, start, end in rows:
        started_at, ended_at = _utc(start), _utc(end)
        if ended_at is None or ended_at < since:
            continue
        seconds = None if started_at is None else (ended_at - started_at).total_seconds()
        found.append(FinishedTask(task_id, int(map_index), int(try_number or 0), state,
                                  seconds, ended_at))
    return sorted(found, key=lambda t: (t.ended_at, t.task_id)), run[1]


def _database(env: Mapping[str, str]) -> Path | None:
    """The deployment's SQLite metadata database, or ``None`` when it uses another one."""
    lines = subprocess.run(
        [str(VENV_BIN / "airflow"), "config", "get-value", "database", "sql_alchemy_conn"],
        env=dict(env), capture_output=True, text=True, check=False,
    ).stdout.strip().splitlines()
    return sqlite_database(lines[-1].strip()) if lines else None


def _dag_test_with_progress(env: Mapping[str, str], ds: str, log: Path,
                            database: Path | None, out: TextIO,
                            dag_id: str) -> tuple[int, str | None]:
    """``airflow dags test`` for ``ds``, its output into ``log``; a line per ended task try.

    The lines come from the metadata database, which the test run updates as each task
    ends; it is read every :data:`_POLL_SECONDS` and once more after the run.

    :return: the exit status and the DAG run's final state (``None`` when unknown).
    """
    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    seen: set[tuple[str, int, int, str]] = set()
    state: str | None = None

    def report() -> None:
        nonlocal state
        if database is None:
            return
        try:
            tasks, state = finished_tasks(database, dag_id, ds, since)
        except sqlite3.Error:
            return  # busy for a moment: the next look catches up
        for task in tasks:
            if task.key not in seen:
                seen.add(task.key)
                print(task.line(ds), file=out, flush=True)

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as output:
        proc = subprocess.Popen([str(VENV_BIN / "airflow"), "dags", "test", dag_id, ds],
                                env=dict(env), stdout=output, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(_POLL_SECONDS)
            report()
    report()
    return proc.returncode, state


def _demo(env: dict[str, str], landing: Path, out: TextIO | None = None,
          pipeline: str = DEFAULT_PIPELINE) -> int:
    out = out or sys.stdout
    dag_id = f"{pipeline}_daily"
    env = _in_process(env)
    init(env)
    database = _database(env)
    logs = Path(env["AIRFLOW_HOME"]) / "logs" / "demo"
    drops = complete_drops(landing)
    if database is None:
        print("(a line per task needs the SQLite metadata database; the logs have them)",
              file=out)
    status = 0
    for number, ds in enumerate(drops, 1):
        log = logs / f"{dag_id}_{ds}.log"
        print(f"== {dag_id} for ds={ds}, drop {number} of {len(drops)} (airflow dags test; "
              f"full log: {log})", file=out, flush=True)
        started = time.monotonic()
        code, state = _dag_test_with_progress(env, ds, log, database, out, dag_id)
        took = time.monotonic() - started
        if code == 0:
            print(f"{ds}  run {state or 'ended'} in {took:.0f} s", file=out, flush=True)
        else:
            print(f"{ds}  run FAILED ({state or 'no state'}, exit {code}) in {took:.0f} s; "
                  f"see {log} and {env['AIRFLOW_HOME']}/logs/dag_id={dag_id}/",
                  file=out, flush=True)
        status = status or code
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python tools/airflow_local.py")
    parser.add_argument("command", choices=["serve", "dag-test", "demo", "init"])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--ds")
    parser.add_argument("--landing", default=None)
    parser.add_argument("--pipeline", default=DEFAULT_PIPELINE)
    args = parser.parse_args(argv)
    home = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")).resolve()
    env = airflow_env(home, args.port)
    if args.command == "serve":
        return _serve(env, args.port)
    if args.command == "init":
        init(env)
        return 0
    if args.command == "dag-test":
        if not args.ds:
            parser.error("dag-test needs --ds YYYY-MM-DD")
        return _dag_test(env, args.ds, args.pipeline)
    if args.landing is None:
        parser.error("demo needs --landing PATH (the pipeline's landing zone)")
    return _demo(env, Path(args.landing).resolve(), pipeline=args.pipeline)


if __name__ == "__main__":
    sys.exit(main())
