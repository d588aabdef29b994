"""Step ``report``: the static HTML run report under ``<lake>/reports/``.

Reads the whole ``ops/runs`` and ``ops/dq_results`` ledgers (small: a few rows per step
run) and the quarantine counts per reason, and renders one self-contained page per run
date with :mod:`jobs.report.render`.
The page is written through Hadoop's FileSystem API, so it lands next to the tables
whatever the lake's scheme (local disk, ``s3a://``). The step writes no table and is
safe to run after a failed step: the report then shows the failure.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from jobs.delta_io import is_delta_table
from jobs.report.render import (
    DqRow,
    QuarantineCount,
    ReportInput,
    RunRow,
    render_html,
    report_name,
)
from jobs.steps.common import StepContext, log

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["collect", "quarantine_counts", "report_uri", "run", "write_text"]


def _rows(spark: SparkSession, uri: str) -> list[dict[str, Any]]:
    if not is_delta_table(spark, uri):
        return []
    return [r.asDict() for r in spark.read.format("delta").load(uri).collect()]


def collect(ctx: StepContext) -> ReportInput:
    """Read both ledgers into the renderer's input.

    :param ctx: the step context (its ``ds`` is the report's date).
    :return: the report input.
    """
    runs = [
        RunRow(
            run_id=r["run_id"], step=r["step"], ds=r["ds"], status=r["status"],
            started_at=r["started_at"], ended_at=r["ended_at"],
            rows_read=r["rows_read"] or {}, rows_written=r["rows_written"] or {},
            rows_quarantined=r["rows_quarantined"] or {},
            rows_duplicate=r["rows_duplicate"] or {}, message=r["message"],
        )
        for r in _rows(ctx.spark, ctx.lake.table("ops", "runs"))
    ]
    dq = [
        DqRow(
            run_id=r["run_id"], table=r["table"], ds=r["ds"], expectation=r["expectation"],
            action=r["action"], failed_rows=int(r["failed_rows"]), outcome=r["outcome"],
            evaluated_at=r["evaluated_at"],
        )
        for r in _rows(ctx.spark, ctx.lake.table("ops", "dq_results"))
    ]
    # The generation time is audit metadata printed on the page, not a run date.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    return ReportInput(ds=ctx.ds, lake=ctx.lake.root, runs=runs, dq=dq, generated_at=now,
                       quarantine=quarantine_counts(ctx))


def quarantine_counts(ctx: StepContext) -> list[QuarantineCount]:
    """Quarantined rows per table, ``ds`` and reason, from the quarantine tables.

    Read from the tables rather than the ledger because they hold every reason (parse
    errors, orphans, conflicts and ``drop`` expectations alike) as it stands now: an
    orphan released by a later drop no longer counts.
    """
    from pyspark.sql import functions as F

    out = []
    for name in ctx.catalog.bronze_tables:
        uri = ctx.lake.table("quarantine", name)
        if not is_delta_table(ctx.spark, uri):
            continue
        rows = (ctx.spark.read.format("delta").load(uri)
                .select("_ds", F.explode("reasons").alias("reason"))
                .groupBy("_ds", "reason").count().collect())
        out += [QuarantineCount(name, r["_ds"], r["reason"], int(r["count"])) for r in rows]
    return out


def report_uri(ctx: StepContext) -> str:
    """URI of the report page for the context's run date."""
    return f"{ctx.lake.reports}/{report_name(ctx.ds, ctx.catalog.name)}"


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small UTF-8 file through Hadoop's FileSystem (overwriting).

    :param spark: active session (its Hadoop configuration carries credentials).
    :param uri: target file URI.
    :param text: the content.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    fs.setWriteChecksum(False)  # no .crc side files next to the page on local disk
    # Write beside the target and rename, so a reader never sees half a page.
    tmp = jvm.org.apache.hadoop.fs.Path(f"{uri}.tmp")
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    if fs.exists(path):
        fs.delete(path, False)
    if not fs.rename(tmp, path):
        raise OSError(f"could not move the report into place at {uri}")


def run(ctx: StepContext) -> str:
    """Render and write the report for ``ctx.ds``.

    :param ctx: the step context.
    :return: the report's URI.
    """
    uri = report_uri(ctx)
    write_text(ctx.spark, uri, render_html(collect(ctx)))
    log.info("report %s: written to %s", ctx.ds_str, uri)
    print(f"report: {uri}")
    return uri
