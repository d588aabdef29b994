"""Tests of ``scd2_changes``: the SCD2 row changes that merge a drop into customer history.

The function is pure; convergence is checked by applying its upserts and deletes to a
Python model of the table keyed like the silver MERGE (``c_custkey``, ``valid_from``):
an ``upsert`` replaces or inserts the row, a ``delete`` removes it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from chispa import assert_df_equality

from jobs.transforms.silver import scd2_changes

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

KEY = ["c_custkey"]
TPCH = (
    "c_custkey bigint, c_name string, c_address string, c_nationkey bigint, c_phone string, "
    "c_acctbal decimal(15,2), c_mktsegment string, c_comment string"
)
LINEAGE = "_ds date, _source_file string, _line_number bigint, _row_hash bigint"
SILVER = f"{TPCH}, valid_from date, valid_to date, is_current boolean, {LINEAGE}"
INCOMING = f"{TPCH}, {LINEAGE}"
CHANGES = f"{SILVER}, _action string"

D1, D2, D3 = dt.date(1998, 8, 1), dt.date(1998, 8, 2), dt.date(1998, 8, 3)

# Two contents of customer 1; the hash stands for the content (it is an input here).
A = (1, "Customer#000000001", "IVhzIApeRb", 15, "25-989-741-2988", Decimal("711.56"),
     "BUILDING", "regular deposits", 1111)
B = (1, "Customer#000000001", "new address", 3, "25-989-741-2988", Decimal("711.56"),
     "BUILDING", "regular deposits", 2222)


def tpch(version: tuple[Any, ...]) -> tuple[Any, ...]:
    return version[:-1]


def incoming_row(version: tuple[Any, ...], ds: dt.date, line: int = 1) -> tuple[Any, ...]:
    return (*tpch(version), ds, f"ds={ds}/customer/part-1.tbl", line, version[-1])


def stored_row(version: tuple[Any, ...], valid_from: dt.date, valid_to: dt.date | None,
               ds: dt.date | None = None, line: int = 1) -> tuple[Any, ...]:
    ds = ds or valid_from
    return (*tpch(version), valid_from, valid_to, valid_to is None, ds,
            f"ds={ds}/customer/part-1.tbl", line, version[-1])


def changes(spark: SparkSession, stored: list[tuple[Any, ...]],
            incoming: list[tuple[Any, ...]]) -> DataFrame:
    return scd2_changes(
        spark.createDataFrame(stored, SILVER), spark.createDataFrame(incoming, INCOMING), KEY
    )


def test_new_customer_becomes_one_current_version(spark: SparkSession) -> None:
    out = changes(spark, [], [incoming_row(A, D1)])

    expected = spark.createDataFrame([(*stored_row(A, D1, None), "upsert")], CHANGES)
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_changed_version_closes_the_current_one_and_becomes_current(
    spark: SparkSession,
) -> None:
    out = changes(spark, [stored_row(A, D1, None)], [incoming_row(B, D2)])

    expected = spark.createDataFrame(
        [(*stored_row(A, D1, D2), "upsert"), (*stored_row(B, D2, None), "upsert")], CHANGES
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_identical_snapshot_at_a_later_ds_changes_nothing(spark: SparkSession) -> None:
    out = changes(spark, [stored_row(A, D1, None)], [incoming_row(A, D2)])

    assert_df_equality(out, spark.createDataFrame([], CHANGES), ignore_nullable=True)


def test_late_older_version_is_inserted_before_the_stored_current_one(
    spark: SparkSession,
) -> None:
    out = changes(spark, [stored_row(B, D2, None)], [incoming_row(A, D1)])

    # The stored version stays current and unchanged, so it is not in the changes.
    expected = spark.createDataFrame([(*stored_row(A, D1, D2), "upsert")], CHANGES)
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_redelivery_of_the_same_ds_with_new_content_replaces_that_version(
    spark: SparkSession,
) -> None:
    out = changes(spark, [stored_row(A, D1, None)], [incoming_row(B, D1, line=5)])

    expected = spark.createDataFrame([(*stored_row(B, D1, None, line=5), "upsert")], CHANGES)
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


# -- convergence ---------------------------------------------------------------------------

def apply_drops(spark: SparkSession, drops: list[tuple[tuple[Any, ...], dt.date]]
                ) -> list[tuple[Any, ...]]:
    """Process drops one by one as the silver step does; return the final table, sorted."""
    table: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    valid_from = SILVER.split(", ").index("valid_from date")
    for version, ds in drops:
        rows = changes(spark, list(table.values()), [incoming_row(version, ds)]).collect()
        for row in rows:
            values = tuple(row)[:-1]
            key = (row["c_custkey"], row["valid_from"])
            if row["_action"] == "upsert":
                table[key] = values
            else:
                assert row["_action"] == "delete", row
                table.pop(key)
    return sorted(table.values(), key=lambda r: r[valid_from])


@pytest.mark.parametrize("order", [(0, 1), (1, 0)], ids=["in_order", "reversed"])
def test_two_drops_converge_in_either_order(spark: SparkSession, order: tuple[int, ...]) -> None:
    drops = [(A, D1), (B, D2)]

    final = apply_drops(spark, [drops[i] for i in order])

    assert final == [stored_row(A, D1, D2), stored_row(B, D2, None)]


@pytest.mark.parametrize(
    "order", [(0, 1, 2), (0, 2, 1)], ids=lambda o: "-".join(f"d{i + 1}" for i in o)
)
def test_change_and_change_back_converge_in_any_order(
    spark: SparkSession, order: tuple[int, ...]
) -> None:
    # The customer moved on D2 and moved back on D3: three versions, whatever the order
    # the drops are processed in, including D2 arriving late after D1 and D3 were stored
    # (D3 was then "no change" and stored nothing, yet it is a version once D2 exists).
    drops = [(A, D1), (B, D2), (A, D3)]

    final = apply_drops(spark, [drops[i] for i in order])

    assert final == [stored_row(A, D1, D2), stored_row(B, D2, D3), stored_row(A, D3, None)]
