"""End to end without faults: silver equals the generated TPC-H data and answers TPC-H.

The generated ``.tbl`` files, loaded by DuckDB with the TPC-H types, are the oracle:
silver must hold exactly their rows, and Q1, Q3, Q5, Q6 and Q10 must give the same
answers on silver (Spark) as on the files (DuckDB).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from tests.support.lake import run_drop, table_versions
from tests.support.tpch import TABLES
from tests.support.tpch_queries import QUERIES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.lake import Lake

DUCK_TYPES = {"bigint": "BIGINT", "int": "INTEGER", "date": "DATE", "string": "VARCHAR",
              "decimal(15,2)": "DECIMAL(15,2)"}


def duck_tpch(landing: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB views over every drop's ``.tbl`` files, typed as TPC-H."""
    con = duckdb.connect()
    for name, table in TABLES.items():
        columns = {c.name: DUCK_TYPES[c.type] for c in table.columns}
        columns["_trailing"] = "VARCHAR"  # dbgen lines end with a '|'
        spec = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
        cols = ", ".join(c.name for c in table.columns)
        con.execute(
            f"CREATE VIEW {name} AS SELECT {cols} FROM read_csv("
            f"'{landing}/ds=*/{name}/*.tbl', delim='|', header=false, quote='', escape='', "
            f"columns={{{spec}}})"
        )
    return con


def silver_views(spark: SparkSession, lake: Lake) -> None:
    """Register silver under the TPC-H names (customer: its current versions)."""
    for name, table in TABLES.items():
        df = spark.read.format("delta").load(lake.table("silver", name))
        if name == "customer":
            df = df.where("is_current")
        df.select(*table.column_names).createOrReplaceTempView(name)


def normalise(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Round numbers to 2 decimals, as the TPC-H answer files do."""
    def cell(v: Any) -> Any:
        if isinstance(v, (Decimal, float)) and not isinstance(v, bool):
            return Decimal(str(v)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return v
    return [tuple(cell(v) for v in row) for row in rows]


def test_silver_equals_generated_tables(spark: SparkSession, plain_landing: tuple[Path, list[str]],
                                        plain_lake: Lake) -> None:
    landing, _ = plain_landing
    con = duck_tpch(landing)
    silver_views(spark, plain_lake)
    for name, table in TABLES.items():
        cols = ", ".join(table.column_names)
        expected = sorted(con.execute(f"SELECT {cols} FROM {name}").fetchall(), key=repr)
        actual = sorted((tuple(r) for r in spark.sql(f"SELECT {cols} FROM {name}").collect()),
                        key=repr)
        assert len(actual) == len(expected), name
        assert actual == expected, name


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_tpch_query_on_silver_matches_duckdb(spark: SparkSession, query: str,
                                             plain_landing: tuple[Path, list[str]],
                                             plain_lake: Lake) -> None:
    landing, _ = plain_landing
    expected = duck_tpch(landing).execute(QUERIES[query]).fetchall()
    silver_views(spark, plain_lake)
    actual = [tuple(r) for r in spark.sql(QUERIES[query]).collect()]
    assert expected, f"{query} returns no rows on the sample: the check would be empty"
    assert normalise(actual) == normalise(expected)


def test_gold_daily_line_summary_reproduces_q1(spark: SparkSession,
                                               plain_landing: tuple[Path, list[str]],
                                               plain_lake: Lake) -> None:
    landing, _ = plain_landing
    expected = duck_tpch(landing).execute(QUERIES["q01"]).fetchall()
    spark.read.format("delta").load(plain_lake.table("gold", "daily_line_summary")) \
        .createOrReplaceTempView("daily_line_summary")
    actual = spark.sql("""
        SELECT l_returnflag, l_linestatus, sum(sum_qty), sum(sum_base_price),
               sum(sum_disc_price), sum(sum_charge),
               sum(sum_qty) / sum(count_order), sum(sum_base_price) / sum(count_order),
               sum(sum_discount) / sum(count_order), sum(count_order)
        FROM daily_line_summary
        WHERE ship_date <= date '1998-12-01' - interval '90' day
        GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus
    """).collect()
    assert normalise([tuple(r) for r in actual]) == normalise(expected)


def test_gold_revenue_by_nation_totals_match_lineitem_revenue(
        spark: SparkSession, plain_landing: tuple[Path, list[str]], plain_lake: Lake) -> None:
    landing, _ = plain_landing
    expected = duck_tpch(landing).execute("""
        SELECT n_name, sum(l_extendedprice * (1 - l_discount)), count(DISTINCT o_orderkey)
        FROM orders JOIN lineitem ON l_orderkey = o_orderkey
        JOIN customer ON c_custkey = o_custkey JOIN nation ON n_nationkey = c_nationkey
        GROUP BY n_name ORDER BY n_name
    """).fetchall()
    actual = (
        spark.read.format("delta").load(plain_lake.table("gold", "revenue_by_nation"))
        .groupBy("n_name").agg({"revenue": "sum", "order_count": "sum"})
        .orderBy("n_name").select("n_name", "sum(revenue)", "sum(order_count)").collect()
    )
    assert normalise([tuple(r) for r in actual]) == normalise(expected)


def test_rerunning_every_drop_changes_no_table(spark: SparkSession,
                                               plain_landing: tuple[Path, list[str]],
                                               plain_lake: Lake) -> None:
    landing, drops = plain_landing
    before = table_versions(spark, plain_lake)
    # The newest drop: every step finds its input unchanged, so nothing at all is written.
    run_drop(spark, plain_lake, landing, drops[-1])
    assert table_versions(spark, plain_lake) == before
    # Older drops: no data table changes. (Quality re-evaluates an older drop against the
    # tables as they are now, which writes ops rows only.)
    for ds in drops:
        run_drop(spark, plain_lake, landing, ds)
    after = table_versions(spark, plain_lake)
    data = {k: v for k, v in before.items() if not k.startswith("ops/")}
    assert {k: after[k] for k in data} == data


def test_ledger_records_every_step_of_every_drop(spark: SparkSession,
                                                 plain_landing: tuple[Path, list[str]],
                                                 plain_lake: Lake) -> None:
    _, drops = plain_landing
    runs = spark.read.format("delta").load(plain_lake.table("ops", "runs"))
    got = {(r["step"], r["ds"].isoformat()) for r in runs.where("status = 'succeeded'").collect()}
    assert {("ingest", d) for d in drops} | {("silver", d) for d in drops} <= got
    assert {("quality", d) for d in drops} <= got
    initial = runs.where(f"step = 'silver' AND ds = DATE'{drops[0]}'").first()
    assert initial is not None
    assert initial["rows_read"] == initial["rows_written"]
    assert sum(initial["rows_quarantined"].values()) == 0
