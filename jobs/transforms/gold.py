"""Pure silver -> gold transforms: the two marts, in DECIMAL throughout."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["customer_as_of", "daily_line_summary", "revenue_by_nation"]

# Q1's measures keep exact decimal scales: price * (1 - discount) has 4 decimals, and
# price * (1 - discount) * (1 + tax) has 6.
_SUMMARY_TYPES = {
    "sum_qty": "decimal(38,2)",
    "sum_base_price": "decimal(38,2)",
    "sum_disc_price": "decimal(38,4)",
    "sum_charge": "decimal(38,6)",
    "sum_discount": "decimal(38,2)",
}


def daily_line_summary(lineitem_df: DataFrame) -> DataFrame:
    """TPC-H Q1's measures per ship date, return flag and line status.

    :param lineitem_df: silver line items (any subset of ship dates).
    :return: ``ship_date``, ``l_returnflag``, ``l_linestatus``, ``sum_qty``,
        ``sum_base_price``, ``sum_disc_price``, ``sum_charge``, ``sum_discount`` (DECIMAL)
        and ``count_order`` (BIGINT).
    """
    from pyspark.sql import functions as F

    disc_price = F.col("l_extendedprice") * (F.lit(1) - F.col("l_discount"))
    return lineitem_df.groupBy(
        F.col("l_shipdate").alias("ship_date"), "l_returnflag", "l_linestatus"
    ).agg(
        F.sum("l_quantity").cast(_SUMMARY_TYPES["sum_qty"]).alias("sum_qty"),
        F.sum("l_extendedprice").cast(_SUMMARY_TYPES["sum_base_price"]).alias("sum_base_price"),
        F.sum(disc_price).cast(_SUMMARY_TYPES["sum_disc_price"]).alias("sum_disc_price"),
        F.sum(disc_price * (F.lit(1) + F.col("l_tax")))
        .cast(_SUMMARY_TYPES["sum_charge"]).alias("sum_charge"),
        F.sum("l_discount").cast(_SUMMARY_TYPES["sum_discount"]).alias("sum_discount"),
        F.count(F.lit(1)).cast("bigint").alias("count_order"),
    )


def customer_as_of(customer_df: DataFrame) -> DataFrame:
    """Customer versions with the date range each one is in effect for.

    The earliest known version of a customer also covers every date before it: the
    initial load describes customers whose history started before the lake did.

    :param customer_df: silver SCD2 customer rows.
    :return: ``c_custkey``, ``c_nationkey``, ``_from`` (inclusive) and ``_to``
        (exclusive, NULL for the current version).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = F.row_number().over(Window.partitionBy("c_custkey").orderBy("valid_from")) == 1
    return customer_df.select(
        "c_custkey",
        "c_nationkey",
        F.when(first, F.lit("0001-01-01").cast("date"))
        .otherwise(F.col("valid_from")).alias("_from"),
        F.col("valid_to").alias("_to"),
    )


def revenue_by_nation(
    orders_df: DataFrame,
    lineitem_df: DataFrame,
    customer_df: DataFrame,
    nation_df: DataFrame,
) -> DataFrame:
    """Revenue and order count per order date and customer nation (as of the order date).

    :param orders_df: silver orders (any subset of order dates).
    :param lineitem_df: silver line items of those orders (a superset is fine).
    :param customer_df: silver SCD2 customer rows (all versions).
    :param nation_df: silver nations.
    :return: ``order_date``, ``n_name``, ``revenue`` (DECIMAL, sum of
        ``l_extendedprice * (1 - l_discount)``) and ``order_count`` (orders with at least
        one line item).
    """
    from pyspark.sql import functions as F

    versions = customer_as_of(customer_df)
    o = orders_df.select("o_orderkey", "o_custkey", "o_orderdate")
    li = lineitem_df.select(
        F.col("l_orderkey").alias("o_orderkey"),
        (F.col("l_extendedprice") * (F.lit(1) - F.col("l_discount"))).alias("_rev"),
    )
    c = versions.alias("c")
    joined = (
        o.join(li, "o_orderkey")
        .join(
            c,
            (F.col("o_custkey") == F.col("c.c_custkey"))
            & (F.col("o_orderdate") >= F.col("c._from"))
            & (F.col("c._to").isNull() | (F.col("o_orderdate") < F.col("c._to"))),
        )
        .join(F.broadcast(nation_df.select(F.col("n_nationkey").alias("c_nationkey"), "n_name")),
              "c_nationkey")
    )
    return joined.groupBy(F.col("o_orderdate").alias("order_date"), "n_name").agg(
        F.sum("_rev").cast("decimal(38,4)").alias("revenue"),
        F.countDistinct("o_orderkey").cast("bigint").alias("order_count"),
    )
