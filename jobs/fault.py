"""Fault injection for crash tests: ``PIPELINE_FAULT=<point>`` kills the job there.

The variable names one point; when the job reaches it, the driver is SIGKILLed, JVM and
Python alike, exactly like an OOM kill or a lost node: no shutdown hook, no ``finally``.

Points (``<table>`` is ``<layer>/<name>``, e.g. ``silver/orders``):

* ``before_<step>`` / ``after_<step>``: around a step of the CLI (``all`` passes four).
* ``before_write:<table>`` / ``after_write:<table>``: around each Delta write (MERGE,
  replaceWhere, append, create, RESTORE, OPTIMIZE) of a table; ``after_write`` is right
  after the commit, e.g. between a silver MERGE and the ledger row that records it.
* ``commit:<n>``: right after the process's n-th Delta commit (for sweeping every commit
  boundary; where a step writes tables side by side the order of those commits varies).
* ``during_write:<table>``: while the table's data files are being written, before the
  commit: a watcher thread kills the job as soon as a new data file appears under the
  table's folder (local lakes only).
* ``during_vacuum:<table>``: while VACUUM deletes files: the watcher kills the job as soon
  as one of the table's files present at start-up is gone (local lakes only).

Modifiers:

* ``<point>:exit1`` exits with status 1 instead (a transient failure).
* A trailing ``:once`` fires the fault only the first time any process reaches the point:
  the first hit creates the marker file named by ``PIPELINE_FAULT_MARKER`` and later hits
  pass. That models "the first attempt fails, the retry succeeds" across processes, which
  is how orchestration retries are tested.

Several points, separated by commas (``after_write:bronze/orders:once,after_quality:once``),
each with its own modifiers: a run of a DAG can then lose every task once. With several
points, each ``:once`` point has its own marker, ``<PIPELINE_FAULT_MARKER>.<n>`` (``n``:
its position in the list, from 1). A watched point claims its marker when it fires, so a
process that never writes the table leaves it to the one that does.

A point can be limited to one step with a ``<step>@`` prefix
(``silver@after_write:ops/runs:once``): it fires only while that step runs. Every step
writes ``ops/runs`` and two write ``ops/dq_results``, so without the prefix such a point
fires in whichever step gets there first. With scoped ``:once`` points a DAG run can lose
each task several times, at a different point on each try
(``silver@during_write:silver/orders:once,silver@after_write:silver/lineitem:once``).

``PIPELINE_CONFLICT=<table>`` (local lakes) makes a real Delta write conflict instead: as
soon as a write of the table (in :func:`jobs.delta_io.with_conflict_retry`) adds a data
file, a concurrent writer (a thread of the job, through the same session) commits a change
of the table's properties (``pipeline.fault.conflict``), once per process. The write in
progress then fails to commit with Delta's ``MetadataChangedException``, which the job's
conflict retry absorbs.

``PIPELINE_FAULT_TRACE=<file>`` appends the name of every point passed to the file, one per
line (crash tests use it to list the points a clean run passes).

Unset in production, each check costs one dictionary lookup.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import ConfigError
from jobs.steps import NAMES as _STEPS

__all__ = ["after_write", "arm", "before_write", "enter_step", "kill_driver", "maybe_fail",
           "note_conflict", "table_of"]

_commits = itertools.count(1)
_lock = threading.Lock()
_WATCHED = ("during_write:", "during_vacuum:")
# The step this process is running (``all`` runs four in turn): see :func:`enter_step`.
_step: str | None = None


def enter_step(name: str) -> None:
    """Record that the process now runs step ``name`` (for ``<step>@`` points)."""
    global _step
    _step = name


def _first_hit(marker: str) -> bool:
    """Atomically claim the marker file; ``True`` only for the first claimant."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def kill_driver() -> None:
    """SIGKILL the whole driver: the JVM, then this Python process.

    Under ``spark-submit`` the JVM is this process's parent; under ``python -m jobs`` it is
    the gateway child. Killing only Python would let the JVM run its shutdown hooks.
    """
    jvm: int | None = None
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit: the JVM is the parent
        jvm = os.getppid()
    else:
        from pyspark import SparkContext

        gateway = SparkContext._gateway
        proc = getattr(gateway, "proc", None) if gateway is not None else None
        jvm = proc.pid if proc is not None else None
    if jvm is not None and jvm > 1:
        try:
            os.kill(jvm, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class _Fault:
    """One configured point: kill there (or exit 1), every time or once."""

    point: str
    exit1: bool
    marker: str | None  # set for ``:once``: the file its first hit claims
    step: str | None = None  # ``<step>@``: only while that step runs

    def in_scope(self) -> bool:
        """Whether the step running now is the point's (always, without ``<step>@``)."""
        return self.step is None or self.step == _step

    def fires(self) -> bool:
        """Whether this hit fires: in scope, and always or (``:once``) the first hit of all."""
        return self.in_scope() and (self.marker is None or _first_hit(self.marker))


def _wanted() -> list[_Fault]:
    """The configured points, in order (empty when ``PIPELINE_FAULT`` is unset).

    :raises ConfigError: for ``:once`` without ``PIPELINE_FAULT_MARKER``.
    """
    entries = [e.strip() for e in os.environ.get("PIPELINE_FAULT", "").split(",") if e.strip()]
    marker = os.environ.get("PIPELINE_FAULT_MARKER") or None
    faults = []
    for n, entry in enumerate(entries, 1):
        once = entry.endswith(":once")
        entry = entry.removesuffix(":once")
        if once and marker is None:
            raise ConfigError(
                "PIPELINE_FAULT ends in ':once' but PIPELINE_FAULT_MARKER is not set")
        own = (marker if len(entries) == 1 else f"{marker}.{n}") if once else None
        step, _, point = entry.rpartition("@")
        if step and step not in _STEPS:
            raise ConfigError(f"PIPELINE_FAULT={entry}: {step!r} is not a step "
                              f"({', '.join(_STEPS)})")
        faults.append(_Fault(point.removesuffix(":exit1"), point.endswith(":exit1"), own,
                             step or None))
    return faults


def _trace(point: str) -> None:
    path = os.environ.get("PIPELINE_FAULT_TRACE")
    if path:
        with _lock, open(path, "a", encoding="utf-8") as out:
            out.write(point + "\n")


def maybe_fail(point: str) -> None:
    """Kill or fail the process if ``PIPELINE_FAULT`` names this point.

    :param point: the name of the point being passed.
    """
    _trace(point)
    for wanted in _wanted():
        if wanted.point == point and wanted.fires():
            if not wanted.exit1:
                kill_driver()
            raise RuntimeError(f"injected transient failure at {point}")


def table_of(uri: str) -> str:
    """``<layer>/<name>`` of a table URI (its last two path segments)."""
    parts = uri.rstrip("/").split("/")
    return "/".join(parts[-2:])


def _armed() -> bool:
    return any(name in os.environ
               for name in ("PIPELINE_FAULT", "PIPELINE_FAULT_TRACE", "PIPELINE_CONFLICT"))


def before_write(uri: str) -> None:
    """Fault point before a Delta write of the table at ``uri``."""
    if _armed():
        maybe_fail(f"before_write:{table_of(uri)}")
        _start_conflict(uri)


def after_write(uri: str) -> None:
    """Fault points after a Delta commit to the table at ``uri``."""
    if _armed():
        _stop_conflict(uri)
        with _lock:
            n = next(_commits)
        maybe_fail(f"after_write:{table_of(uri)}")
        maybe_fail(f"commit:{n}")


def _data_files(folder: Path) -> set[str]:
    """Data files under a table folder (partition folders included, the log excluded)."""
    return {
        str(p) for p in folder.rglob("*.parquet")
        if "_delta_log" not in p.parts and not p.name.startswith(".")
    }


def _watch(folder: Path, vacuum: bool, every: float, wanted: _Fault) -> None:
    start = _data_files(folder)
    while True:
        time.sleep(every)
        now = _data_files(folder)
        if (vacuum and start - now) or (not vacuum and now - start):
            if not wanted.in_scope():  # another step's write: watch on for the point's step
                start = now
                continue
            if wanted.fires():
                kill_driver()
            return  # ``:once``, and another process has had it


def _local_folder(lake_root: str, table: str, setting: str) -> Path:
    if "://" in lake_root and not lake_root.startswith("file://"):
        raise ConfigError(f"{setting} needs a local lake, not {lake_root}")
    return Path(lake_root.removeprefix("file://").removeprefix("file:")) / table


_conflict_done = threading.Event()


def _conflict(folder: Path, writing: threading.Event, every: float = 0.05) -> None:
    """Commit property changes to the table while the write runs, until it conflicts.

    A write's transaction spans its snapshot read, its file writes and its commit; a
    single concurrent commit could land before or after that window, so the writer keeps
    committing until the job reports the conflict (:func:`note_conflict`).
    """
    from pyspark.sql import SparkSession

    from jobs.sql import identifier, sql_literal

    # The job's session (the default one: this thread has no active session of its own).
    spark = SparkSession.builder.getOrCreate()
    # A name in the session's own (in-memory) catalogue for the table, an external table
    # over its folder, so that the SQL text holds a validated name and no path. It is never
    # dropped: the process is a test's, and dropping is not worth any risk to the data.
    name = identifier(f"pipeline_fault_conflict_{time.time_ns()}", known=False)
    spark.catalog.createTable(name, path=folder.as_uri(), source="delta")
    while writing.is_set() and not _conflict_done.is_set():
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES "
                  f"('pipeline.fault.conflict' = {sql_literal(str(time.time_ns()))})")
        time.sleep(every)


def note_conflict(uri: str) -> None:
    """The job met a write conflict on this table: ``PIPELINE_CONFLICT`` has done its work."""
    if os.environ.get("PIPELINE_CONFLICT", "").strip() == table_of(uri):
        _conflict_done.set()


_writing: dict[str, threading.Event] = {}


def _start_conflict(uri: str) -> None:
    """``PIPELINE_CONFLICT``: watch this write of the named table, once per process."""
    table = table_of(uri)
    if os.environ.get("PIPELINE_CONFLICT", "").strip() != table or _conflict_done.is_set():
        return
    folder = _local_folder(uri, "", f"PIPELINE_CONFLICT={table}")
    if not (folder / "_delta_log").is_dir():  # being created: nothing to conflict with yet
        return
    writing = _writing[table] = threading.Event()
    writing.set()
    threading.Thread(target=_conflict, args=(folder, writing), name="fault-conflict",
                     daemon=True).start()


def _stop_conflict(uri: str) -> None:
    writing = _writing.pop(table_of(uri), None)
    if writing is not None:
        writing.clear()


def arm(lake_root: str, every: float = 0.01) -> None:
    """Start a watcher for each ``during_write``/``during_vacuum`` point that is set.

    :param lake_root: the lake's root URI (``file:`` or a plain path).
    :param every: polling interval in seconds.
    :raises ConfigError: for a watched point on a lake that is not on the local disk, or
        one that asks to exit 1.
    """
    for wanted in _wanted():
        if not wanted.point.startswith(_WATCHED):
            continue
        kind, table = wanted.point.split(":", 1)
        if wanted.exit1:
            raise ConfigError(
                f"PIPELINE_FAULT={wanted.point}: a watched point can only kill, not exit 1")
        folder = _local_folder(lake_root, table, f"PIPELINE_FAULT={kind}:…")
        threading.Thread(target=_watch, args=(folder, kind == "during_vacuum", every, wanted),
                         name="fault-watch", daemon=True).start()
