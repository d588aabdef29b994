"""Tests of the Delta helpers in ``jobs.delta_io`` on small tables under ``tmp_path``.

Every Delta commit costs a second or two here, so the seeded table is built once (by
``ensure_table`` and one append) and each write test runs one write on its own copy.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from chispa import assert_df_equality

from jobs.delta_io import (
    PARTITION_PREDICATES_CONF,
    _newer_condition,
    append_once,
    commit_metrics,
    commit_tag,
    ensure_table,
    foreign_changes,
    latest_version,
    local_frame,
    merge_latest,
    replace_where,
    sql_in,
    with_conflict_retry,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SCHEMA = "k bigint, v string, _ds date, _row_hash bigint"
D1, D2, D3 = dt.date(1998, 8, 1), dt.date(1998, 8, 2), dt.date(1998, 8, 3)


def rows(spark: SparkSession, data: list[tuple[Any, ...]]) -> DataFrame:
    return spark.createDataFrame(data, SCHEMA)


SEED = [(1, "a", D2, 10), (2, "b", D2, 20), (3, "c", D1, 30), (5, "e", D3, 50)]


@pytest.fixture(scope="module")
def template(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table made by ``ensure_table`` (version 0) holding ``SEED`` (version 1).

    Tests work on copies of its folder: a Delta table only names its files relative to
    its root, so a copy is the same table, without paying for two more commits.
    """
    path = tmp_path_factory.mktemp("delta") / "template"
    uri = "file:" + str(path)
    ensure_table(spark, uri, rows(spark, []).schema)
    rows(spark, SEED).write.format("delta").mode("append").save(uri)
    return path


def seeded(template: Path, tmp_path: Path) -> str:
    """A fresh copy of the template table; returns its URI."""
    path = tmp_path / "t"
    shutil.copytree(template, path)
    return "file:" + str(path)


def table(spark: SparkSession, uri: str) -> DataFrame:
    return spark.read.format("delta").load(uri)


# -- merge_latest --------------------------------------------------------------------------

def test_newer_or_corrected_rows_replace_and_new_keys_are_inserted(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    uri = seeded(template, tmp_path)
    source = rows(spark, [
        (1, "a newer", D3, 11),      # newer drop
        (2, "b corrected", D2, 21),  # same drop, different content
        (4, "d", D2, 40),            # new key
    ])

    result = merge_latest(spark, uri, source, ["k"])

    expected = rows(spark, [
        (1, "a newer", D3, 11), (2, "b corrected", D2, 21), (3, "c", D1, 30), (4, "d", D2, 40),
        (5, "e", D3, 50),
    ])
    assert_df_equality(table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)
    assert result.metrics["num_inserted_rows"] == 1
    assert result.metrics["num_updated_rows"] == 2
    assert result.metrics["num_deleted_rows"] == 0
    assert result.version == 2


def test_a_real_write_conflict_is_retried_and_the_merge_applies_once(
    spark: SparkSession, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``PIPELINE_CONFLICT``: a concurrent writer commits to the table while the MERGE
    writes its files; Delta refuses the MERGE's commit and the job's retry applies it."""
    from jobs import fault

    uri = seeded(template, tmp_path)
    monkeypatch.setenv("PIPELINE_CONFLICT", f"{tmp_path.name}/t")
    monkeypatch.setattr(fault, "_conflict_done", threading.Event())  # once per process
    source = rows(spark, [(1, "a newer", D3, 11), (4, "d", D2, 40)])

    result = merge_latest(spark, uri, source, ["k"])

    conflicts = [r.getMessage() for r in caplog.records if "write conflict" in r.getMessage()]
    assert conflicts and "(attempt 1/5, MetadataChangedException)" in conflicts[0], conflicts
    history = spark.sql(f"DESCRIBE HISTORY delta.`{uri[len('file:'):]}`").collect()
    operations = [r["operation"] for r in sorted(history, key=lambda r: r["version"])]
    # The concurrent writer's commits, then the MERGE, once.
    assert operations[:3] == ["CREATE TABLE", "WRITE", "SET TBLPROPERTIES"], operations
    assert operations.count("MERGE") == 1 and result.version == operations.index("MERGE")
    expected = rows(spark, [(1, "a newer", D3, 11), (2, "b", D2, 20), (3, "c", D1, 30),
                            (4, "d", D2, 40), (5, "e", D3, 50)])
    assert_df_equality(table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)


def test_older_drop_never_overwrites_newer_row(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    uri = seeded(template, tmp_path)

    result = merge_latest(spark, uri, rows(spark, [(1, "a older", D1, 9)]), ["k"])

    assert_df_equality(table(spark, uri), rows(spark, SEED),
                       ignore_row_order=True, ignore_nullable=True)
    assert result.metrics["num_updated_rows"] == 0
    assert result.metrics["num_inserted_rows"] == 0


def test_reapplying_the_same_row_changes_nothing(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    uri = seeded(template, tmp_path)

    result = merge_latest(spark, uri, rows(spark, [(1, "a", D2, 10)]), ["k"])

    assert_df_equality(table(spark, uri), rows(spark, SEED),
                       ignore_row_order=True, ignore_nullable=True)
    assert result.metrics["num_updated_rows"] == 0
    assert result.metrics["num_inserted_rows"] == 0


def test_the_default_order_compares_the_drop_date_then_the_content() -> None:
    assert _newer_condition(("_ds",)) == (
        "s._ds > t._ds OR (s._ds = t._ds AND s._row_hash <> t._row_hash)")
    assert _newer_condition(("seq", "_ds")) == (
        "s.seq > t.seq OR (s.seq = t.seq AND s._ds > t._ds) "
        "OR (s.seq = t.seq AND s._ds = t._ds AND s._row_hash <> t._row_hash)")


def test_with_a_sequence_the_higher_value_wins_then_the_newer_drop(
    spark: SparkSession, tmp_path: Path
) -> None:
    schema = "k bigint, v string, seq bigint, _ds date, _row_hash bigint"
    uri = "file:" + str(tmp_path / "seq")
    ensure_table(spark, uri, spark.createDataFrame([], schema).schema)
    spark.createDataFrame([(1, "a", 5, D2, 10), (2, "b", 5, D2, 20), (3, "c", 5, D2, 30),
                           (5, "e", 5, D2, 50)], schema).write.format("delta").mode(
        "append").save(uri)
    source = spark.createDataFrame([
        (1, "a older value, newer drop", 4, D3, 11),
        (2, "b same value, newer drop", 5, D3, 21),
        (3, "c higher value, older drop", 6, D1, 31),
        (4, "d", 1, D1, 40),
        (5, "e same value and drop, corrected", 5, D2, 51),
    ], schema)

    result = merge_latest(spark, uri, source, ["k"], order=("seq", "_ds"))

    expected = spark.createDataFrame([
        (1, "a", 5, D2, 10),
        (2, "b same value, newer drop", 5, D3, 21),
        (3, "c higher value, older drop", 6, D1, 31),
        (4, "d", 1, D1, 40),
        (5, "e same value and drop, corrected", 5, D2, 51),
    ], schema)
    assert_df_equality(table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)
    assert result.metrics["num_updated_rows"] == 3
    assert result.metrics["num_inserted_rows"] == 1


def test_merge_latest_rejects_a_source_with_a_duplicate_key(
    spark: SparkSession, tmp_path: Path
) -> None:
    uri = "file:" + str(tmp_path / "never_written")
    source = rows(spark, [(7, "x", D1, 1), (7, "y", D1, 2), (8, "z", D1, 3)])

    with pytest.raises(ValueError, match=r"2 rows for key \{'k': 7\}"):
        merge_latest(spark, uri, source, ["k"])
    assert latest_version(spark, uri) is None


def test_merge_latest_rejects_a_source_missing_a_required_column(
    spark: SparkSession, tmp_path: Path
) -> None:
    uri = "file:" + str(tmp_path / "never_written")
    source = rows(spark, [(7, "x", D1, 1)]).drop("_row_hash")

    with pytest.raises(ValueError, match=r"missing required columns \['_row_hash'\]"):
        merge_latest(spark, uri, source, ["k"])
    assert latest_version(spark, uri) is None


# -- replace_where and latest_version ------------------------------------------------------

def test_foreign_changes_are_the_other_writers_commits_that_change_rows(
    spark: SparkSession, template: Path, tmp_path: Path,
) -> None:
    """A run tells its own commits (tagged) from other writers' data changes; a MERGE that
    changes no row (a drop applied again: it still rewrites the file) and a property
    change are not data changes."""
    uri = seeded(template, tmp_path)
    since = latest_version(spark, uri)
    assert since is not None
    with commit_tag(spark, "run A"):
        merge_latest(spark, uri, rows(spark, [(1, "new", D3, 11)]), ["k"])
    assert foreign_changes(spark, uri, since, "run A") == []
    with commit_tag(spark, "run B"):
        merge_latest(spark, uri, rows(spark, [(1, "new", D3, 11)]), ["k"])  # no change
        spark.sql(f"ALTER TABLE delta.`{uri[5:]}` SET TBLPROPERTIES ('x.y' = '1')")
        assert foreign_changes(spark, uri, since, "run A") == []
        merge_latest(spark, uri, rows(spark, [(9, "other", D1, 90)]), ["k"])
    changed = latest_version(spark, uri)
    assert foreign_changes(spark, uri, since, "run A") == [changed]
    assert foreign_changes(spark, uri, since, "run B") == [since + 1]
    assert foreign_changes(spark, uri, changed, "run A") == []
    # An untagged writer is another writer too, and the tag is gone after the block.
    rows(spark, [(10, "x", D1, 100)]).write.format("delta").mode("append").save(uri)
    assert foreign_changes(spark, uri, changed, "run A") == [changed + 1]


def test_latest_version_is_none_without_a_table_and_counts_commits(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    assert latest_version(spark, "file:" + str(tmp_path / "t")) is None

    uri = seeded(template, tmp_path)
    assert latest_version(spark, uri) == 1
    ensure_table(spark, uri, rows(spark, []).schema)  # exists already: no commit

    assert latest_version(spark, uri) == 1


def test_replace_where_replaces_exactly_the_matching_rows(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    uri = seeded(template, tmp_path)

    result = replace_where(spark, uri, rows(spark, [(6, "f", D2, 60)]), "_ds = DATE'1998-08-02'")

    expected = rows(spark, [(3, "c", D1, 30), (6, "f", D2, 60), (5, "e", D3, 50)])
    assert_df_equality(table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)
    assert result.version == 2
    assert latest_version(spark, uri) == 2
    # Delta counts rows copied out of rewritten files as output rows too.
    assert result.metrics["numOutputRows"] - result.metrics["numCopiedRows"] == 1
    assert result.metrics["numDeletedRows"] == 2


def test_commit_metrics_are_the_ones_the_table_history_shows(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    from delta.tables import DeltaTable

    uri = seeded(template, tmp_path)
    history = DeltaTable.forPath(spark, uri).history().where("version = 1").first()
    assert history is not None

    metrics = commit_metrics(spark, uri, 1)

    assert metrics == {k: int(v) for k, v in history["operationMetrics"].items()}
    assert metrics["numOutputRows"] == len(SEED)
    assert commit_metrics(spark, uri, None) == {}


def test_a_new_table_is_filled_by_one_insert_only_merge(
    spark: SparkSession, tmp_path: Path
) -> None:
    from delta.tables import DeltaTable

    uri = "file:" + str(tmp_path / "new")
    ensure_table(spark, uri, rows(spark, []).schema)

    result = merge_latest(spark, uri, rows(spark, SEED), ["k"])

    assert_df_equality(table(spark, uri), rows(spark, SEED), ignore_row_order=True,
                       ignore_nullable=True)
    assert result.version == 1 and result.metrics["num_inserted_rows"] == len(SEED)
    last = DeltaTable.forPath(spark, uri).history(1).first()
    assert last is not None and last["operation"] == "MERGE"
    assert last["operationParameters"]["matchedPredicates"] == "[]"


def test_rows_that_appear_before_an_insert_only_merge_are_merged_by_the_full_one(
    spark: SparkSession, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobs.delta_io as delta_io

    # The table looked new when it was checked (version 0), then a concurrent run filled it.
    uri = seeded(template, tmp_path)
    real = delta_io.latest_version
    answers = [0]

    def latest_version(spark: SparkSession, uri: str) -> int | None:
        return answers.pop() if answers else real(spark, uri)

    monkeypatch.setattr(delta_io, "latest_version", latest_version)
    source = rows(spark, [(1, "a newer", D3, 11), (4, "d", D2, 40)])

    result = merge_latest(spark, uri, source, ["k"])

    expected = rows(spark, [(1, "a newer", D3, 11), (2, "b", D2, 20), (3, "c", D1, 30),
                            (4, "d", D2, 40), (5, "e", D3, 50)])
    assert_df_equality(table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)
    assert result.version == 3
    assert result.metrics["num_inserted_rows"] == 1 and result.metrics["num_updated_rows"] == 1


@pytest.mark.parametrize("predicates", ["true", "false"])
def test_the_partition_predicate_bounds_the_merge_unless_the_control_turns_it_off(
    spark: SparkSession, template: Path, tmp_path: Path, predicates: str,
) -> None:
    from delta.tables import DeltaTable

    uri = seeded(template, tmp_path)
    spark.conf.set(PARTITION_PREDICATES_CONF, predicates)
    try:
        # Key 5 is stored under _ds D3, outside the predicate: a bounded MERGE cannot see it.
        merge_latest(spark, uri, rows(spark, [(5, "e newer", D3, 51)]), ["k"],
                     partition_predicate=f"t._ds IN {sql_in([D1, D2])}")
    finally:
        spark.conf.unset(PARTITION_PREDICATES_CONF)

    history = DeltaTable.forPath(spark, uri).history(1).first()
    assert history is not None
    bounded = predicates == "true"
    assert (" IN (" in history["operationParameters"]["predicate"]) is bounded
    versions = sorted(r["v"] for r in table(spark, uri).where("k = 5").collect())
    assert versions == (["e", "e newer"] if bounded else ["e newer"])


# -- append_once ---------------------------------------------------------------------------

def test_append_once_adds_the_rows_once_per_app_id(
    spark: SparkSession, template: Path, tmp_path: Path
) -> None:
    uri = seeded(template, tmp_path)
    new = rows(spark, [(6, "f", D3, 60), (7, "g", D3, 70)])

    append_once(spark, uri, new, "run-1")
    append_once(spark, uri, new, "run-1")  # a retried write of the same run

    expected = rows(spark, [*SEED, (6, "f", D3, 60), (7, "g", D3, 70)])
    assert_df_equality(table(spark, uri), expected, ignore_row_order=True, ignore_nullable=True)
    assert latest_version(spark, uri) == 2


# -- local_frame ---------------------------------------------------------------------------
LEDGER_LIKE = (
    "id string, at timestamp, day date, counts map<string,bigint>, amount decimal(12,2), "
    "note string"
)


def test_local_frame_holds_the_same_values_as_create_data_frame(spark: SparkSession) -> None:
    from decimal import Decimal

    from pyspark.sql.types import StructType

    schema = StructType.fromDDL(LEDGER_LIKE)
    data = [
        ("r1", dt.datetime(2026, 11, 27, 10, 2, 3, 456789), D1, {"orders": 3, "lineitem": 0},
         Decimal("-1234.05"), 'quote " backslash \\ newline \n ünïcode'),
        ("r2", dt.datetime(1998, 8, 1), D2, {}, None, None),
    ]
    built = local_frame(spark, data, schema)
    assert built.schema.fieldNames() == schema.fieldNames()
    assert [tuple(r) for r in built.collect()] == data
    # The session is UTC (jobs.settings): createDataFrame stores the same instants.
    assert_df_equality(built, spark.createDataFrame(data, schema), ignore_nullable=True)


def test_local_frame_refuses_a_value_that_does_not_fit_its_column(spark: SparkSession) -> None:
    from pyspark.sql.types import StructType

    with pytest.raises(Exception, match=r"(?i)malformed|FAILFAST"):
        local_frame(spark, [("not a number",)], StructType.fromDDL("n bigint")).collect()


# -- sql_in --------------------------------------------------------------------------------

def test_sql_in_renders_ints() -> None:
    assert sql_in([1, -2, 30]) == "(1, -2, 30)"


def test_sql_in_renders_dates() -> None:
    assert sql_in([D1, dt.date(1998, 9, 1)]) == "(DATE'1998-08-01', DATE'1998-09-01')"


def test_sql_in_quotes_strings() -> None:
    assert sql_in(["F", "O"]) == "('F', 'O')"


def test_sql_in_string_with_a_quote_matches_that_string_in_spark(spark: SparkSession) -> None:
    name = "O'Brien"
    df = spark.createDataFrame([(name,), ("OBrien",), ("x",)], "s string")

    matched = df.where(f"s IN {sql_in([name])}")

    assert_df_equality(matched, spark.createDataFrame([("O'Brien",)], "s string"),
                       ignore_row_order=True, ignore_nullable=True)


def test_sql_in_rejects_an_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        sql_in([])


# -- with_conflict_retry -------------------------------------------------------------------

class ConcurrentAppendException(Exception):
    """Stands for Delta's exception of the same name (matched by class name)."""


def test_conflict_is_retried_until_the_write_succeeds() -> None:
    calls: list[int] = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrentAppendException("files were added by a concurrent update")
        return "committed"

    assert with_conflict_retry(write, "test", attempts=5, base_delay=0.01) == "committed"
    assert len(calls) == 3


def test_conflict_propagates_after_the_given_attempts() -> None:
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        raise ConcurrentAppendException(f"conflict {len(calls)}")

    with pytest.raises(ConcurrentAppendException, match="conflict 3"):
        with_conflict_retry(write, "test", attempts=3, base_delay=0.01)
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with_conflict_retry(write, "test", attempts=5, base_delay=0.01)
    assert len(calls) == 1
