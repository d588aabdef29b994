"""A ``sequence`` column orders the versions of a plain ``latest`` table.

The test writes a spec (a ``prices`` table keyed by ``sku``, ordered by ``updated_at``)
and three drops of JSON lines into a temporary ``pipelines/`` folder (``PIPELINES_DIR``),
processes the drops in order into one lake and in reverse order into another, in this
process, and compares both with tables worked out by hand below. The drops hold:

* a late drop (D2) carrying an older ``updated_at`` for ``apple``: it must not win;
* two versions of ``banana`` in one drop (D2) with different ``updated_at``: the higher
  wins, the lower is counted as superseded in the ledger;
* two different lines of ``cherry`` with equal ``updated_at`` in one drop (D3): both are
  quarantined as ``conflicting_versions_in_drop``;
* a NULL ``updated_at`` (``durian``, D2): quarantined, the column is ``nullable: false``;
* equal ``updated_at`` for ``elder`` in D1 and D3: the newer drop wins;
* an exact duplicate line (``fig``, D1): counted once.

A re-run of a drop through the contract's command line commits nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.catalog import Catalog
from jobs.lake import Lake
from jobs.spec.cli import validate_pipeline
from jobs.spec.load import PIPELINES_ENV, load_pipeline
from jobs.steps import gold, ingest, quality, silver
from jobs.steps.common import StepContext
from tests.support.lake import lake_of, table_rows, table_versions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
NAME = "prices"
SPEC = """
name: prices
description: Shop prices; a price with a newer updated_at replaces the older one.
schedule: "@daily"
start_date: 2024-03-01
sources:
  prices:
    format: {type: jsonl, timestamp_format: "yyyy-MM-dd'T'HH:mm:ss"}
    files: "*.jsonl"
    columns:
      - {name: sku, type: string, nullable: false}
      - {name: updated_at, type: timestamp, nullable: false}
      - {name: price, type: "decimal(10,2)"}
    key: [sku]
    sequence: updated_at
"""
D1, D2, D3 = "2024-03-01", "2024-03-02", "2024-03-03"


def _line(sku: str, updated_at: str | None, price: str) -> str:
    return json.dumps({"sku": sku, "updated_at": updated_at, "price": price})


CHERRY_A = _line("cherry", "2024-03-03T15:00:00", "3.00")
CHERRY_B = _line("cherry", "2024-03-03T15:00:00", "3.10")
DURIAN = _line("durian", None, "4.00")
DROPS: dict[str, list[str]] = {
    D1: [_line("apple", "2024-03-01T10:00:00", "1.00"),
         _line("banana", "2024-03-01T07:00:00", "1.80"),
         _line("cherry", "2024-03-01T06:00:00", "2.90"),
         _line("elder", "2024-03-01T10:00:00", "5.00"),
         _line("fig", "2024-03-01T09:00:00", "6.00"),
         _line("fig", "2024-03-01T09:00:00", "6.00")],
    D2: [_line("apple", "2024-03-01T09:00:00", "0.90"),
         _line("banana", "2024-03-02T08:00:00", "2.00"),
         _line("banana", "2024-03-02T12:00:00", "2.50"),
         DURIAN],
    D3: [CHERRY_A,
         CHERRY_B,
         _line("elder", "2024-03-01T10:00:00", "5.50"),
         _line("grape", "2024-03-03T20:00:00", "7.00")],
}

ts, day = dt.datetime, dt.date
# (sku, updated_at, price, _ds, _line_number)
SILVER = [
    ("apple", ts(2024, 3, 1, 10), Decimal("1.00"), day(2024, 3, 1), 1),
    ("banana", ts(2024, 3, 2, 12), Decimal("2.50"), day(2024, 3, 2), 3),
    ("cherry", ts(2024, 3, 1, 6), Decimal("2.90"), day(2024, 3, 1), 3),
    ("elder", ts(2024, 3, 1, 10), Decimal("5.50"), day(2024, 3, 3), 3),
    ("fig", ts(2024, 3, 1, 9), Decimal("6.00"), day(2024, 3, 1), 5),
    ("grape", ts(2024, 3, 3, 20), Decimal("7.00"), day(2024, 3, 3), 4),
]
# (raw, _ds, _line_number, reasons)
QUARANTINE = [
    (CHERRY_A, day(2024, 3, 3), 1, ["conflicting_versions_in_drop"]),
    (CHERRY_B, day(2024, 3, 3), 2, ["conflicting_versions_in_drop"]),
    (DURIAN, day(2024, 3, 2), 4, ["null_value:updated_at"]),
]
# Per drop: lines read, duplicates, quarantined, superseded within the drop, and the keys
# whose version the drop offers to the MERGE (D1: apple banana cherry elder fig; D2: apple
# banana; D3: elder grape).
LEDGER = {
    D1: {"read": 6, "duplicate": 1, "quarantined": 0, "superseded": 0, "versions": 5},
    D2: {"read": 4, "duplicate": 0, "quarantined": 1, "superseded": 1, "versions": 2},
    D3: {"read": 4, "duplicate": 0, "quarantined": 2, "superseded": 0, "versions": 2},
}


@dataclass
class Lakes:
    """The landing, the spec folder and the two lakes (drops in order, in reverse)."""

    landing: Path
    pipelines: Path
    forward: Lake
    reverse: Lake


def _write(root: Path) -> Path:
    (root / "pipelines" / NAME).mkdir(parents=True)
    (root / "pipelines" / NAME / "pipeline.yaml").write_text(SPEC)
    for ds, lines in DROPS.items():
        folder = root / "landing" / f"ds={ds}" / NAME
        folder.mkdir(parents=True)
        (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n")
        (root / "landing" / f"ds={ds}" / "_SUCCESS").write_text("")
    return root / "pipelines"


def _run(spark: SparkSession, catalog: Catalog, lake: Lake, landing: Path, ds: str) -> None:
    ctx = StepContext(spark, lake, "file:" + str(landing), dt.date.fromisoformat(ds),
                      catalog=catalog)
    for step in (ingest, silver, gold, quality):
        step.run(ctx)


@pytest.fixture(scope="module")
def lakes(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lakes]:
    root = tmp_path_factory.mktemp("sequence")
    pipelines = _write(root)
    with pytest.MonkeyPatch.context() as patch:
        # SQL text may name only the tables and columns of the specs found: this one's.
        patch.setenv(PIPELINES_ENV, str(pipelines))
        assert validate_pipeline(NAME, root, spark) == []
        catalog = Catalog.from_pipeline(load_pipeline(NAME, root))
        found = Lakes(root / "landing", pipelines, lake_of(root / "lake"),
                      lake_of(root / "reverse"))
        for ds in (D1, D2, D3):
            _run(spark, catalog, found.forward, found.landing, ds)
        for ds in (D3, D2, D1):
            _run(spark, catalog, found.reverse, found.landing, ds)
        yield found


def _silver(spark: SparkSession, lake: Lake) -> list[tuple[Any, ...]]:
    return sorted((r["sku"], r["updated_at"], r["price"], r["_ds"], r["_line_number"])
                  for r in spark.read.format("delta").load(lake.table("silver", NAME))
                  .collect())


def _quarantine(spark: SparkSession, lake: Lake) -> list[tuple[Any, ...]]:
    return sorted((r["raw"], r["_ds"], r["_line_number"], list(r["reasons"]))
                  for r in spark.read.format("delta").load(lake.table("quarantine", NAME))
                  .collect())


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_highest_sequence_wins_then_the_newer_drop(spark: SparkSession, lakes: Lakes,
                                                   order: str) -> None:
    assert _silver(spark, getattr(lakes, order)) == SILVER


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_null_sequence_and_equal_sequences_in_one_drop_are_quarantined(
        spark: SparkSession, lakes: Lakes, order: str) -> None:
    assert _quarantine(spark, getattr(lakes, order)) == QUARANTINE


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_every_line_is_counted_once_superseded_lines_included(
        spark: SparkSession, lakes: Lakes, order: str) -> None:
    lake: Lake = getattr(lakes, order)
    runs = [r for r in spark.read.format("delta").load(lake.table("ops", "runs")).collect()
            if r["step"] == "silver" and r["status"] == "succeeded"]
    found: dict[str, dict[str, int]] = {}
    for run in runs:
        details = json.loads(run["details"])
        found[run["ds"].isoformat()] = {
            "read": (run["rows_read"] or {}).get(NAME, 0),
            "duplicate": (run["rows_duplicate"] or {}).get(NAME, 0),
            "quarantined": (run["rows_quarantined"] or {}).get(NAME, 0),
            "superseded": details["superseded_in_drop"][NAME],
        }
    assert found == {ds: {k: v for k, v in want.items() if k != "versions"}
                     for ds, want in LEDGER.items()}
    for ds, want in LEDGER.items():
        assert want["read"] == (want["duplicate"] + want["quarantined"] + want["superseded"]
                                + want["versions"]), ds


def test_key_unique_check_passes(spark: SparkSession, lakes: Lakes) -> None:
    results = [r for r in spark.read.format("delta").load(
        lakes.forward.table("ops", "dq_results")).collect()
               if r["expectation"] == f"{NAME}_key_unique"]
    assert {(r["ds"].isoformat(), r["failed_rows"]) for r in results} == {
        (D1, 0), (D2, 0), (D3, 0)}


def test_re_running_a_drop_commits_nothing(spark: SparkSession, lakes: Lakes) -> None:
    layers = ("bronze", "silver", "quarantine", "gold")
    before = table_versions(spark, lakes.forward, layers)
    env = {**os.environ, PIPELINES_ENV: str(lakes.pipelines)}
    done = subprocess.run(
        [sys.executable, "-m", "jobs", "all", "--pipeline", NAME, "--ds", D2, "--lake",
         lakes.forward.root.removeprefix("file:"), "--landing", str(lakes.landing)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # The run found this lake's ledger: the drop's input is unchanged since its last run.
    assert "input unchanged since run" in done.stderr, done.stderr[-3000:]
    assert table_versions(spark, lakes.forward, layers) == before
    assert table_rows(spark, lakes.forward, "silver", NAME) == table_rows(
        spark, lakes.reverse, "silver", NAME)
