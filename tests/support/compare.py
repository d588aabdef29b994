"""Comparing a lake with a clean one: every data table's rows and the ledger's step runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.lake import DATA_LAYERS
from tests.support.tpch import TABLES, TOMBSTONES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["KEYS", "VOLATILE", "assert_lake_equal", "assert_tables_equal", "contents",
           "difference", "ledger", "rows"]

# Primary keys of the silver tables (customer: one row per SCD2 version).
KEYS = {**{name: t.key for name, t in TABLES.items()}, "customer": ("c_custkey", "valid_from"),
        TOMBSTONES: ("o_orderkey",)}
# Columns that differ between two runs of the same input.
VOLATILE = ("_ingested_at",)


def rows(spark: SparkSession, path: Path) -> list[tuple[Any, ...]]:
    """A table's rows without ingestion timestamps, sorted (order-insensitive)."""
    df = spark.read.format("delta").load(str(path))
    df = df.drop(*[c for c in VOLATILE if c in df.columns])
    return sorted((tuple(r) for r in df.collect()), key=repr)


def contents(spark: SparkSession, root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table of a lake (bronze, silver, quarantine, gold)."""
    return {f"{layer}/{t.name}": rows(spark, t)
            for layer in DATA_LAYERS if (root / layer).is_dir()
            for t in sorted((root / layer).iterdir()) if (t / "_delta_log").is_dir()}


def ledger(spark: SparkSession, root: Path) -> Counter[tuple[Any, ...]]:
    """Succeeded step runs with the counts that do not depend on what was there before."""
    runs = spark.read.format("delta").load(str(root / "ops" / "runs")).collect()
    return Counter(
        (r["step"], r["ds"], r["status"], tuple(sorted((r["rows_read"] or {}).items())),
         tuple(sorted((r["rows_quarantined"] or {}).items())),
         tuple(sorted((r["rows_duplicate"] or {}).items())))
        for r in runs if r["status"] == "succeeded")


def difference(name: str, got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> str:
    """Rows only in the tested lake and rows only in the clean one (at most 5 each)."""
    extra, missing = Counter(got) - Counter(want), Counter(want) - Counter(got)
    return (f"{name} differs from the clean run: {sum(extra.values())} rows only here, "
            f"e.g. {list(extra)[:5]}; {sum(missing.values())} rows only in the clean run, "
            f"e.g. {list(missing)[:5]}")


def assert_tables_equal(got: dict[str, list[tuple[Any, ...]]],
                        want: dict[str, list[tuple[Any, ...]]]) -> None:
    """The same tables with the same rows (:func:`contents` of two lakes)."""
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], difference(name, got[name], want[name])


def assert_lake_equal(spark: SparkSession, root: Path, want: dict[str, list[tuple[Any, ...]]],
                      want_ledger: Counter[tuple[Any, ...]]) -> None:
    """The lake at ``root`` equals a clean one: every data table's rows (:func:`contents`),
    no duplicate key in silver, and the same successful step runs (:func:`ledger`), each
    step of each drop recorded once."""
    assert_tables_equal(contents(spark, root), want)
    for name, key in KEYS.items():
        table = root / "silver" / name
        if name != "customer" and table.is_dir():
            keys = [tuple(r[c] for c in key)
                    for r in spark.read.format("delta").load(str(table)).collect()]
            assert len(keys) == len(set(keys)), f"duplicate keys in silver/{name}"
    got_ledger = ledger(spark, root)
    assert got_ledger == want_ledger
    once = Counter((step, ds) for step, ds, *_ in got_ledger.elements())
    assert set(once.values()) == {1}, "a step of a drop is recorded more than once"
