"""The contract's accounting rule, checked line by line over a lake's bronze tables."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from jobs.delta_io import is_delta_table
from tests.support.tpch import ORDERS_DELETE, TABLES, TOMBSTONES, table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.lake import Lake

__all__ = ["OUTCOMES", "Line", "account_for_every_line", "key_of"]

def key_of(name: str, value: str) -> tuple[int, ...] | None:
    """The primary key of a raw dbgen line of a table, or ``None`` when it does not parse."""
    fields = value.split("|")
    t = table(name)
    try:
        return tuple(int(fields[t.column_names.index(k)]) for k in t.key)
    except (ValueError, IndexError):
        return None


# Where a landed line can end, per the contract's accounting rule.
OUTCOMES = ("silver", "quarantine", "superseded", "deleted", "unchanged", "duplicate")
Line = tuple[str, str, int]  # (table, _source_file, _line_number)


def _rows(spark: SparkSession, lake: Lake, layer: str, name: str) -> list[Any]:
    uri = lake.table(layer, name)
    return spark.read.format("delta").load(uri).collect() if is_delta_table(spark, uri) else []


def _rows_by_table(spark: SparkSession, lake: Lake, layer: str,
                   names: Iterable[str]) -> dict[str, list[Any]]:
    """Rows of tables of one layer that share a schema, read with one Spark job."""
    from functools import reduce

    from pyspark.sql import functions as F

    out: dict[str, list[Any]] = {n: [] for n in names}
    frames = [spark.read.format("delta").load(lake.table(layer, n)).withColumn("_t", F.lit(n))
              for n in out if is_delta_table(spark, lake.table(layer, n))]
    if frames:
        for r in reduce(lambda a, b: a.unionByName(b), frames).collect():
            out[r["_t"]].append(r)
    return out


def _latest_silver_runs(spark: SparkSession, lake: Lake) -> dict[dt.date, Any]:
    """The latest successful silver run of each drop (a re-run replaces the earlier one)."""
    latest: dict[dt.date, Any] = {}
    for r in _rows(spark, lake, "ops", "runs"):
        if r["step"] == "silver" and r["status"] == "succeeded" and (
                r["ds"] not in latest or r["ended_at"] > latest[r["ds"]]["ended_at"]):
            latest[r["ds"]] = r
    return latest


def account_for_every_line(spark: SparkSession, lake: Lake) -> dict[Line, str]:
    """Check the accounting rule line by line over bronze; return where each line went.

    Every bronze line ends in exactly one of :data:`OUTCOMES`:

    * ``silver``: a silver row carries its lineage (for ``customer`` an SCD2 version, for
      RF2 deletions the tombstone);
    * ``quarantine``: a quarantine row carries its lineage;
    * ``superseded``: silver holds a version of its key from a newer drop;
    * ``deleted``: an order or line item whose order has a tombstone at least as new;
    * ``unchanged``: a customer snapshot line equal to the version valid on its day (no new
      SCD2 version; the line is kept in ``silver/_customer_snapshots``);
    * ``duplicate``: a further copy of an identical line of the same drop and table.

    Asserts that no line is left over, that no identical line is placed twice, and that the
    latest successful silver run of each drop read exactly that drop's bronze lines and
    counted exactly the duplicates found here.

    :return: ``(table, _source_file, _line_number)`` -> outcome, for every bronze line.
    """
    latest = _latest_silver_runs(spark, lake)
    tombstones = {r["o_orderkey"]: r["_ds"]
                  for r in _rows(spark, lake, "silver", TOMBSTONES)}
    snapshots = {(r["_source_file"], r["_line_number"]): r
                 for r in _rows(spark, lake, "silver", "_customer_snapshots")}
    out: dict[Line, str] = {}
    names = (*TABLES, ORDERS_DELETE.name)
    bronze_rows = _rows_by_table(spark, lake, "bronze", names)
    quarantine_rows = _rows_by_table(spark, lake, "quarantine", names)
    for name in names:
        bronze = bronze_rows[name]
        quarantined = {(r["_source_file"], r["_line_number"]) for r in quarantine_rows[name]}
        target = TOMBSTONES if name == ORDERS_DELETE.name else name
        silver = _rows(spark, lake, "silver", target)
        in_silver = {(r["_source_file"], r["_line_number"]) for r in silver}
        t = table(name)
        newest: dict[tuple[int, ...], dt.date] = {}
        versions: dict[tuple[int, ...], list[Any]] = defaultdict(list)
        for r in silver:
            k = tuple(r[c] for c in t.key)
            newest[k] = max(newest.get(k, r["_ds"]), r["_ds"])
            versions[k].append(r)

        def unchanged(line: Any, k: tuple[int, ...] | None) -> bool:
            snap = snapshots.get((line["_source_file"], line["_line_number"]))
            return name == "customer" and snap is not None and any(
                v["valid_from"] <= line["_ds"] and (v["valid_to"] is None
                                                    or line["_ds"] < v["valid_to"])
                and v["_row_hash"] == snap["_row_hash"] for v in versions[k or ()])

        def placed(line: Any) -> str | None:
            where = (line["_source_file"], line["_line_number"])
            k = key_of(name, line["value"])
            assert not (where in in_silver and where in quarantined), (name, "in both", line)
            if where in in_silver:
                return "silver"
            if where in quarantined:
                return "quarantine"
            if unchanged(line, k):
                return "unchanged"
            if k is not None and k in newest and newest[k] > line["_ds"]:
                return "superseded"
            if (k is not None and name in ("orders", "lineitem")
                    and tombstones.get(k[0]) is not None and tombstones[k[0]] >= line["_ds"]):
                return "deleted"
            return None

        copies: dict[tuple[dt.date, str], list[Any]] = defaultdict(list)
        for line in bronze:
            copies[(line["_ds"], line["value"])].append(line)
        for group in copies.values():
            group.sort(key=lambda r: (r["_source_file"], r["_line_number"]))
            found = [placed(line) for line in group]
            kept = [i for i, o in enumerate(found) if o in ("silver", "quarantine")]
            assert len(kept) <= 1, (name, "an identical line is placed twice", group)
            primary = kept[0] if kept else 0
            for i, line in enumerate(group):
                outcome = found[i] if i == primary else "duplicate"
                assert outcome is not None, (name, "line not accounted for", line)
                out[(name, line["_source_file"], line["_line_number"])] = outcome
        per_drop: dict[dt.date, int] = defaultdict(int)
        for line in bronze:
            per_drop[line["_ds"]] += 1
        for ds, n in per_drop.items():
            assert ds in latest, (name, ds, "bronze lines but no successful silver run")
            assert (latest[ds]["rows_read"] or {}).get(name, 0) == n, (name, ds)
        counted = sum((r["rows_duplicate"] or {}).get(name, 0) for r in latest.values())
        found_dups = sum(1 for line in bronze
                         if out[(name, line["_source_file"], line["_line_number"])]
                         == "duplicate")
        assert found_dups == counted, (name, found_dups, counted)
    return out
