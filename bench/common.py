"""What every part of the benchmark shares: paths, the environment, commands, measuring.

Every other ``bench`` module imports from here and this module imports none of them, so
the benchmark's imports point one way. It stays importable under ``spark-submit`` (no
heavy import at module level; ``psutil`` is imported where memory is sampled).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from jobs.catalog import Catalog, Expectation, load_catalog

__all__ = [
    "BIN",
    "MERGED",
    "PARTITIONED",
    "ROOT",
    "Measured",
    "Progress",
    "baseline_parser",
    "count_lines",
    "env",
    "event_log",
    "generate",
    "job",
    "landed_lines",
    "machine",
    "measure",
    "parent_rules",
    "row_rules",
    "size",
    "spark_jobs",
    "spark_submit",
    "table_files",
    "tpch",
    "versions",
]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The silver tables that daily drops MERGE into, whose history the benchmark reports.
MERGED = ("orders", "lineitem", "customer")
# The partitioned ones: their MERGEs read the files of the partitions the condition names.
PARTITIONED = ("orders", "lineitem")


@dataclass
class Measured:
    """One measured subprocess."""

    name: str
    wall_s: float
    peak_rss_mb: float
    returncode: int
    log: str


def env() -> dict[str, str]:
    """The environment of a developer's ``spark-submit`` for every benchmarked command.

    :return: the variables to set on top of this process's environment.
    """
    # spark-submit finds Spark through the venv's python on PATH.
    return {"PIPELINE_RUNNER": "local", "PIPELINE_METRICS": "off", "PYTHONPATH": str(ROOT),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def spark_submit(*args: str) -> list[str]:
    """The venv's ``spark-submit`` with ``args``."""
    return [str(BIN / "spark-submit"), *args]


def job(step: str, ds: str, lake: Path, landing: Path, *conf: str) -> list[str]:
    """The contract's job command line for one step (``conf``: extra ``spark-submit`` options).

    :return: ``spark-submit [conf] jobs/main.py <step> --ds <ds> --lake ... --landing ...``.
    """
    return spark_submit(*conf, str(ROOT / "jobs" / "main.py"), step, "--ds", ds,
                        "--lake", str(lake), "--landing", str(landing))


def event_log(folder: Path) -> list[str]:
    """``spark-submit`` options that write an uncompressed Spark event log to ``folder``."""
    return ["--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={folder}",
            "--conf", "spark.eventLog.compress=false"]


def measure(name: str, cmd: list[str], log: Path, extra_env: dict[str, str] | None = None
            ) -> Measured:
    """Run ``cmd``; sample the resident memory of its whole process tree every 0.1 s.

    (:func:`_tree_rss`: JVM, Python and anything else they start, each counted once.)

    :param name: what is measured (kept in the result).
    :param cmd: the command, run from the repository root.
    :param log: receives its standard output and error.
    :param extra_env: set on top of this process's environment.
    :return: wall time, peak memory and exit status.
    :raises RuntimeError: when the command fails (its log names the cause).
    """
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        start = time.perf_counter()
        proc = psutil.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(extra_env or {})})
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc))
            time.sleep(0.1)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited {proc.returncode}; see {log}")
    return Measured(name, wall, peak / 2**20, proc.returncode, str(log))


def _tree_rss(root: Any) -> int:
    """Resident memory of a process tree, each process once.

    The JVM starts helpers (Hadoop runs ``chmod`` and ``readlink`` for the local file
    system, hundreds per run): between its fork and its exec such a child shows its
    parent's whole resident set, which would count the JVM twice. A child with its
    parent's command line is such a moment, and is skipped.
    """
    import psutil

    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            parent = p.parent()
            if p.pid != root.pid and parent is not None and p.cmdline() == parent.cmdline():
                continue
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return int(total)


def spark_jobs(event_dir: Path) -> dict[str, int]:
    """Spark jobs in an event log: all, and those that are not Delta's log replay; and spill.

    Delta describes the jobs that rebuild a table's state from its log as ``Delta: ...``;
    every other job reads or writes table data (the ledger's included).
    """
    total = data = spilled_disk = spilled_memory = 0
    for events in event_dir.rglob("events_*"):
        with events.open(encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                if event.get("Event") == "SparkListenerTaskEnd":
                    task = event.get("Task Metrics") or {}
                    spilled_disk += int(task.get("Disk Bytes Spilled") or 0)
                    spilled_memory += int(task.get("Memory Bytes Spilled") or 0)
                if event.get("Event") != "SparkListenerJobStart":
                    continue
                total += 1
                props = event.get("Properties") or {}
                if not str(props.get("spark.job.description") or "").startswith("Delta:"):
                    data += 1
    return {"jobs": total, "data_jobs": data, "spilled_disk_bytes": spilled_disk,
            "spilled_memory_bytes": spilled_memory}


def table_files(drop: Path, table: str) -> list[Path]:
    """The ``.tbl`` parts of one table in one drop folder (``<landing>/ds=...``), sorted."""
    return sorted((drop / table).glob("*.tbl"))


def count_lines(files: Iterable[Path]) -> int:
    """Lines in ``files`` (each closed again)."""
    total = 0
    for path in files:
        with path.open("rb") as f:
            total += sum(1 for _ in f)
    return total


def baseline_parser(prog: str) -> argparse.ArgumentParser:
    """The arguments both baselines take: one drop in, Parquet silver and gold out."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--ds", required=True)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def tpch() -> Catalog:
    """The TPC-H pipeline's tables, as its spec declares them (the benchmark's data)."""
    return load_catalog("tpch")


def row_rules(table: str) -> list[Expectation]:
    """The expectations a baseline applies row by row: ``drop`` and ``fail``, not ``warn``.

    The rules that need the row's parent (:func:`parent_rules`) are left out.
    """
    return [e for e in tpch().expectations(table)
            if e.scope == "row" and not e.needs_parent and e.action != "warn"]


def parent_rules(table: str) -> list[Expectation]:
    """A child's expectations that read its parent's columns (``parent.<column>``)."""
    return [e for e in tpch().expectations(table) if e.scope == "row" and e.needs_parent]


def landed_lines(landing: Path, ds: str) -> int:
    """Lines of every table of one drop."""
    return count_lines((landing / f"ds={ds}").rglob("*.tbl"))


def generate(landing: Path, sf: str, days: int) -> list[str]:
    """The project's generator's drops at ``sf``, generated once and reused after.

    :return: the ``ds`` of every drop, oldest (the initial load) first.
    """
    marker = landing / f".bench-sf{sf}-days{days}"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pipelines.tpch.datagen", "--sf", sf,
                        "--days", str(days), "--landing", str(landing)], cwd=ROOT, check=True)
        marker.touch()
    return sorted(p.name[3:] for p in landing.iterdir() if p.name.startswith("ds="))


def size(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def versions() -> dict[str, str]:
    """Versions of Python, PySpark, Delta, DuckDB and Java the benchmark ran with."""
    import duckdb
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    delta = next((p.name for p in (ROOT / ".cache" / "jars").glob("delta-spark_*.jar")), "?")
    return {"python": platform.python_version(), "pyspark": pyspark.__version__,
            "delta": delta.removesuffix(".jar").split("-")[-1], "duckdb": duckdb.__version__,
            "java": java.splitlines()[0] if java else "?"}


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and OS of this machine."""
    import psutil

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform()}


class Progress:
    """Where a long benchmark is: numbered sections, items within them, elapsed time.

    Every line goes to one stream (standard error by default, so standard output stays
    free for results) and ends in the seconds since the run began::

        [5/9] daily drops: 2 of 3, 1998-08-01 …  (431 s)
        [5/9] daily drops: 2 of 3, 1998-08-01: 85.3 s, peak 3,120 MiB  (516 s)

    :param sections: the run's section titles, in order.
    :param stream: where the lines go.
    :param clock: seconds from an arbitrary start (tests pass their own).
    """

    def __init__(self, sections: Sequence[str], stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sections = list(sections)
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._section = 0
        self._items: int | None = None
        self._item = 0
        self._label = ""

    def _say(self, text: str) -> None:
        elapsed = self._clock() - self._started
        print(f"{text}  ({elapsed:.0f} s)", file=self._stream or sys.stderr, flush=True)

    def _where(self) -> str:
        title = self.sections[self._section - 1]
        head = f"[{self._section}/{len(self.sections)}] {title}"
        if not self._item:
            return head
        of = f" of {self._items}" if self._items else ""
        return f"{head}: {self._item}{of}, {self._label}"

    def section(self, title: str, items: int | None = None) -> None:
        """Begin the next section.

        :param title: its title, the next one of ``sections``.
        :param items: how many items it runs, when known.
        :raises ValueError: when ``title`` is not the next section.
        """
        expected = self.sections[self._section] if self._section < len(self.sections) else None
        if title != expected:
            raise ValueError(f"section {title!r} out of order: the next is {expected!r}")
        self._section += 1
        self._items, self._item, self._label = items, 0, ""
        self._say(self._where())

    def expect(self, items: int) -> None:
        """Set the current section's item count once it is known."""
        self._items = items

    def item(self, label: str) -> None:
        """Announce the next item of the current section before it runs."""
        if not self._section:
            raise ValueError("item before the first section")
        self._item += 1
        self._label = label
        self._say(f"{self._where()} …")

    def done(self, outcome: str) -> None:
        """Report how the current item (or section) ended."""
        self._say(f"{self._where()}: {outcome}")

    def run(self, label: str, cmd: list[str], log: Path,
            extra_env: dict[str, str] | None = None) -> Measured:
        """:func:`measure` ``cmd`` as the next item, announcing it before and after.

        :param label: the item's name, also the measurement's.
        :return: the measurement.
        :raises RuntimeError: when the command fails.
        """
        self.item(label)
        try:
            result = measure(label, cmd, log, extra_env)
        except RuntimeError as exc:
            self.done(f"failed: {exc}")
            raise
        self.done(f"{result.wall_s:.1f} s, peak {result.peak_rss_mb:,.0f} MiB")
        return result
