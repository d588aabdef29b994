"""End to end with injected faults: every fault accounted for, order-independent results.

The generator's manifest lists exactly what it injected; each entry's documented outcome
is checked against the lake. The accounting rule is checked line by line over bronze:
every landed line is in silver, in quarantine, superseded by a newer version or a
deletion, or a counted duplicate of an identical line of its drop.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.steps import gold, ingest, silver
from tests.support.accounting import OUTCOMES, account_for_every_line
from tests.support.lake import lake_of, run_drop, snapshot, table_versions
from tests.support.tpch import TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.lake import Lake

Chaos = tuple[Path, list[str], dict[str, Any]]


def rows_of(spark: SparkSession, lake: Lake, layer: str, name: str) -> list[Any]:
    return spark.read.format("delta").load(lake.table(layer, name)).collect()


def entries(manifest: dict[str, Any], expect: str) -> list[dict[str, Any]]:
    found = [e for e in manifest["entries"] if e["expect"] == expect]
    assert found, f"the manifest has no {expect!r} entries: the check would be empty"
    return found


def test_every_quarantine_fault_is_quarantined_with_its_reason(
        spark: SparkSession, chaos_landing: Chaos, chaos_lake: Lake) -> None:
    _, _, manifest = chaos_landing
    for e in entries(manifest, "quarantine"):
        hits = [
            r for r in rows_of(spark, chaos_lake, "quarantine", e["table"])
            if r["_source_file"].endswith(e["file"]) and r["_line_number"] == e["line"]
        ]
        assert len(hits) == 1, e
        assert e["reason"] in hits[0]["reasons"], (e, hits[0]["reasons"])
        assert hits[0]["_ds"].isoformat() == e["ds"]


def test_updates_and_late_line_items_are_applied(spark: SparkSession, chaos_landing: Chaos,
                                                 chaos_lake: Lake) -> None:
    _, _, manifest = chaos_landing
    for e in entries(manifest, "applied"):
        t = TABLES[e["table"]]
        df = spark.read.format("delta").load(chaos_lake.table("silver", e["table"]))
        for col, value in zip(t.key, e["key"], strict=True):
            df = df.where(df[col] == value)
        rows = df.collect()
        assert len(rows) == 1, e
        assert rows[0]["_ds"].isoformat() == e["ds"]
        assert rows[0]["_source_file"].endswith(e["file"])
        for col, value in (e["values"] or {}).items():
            assert str(rows[0][col]) == value, (e, col)


def test_rf2_deletions_remove_the_order_and_its_line_items(
        spark: SparkSession, chaos_landing: Chaos, chaos_lake: Lake) -> None:
    _, _, manifest = chaos_landing
    keys = [e["key"][0] for e in entries(manifest, "deleted")]
    orders = spark.read.format("delta").load(chaos_lake.table("silver", "orders"))
    lineitem = spark.read.format("delta").load(chaos_lake.table("silver", "lineitem"))
    assert orders.where(orders.o_orderkey.isin(keys)).count() == 0
    assert lineitem.where(lineitem.l_orderkey.isin(keys)).count() == 0
    bronze = spark.read.format("delta").load(chaos_lake.table("bronze", "lineitem"))
    # The orders did have line items before: the deletion removed something real.
    assert bronze.where(bronze.value.substr(1, 12).rlike(
        "^(" + "|".join(str(k) for k in keys) + r")\|")).count() > 0


def test_customer_changes_become_scd2_versions(spark: SparkSession, chaos_landing: Chaos,
                                               chaos_lake: Lake) -> None:
    _, _, manifest = chaos_landing
    versions: dict[int, list[Any]] = defaultdict(list)
    for r in rows_of(spark, chaos_lake, "silver", "customer"):
        versions[r["c_custkey"]].append(r)
    changes = entries(manifest, "scd2_version")
    for e in changes:
        history = sorted(versions[e["key"][0]], key=lambda r: r["valid_from"])
        match = [r for r in history if r["valid_from"].isoformat() == e["ds"]]
        assert len(match) == 1, e
        for col, value in e["values"].items():
            assert str(match[0][col]) == value, (e, col)
        # History is contiguous and exactly the newest version is current.
        for older, newer in pairwise(history):
            assert older["valid_to"] == newer["valid_from"]
            assert not older["is_current"]
        assert history[-1]["is_current"] and history[-1]["valid_to"] is None
    twice = Counter(e["key"][0] for e in changes)
    assert max(twice.values()) >= 2, "the manifest should change one customer twice"


def test_redelivered_file_is_applied_as_the_newest_version(
        spark: SparkSession, chaos_landing: Chaos, chaos_lake: Lake) -> None:
    landing, _, manifest = chaos_landing
    (e,) = entries(manifest, "redelivered")
    keys = [int(line.split("|")[0]) for line in (landing / e["file"]).read_text().splitlines()]
    assert keys
    orders = spark.read.format("delta").load(chaos_lake.table("silver", "orders"))
    got = orders.where(orders.o_orderkey.isin(keys)).collect()
    assert len(got) == len(keys)
    assert {r["_ds"].isoformat() for r in got} == {e["ds"]}


def test_every_landed_line_is_accounted_for(spark: SparkSession, chaos_landing: Chaos,
                                            chaos_lake: Lake) -> None:
    """Each bronze line: silver, quarantine, superseded/deleted, or a counted duplicate."""
    outcomes = Counter(account_for_every_line(spark, chaos_lake).values())
    # The chaos drops hold every way a line can end except an unchanged customer snapshot.
    assert all(outcomes[o] for o in OUTCOMES if o != "unchanged"), outcomes


def test_rerunning_every_chaos_drop_changes_no_data_table(
        spark: SparkSession, chaos_landing: Chaos, chaos_lake: Lake) -> None:
    landing, drops, _ = chaos_landing
    before = table_versions(spark, chaos_lake, ("bronze", "silver", "quarantine", "gold"))
    for ds in drops:
        run_drop(spark, chaos_lake, landing, ds)
    assert table_versions(spark, chaos_lake, ("bronze", "silver", "quarantine", "gold")) == before


def test_drops_in_reverse_order_converge_to_the_same_silver_and_gold(
        spark: SparkSession, chaos_landing: Chaos, chaos_lake: Lake, tmp_path: Path) -> None:
    # Reverse order puts every pair of drops out of order (the initial load last); random
    # orders with repeats are the property tests' job.
    landing, drops, _ = chaos_landing
    order = "reversed"
    sequence = list(reversed(drops))
    lake = lake_of(tmp_path / "lake")
    for ds in sequence:
        # Quality only reads; the claim is about what ingest, silver and gold write.
        run_drop(spark, lake, landing, ds, steps=(ingest, silver, gold))
    expected = snapshot(spark, chaos_lake)
    actual = snapshot(spark, lake)
    for name in expected:
        assert actual[name] == expected[name], f"{name} differs after {order} order {sequence}"
