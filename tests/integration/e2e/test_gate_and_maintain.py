"""The quality gate keeps gold as it was; maintain, killed or not, changes no contents."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.errors import ConcurrentChangeError, ConfigError, QualityGateError
from jobs.steps import gold, ingest, maintain, quality, silver
from jobs.steps.common import StepContext
from tests.support.compare import contents, rows
from tests.support.kills import Kill, submit
from tests.support.lake import (
    GOLD,
    ChaosHistory,
    copy_lake,
    expected_gold,
    lake_of,
    run_drop,
    table_rows,
    table_versions,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.lake import Lake

Chaos = tuple[Path, list[str], dict[str, Any]]


def gold_rows(spark: SparkSession, lake: Lake) -> dict[str, list[tuple[Any, ...]]]:
    return {n: table_rows(spark, lake, "gold", n) for n in GOLD}


def test_failed_gate_exits_3_and_restores_gold_then_a_passing_run_publishes(
        spark: SparkSession, chaos_landing: Chaos, chaos_initial: Lake, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    landing, drops, _ = chaos_landing
    lake = copy_lake(chaos_initial, tmp_path / "lake")
    published = gold_rows(spark, lake)
    versions = {n: v for n, v in table_versions(spark, lake, ("gold",)).items()}

    # Drop 1 carries quarantined lines; a zero tolerance makes the gate fail.
    monkeypatch.setenv("DQ_MAX_QUARANTINE_RATIO", "0")
    run_drop(spark, lake, landing, drops[1], steps=(ingest, silver))
    # gold's first try fails right after committing a mart (the state a killed try leaves:
    # no ledger row); its retry must not make that commit the version the gate restores.
    monkeypatch.setenv("PIPELINE_FAULT", "after_write:gold/daily_line_summary:exit1")
    with pytest.raises(RuntimeError, match="injected transient failure"):
        run_drop(spark, lake, landing, drops[1], steps=(gold,))
    monkeypatch.delenv("PIPELINE_FAULT")
    run_drop(spark, lake, landing, drops[1], steps=(gold,))
    assert gold_rows(spark, lake) != published, "gold must have changed before the gate"
    ctx = StepContext(spark, lake, "file:" + str(landing), dt.date.fromisoformat(drops[1]))
    with pytest.raises(QualityGateError, match="quarantine_ratio"):
        quality.run(ctx)

    assert gold_rows(spark, lake) == published
    assert all(v > versions[k] for k, v in table_versions(spark, lake, ("gold",)).items())
    runs = spark.read.format("delta").load(lake.table("ops", "runs")).collect()
    gold_runs = {r["ds"].isoformat(): r["status"] for r in runs if r["step"] == "gold"}
    assert gold_runs == {drops[0]: "succeeded", drops[1]: "rolled_back"}
    dq = spark.read.format("delta").load(lake.table("ops", "dq_results")).where(
        "expectation = 'quarantine_ratio' AND outcome = 'failed'").count()
    assert dq == 1

    # With the default tolerance the next run recomputes the rolled-back dates: gold is
    # then what a from-scratch computation over silver gives.
    monkeypatch.delenv("DQ_MAX_QUARANTINE_RATIO")
    run_drop(spark, lake, landing, drops[1], steps=(gold, quality))
    assert gold_rows(spark, lake) == expected_gold(spark, lake)


def test_a_check_failing_while_another_drops_silver_is_ahead_of_gold_is_retried_not_gated(
        spark: SparkSession, chaos_history: ChaosHistory, tmp_path: Path) -> None:
    """Found by the concurrency test: drop 2's silver committed while drop 1's quality ran.

    Gold then lags silver for the dates drop 2 touched, the reconciliation of drop 1's
    months fails, and the gate used to restore gold and exit 3 (not retried) for a drop
    that had nothing wrong. Now the check is not judged while silver is ahead of the
    latest gold run: exit 1, gold untouched; once gold has caught up it passes.
    """
    landing, drops = chaos_history.landing, chaos_history.drops
    lake = copy_lake(lake_of(chaos_history.after[drops[1]]), tmp_path / "lake")
    published = gold_rows(spark, lake)
    run_drop(spark, lake, landing, drops[2], steps=(ingest, silver))
    ctx = StepContext(spark, lake, "file:" + str(landing), dt.date.fromisoformat(drops[1]),
                      force=True)

    with pytest.raises(ConcurrentChangeError,
                       match=r"daily_line_summary_reconciles \(\d+\) failed while silver "
                             r"changed after the latest gold run read it \(.*silver/lineitem v"):
        quality.run(ctx)

    assert gold_rows(spark, lake) == published
    runs = spark.read.format("delta").load(lake.table("ops", "runs")).where(
        "step = 'gold' AND status = 'rolled_back'").count()
    assert runs == 0
    run_drop(spark, lake, landing, drops[2], steps=(gold,))
    assert quality.run(ctx) is True


def test_maintain_killed_in_optimize_and_vacuum_changes_no_table_then_compacts_and_vacuums(
        spark: SparkSession, plain_landing: tuple[Path, list[str]], plain_lake: Lake) -> None:
    """Three ``spark-submit maintain`` runs SIGKILLed, then one that gets through.

    The kills come mid-OPTIMIZE (its new files written, not committed), between OPTIMIZE's
    commit and VACUUM, and mid-VACUUM; none changes what a reader sees. Debris of a killed
    writer (an uncommitted data file) is invisible to readers, and VACUUM removes it once it
    is past the retention. (``make chaos``'s kills are chains of ``all``.)
    """
    landing, drops = plain_landing
    root = Path(plain_lake.root[len("file:"):])
    before = contents(spark, root)
    lineitem = root / "silver" / "lineitem"
    month = next(p for p in lineitem.iterdir() if p.name.startswith("_order_month="))
    debris = month / "part-00000-debris-of-a-killed-writer.c000.snappy.parquet"
    shutil.copy(next(month.glob("*.parquet")), debris)
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(debris, (week_ago, week_ago))
    assert rows(spark, lineitem) == before["silver/lineitem"], \
        "debris must be invisible to readers"

    # The line item tables are the largest, so maintain starts with them: each kill comes
    # early. The second run's OPTIMIZE commits; the third finds lineitem compacted and
    # VACUUM deletes the debris (the only file past the retention) before the kill.
    for point in ("during_write:silver/lineitem", "after_write:silver/lineitem",
                  "during_vacuum:silver/lineitem"):
        submit(root, landing, "maintain", drops[-1], Kill(point))
    assert rows(spark, lineitem) == before["silver/lineitem"], "a killed maintain changed it"
    assert not debris.exists(), "VACUUM must remove debris older than the retention"

    ctx = StepContext(spark, plain_lake, "file:/unused", dt.date.fromisoformat(drops[-1]))
    maintain.run(ctx)
    # Every table, after the killed runs (OPTIMIZE runs on four tables at a time, so they
    # also committed or cut short other tables' compactions) and the one that got through.
    assert contents(spark, root) == before
    runs = spark.read.format("delta").load(plain_lake.table("ops", "runs")).where(
        "step = 'maintain'").collect()
    assert [r["status"] for r in runs] == ["succeeded"], "a killed run records nothing"
    # The run that got through went over every table of the lake and recorded it.
    compacted = json.loads(runs[0]["details"])["files_compacted"]
    assert set(compacted) == {f"{t.parent.name}/{t.name}" for t in root.glob("*/*")
                              if (t / "_delta_log").is_dir()}
    # Daily MERGEs left several small files in the line item table; the OPTIMIZE of the
    # second killed run, committed before the kill, merged them.
    from delta.tables import DeltaTable

    optimized = DeltaTable.forPath(spark, str(lineitem)).history().where(
        "operation = 'OPTIMIZE'").collect()
    assert len(optimized) == 1 and int(optimized[0]["operationMetrics"]["numRemovedFiles"]) > 1


def test_vacuum_retention_below_seven_days_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VACUUM_RETENTION_HOURS", "24")
    with pytest.raises(ConfigError, match="below 168"):
        maintain.retention_hours()
