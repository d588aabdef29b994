"""The driver-side Delta reader (``jobs.delta_log``) against Spark's own read of the table.

The ledger is built by real step runs (``start_run(...).write``), past Delta's checkpoint
interval, so the reader replays a checkpoint plus the commits after it; OPTIMIZE adds
``remove`` actions; Delta's log clean-up and a stale ``_last_checkpoint`` hint must not change
the rows. Tables with features the reader skips must come back as ``None``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.delta_log import read_small_table
from jobs.lake import Lake
from jobs.ledger import _succeeded_runs_via_spark, last_successes, start_run

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

D1, D2 = dt.date(1998, 8, 1), dt.date(1998, 8, 2)
RUNS = 5


def spark_rows(spark: SparkSession, uri: str) -> dict[str, dict[str, Any]]:
    return {r["run_id"]: r.asDict(recursive=True)
            for r in spark.read.format("delta").load(uri).collect()}


@pytest.fixture(scope="module")
def ledger_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A ledger of 5 runs (versions 1-5); a checkpoint every 3 versions, then two commits."""
    lake = Lake("file:" + str(tmp_path_factory.mktemp("ledger")))
    key = "spark.databricks.delta.properties.defaults.checkpointInterval"
    spark.conf.set(key, "3")
    try:
        for i in range(RUNS):
            step = ("ingest", "silver", "gold")[i % 3]
            run = start_run(spark, lake, step, D1 if i < 3 else D2, f"fingerprint-{i}")
            run.count("read", "orders", i)
            run.wrote("silver/orders", i)
            run.details["i"] = i
            run.write("failed" if i == 4 else "succeeded", "boom" if i == 4 else None)
    finally:
        spark.conf.unset(key)
    return lake


def test_the_ledger_read_on_the_driver_equals_sparks(spark: SparkSession,
                                                      ledger_lake: Lake) -> None:
    uri = ledger_lake.table("ops", "runs")
    log = Path(uri.removeprefix("file:")) / "_delta_log"
    checkpoints = sorted(log.glob("*.checkpoint.parquet"))
    assert checkpoints and int(checkpoints[-1].name[:20]) < RUNS, "no commit after a checkpoint"
    rows = read_small_table(spark, uri)
    assert rows is not None
    assert {r["run_id"]: r for r in rows} == spark_rows(spark, uri)
    assert {type(r["ended_at"]) for r in rows} == {dt.datetime}
    assert rows[0]["rows_read"] == {"orders": rows[0]["rows_read"]["orders"]}


def test_last_successes_read_on_the_driver_match_the_spark_read(spark: SparkSession,
                                                                ledger_lake: Lake) -> None:
    wanted: dict[str, dt.date | None] = {"ingest": D1, "silver": D2, "gold": None}
    found = last_successes(spark, ledger_lake, wanted)
    via_spark = _succeeded_runs_via_spark(spark, ledger_lake.table("ops", "runs"), wanted)
    for step, ds in wanted.items():
        candidates = [r for r in via_spark if r["step"] == step and ds in (None, r["ds"])]
        assert found[step] == max(candidates, key=lambda r: r["ended_at"], default=None)
    # Run 4 (silver, D2) failed: no success to find. Gold ran once, for D1.
    assert found["silver"] is None
    assert found["gold"] is not None and found["gold"]["ds"] == D1
    assert found["ingest"] is not None and found["ingest"]["input_fingerprint"] == "fingerprint-0"


def test_files_removed_by_optimize_are_not_read(spark: SparkSession, ledger_lake: Lake,
                                                tmp_path: Path) -> None:
    import shutil

    from delta.tables import DeltaTable

    copy = tmp_path / "runs"
    shutil.copytree(ledger_lake.table("ops", "runs").removeprefix("file:"), copy)
    DeltaTable.forPath(spark, str(copy)).optimize().executeCompaction()
    rows = read_small_table(spark, f"file:{copy}")
    assert rows is not None and len(rows) == RUNS
    assert {r["run_id"]: r for r in rows} == spark_rows(spark, f"file:{copy}")


def test_commits_before_the_checkpoint_are_not_needed(spark: SparkSession, ledger_lake: Lake,
                                                      tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(ledger_lake.table("ops", "runs").removeprefix("file:"), copy)
    checkpoint = int(json.loads((copy / "_delta_log" / "_last_checkpoint").read_text())["version"])
    for version in range(checkpoint):  # what Delta's log clean-up leaves
        (copy / "_delta_log" / f"{version:020d}.json").unlink()
    rows = read_small_table(spark, f"file:{copy}")
    assert rows is not None
    assert {r["run_id"]: r for r in rows} == spark_rows(spark, f"file:{copy}")


def test_a_last_checkpoint_hint_without_its_checkpoint_replays_the_whole_log(
        spark: SparkSession, ledger_lake: Lake, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(ledger_lake.table("ops", "runs").removeprefix("file:"), copy)
    hint = json.dumps({"version": RUNS - 1, "size": 1})  # no checkpoint at that version
    (copy / "_delta_log" / "_last_checkpoint").write_text(hint)
    (copy / "_delta_log" / "._last_checkpoint.crc").unlink()  # Hadoop's checksum of the old text
    rows = read_small_table(spark, f"file:{copy}")
    assert rows is not None
    assert {r["run_id"]: r for r in rows} == spark_rows(spark, ledger_lake.table("ops", "runs"))


def test_tables_with_features_it_skips_are_left_to_spark(spark: SparkSession,
                                                         tmp_path: Path) -> None:
    partitioned = tmp_path / "partitioned"
    spark.createDataFrame([(1, "a")], "k int, p string").write.format("delta") \
        .partitionBy("p").save(str(partitioned))
    assert read_small_table(spark, f"file:{partitioned}") is None

    vectors = tmp_path / "vectors"
    spark.createDataFrame([(1,), (2,), (3,)], "k int").coalesce(1).write.format("delta") \
        .option("delta.enableDeletionVectors", "true").save(str(vectors))
    spark.sql(f"DELETE FROM delta.`{vectors}` WHERE k = 2")  # a deletion vector
    assert read_small_table(spark, f"file:{vectors}") is None

    assert read_small_table(spark, f"file:{tmp_path / 'missing'}") is None
