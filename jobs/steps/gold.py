"""Step ``gold``: recompute each mart for exactly the grain rows that silver changes touched.

A mart is the spec's SQL over the silver views (:func:`register_silver_views`: every source
under its own name, an SCD2 source's current rows, and ``<source>_history`` with all its
versions). Gold keeps a watermark per silver table (the last version it has consumed,
stored in its ``ops/runs`` row). A run reads the change data feed of each table a mart's
``refresh`` names, after the watermark, into the view ``changes`` and runs that table's
refresh query: the values of the mart's refresh column (a grain column) that the changes
touch. The mart's query, bounded to those values, replaces them with one ``replaceWhere``
per mart, which also removes a grain value whose rows all disappeared. A refresh of
``all``, a mart without a refresh, the first run and ``--force`` recompute the whole mart.

Re-running with no new silver versions changes nothing; ``--force`` recomputes every
mart, with the same result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from jobs.catalog import Catalog
from jobs.delta_io import ensure_table, latest_version, replace_where
from jobs.ledger import Run, last_success, start_run
from jobs.schemas import silver_schema
from jobs.sql import identifier, spec_query, sql_in
from jobs.steps.common import StepContext, fingerprint, log, run_parallel

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["ALL", "mart_sql", "register_silver_views", "run", "touched_values"]

ALL = "all"


def mart_sql(catalog: Catalog, name: str) -> str:
    """The text of a mart's query (from its file in the pipeline's folder)."""
    from jobs.spec.load import read_mart_sql

    assert catalog.pipeline is not None
    return read_mart_sql(catalog.pipeline, name)


def register_silver_views(spark: SparkSession, ctx: StepContext,
                          versions: dict[str, int] | None = None) -> list[str]:
    """Register every source's silver table as a temporary view under the source's name.

    An SCD2 source is registered twice: ``<name>`` holds its current rows (what a query
    over "the table" means) and ``<name>_history`` every version. A source whose table
    does not exist yet (none of its rows has arrived) reads as empty, with its silver
    columns: a mart over it is what its SQL gives without those rows.

    :param versions: read these versions (the run's snapshot of silver), else the latest.
    :return: the sources that have no silver table yet.
    """
    from pyspark.sql import functions as F

    missing = []
    for name, table in ctx.catalog.tables.items():
        uri = ctx.lake.table("silver", name)
        version = (versions or {}).get(name, latest_version(spark, uri))
        if version is None:
            missing.append(name)
            df = spark.createDataFrame([], silver_schema(table))
        else:
            df = spark.read.format("delta").option("versionAsOf", version).load(uri)
        if table.history == "scd2":
            df.createOrReplaceTempView(identifier(f"{name}_history"))
            df = df.where(F.col("is_current"))
        df.createOrReplaceTempView(identifier(name))
    return missing


def _changes(spark: SparkSession, uri: str, start: int, end: int) -> DataFrame:
    return (
        spark.read.format("delta").option("readChangeFeed", "true")
        .option("startingVersion", start).option("endingVersion", end).load(uri)
        .drop("_commit_version", "_commit_timestamp")
    )


def touched_values(spark: SparkSession, ctx: StepContext, mart: str,
                   since: dict[str, int], now: dict[str, int]) -> set[Any] | None:
    """The refresh-column values of a mart that silver changes since ``since`` touch.

    Each changed table the mart's refresh names contributes the values its query returns
    over the view ``changes`` (that table's changed rows, pre- and post-images); its
    other silver views are the current silver tables.

    :return: the values, or ``None`` when the whole mart must be recomputed.
    """
    spec = ctx.catalog.marts[mart]
    if spec.refresh is None:
        return None
    values: set[Any] = set()
    for table, query in spec.refresh.when.items():
        if table not in now or since.get(table, -1) >= now[table]:
            continue
        uri = ctx.lake.table("silver", table)
        changed = _changes(spark, uri, since.get(table, -1) + 1, now[table])
        if query.strip().lower() == ALL:
            # New versions without changed rows (OPTIMIZE, a MERGE that matched nothing
            # new) touch nothing.
            if changed.limit(1).count():
                return None
            continue
        changed.createOrReplaceTempView("changes")
        rows = spark.sql(spec_query(query)).distinct().collect()
        # NULL is a grain value too (a group of rows whose column is NULL).
        values |= {r[0] for r in rows}
    return values


def _new_rows(metrics: dict[str, int]) -> int:
    # replaceWhere also rewrites untouched rows of the files it replaces; those are copies.
    return metrics.get("numOutputRows", 0) - metrics.get("numCopiedRows", 0)


def _publish(spark: SparkSession, run_: Run, name: str, uri: str, df: DataFrame,
             predicate: str, schema: StructType) -> None:
    """Replace the rows of one mart that match ``predicate`` and record the write."""
    result = replace_where(spark, uri, df.select(*schema.names), predicate)
    run_.wrote(name, result.version)
    run_.count("written", name, _new_rows(result.metrics))


def run(ctx: StepContext) -> bool:
    """Recompute gold for the grain rows touched since the last gold run.

    :param ctx: step context.
    :return: ``False`` when silver has not changed since (nothing to do).
    """
    from pyspark.sql import functions as F

    spark = ctx.spark
    catalog = ctx.catalog
    if not catalog.marts:
        log.info("gold %s: pipeline %s has no marts, nothing to do", ctx.ds, catalog.name)
        return False
    now = {name: v for name in catalog.tables
           if (v := latest_version(spark, ctx.lake.table("silver", name))) is not None}
    if not now:
        log.info("gold %s: silver is empty, nothing to do", ctx.ds)
        return False
    previous = last_success(spark, ctx.lake, "gold")
    since: dict[str, int] = {}
    if previous is not None and not ctx.force:
        since = {k: int(v) for k, v in json.loads(previous["details"])["watermarks"].items()}
    if since == now:
        log.info("gold %s: silver unchanged since run %s, nothing to do", ctx.ds,
                 previous["run_id"] if previous else None)
        return False
    register_silver_views(spark, ctx, now)
    plans: dict[str, set[Any] | None] = {}
    for name in catalog.marts:
        if since:
            touched = touched_values(spark, ctx, name, since, now)
            changed_any = any(since.get(t, -1) < v for t, v in now.items())
            if touched is None and not changed_any:
                continue
            if touched is not None and not touched:
                continue
            plans[name] = touched
        else:
            plans[name] = None
    if not plans:
        # New versions without data changes (OPTIMIZE, VACUUM): nothing to recompute.
        log.info("gold %s: no silver data changed since run %s, nothing to do", ctx.ds,
                 previous["run_id"] if previous else None)
        return False
    run_ = start_run(spark, ctx.lake, "gold", ctx.ds, fingerprint(now))
    gold = {name: ctx.lake.table("gold", name) for name in catalog.marts}
    queries = {name: mart_sql(catalog, name) for name in catalog.marts}
    schemas: dict[str, StructType] = {}
    for name, uri in gold.items():
        schemas[name] = spark.sql(spec_query(queries[name], "_mart")).schema
        ensure_table(spark, uri, schemas[name])
    run_.details["pre_versions"] = {name: latest_version(spark, uri) for name, uri in gold.items()}
    run_.details["watermarks"] = now
    details: dict[str, Any] = run_.details

    work: dict[str, Callable[[], None]] = {}
    for name, values in plans.items():
        df = spark.sql(spec_query(queries[name], "_mart"))
        refresh = catalog.marts[name].refresh
        if values is None or refresh is None:
            predicate = "true"
            details.setdefault("recomputed", {})[name] = ALL
        else:
            ordered = sorted(v for v in values if v is not None)
            column = identifier(refresh.column)
            parts = [f"{column} IN {sql_in(ordered)}"] if ordered else []
            matched = F.col(column).isin(ordered)
            if None in values:
                parts.append(f"{column} IS NULL")
                matched = matched | F.col(column).isNull()
            df = df.where(matched)
            predicate = " OR ".join(parts)
            details.setdefault("recomputed", {})[name] = len(values)
        work[name] = partial(_publish, spark, run_, name, gold[name], df, predicate,
                             schemas[name])
    # The marts are separate tables: their replaceWhere writes run side by side.
    run_parallel(work)
    run_.write("succeeded")
    log.info("gold %s: recomputed %s", ctx.ds, details.get("recomputed"))
    return True
