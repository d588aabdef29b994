"""The run ledger (``ops/runs``) and expectation results (``ops/dq_results``).

Each step run writes one ``ops/runs`` row when it ends: its status, counts and the Delta
versions it wrote; the same numbers then go out as metrics (:mod:`jobs.metrics`).
The ledger is also the checkpoint: a step whose last successful run
for a ``ds`` saw the same input fingerprint has nothing to do, and a run killed part-way
leaves no ``succeeded`` row, so the next run of that ``ds`` redoes it (every write is
idempotent).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.delta_io import append_once, ensure_table, is_delta_table, local_frame
from jobs.delta_log import read_small_table
from jobs.metrics import StepMetrics, publish

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

    from jobs.lake import Lake

__all__ = [
    "DqResult",
    "Run",
    "dq_schema",
    "last_success",
    "last_successes",
    "record_dq",
    "runs_schema",
    "start_run",
]


def runs_schema() -> StructType:
    """Schema of ``ops/runs``."""
    from pyspark.sql import types as T

    counts = T.MapType(T.StringType(), T.LongType())
    return T.StructType([
        T.StructField("run_id", T.StringType(), False),
        T.StructField("step", T.StringType(), False),
        T.StructField("ds", T.DateType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), True),
        T.StructField("input_fingerprint", T.StringType(), True),
        T.StructField("rows_read", counts, True),
        T.StructField("rows_written", counts, True),
        T.StructField("rows_quarantined", counts, True),
        T.StructField("rows_duplicate", counts, True),
        T.StructField("delta_versions", counts, True),
        T.StructField("details", T.StringType(), True),
        T.StructField("message", T.StringType(), True),
    ])


def dq_schema() -> StructType:
    """Schema of ``ops/dq_results``."""
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("run_id", T.StringType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("ds", T.DateType(), False),
        T.StructField("expectation", T.StringType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("failed_rows", T.LongType(), False),
        T.StructField("outcome", T.StringType(), False),
        T.StructField("evaluated_at", T.TimestampType(), False),
    ])


@dataclass
class Run:
    """One step run, accumulated in memory and written to ``ops/runs``.

    :param spark: active session.
    :param lake: lake locations.
    :param step: step name.
    :param ds: run date.
    :param input_fingerprint: fingerprint of the step's input.
    """

    spark: SparkSession
    lake: Lake
    step: str
    ds: dt.date
    input_fingerprint: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    rows_duplicate: dict[str, int] = field(default_factory=dict)
    delta_versions: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def count(self, kind: str, table: str, n: int) -> None:
        """Add ``n`` to one of the per-table counters (read/written/quarantined/duplicate)."""
        counters: dict[str, int] = getattr(self, f"rows_{kind}")
        counters[table] = counters.get(table, 0) + int(n)

    def wrote(self, table: str, version: int | None) -> None:
        """Remember the Delta version a write committed (``None``: nothing committed)."""
        if version is not None:
            self.delta_versions[table] = version

    def write(self, status: str, message: str | None = None) -> None:
        """Record this run's final row in ``ops/runs``.

        The append is idempotent: Delta's ``txnAppId``/``txnVersion`` options make a
        repeated write of the same run a no-op, so the ledger holds one row per run even
        when the write itself is retried.
        """
        uri = self.lake.table("ops", "runs")
        ensure_table(self.spark, uri, runs_schema())
        ended = dt.datetime.now(dt.UTC)
        row = (
            self.run_id, self.step, self.ds, status,
            self.started_at.replace(tzinfo=None), ended.replace(tzinfo=None),
            self.input_fingerprint, self.rows_read, self.rows_written, self.rows_quarantined,
            self.rows_duplicate, self.delta_versions,
            json.dumps(self.details, sort_keys=True, default=str), message,
        )
        append_once(self.spark, uri, local_frame(self.spark, [row], runs_schema()),
                    f"ops-runs-{self.run_id}")
        publish(StepMetrics(
            step=self.step, ds=self.ds, status=status, started_at=self.started_at,
            ended_at=ended,
            rows={"read": self.rows_read, "written": self.rows_written,
                  "quarantined": self.rows_quarantined, "duplicate": self.rows_duplicate},
        ))


def start_run(spark: SparkSession, lake: Lake, step: str, ds: dt.date,
              fingerprint: str | None) -> Run:
    """Start a run: its row is written once, when it ends (:meth:`Run.write`).

    A run killed before it ends leaves no row; the next run of the same ``ds`` finds no
    ``succeeded`` row with its fingerprint and does the work again.

    :return: the run.
    """
    return Run(spark, lake, step, ds, fingerprint)


def last_success(spark: SparkSession, lake: Lake, step: str,
                 ds: dt.date | None = None) -> dict[str, Any] | None:
    """Return the latest ``succeeded`` run of a step (for one ``ds`` when given).

    :return: the row as a dict, or ``None``.
    """
    return last_successes(spark, lake, {step: ds})[step]


def last_successes(spark: SparkSession, lake: Lake,
                   wanted: dict[str, dt.date | None]) -> dict[str, dict[str, Any] | None]:
    """The latest ``succeeded`` run of several steps, with one read of ``ops/runs``.

    :param wanted: step -> the ``ds`` it must be for, or ``None`` for any ``ds``.
    :return: step -> the row as a dict, or ``None``.
    """
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(wanted)
    uri = lake.table("ops", "runs")
    if not wanted or not is_delta_table(spark, uri):
        return found
    rows = read_small_table(spark, uri)  # on the driver: no Spark job for a no-op run
    if rows is None:  # a table feature the driver-side reader skips: read it through Spark
        rows = _succeeded_runs_via_spark(spark, uri, wanted)
    for row in rows:
        step = row["step"]
        if row["status"] != "succeeded" or step not in wanted:
            continue
        if wanted[step] is not None and row["ds"] != wanted[step]:
            continue  # another step's ds, or another ds
        latest = found[step]
        if latest is None or row["ended_at"] > latest["ended_at"]:
            found[step] = row
    return found


def _succeeded_runs_via_spark(spark: SparkSession, uri: str,
                              wanted: dict[str, dt.date | None]) -> list[dict[str, Any]]:
    from functools import reduce

    from pyspark.sql import functions as F

    wanted_runs = reduce(lambda a, b: a | b, [
        (F.col("step") == step) & (F.lit(True) if ds is None else F.col("ds") == F.lit(ds))
        for step, ds in wanted.items()
    ])
    return [r.asDict(recursive=True) for r in spark.read.format("delta").load(uri)
            .where((F.col("status") == "succeeded") & wanted_runs).collect()]


@dataclass(frozen=True)
class DqResult:
    """One evaluated expectation.

    :param table: table the expectation is about.
    :param expectation: expectation name.
    :param action: ``warn``, ``drop`` or ``fail``.
    :param failed_rows: rows (or, for dataset checks, violations) that failed.
    """

    table: str
    expectation: str
    action: str
    failed_rows: int

    @property
    def outcome(self) -> str:
        """``passed``; otherwise ``warned``, ``dropped`` or ``failed`` after the action."""
        if self.failed_rows == 0:
            return "passed"
        return {"warn": "warned", "drop": "dropped", "fail": "failed"}[self.action]


def record_dq(run: Run, results: Iterable[DqResult]) -> None:
    """Write expectation results of a run to ``ops/dq_results`` (once per run).

    An idempotent append keyed by the run id, like the run's own ledger row: a retried
    write adds nothing, and no existing results are read.
    """
    rows = [
        (run.run_id, r.table, run.ds, r.expectation, r.action, int(r.failed_rows), r.outcome,
         dt.datetime.now(dt.UTC).replace(tzinfo=None))
        for r in results
    ]
    if not rows:
        return
    uri = run.lake.table("ops", "dq_results")
    ensure_table(run.spark, uri, dq_schema())
    append_once(run.spark, uri, local_frame(run.spark, rows, dq_schema()),
                f"ops-dq-{run.run_id}")
