"""Step ``ingest``: landing drop -> ``bronze/<table>``, every line verbatim with lineage.

Each table's rows for the run date are replaced in one ``replaceWhere _ds = <ds>`` commit,
so ingesting a drop twice never duplicates it and a killed run is simply redone. Every file
is read and checked before any table is written, so an unusable file (exit 3) refuses the
drop as a whole and leaves bronze as it was. Line numbers are exact: Spark reads a file's
splits in offset order, so a line's number is the count of lines before its split plus its
position inside the split.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from jobs.delta_io import replace_where
from jobs.errors import DropNotReadyError, InputUnusableError
from jobs.lake import LandedFile, drop_uri, exists, list_files
from jobs.ledger import last_success, start_run
from jobs.sql import sql_literal
from jobs.steps.common import StepContext, fingerprint, log, run_parallel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.catalog import Table

__all__ = ["check_header", "landed_files", "read_lines", "run"]


def landed_files(ctx: StepContext) -> dict[str, list[LandedFile]]:
    """List a complete drop's data files by table.

    :param ctx: step context.
    :return: table name -> its data files (tables absent from the drop are omitted).
    :raises DropNotReadyError: when the drop has no ``_SUCCESS`` marker.
    :raises InputUnusableError: for a file outside the pipeline's layout.
    """
    catalog = ctx.catalog
    folders = catalog.folders
    root = drop_uri(ctx.landing, ctx.ds_str)
    if not exists(ctx.spark, f"{root}/_SUCCESS"):
        raise DropNotReadyError(f"{root}: drop is not complete (no _SUCCESS marker yet)")
    by_table: dict[str, list[LandedFile]] = {}
    for f in list_files(ctx.spark, root):
        parts = f.relative.split("/")
        name = parts[-1]
        if name.startswith((".", "_")):
            continue  # markers, checksums and hidden files are not data
        if len(parts) != 2 or parts[0] not in folders:
            raise InputUnusableError(
                f"{f.uri}: unexpected file in the drop (expected <folder>/<file> with a "
                f"folder in {', '.join(folders)})"
            )
        table = catalog.table(folders[parts[0]])
        if not fnmatchcase(name, table.files):
            raise InputUnusableError(
                f"{f.uri}: file name does not match {table.files!r}, the files of "
                f"{table.name}")
        by_table.setdefault(table.name, []).append(f)
    return by_table


def check_header(table: Table, uri: str, header: str | None) -> None:
    """Refuse a file whose header line does not name the table's columns in order.

    :param table: the table the file belongs to (its format has ``header: true``).
    :param uri: the file.
    :param header: its first line (``None``: the file is empty).
    :raises InputUnusableError: naming the file, line 1 and the difference.
    """
    fmt = table.file_format
    assert fmt is not None
    expected = [c.source or c.name for c in table.columns]
    if header is None:
        raise InputUnusableError(f"{uri}: empty file, expected a header line naming "
                                 f"{', '.join(expected)}")
    names = header.split(fmt.separator)
    if fmt.trailing_separator and names and names[-1] == "":
        names = names[:-1]
    quote = re.escape(fmt.quote) if fmt.quote else ""
    found = [re.sub(f"^{quote}|{quote}$", "", n.strip()) if quote else n.strip()
             for n in names]
    if found != expected:
        missing = [n for n in expected if n not in found]
        extra = [n for n in found if n not in expected]
        detail = (f"missing {', '.join(missing)}; " if missing else "") + (
            f"unexpected {', '.join(extra)}; " if extra else "")
        raise InputUnusableError(
            f"{uri} line 1: header does not match the declared columns ({detail or ''}"
            f"expected {fmt.separator.join(expected)})")


def _location(uri: str) -> tuple[str, str]:
    """A file's bucket and path, however its URI spells them (``file:/``, ``%20``)."""
    parts = urlsplit(uri)
    return parts.netloc, unquote(parts.path).rstrip("/")


def read_records(
    spark: SparkSession, files: list[LandedFile], ds: str, table: Table
) -> tuple[DataFrame, int]:
    """Read Parquet files as one JSON line per record, numbered from 1 in file order.

    Bronze keeps every record as received, in the one shape every format shares: a line
    of text. Each file is read with its own schema (a file missing a declared column is
    unusable, named with the column); the values are typed in silver like JSON lines.

    :raises InputUnusableError: for a file that is not Parquet or lacks a declared column.
    """
    from pyspark.sql import functions as F

    expected = [c.source or c.name for c in table.columns]
    frames = []
    for f in files:
        try:
            df = spark.read.parquet(f.uri)
            names = df.schema.names
        except Exception as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputUnusableError(f"{f.uri}: not a readable Parquet file ({cause})") from None
        missing = [n for n in expected if n not in names]
        if missing:
            raise InputUnusableError(
                f"{f.uri}: Parquet schema lacks {', '.join(missing)} (has {', '.join(names)})")
        frames.append(df.select(
            F.to_json(F.struct(*[F.col(n) for n in names])).alias("value"),
            F.lit(ds).cast("date").alias("_ds"),
            F.col("_metadata.file_path").alias("_source_file"),
            (F.col("_metadata.row_index") + 1).cast("bigint").alias("_line_number"),
            F.current_timestamp().alias("_ingested_at"),
        ))
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    union = union.localCheckpoint(eager=True)
    return union, union.count()


def read_lines(
    spark: SparkSession, files: list[LandedFile], ds: str, table: Table | None = None
) -> tuple[DataFrame, int]:
    """Read files as raw lines with exact 1-based line numbers per file.

    :param spark: active session.
    :param files: the files of one table.
    :param ds: the run date, stored in ``_ds``.
    :param table: the table they belong to: a format with a header has each file's first
        line checked against the declared columns, and Parquet files are read as records.
    :return: the lines (``value``, ``_ds``, ``_source_file``, ``_line_number``,
        ``_ingested_at``) and how many there are.
    :raises InputUnusableError: when a file holds binary content (NUL bytes) or a header
        that does not match.
    """
    from pyspark.sql import functions as F

    fmt = table.file_format if table is not None else None
    if table is not None and fmt is not None and fmt.type == "parquet":
        return read_records(spark, files, ds, table)
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
            F.min_by("value", "_mid").alias("first_value"),
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
                "not text"
            )
        if before == 0 and table is not None and fmt is not None and fmt.header:
            check_header(table, row["_source_file"], row["first_value"])
        base[(row["_source_file"], row["_part"])] = before + 1 - row["first_mid"]
        seen[row["_source_file"]] = before + row["n"]
    if table is not None and fmt is not None and fmt.header:
        # An empty file has no line at all, so it has no group above.
        read = {_location(k[0]) for k in base}
        for f in files:
            if _location(f.uri) not in read:
                check_header(table, f.uri, None)
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
        t: partial(read_lines, ctx.spark, fs, ctx.ds_str, ctx.catalog.table(t))
        for t, fs in files.items()
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

    counts = run_parallel({t: partial(ingest_table, t) for t in ctx.catalog.bronze_tables})
    written = {t: n for t, n in counts.items() if n is not None}
    run_.write("succeeded")
    log.info("ingest %s: %s", ctx.ds, written)
    return written
