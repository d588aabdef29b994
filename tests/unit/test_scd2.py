"""Tests of ``scd2_changes``: the SCD2 row changes that merge a drop into customer history.

The function is pure; convergence is checked by applying its upserts and deletes to a
Python model of the table keyed like the silver MERGE (``c_custkey``, ``valid_from``):
an ``upsert`` replaces or inserts the row, a ``delete`` removes it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import permutations
from typing import TYPE_CHECKING, Any

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
# Each processing order is played by its own customer, so one scd2_changes call per step
# serves every order at once (keys are independent, as in a real drop).

Drop = tuple[tuple[Any, ...], dt.date]


def as_customer(version: tuple[Any, ...], custkey: int) -> tuple[Any, ...]:
    return (custkey, *version[1:])


def histories(by_order: dict[tuple[int, ...], list[tuple[Any, ...]]]
              ) -> dict[str, list[tuple[Any, ...]]]:
    """Order ``"d1>d3>d2"`` -> ``(valid_from, valid_to, is_current, c_nationkey)`` per
    version: the same content as the full rows, readable in a failure."""
    names = SILVER.split(", ")
    at = [names.index(n) for n in
          ("valid_from date", "valid_to date", "is_current boolean", "c_nationkey bigint")]
    return {
        ">".join(f"d{i + 1}" for i in order): [tuple(row[i] for i in at) for row in rows]
        for order, rows in by_order.items()
    }


def play(spark: SparkSession, drops: list[Drop], orders: list[tuple[int, ...]]
         ) -> dict[tuple[int, ...], list[tuple[Any, ...]]]:
    """Process ``drops`` in each order, one drop per step as the silver step does.

    :return: order -> final versions of its customer, by ``valid_from``.
    """
    table: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    custkey = {order: n for n, order in enumerate(orders, start=1)}
    observed: list[tuple[Any, ...]] = []  # silver/_customer_snapshots
    for step in range(len(drops)):
        for order, key in custkey.items():
            version, ds = drops[order[step]]
            observed.append(incoming_row(as_customer(version, key), ds))
        for row in changes(spark, list(table.values()), observed).collect():
            at = (row["c_custkey"], row["valid_from"])
            if row["_action"] == "upsert":
                table[at] = tuple(row)[:-1]
            else:
                assert row["_action"] == "delete", row
                table.pop(at)
    return {
        order: [table[at] for at in sorted(k for k in table if k[0] == key)]
        for order, key in custkey.items()
    }


def expect(orders: list[tuple[int, ...]], rows: list[tuple[Any, ...]]
           ) -> dict[tuple[int, ...], list[tuple[Any, ...]]]:
    return {
        order: [as_customer(r, n) for r in rows] for n, order in enumerate(orders, start=1)
    }


def test_two_drops_converge_in_either_order(spark: SparkSession) -> None:
    orders = [(0, 1), (1, 0)]

    final = play(spark, [(A, D1), (B, D2)], orders)

    expected = expect(orders, [stored_row(A, D1, D2), stored_row(B, D2, None)])
    assert histories(final) == histories(expected)
    assert final == expected


def test_change_and_change_back_converge_in_any_order(spark: SparkSession) -> None:
    # The customer moved on D2 and moved back on D3: three versions, whatever the order
    # the drops are processed in, including D2 arriving late after D1 and D3 were stored
    # (D3 was then "no change" and stored nothing, yet it is a version once D2 exists).
    orders = sorted(permutations(range(3)))

    final = play(spark, [(A, D1), (B, D2), (A, D3)], orders)

    expected = expect(
        orders, [stored_row(A, D1, D2), stored_row(B, D2, D3), stored_row(A, D3, None)]
    )
    assert histories(final) == histories(expected)
    assert final == expected
