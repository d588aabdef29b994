"""Tests of the TPC-H marts' SQL (``pipelines/tpch/gold/*.sql``) over literal silver rows.

Expected measures are worked out by hand in the comments (exact decimal arithmetic).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as Dec
from typing import TYPE_CHECKING

from chispa import assert_df_equality

from tests.support.tpch import mart

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SEP1, SEP2 = dt.date(1998, 9, 1), dt.date(1998, 9, 2)


def test_daily_line_summary_sums_q1_measures_per_date_flag_and_status(
    spark: SparkSession,
) -> None:
    items = spark.createDataFrame(
        [
            (1, Dec("17.00"), Dec("1000.00"), Dec("0.04"), Dec("0.02"), "N", "O", SEP1),
            (2, Dec("36.00"), Dec("2000.50"), Dec("0.09"), Dec("0.06"), "N", "O", SEP1),
            (3, Dec("8.00"), Dec("123.45"), Dec("0.10"), Dec("0.00"), "R", "F", SEP1),
            (4, Dec("1.00"), Dec("999.99"), Dec("0.00"), Dec("0.08"), "N", "O", SEP2),
            (5, Dec("2.50"), Dec("0.01"), Dec("0.05"), Dec("0.03"), "N", "O", SEP2),
        ],
        "l_orderkey bigint, l_quantity decimal(15,2), l_extendedprice decimal(15,2), "
        "l_discount decimal(15,2), l_tax decimal(15,2), l_returnflag string, "
        "l_linestatus string, l_shipdate date",
    )

    summary = mart(spark, "daily_line_summary", lineitem=items)

    # disc_price = price * (1 - discount); charge = disc_price * (1 + tax)
    # SEP1 N O: 1000.00 * 0.96 = 960.0000 and 2000.50 * 0.91 = 1820.4550 -> 2780.4550;
    #           960.0000 * 1.02 = 979.200000 and 1820.4550 * 1.06 = 1929.682300 -> 2908.882300
    # SEP1 R F: 123.45 * 0.90 = 111.1050; * 1.00 = 111.105000
    # SEP2 N O: 999.99 * 1.00 = 999.9900 and 0.01 * 0.95 = 0.0095 -> 999.9995;
    #           999.9900 * 1.08 = 1079.989200 and 0.0095 * 1.03 = 0.009785 -> 1079.998985
    expected = spark.createDataFrame(
        [
            (SEP1, "N", "O", Dec("53.00"), Dec("3000.50"), Dec("2780.4550"),
             Dec("2908.882300"), Dec("0.13"), 2),
            (SEP1, "R", "F", Dec("8.00"), Dec("123.45"), Dec("111.1050"),
             Dec("111.105000"), Dec("0.10"), 1),
            (SEP2, "N", "O", Dec("3.50"), Dec("1000.00"), Dec("999.9995"),
             Dec("1079.998985"), Dec("0.05"), 2),
        ],
        "ship_date date, l_returnflag string, l_linestatus string, sum_qty decimal(38,2), "
        "sum_base_price decimal(38,2), sum_disc_price decimal(38,4), "
        "sum_charge decimal(38,6), sum_discount decimal(38,2), count_order bigint",
    )
    assert_df_equality(summary, expected, ignore_row_order=True, ignore_nullable=True)


def test_revenue_by_nation_uses_the_customer_nation_as_of_the_order_date(
    spark: SparkSession,
) -> None:
    from pyspark.sql import functions as F

    d = dt.date
    customer = spark.createDataFrame(
        [
            # Customer 1 lived in GERMANY (first known version: also covers earlier
            # dates), then in CANADA from 1998-06-01.
            (1, 7, d(1998, 1, 1), d(1998, 6, 1), False),
            (1, 3, d(1998, 6, 1), None, True),
            (2, 3, d(1998, 1, 1), None, True),
        ],
        "c_custkey bigint, c_nationkey bigint, valid_from date, valid_to date, "
        "is_current boolean",
    )
    nation = spark.createDataFrame(
        [(7, "GERMANY"), (3, "CANADA"), (0, "ALGERIA")], "n_nationkey bigint, n_name string"
    )
    orders = spark.createDataFrame(
        [
            (10, 1, d(1997, 12, 1)),
            (11, 1, d(1998, 3, 1)),
            (12, 1, d(1998, 3, 1)),
            (16, 1, d(1998, 3, 1)),  # no line items: neither revenue nor an order
            (15, 2, d(1998, 3, 1)),
            (13, 1, d(1998, 6, 1)),  # the day the new version starts
            (14, 1, d(1998, 7, 1)),
        ],
        "o_orderkey bigint, o_custkey bigint, o_orderdate date",
    )
    items = spark.createDataFrame(
        [
            (10, Dec("100.00"), Dec("0.10")),   # 90.0000
            (11, Dec("200.00"), Dec("0.05")),   # 190.0000
            (11, Dec("50.00"), Dec("0.00")),    # 50.0000
            (12, Dec("10.00"), Dec("0.10")),    # 9.0000
            (13, Dec("1000.00"), Dec("0.02")),  # 980.0000
            (14, Dec("300.00"), Dec("0.04")),   # 288.0000
            (15, Dec("40.00"), Dec("0.01")),    # 39.6000
        ],
        "l_orderkey bigint, l_extendedprice decimal(15,2), l_discount decimal(15,2)",
    )

    # A line item lives in its order's month (silver's partition), which the SQL joins on.
    month = F.trunc(F.col("o_orderdate"), "month")
    orders = orders.withColumn("_order_month", month)
    items = items.join(orders.select(F.col("o_orderkey").alias("l_orderkey"), "_order_month"),
                       "l_orderkey")
    revenue = mart(spark, "revenue_by_nation", orders=orders, lineitem=items,
                   customer_history=customer, nation=nation)

    expected = spark.createDataFrame(
        [
            (d(1997, 12, 1), "GERMANY", Dec("90.0000"), 1),
            (d(1998, 3, 1), "GERMANY", Dec("249.0000"), 2),  # 190 + 50 + 9, orders 11, 12
            (d(1998, 3, 1), "CANADA", Dec("39.6000"), 1),
            (d(1998, 6, 1), "CANADA", Dec("980.0000"), 1),
            (d(1998, 7, 1), "CANADA", Dec("288.0000"), 1),
        ],
        "order_date date, n_name string, revenue decimal(38,4), order_count bigint",
    )
    assert_df_equality(revenue, expected, ignore_row_order=True, ignore_nullable=True)
