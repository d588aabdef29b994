"""Step ``gold``: recompute the marts for exactly the dates that silver changes touched.

Gold keeps a watermark per silver table (the last version it has consumed, stored in its
``ops/runs`` row). A run reads silver's change data feed after the watermark and derives:

* ship dates of every inserted, updated (old and new image) and deleted line item, for
  ``daily_line_summary``;
* order dates of changed orders, of the orders of changed line items, and of every order
  of a customer whose SCD2 history changed, for ``revenue_by_nation`` (a nation change
  recomputes every date).

Those dates are recomputed from silver and written with one ``replaceWhere`` per mart,
which also removes a date whose rows all disappeared. Re-running with no new silver
versions changes nothing; ``--force`` recomputes every date, with the same result.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from jobs.delta_io import ensure_table, latest_version, replace_where, sql_in
from jobs.ledger import last_success, start_run
from jobs.schemas import CDF_TABLES
from jobs.steps.common import StepContext, fingerprint, log
from jobs.transforms.gold import daily_line_summary, revenue_by_nation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["GOLD_TABLES", "gold_schema", "run"]

GOLD_TABLES = ("daily_line_summary", "revenue_by_nation")


def gold_schema(name: str) -> StructType:
    """Schema of a gold mart."""
    from pyspark.sql import types as T

    d = T.DecimalType
    if name == "daily_line_summary":
        return T.StructType([
            T.StructField("ship_date", T.DateType()),
            T.StructField("l_returnflag", T.StringType()),
            T.StructField("l_linestatus", T.StringType()),
            T.StructField("sum_qty", d(38, 2)),
            T.StructField("sum_base_price", d(38, 2)),
            T.StructField("sum_disc_price", d(38, 4)),
            T.StructField("sum_charge", d(38, 6)),
            T.StructField("sum_discount", d(38, 2)),
            T.StructField("count_order", T.LongType()),
        ])
    return T.StructType([
        T.StructField("order_date", T.DateType()),
        T.StructField("n_name", T.StringType()),
        T.StructField("revenue", d(38, 4)),
        T.StructField("order_count", T.LongType()),
    ])


def _changes(spark: SparkSession, uri: str, start: int, end: int) -> DataFrame:
    return (
        spark.read.format("delta").option("readChangeFeed", "true")
        .option("startingVersion", start).option("endingVersion", end).load(uri)
    )


def _distinct(df: DataFrame, column: str) -> set[dt.date]:
    return {r[0] for r in df.select(column).distinct().collect() if r[0] is not None}


def touched_dates(
    spark: SparkSession, silver: dict[str, str], since: dict[str, int], now: dict[str, int]
) -> tuple[set[dt.date], set[dt.date], bool]:
    """Dates touched by silver changes between two sets of versions.

    :param spark: active session.
    :param silver: table name -> silver URI.
    :param since: table name -> last version already consumed.
    :param now: table name -> current version.
    :return: ship dates, order dates, and whether every order date must be recomputed.
    """
    from pyspark.sql import functions as F

    def changed(name: str) -> DataFrame | None:
        if name not in now or since.get(name, -1) >= now[name]:
            return None
        return _changes(spark, silver[name], since.get(name, -1) + 1, now[name])

    ship: set[dt.date] = set()
    order: set[dt.date] = set()
    orders_now = spark.read.format("delta").load(silver["orders"])
    li = changed("lineitem")
    if li is not None:
        li = li.select("l_orderkey", "l_shipdate", "_order_month").cache()
        ship |= _distinct(li, "l_shipdate")
        months = sorted(_distinct(li, "_order_month"))
        if months:
            order |= _distinct(
                orders_now.where(F.expr(f"_order_month IN {sql_in(months)}"))
                .join(li.select(F.col("l_orderkey").alias("o_orderkey")).distinct(), "o_orderkey",
                      "left_semi"),
                "o_orderdate",
            )
        li.unpersist()
    o = changed("orders")
    if o is not None:
        order |= _distinct(o, "o_orderdate")
    c = changed("customer")
    if c is not None:
        keys = c.select("c_custkey").distinct()
        order |= _distinct(
            orders_now.join(keys.withColumnRenamed("c_custkey", "o_custkey"), "o_custkey",
                            "left_semi"),
            "o_orderdate",
        )
    n = changed("nation")
    everything = n is not None and n.limit(1).count() > 0
    return ship, order, everything


def _new_rows(metrics: dict[str, int]) -> int:
    # replaceWhere also rewrites untouched rows of the files it replaces; those are copies.
    return metrics.get("numOutputRows", 0) - metrics.get("numCopiedRows", 0)


def run(ctx: StepContext) -> bool:
    """Recompute gold for the dates touched since the last gold run.

    :param ctx: step context.
    :return: ``False`` when silver has not changed since (nothing to do).
    """
    from pyspark.sql import functions as F

    spark = ctx.spark
    silver = {name: ctx.lake.table("silver", name) for name in CDF_TABLES}
    now = {name: v for name, uri in silver.items() if (v := latest_version(spark, uri)) is not None}
    if "lineitem" not in now or "orders" not in now:
        log.info("gold %s: silver has no orders or line items yet, nothing to do", ctx.ds)
        return False
    previous = last_success(spark, ctx.lake, "gold")
    since: dict[str, int] = {}
    if previous is not None and not ctx.force:
        import json

        since = {k: int(v) for k, v in json.loads(previous["details"])["watermarks"].items()}
    if since == now:
        log.info("gold %s: silver unchanged since run %s, nothing to do", ctx.ds,
                 previous["run_id"] if previous else None)
        return False
    full = not since
    if full:
        ship, order, everything = set[dt.date](), set[dt.date](), True
    else:
        ship, order, everything = touched_dates(spark, silver, since, now)
        if not (ship or order or everything):
            # New versions without data changes (OPTIMIZE, VACUUM): nothing to recompute.
            log.info("gold %s: no silver data changed since run %s, nothing to do", ctx.ds,
                     previous["run_id"] if previous else None)
            return False
    run_ = start_run(spark, ctx.lake, "gold", ctx.ds, fingerprint(now))
    gold = {name: ctx.lake.table("gold", name) for name in GOLD_TABLES}
    for name, uri in gold.items():
        ensure_table(spark, uri, gold_schema(name))
    run_.details["pre_versions"] = {name: latest_version(spark, uri) for name, uri in gold.items()}
    run_.details["watermarks"] = now
    read = {n: spark.read.format("delta").load(u) for n, u in silver.items() if n in now}
    details: dict[str, Any] = run_.details

    lineitem = read["lineitem"]
    if full:
        summary = daily_line_summary(lineitem)
        predicate = "true"
    elif ship:
        summary = daily_line_summary(lineitem.where(F.col("l_shipdate").isin(sorted(ship))))
        predicate = f"ship_date IN {sql_in(sorted(ship))}"
    if full or ship:
        result = replace_where(spark, gold["daily_line_summary"],
                               summary.select(*gold_schema("daily_line_summary").names),
                               predicate)
        run_.wrote("daily_line_summary", result.version)
        run_.count("written", "daily_line_summary", _new_rows(result.metrics))
    details["ship_dates"] = len(ship) if not full else "all"

    customer = read.get("customer")
    nation = read.get("nation")
    if customer is not None and nation is not None and (everything or order):
        orders = read["orders"]
        if everything:
            predicate = "true"
        else:
            dates = sorted(order)
            months = sorted({d.replace(day=1) for d in dates})
            month_filter = F.expr(f"_order_month IN {sql_in(months)}")
            orders = orders.where(month_filter & F.col("o_orderdate").isin(dates))
            lineitem = lineitem.where(month_filter)
            predicate = f"order_date IN {sql_in(dates)}"
        revenue = revenue_by_nation(orders, lineitem, customer, nation)
        result = replace_where(spark, gold["revenue_by_nation"],
                               revenue.select(*gold_schema("revenue_by_nation").names), predicate)
        run_.wrote("revenue_by_nation", result.version)
        run_.count("written", "revenue_by_nation", _new_rows(result.metrics))
    details["order_dates"] = "all" if everything else len(order)
    run_.write("succeeded")
    log.info("gold %s: ship dates %s, order dates %s", ctx.ds, details["ship_dates"],
             details["order_dates"])
    return True
