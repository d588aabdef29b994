"""Schemas of the lake's tables that the steps create: silver, quarantine, tombstones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.tpch import MONEY, Table

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

__all__ = [
    "CDF_TABLES",
    "CUSTOMER_SNAPSHOTS",
    "TOMBSTONES",
    "quarantine_schema",
    "silver_columns",
    "silver_schema",
    "tombstone_schema",
]

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
