"""The TPC-H pipeline's definitions as the tests use them, read from its spec.

Tests of the TPC-H pipeline name its tables; the engine does not. Everything here comes
from ``pipelines/tpch/`` through :mod:`jobs.catalog`, so the tests check the spec the
engine runs, not a copy of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.catalog import Table, load_catalog, orphan_reason, snapshots_table, tombstones_table
from jobs.steps.gold import mart_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["GOLD", "ORDERS_DELETE", "ORPHAN_REASON", "SNAPSHOTS", "TABLES", "TOMBSTONES",
           "TPCH", "mart", "table"]

TPCH = load_catalog("tpch")
TABLES: dict[str, Table] = TPCH.tables
ORDERS_DELETE: Table = TPCH.delete_feeds["orders_delete"]
TOMBSTONES = tombstones_table("orders")
SNAPSHOTS = snapshots_table("customer")
ORPHAN_REASON = orphan_reason("lineitem")
GOLD = tuple(TPCH.marts)


def table(name: str) -> Table:
    """A TPC-H table (or the ``orders_delete`` feed) by name."""
    return TPCH.table(name)


def mart(spark: SparkSession, name: str, **views: DataFrame) -> DataFrame:
    """Run one TPC-H mart's SQL over the given DataFrames, registered as its views.

    :param name: the mart.
    :param views: view name -> DataFrame (``lineitem=...``, ``customer_history=...``).
    :return: the mart's rows.
    """
    for view, df in views.items():
        df.createOrReplaceTempView(view)
    return spark.sql(mart_sql(TPCH, name))
