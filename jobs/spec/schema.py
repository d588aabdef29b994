"""Spark schemas of a spec's tables: the one place a spec's type names become Spark types.

The silver layout mirrors the engine's tables: the declared columns, the SCD2 columns of a
``history: scd2`` source, the lineage columns, then the partition column. A child table
(``parent``) lives in its root ancestor's partition, so its partition column is that
ancestor's, with that ancestor's type. pyspark is imported inside the functions: the DAG
factory imports the spec package while Airflow parses DAGs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.spec.model import Partition, Pipeline, Source, is_decimal

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructField, StructType

__all__ = [
    "LINEAGE_COLUMNS",
    "SCD2_COLUMNS",
    "lineage_fields",
    "partition_of",
    "root_of",
    "silver_struct",
    "source_struct",
    "spark_type",
]

# name -> spec type name; the engine adds these to every silver row.
LINEAGE_COLUMNS = (("_ds", "date"), ("_source_file", "string"), ("_line_number", "bigint"),
                   ("_row_hash", "bigint"))
SCD2_COLUMNS = (("valid_from", "date"), ("valid_to", "date"), ("is_current", "boolean"))


def spark_type(type_name: str) -> DataType:
    """The Spark type of a spec type name (``bigint``, ``decimal(15,2)``, ...).

    :param type_name: a type as :class:`jobs.spec.model.Column` normalises it.
    :return: the Spark SQL data type.
    :raises ValueError: for a name that is not a spec type.
    """
    from pyspark.sql import types as T

    simple: dict[str, DataType] = {
        "bigint": T.LongType(), "int": T.IntegerType(), "smallint": T.ShortType(),
        "double": T.DoubleType(), "boolean": T.BooleanType(), "string": T.StringType(),
        "date": T.DateType(), "timestamp": T.TimestampType(),
    }
    name = type_name.strip().lower()
    if name in simple:
        return simple[name]
    dec = is_decimal(name)
    if dec is None:
        raise ValueError(f"unknown type {type_name!r}")
    return T.DecimalType(*dec)


def root_of(pipeline: Pipeline, source_name: str) -> str | None:
    """The source a table's rows are partitioned by: itself, or its root ancestor.

    :return: the root's name, or ``None`` when a parent is missing or the parents form
        a cycle (the checks report those).
    """
    seen = {source_name}
    name = source_name
    while (parent := pipeline.sources[name].parent) is not None:
        if parent.table not in pipeline.sources or parent.table in seen:
            return None
        seen.add(parent.table)
        name = parent.table
    return name


def partition_of(pipeline: Pipeline, source_name: str) -> Partition | None:
    """The partition a table's silver rows carry: its own, or its root ancestor's."""
    root = root_of(pipeline, source_name)
    return None if root is None else pipeline.sources[root].partition


def source_struct(source: Source) -> StructType:
    """The declared columns of a source, typed, in order (no lineage)."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(c.name, spark_type(c.type), c.nullable)
                         for c in source.columns])


def lineage_fields() -> list[StructField]:
    """The lineage columns every silver row carries (``_ds``, ``_source_file``, ...)."""
    from pyspark.sql import types as T

    return [T.StructField(name, spark_type(kind), name in ("_source_file", "_line_number"))
            for name, kind in LINEAGE_COLUMNS]


def silver_struct(pipeline: Pipeline, source_name: str) -> StructType:
    """The Spark schema of a source's silver table.

    :param pipeline: the spec.
    :param source_name: one of ``pipeline.sources``.
    :return: declared columns, SCD2 columns (``history: scd2``), lineage, then the
        partition column (a child's: its root ancestor's, with that type).
    """
    from pyspark.sql import types as T

    source = pipeline.sources[source_name]
    fields = list(source_struct(source).fields)
    if source.history == "scd2":
        fields += [T.StructField(name, spark_type(kind), name == "valid_to")
                   for name, kind in SCD2_COLUMNS]
    fields += lineage_fields()
    partition = partition_of(pipeline, source_name)
    if partition is not None:
        fields.append(T.StructField(partition.column, spark_type(partition.type), False))
    return T.StructType(fields)
