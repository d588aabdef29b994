"""Step ``ingest``: landing drop -> ``bronze/<table>``, every line verbatim with lineage.

Each table's rows for the run date are replaced in one ``replaceWhere _ds = <ds>`` commit,
so ingesting a drop twice never duplicates it and a killed run is simply redone. Every file
is read and checked before any table is written, so an unusable file (exit 3) refuses the
drop as a whole and leaves bronze as it was. Line numbers are exact: Spark reads a file's
splits in offset order, so a line's number is the count of lines before its split plus its
position inside the split.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from jobs.delta_io import replace_where
from jobs.errors import DropNotReadyError, InputUnusableError
from jobs.lake import LandedFile, drop_uri, exists, list_files
from jobs.ledger import last_success, start_run
from jobs.schemas import BRONZE_TABLES
from jobs.sql import sql_literal
from jobs.steps.common import StepContext, fingerprint, log, run_parallel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["landed_files", "read_lines", "run"]


def landed_files(ctx: StepContext) -> dict[str, list[LandedFile]]:
    """List a complete drop's data files by table.

    :param ctx: step context.
    :return: table name -> its ``.tbl`` files (tables absent from the drop are omitted).
    :raises DropNotReadyError: when the drop has no ``_SUCCESS`` marker.
    :raises InputUnusableError: for a file outside the contract's layout.
    """
    root = drop_uri(ctx.landing, ctx.ds_str)
    if not exists(ctx.spark, f"{root}/_SUCCESS"):
        raise DropNotReadyError(f"{root}: drop is not complete (no _SUCCESS marker yet)")
    by_table: dict[str, list[LandedFile]] = {}
    for f in list_files(ctx.spark, root):
        parts = f.relative.split("/")
        name = parts[-1]
        if name.startswith((".", "_")):
            continue  # markers, checksums and hidden files are not data
        if len(parts) != 2 or parts[0] not in BRONZE_TABLES:
            raise InputUnusableError(
                f"{f.uri}: unexpected file in the drop (expected <table>/<name>.tbl with a "
                f"table in {', '.join(BRONZE_TABLES)})"
            )
        if not name.endswith(".tbl"):
            raise InputUnusableError(f"{f.uri}: not a .tbl file")
        by_table.setdefault(parts[0], []).append(f)
    return by_table


def read_lines(
    spark: SparkSession, files: list[LandedFile], ds: str
) -> tuple[DataFrame, int]:
    """Read files as raw lines with exact 1-based line numbers per file.

    :param spark: active session.
    :param files: the files of one table.
    :param ds: the run date, stored in ``_ds``.
    :return: the lines (``value``, ``_ds``, ``_source_file``, ``_line_number``,
        ``_ingested_at``) and how many there are.
    :raises InputUnusableError: when a file holds binary content (NUL bytes).
    """
    from pyspark.sql import functions as F

    raw = spark.read.text([f.uri for f in files]).select(
        "value",
        F.col("_metadata.file_path").alias("_source_file"),
        F.monotonically_increasing_id().alias("_mid"),
    )
    # monotonically_increasing_id = partition index << 33 | position in the partition.
    stats = (
        raw.groupBy("_source_file", F.shiftright("_mid", 33).alias("_part"))
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("_mid").alias("first_mid"),
            F.min(F.when(F.instr("value", "\u0000") > 0, F.col("_mid"))).alias("nul_mid"),
        )
        .collect()
    )
    base: dict[tuple[str, int], int] = {}
    seen: dict[str, int] = {}
    for row in sorted(stats, key=lambda r: (r["_source_file"], r["_part"])):
        before = seen.get(row["_source_file"], 0)
        if row["nul_mid"] is not None:
            line = before + row["nul_mid"] - row["first_mid"] + 1
            raise InputUnusableError(
                f"{row['_source_file']} line {line}: binary content (NUL byte); the file is "
                "not dbgen text"
            )
        base[(row["_source_file"], row["_part"])] = before + 1 - row["first_mid"]
        seen[row["_source_file"]] = before + row["n"]
    total = sum(seen.values())
    if not base:
        return raw.select(
            "value", F.lit(ds).cast("date").alias("_ds"), "_source_file",
            F.lit(0).cast("bigint").alias("_line_number"),
            F.current_timestamp().alias("_ingested_at"),
        ).limit(0), 0
    offsets = F.create_map(*[
        x for (file, part), b in base.items()
        for x in (F.lit(f"{part}:{file}"), F.lit(b))
    ])
    lookup = F.concat_ws(":", F.shiftright("_mid", 33).cast("string"), F.col("_source_file"))
    return raw.select(
        "value",
        F.lit(ds).cast("date").alias("_ds"),
        "_source_file",
        (F.col("_mid") + offsets[lookup]).cast("bigint").alias("_line_number"),
        F.current_timestamp().alias("_ingested_at"),
    ), total


def run(ctx: StepContext) -> dict[str, int]:
    """Ingest the drop for ``ctx.ds`` into bronze.

    :param ctx: step context.
    :return: lines written per table (empty when the drop was already ingested).
    :raises DropNotReadyError: when the drop has no ``_SUCCESS`` marker.
    :raises InputUnusableError: for an unusable file (then no table is written).
    """
    files = landed_files(ctx)
    fp = fingerprint({t: [(f.relative, f.size, f.mtime) for f in fs] for t, fs in files.items()})
    previous = last_success(ctx.spark, ctx.lake, "ingest", ctx.ds)
    if previous and previous["input_fingerprint"] == fp and not ctx.force:
        log.info("ingest %s: drop unchanged since run %s, nothing to do", ctx.ds,
                 previous["run_id"])
        return {}
    run_ = start_run(ctx.spark, ctx.lake, "ingest", ctx.ds, fp)
    run_.details["files"] = {t: [f.relative for f in fs] for t, fs in files.items()}
    predicate = f"_ds = {sql_literal(ctx.ds)}"
    # Every file is read and checked before any table is written: an unusable file refuses
    # the drop as a whole, so bronze never holds part of a drop that silver will not see.
    lines = run_parallel({
        t: partial(read_lines, ctx.spark, fs, ctx.ds_str) for t, fs in files.items()
    })

    def ingest_table(table: str) -> int | None:
        uri = ctx.lake.table("bronze", table)
        if table not in files:
            # A re-ingest after the drop lost a table must not leave its old lines behind.
            if previous is not None and table in (previous.get("rows_written") or {}):
                empty = ctx.spark.read.format("delta").load(uri).limit(0)
                run_.wrote(table, replace_where(ctx.spark, uri, empty, predicate).version)
            return None
        lines_df, n = lines[table]
        result = replace_where(ctx.spark, uri, lines_df, predicate, partition_by=["_ds"])
        run_.wrote(table, result.version)
        run_.count("read", table, n)
        run_.count("written", table, n)
        return n

    counts = run_parallel({t: partial(ingest_table, t) for t in BRONZE_TABLES})
    written = {t: n for t, n in counts.items() if n is not None}
    run_.write("succeeded")
    log.info("ingest %s: %s", ctx.ds, written)
    return written
