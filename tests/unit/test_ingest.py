"""Tests of the ingest step (``jobs.steps.ingest``) on small landing drops under ``tmp_path``.

Drops follow the contract's layout: ``<landing>/ds=YYYY-MM-DD/<table>/<name>.tbl`` plus a
``_SUCCESS`` marker once the drop is complete.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chispa import assert_df_equality

from jobs.delta_io import latest_version
from jobs.errors import DropNotReadyError, InputUnusableError
from jobs.lake import Lake
from jobs.steps import ingest
from jobs.steps.common import StepContext

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DS = dt.date(1998, 8, 1)
LINES_SCHEMA = "value string, _ds date, _source_file string, _line_number bigint"


def write_drop(landing: Path, files: dict[str, bytes], complete: bool = True) -> Path:
    """Write a drop for ``DS``: relative path -> content, plus ``_SUCCESS`` if complete."""
    drop = landing / f"ds={DS.isoformat()}"
    for relative, content in files.items():
        path = drop / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    drop.mkdir(parents=True, exist_ok=True)
    if complete:
        (drop / "_SUCCESS").write_bytes(b"")
    return drop


def context(spark: SparkSession, tmp_path: Path, force: bool = False) -> StepContext:
    return StepContext(spark, Lake("file:" + str(tmp_path / "lake")),
                       "file:" + str(tmp_path / "landing"), DS, force)


def expected_lines(spark: SparkSession, paths: list[Path]) -> DataFrame:
    """The lines of files as Python reads them, numbered from 1 per file."""
    rows = [
        (line.decode("utf-8"), DS, "file:" + str(path), n)
        for path in paths
        for n, line in enumerate(path.read_bytes().splitlines(), start=1)
    ]
    return spark.createDataFrame(rows, LINES_SCHEMA)


@pytest.fixture
def tiny_splits(spark: SparkSession) -> Iterator[None]:
    """Make Spark cut every file into ~1 KiB splits; restore the settings afterwards."""
    keys = {"spark.sql.files.maxPartitionBytes": "1024", "spark.sql.files.openCostInBytes": "1"}
    saved = {key: spark.conf.get(key) for key in keys}
    for key, value in keys.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)


def numbered_file(count: int, width: int) -> bytes:
    """``count`` distinct lines of varying length (so splits fall inside lines)."""
    return b"".join(
        f"{i}|{'x' * (i * 7 % width)}|line {i}|\n".encode() for i in range(1, count + 1)
    )


# -- read_lines ----------------------------------------------------------------------------

def test_line_numbers_are_exact_per_file_when_files_span_many_partitions(
    spark: SparkSession, tmp_path: Path, tiny_splits: None
) -> None:
    drop = write_drop(tmp_path / "landing", {
        "lineitem/part-1.tbl": numbered_file(200, 40),
        "lineitem/part-2.tbl": numbered_file(230, 90),
        "lineitem/part-3.tbl": numbered_file(170, 13)[:-1],  # no final newline
    })
    files = ingest.landed_files(context(spark, tmp_path))["lineitem"]
    paths = [drop / "lineitem" / f"part-{i}.tbl" for i in (1, 2, 3)]
    assert spark.read.text([f.uri for f in files]).rdd.getNumPartitions() > 20

    lines_df, total = ingest.read_lines(spark, files, DS.isoformat())

    assert total == 200 + 230 + 170
    assert dict(lines_df.dtypes)["_ingested_at"] == "timestamp"
    assert_df_equality(lines_df.drop("_ingested_at"), expected_lines(spark, paths),
                       ignore_row_order=True, ignore_nullable=True)


def test_nul_byte_makes_the_file_unusable_naming_file_and_line(
    spark: SparkSession, tmp_path: Path, tiny_splits: None
) -> None:
    lines = numbered_file(200, 40).splitlines(keepends=True)
    lines[149] = b"150|bin\x00ary|\n"
    write_drop(tmp_path / "landing", {
        "orders/part-1.tbl": numbered_file(120, 40),
        "orders/part-2.tbl": b"".join(lines),
    })
    files = ingest.landed_files(context(spark, tmp_path))["orders"]

    with pytest.raises(InputUnusableError,
                       match=re.escape("/orders/part-2.tbl line 150: binary content")):
        ingest.read_lines(spark, files, DS.isoformat())


def test_unusable_file_refuses_the_whole_drop_before_any_table_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    write_drop(tmp_path / "landing", {
        "orders/part-1.tbl": b"1|a|\n",
        "lineitem/part-1.tbl": b"1|a|\n\x1f\x8b\x00|\n",
    })
    ctx = context(spark, tmp_path)

    with pytest.raises(InputUnusableError, match=re.escape("/lineitem/part-1.tbl line 2: ")):
        ingest.run(ctx)

    assert {t: latest_version(spark, ctx.lake.table("bronze", t))
            for t in ctx.catalog.bronze_tables} == dict.fromkeys(ctx.catalog.bronze_tables)


# -- landed_files --------------------------------------------------------------------------

def test_landed_files_lists_data_files_by_table_and_skips_markers(
    spark: SparkSession, tmp_path: Path
) -> None:
    drop = write_drop(tmp_path / "landing", {
        "orders/part-2.tbl": b"2|\n",
        "orders/part-1.tbl": b"1|\n",
        "orders/.part-1.tbl.crc": b"crc",
        "orders_delete/part-1.tbl": b"9|\n",
        "lineitem/_started": b"",
    })

    files = ingest.landed_files(context(spark, tmp_path))

    assert {t: [(f.uri, f.relative, f.size) for f in fs] for t, fs in files.items()} == {
        "orders": [
            (f"file:{drop}/orders/part-1.tbl", "orders/part-1.tbl", 3),
            (f"file:{drop}/orders/part-2.tbl", "orders/part-2.tbl", 3),
        ],
        "orders_delete": [(f"file:{drop}/orders_delete/part-1.tbl", "orders_delete/part-1.tbl", 3)],
    }


def test_drop_without_success_marker_is_not_ready(spark: SparkSession, tmp_path: Path) -> None:
    write_drop(tmp_path / "landing", {"orders/part-1.tbl": b"1|\n"}, complete=False)

    with pytest.raises(DropNotReadyError, match=r"ds=1998-08-01: drop is not complete"):
        ingest.landed_files(context(spark, tmp_path))


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("notes.txt", "notes.txt: unexpected file in the drop"),
        ("extra/part-1.tbl", "extra/part-1.tbl: unexpected file in the drop"),
        ("orders/old/part-1.tbl", "orders/old/part-1.tbl: unexpected file in the drop"),
        ("orders/part-1.csv", "orders/part-1.csv: file name does not match '*.tbl'"),
    ],
    ids=["file_at_root", "unknown_table_folder", "nested_folder", "not_tbl"],
)
def test_unexpected_file_or_folder_makes_the_drop_unusable(
    spark: SparkSession, tmp_path: Path, relative: str, message: str
) -> None:
    write_drop(tmp_path / "landing", {"orders/part-0.tbl": b"1|\n", relative: b"x\n"})

    with pytest.raises(InputUnusableError, match=re.escape(message)):
        ingest.landed_files(context(spark, tmp_path))


# -- the step ------------------------------------------------------------------------------

def test_ingesting_a_drop_twice_keeps_one_copy_and_commits_nothing_the_second_time(
    spark: SparkSession, tmp_path: Path
) -> None:
    drop = write_drop(tmp_path / "landing", {
        "orders/part-1.tbl": b"1|a|\n2|b|\n",
        "orders/part-2.tbl": b"3|c|\n",
    })
    ctx = context(spark, tmp_path)
    bronze = {t: ctx.lake.table("bronze", t) for t in ctx.catalog.bronze_tables}
    ledger = ctx.lake.table("ops", "runs")
    source = f"file:{drop}/orders"
    expected = spark.createDataFrame(
        [("1|a|", DS, f"{source}/part-1.tbl", 1), ("2|b|", DS, f"{source}/part-1.tbl", 2),
         ("3|c|", DS, f"{source}/part-2.tbl", 1)],
        LINES_SCHEMA,
    )

    def bronze_orders() -> DataFrame:
        return spark.read.format("delta").load(bronze["orders"]).drop("_ingested_at")

    assert ingest.run(ctx) == {"orders": 3}
    assert_df_equality(bronze_orders(), expected, ignore_row_order=True, ignore_nullable=True)
    before = {t: latest_version(spark, uri) for t, uri in bronze.items()}
    ledger_before = latest_version(spark, ledger)
    assert before["orders"] is not None
    assert [t for t, v in before.items() if v is not None] == ["orders"]

    assert ingest.run(ctx) == {}

    assert {t: latest_version(spark, uri) for t, uri in bronze.items()} == before
    assert latest_version(spark, ledger) == ledger_before
    assert_df_equality(bronze_orders(), expected, ignore_row_order=True, ignore_nullable=True)
