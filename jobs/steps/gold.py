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
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from jobs.delta_io import ensure_table, latest_version, replace_where
from jobs.ledger import Run, last_success, start_run
from jobs.schemas import CDF_TABLES, GOLD_TABLES, gold_schema
from jobs.sql import sql_in
from jobs.steps.common import StepContext, fingerprint, log, run_parallel
from jobs.transforms.gold import daily_line_summary, revenue_by_nation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["run"]


def _changes(spark: SparkSession, uri: str, start: int, end: int) -> DataFrame:
    return (
        spark.read.format("delta").option("readChangeFeed", "true")
        .option("startingVersion", start).option("endingVersion", end).load(uri)
    )


def _distinct(df: DataFrame, column: str) -> set[dt.date]:
    return {r[0] for r in df.select(column).distinct().collect() if r[0] is not None}


Touched = tuple[set[dt.date], set[dt.date], bool]


def _lineitem_touched(li: DataFrame, orders_now: DataFrame) -> Touched:
    """Ship dates of changed line items, and the order dates of their orders."""
    from pyspark.sql import functions as F

    li = li.select("l_orderkey", "l_shipdate", "_order_month").cache()
    try:
        ship = _distinct(li, "l_shipdate")
        months = sorted(_distinct(li, "_order_month"))
        order: set[dt.date] = set()
        if months:
            order = _distinct(
                orders_now.where(F.expr(f"_order_month IN {sql_in(months)}"))
                .join(li.select(F.col("l_orderkey").alias("o_orderkey")).distinct(), "o_orderkey",
                      "left_semi"),
                "o_orderdate",
            )
    finally:
        li.unpersist()
    return ship, order, False


def _orders_touched(o: DataFrame) -> Touched:
    """Order dates of changed orders."""
    return set(), _distinct(o, "o_orderdate"), False


def _nation_touched(n: DataFrame) -> Touched:
    """A nation change (its name) recomputes every order date."""
    return set(), set(), n.limit(1).count() > 0


def _customer_touched(c: DataFrame, orders_now: DataFrame) -> Touched:
    """Order dates of every order of a customer whose history changed."""
    keys = c.select("c_custkey").distinct().withColumnRenamed("c_custkey", "o_custkey")
    return set(), _distinct(orders_now.join(keys, "o_custkey", "left_semi"), "o_orderdate"), False


def touched_dates(
    spark: SparkSession, silver: dict[str, str], since: dict[str, int], now: dict[str, int]
) -> Touched:
    """Dates touched by silver changes between two sets of versions.

    The change feeds of the tables are independent, so they are read side by side.

    :param spark: active session.
    :param silver: table name -> silver URI.
    :param since: table name -> last version already consumed.
    :param now: table name -> current version.
    :return: ship dates, order dates, and whether every order date must be recomputed.
    """

    def changed(name: str) -> DataFrame | None:
        if name not in now or since.get(name, -1) >= now[name]:
            return None
        return _changes(spark, silver[name], since.get(name, -1) + 1, now[name])

    orders_now = spark.read.format("delta").load(silver["orders"])
    tasks: dict[str, Callable[[], Touched]] = {}
    if (li := changed("lineitem")) is not None:
        tasks["lineitem"] = partial(_lineitem_touched, li, orders_now)
    if (o := changed("orders")) is not None:
        tasks["orders"] = partial(_orders_touched, o)
    if (c := changed("customer")) is not None:
        tasks["customer"] = partial(_customer_touched, c, orders_now)
    if (n := changed("nation")) is not None:
        tasks["nation"] = partial(_nation_touched, n)
    parts = list(run_parallel(tasks).values())
    return (
        set().union(*(p[0] for p in parts)),
        set().union(*(p[1] for p in parts)),
        any(p[2] for p in parts),
    )


def _new_rows(metrics: dict[str, int]) -> int:
    # replaceWhere also rewrites untouched rows of the files it replaces; those are copies.
    return metrics.get("numOutputRows", 0) - metrics.get("numCopiedRows", 0)


def _summary(lineitem: DataFrame, ship: set[dt.date] | None) -> tuple[DataFrame, str]:
    """``daily_line_summary`` rows for some ship dates (``None``: all) and their predicate."""
    from pyspark.sql import functions as F

    if ship is None:
        return daily_line_summary(lineitem), "true"
    dates = sorted(ship)
    return (daily_line_summary(lineitem.where(F.col("l_shipdate").isin(dates))),
            f"ship_date IN {sql_in(dates)}")


def _revenue(read: dict[str, DataFrame], order: set[dt.date] | None) -> tuple[DataFrame, str]:
    """``revenue_by_nation`` rows for some order dates (``None``: all) and their predicate."""
    from pyspark.sql import functions as F

    orders, lineitem = read["orders"], read["lineitem"]
    predicate = "true"
    if order is not None:
        dates = sorted(order)
        months = sorted({d.replace(day=1) for d in dates})
        month_filter = F.expr(f"_order_month IN {sql_in(months)}")
        orders = orders.where(month_filter & F.col("o_orderdate").isin(dates))
        lineitem = lineitem.where(month_filter)
        predicate = f"order_date IN {sql_in(dates)}"
    return revenue_by_nation(orders, lineitem, read["customer"], read["nation"]), predicate


def _publish(spark: SparkSession, run_: Run, name: str, uri: str, df: DataFrame,
             predicate: str) -> None:
    """Replace the rows of one mart that match ``predicate`` and record the write."""
    result = replace_where(spark, uri, df.select(*gold_schema(name).names), predicate)
    run_.wrote(name, result.version)
    run_.count("written", name, _new_rows(result.metrics))


def run(ctx: StepContext) -> bool:
    """Recompute gold for the dates touched since the last gold run.

    :param ctx: step context.
    :return: ``False`` when silver has not changed since (nothing to do).
    """
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

    marts: dict[str, tuple[DataFrame, str]] = {}
    if full or ship:
        marts["daily_line_summary"] = _summary(read["lineitem"], None if full else ship)
    details["ship_dates"] = len(ship) if not full else "all"
    if "customer" in read and "nation" in read and (everything or order):
        marts["revenue_by_nation"] = _revenue(read, None if everything else order)
    details["order_dates"] = "all" if everything else len(order)
    # The marts are separate tables: their replaceWhere writes run side by side.
    run_parallel({
        name: partial(_publish, spark, run_, name, gold[name], df, predicate)
        for name, (df, predicate) in marts.items()
    })
    run_.write("succeeded")
    log.info("gold %s: ship dates %s, order dates %s", ctx.ds, details["ship_dates"],
             details["order_dates"])
    return True
