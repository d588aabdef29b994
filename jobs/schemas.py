"""Definitions of the lake's tables that the steps create: bronze, silver, quarantine, gold.

The TPC-H tables themselves (columns, keys, partitioning) are in :mod:`jobs.tpch`; this
module derives the lake's layers from them and defines the tables that are not TPC-H
ones: the internal silver tables and the gold marts. The steps import these definitions,
never the reverse, so :mod:`jobs.sql` can build its catalogue of names from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.tpch import MONEY, ORDERS_DELETE, TABLE_NAMES, Table

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

__all__ = [
    "BRONZE_TABLES",
    "CDF_TABLES",
    "CUSTOMER_SNAPSHOTS",
    "GOLD_TABLES",
    "TOMBSTONES",
    "gold_schema",
    "quarantine_schema",
    "silver_columns",
    "silver_schema",
    "tombstone_schema",
]

# One bronze (and quarantine) table per landing folder, RF2 deletions included.
BRONZE_TABLES = (*TABLE_NAMES, ORDERS_DELETE.name)
GOLD_TABLES = ("daily_line_summary", "revenue_by_nation")
# Gold finds the dates a run touched from these tables' change data feed.
CDF_TABLES = ("orders", "lineitem", "customer", "nation")
TOMBSTONES = "_order_tombstones"
# Every customer snapshot row ever observed (key, _ds): SCD2 history is rebuilt from it.
CUSTOMER_SNAPSHOTS = "_customer_snapshots"


def silver_columns(table: Table, scd2: bool = True) -> list[str]:
    """Column names of a silver table, in order (``scd2=False``: without SCD2 columns)."""
    cols = table.column_names
    if table.name == "customer" and scd2:
        cols += ["valid_from", "valid_to", "is_current"]
    cols += ["_ds", "_source_file", "_line_number", "_row_hash"]
    cols += list(table.partition_by)
    return cols


def silver_schema(table: Table, scd2: bool = True) -> StructType:
    """Spark schema of a silver table: TPC-H columns, SCD2 columns, lineage."""
    from pyspark.sql import types as T

    types = {
        "bigint": T.LongType(), "int": T.IntegerType(), "date": T.DateType(),
        "string": T.StringType(), MONEY: T.DecimalType(15, 2),
    }
    fields = [T.StructField(c.name, types[c.type], True) for c in table.columns]
    if table.name == "customer" and scd2:
        fields += [
            T.StructField("valid_from", T.DateType(), False),
            T.StructField("valid_to", T.DateType(), True),
            T.StructField("is_current", T.BooleanType(), False),
        ]
    fields += [
        T.StructField("_ds", T.DateType(), False),
        T.StructField("_source_file", T.StringType(), True),
        T.StructField("_line_number", T.LongType(), True),
        T.StructField("_row_hash", T.LongType(), False),
    ]
    fields += [T.StructField(c, T.DateType(), False) for c in table.partition_by]
    return T.StructType(fields)


def quarantine_schema() -> StructType:
    """Spark schema of ``quarantine/<table>``."""
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("raw", T.StringType(), True),
        T.StructField("_ds", T.DateType(), False),
        T.StructField("_source_file", T.StringType(), False),
        T.StructField("_line_number", T.LongType(), False),
        T.StructField("reasons", T.ArrayType(T.StringType()), False),
    ])


def tombstone_schema() -> StructType:
    """Spark schema of ``silver/_order_tombstones`` (RF2 deletions, newest ``_ds`` kept)."""
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("o_orderkey", T.LongType(), False),
        T.StructField("_ds", T.DateType(), False),
        T.StructField("_source_file", T.StringType(), True),
        T.StructField("_line_number", T.LongType(), True),
        T.StructField("_row_hash", T.LongType(), False),
    ])


def gold_schema(name: str) -> StructType:
    """Spark schema of ``gold/<name>``, one of :data:`GOLD_TABLES`."""
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
