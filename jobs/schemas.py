"""Spark schemas of the lake's tables: bronze, silver, quarantine and the internal tables.

The tables themselves (columns, keys, partitioning, relations) come from a pipeline's spec
through :mod:`jobs.catalog`; this module turns a catalogue table into the schema of each
layer it lives in. The steps import these definitions, never the reverse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.catalog import LINEAGE_COLUMNS, Table
from jobs.spec.schema import spark_type

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

__all__ = [
    "SCD2_COLUMNS",
    "quarantine_schema",
    "silver_columns",
    "silver_schema",
    "tombstone_schema",
]

SCD2_COLUMNS = ("valid_from", "valid_to", "is_current")


def silver_columns(table: Table, scd2: bool = True) -> list[str]:
    """Column names of a silver table, in order (``scd2=False``: without SCD2 columns)."""
    cols = table.column_names
    if table.history == "scd2" and scd2:
        cols += list(SCD2_COLUMNS)
    cols += [*LINEAGE_COLUMNS, "_row_hash"]
    cols += list(table.partition_by)
    return cols


def silver_schema(table: Table, scd2: bool = True) -> StructType:
    """Spark schema of a silver table: declared columns, SCD2 columns, lineage, partition."""
    from pyspark.sql import types as T

    fields = [T.StructField(c.name, spark_type(c.type), True) for c in table.columns]
    if table.history == "scd2" and scd2:
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
    fields += [T.StructField(c, spark_type(table.partition_type), False)
               for c in table.partition_by]
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


def tombstone_schema(table: Table) -> StructType:
    """Spark schema of a source's tombstones: its key, the newest deleting ``_ds``, lineage."""
    from pyspark.sql import types as T

    by_name = {c.name: c for c in table.columns}
    return T.StructType([
        *[T.StructField(k, spark_type(by_name[k].type), False) for k in table.key],
        T.StructField("_ds", T.DateType(), False),
        T.StructField("_source_file", T.StringType(), True),
        T.StructField("_line_number", T.LongType(), True),
        T.StructField("_row_hash", T.LongType(), False),
    ])
