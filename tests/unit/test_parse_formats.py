"""``parse_lines`` on every file format a spec may declare: CSV, JSON lines, and each type.

Inputs are literal lines shaped like bronze (Parquet records reach silver as JSON lines,
see ``jobs/steps/ingest.py``); each case is one line, told apart by ``_source_file``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from jobs.catalog import Column, Table
from jobs.spec.model import FileFormat
from jobs.transforms.silver import parse_lines

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DS = dt.date(2013, 12, 30)
LINES_SCHEMA = "value string, _ds date, _source_file string, _line_number bigint"
COLUMNS = (
    Column("id", "bigint", nullable=False),
    Column("name", "string", nullable=False),
    Column("score", "double"),
    Column("price", "decimal(7,2)"),
    Column("active", "boolean"),
    Column("seen_at", "timestamp"),
)


def table(fmt: FileFormat) -> Table:
    return Table("things", COLUMNS, ("id",), file_format=fmt)


def lines(spark: SparkSession, cases: list[tuple[str, str]], first: int = 1) -> DataFrame:
    return spark.createDataFrame(
        [(value, DS, name, i) for i, (name, value) in enumerate(cases, start=first)],
        LINES_SCHEMA)


def reasons(df: DataFrame) -> dict[str, list[str]]:
    return {r["_source_file"]: list(r["_reasons"]) for r in
            df.select("_source_file", "_reasons").collect()}


CSV = FileFormat(type="csv", null_values=("", "NA"), timestamp_format="yyyy-MM-dd HH:mm:ss")


def test_csv_reads_quoted_fields_and_nulls(spark: SparkSession) -> None:
    cases = [("quoted", '1,"Smith, ""Jr""",2.5,10.00,true,2013-12-30 05:00:00'),
             ("nulls", "2,Bo,NA,,false,NA")]
    rows = {r["_source_file"]: r for r in parse_lines(lines(spark, cases, 2), table(CSV))
            .collect()}
    assert rows["quoted"]["name"] == 'Smith, "Jr"'
    assert (rows["quoted"]["score"], rows["quoted"]["price"], rows["quoted"]["active"]) == (
        2.5, Decimal("10.00"), True)
    assert rows["quoted"]["seen_at"] == dt.datetime(2013, 12, 30, 5)
    assert (rows["nulls"]["score"], rows["nulls"]["price"], rows["nulls"]["seen_at"]) == (
        None, None, None)
    assert rows["quoted"]["_reasons"] == rows["nulls"]["_reasons"] == []


def test_csv_header_line_is_not_data(spark: SparkSession) -> None:
    cases = [("header", "id,name,score,price,active,seen_at"),
             ("row", "3,Cy,1,1.00,true,2013-12-30 06:00:00")]
    parsed = parse_lines(lines(spark, cases, 1), table(CSV))
    assert [r["_source_file"] for r in parsed.collect()] == ["row"]


def test_each_malformed_csv_line_gets_exactly_its_reason(spark: SparkSession) -> None:
    cases = [
        ("unbalanced", '4,"never closed,1,1.00,true,2013-12-30 06:00:00'),
        ("short", "5,Di,1,1.00,true"),
        ("long", "6,Ed,1,1.00,true,2013-12-30 06:00:00,extra"),
        ("null_key", "NA,Fay,1,1.00,true,2013-12-30 06:00:00"),
        ("null_name", "7,NA,1,1.00,true,2013-12-30 06:00:00"),
        ("not_a_number", "8,Gus,1.2.3,1.00,true,2013-12-30 06:00:00"),
        ("infinity", "9,Hal,Infinity,1.00,true,2013-12-30 06:00:00"),
        ("bad_decimal", "10,Ida,1,1.005,true,2013-12-30 06:00:00"),
        ("bad_boolean", "11,Jo,1,1.00,yes,2013-12-30 06:00:00"),
        ("bad_timestamp", "12,Kim,1,1.00,true,2013-12-30T06:00"),
    ]
    assert reasons(parse_lines(lines(spark, cases, 2), table(CSV))) == {
        "unbalanced": ["unbalanced_quotes"],
        "short": ["wrong_field_count"],
        "long": ["wrong_field_count"],
        "null_key": ["null_key:id"],
        "null_name": ["null_value:name"],
        "not_a_number": ["not_a_number:score"],
        "infinity": ["not_a_number:score"],
        "bad_decimal": ["bad_decimal:price"],
        "bad_boolean": ["bad_boolean:active"],
        "bad_timestamp": ["bad_timestamp:seen_at"],
    }


JSONL = FileFormat(type="jsonl", timestamp_format="yyyy-MM-dd HH:mm:ss")


def test_json_lines_read_fields_by_name(spark: SparkSession) -> None:
    cases = [("object", '{"seen_at": "2013-12-30 05:00:00", "id": 1, "name": "Al", '
                        '"score": 2.5, "price": "10.00", "active": true, "extra": [1]}'),
             ("missing_optional", '{"id": 2, "name": "Bo"}')]
    rows = {r["_source_file"]: r for r in parse_lines(lines(spark, cases), table(JSONL))
            .collect()}
    assert (rows["object"]["id"], rows["object"]["name"], rows["object"]["score"],
            rows["object"]["price"], rows["object"]["active"], rows["object"]["seen_at"]) == (
        1, "Al", 2.5, Decimal("10.00"), True, dt.datetime(2013, 12, 30, 5))
    assert rows["missing_optional"]["score"] is None
    assert rows["object"]["_reasons"] == rows["missing_optional"]["_reasons"] == []


def test_each_malformed_json_line_gets_exactly_its_reason(spark: SparkSession) -> None:
    cases = [("not_json", '{"id": 1, "name": '),
             ("array", "[1, 2]"),
             ("missing_key", '{"name": "Cy"}'),
             ("null_name", '{"id": 3, "name": null}'),
             ("typed_wrong", '{"id": "x", "name": "Di"}')]
    assert reasons(parse_lines(lines(spark, cases), table(JSONL))) == {
        "not_json": ["invalid_json"],
        "array": ["not_a_json_object"],
        "missing_key": ["null_key:id"],
        "null_name": ["null_value:name"],
        "typed_wrong": ["not_an_integer:id"],
    }


def test_a_header_that_does_not_name_the_columns_refuses_the_file() -> None:
    import pytest

    from jobs.errors import InputUnusableError
    from jobs.steps.ingest import check_header

    things = table(CSV)
    check_header(things, "file:/d/things/a.csv", '"id","name",score,price,active,seen_at')
    with pytest.raises(InputUnusableError, match=(
            r"^file:/d/things/a\.csv line 1: header does not match the declared columns "
            r"\(missing seen_at; unexpected seen; expected "
            r"id,name,score,price,active,seen_at\)$")):
        check_header(things, "file:/d/things/a.csv", "id,name,score,price,active,seen")
    with pytest.raises(InputUnusableError, match=(
            r"^file:/d/things/b\.csv: empty file, expected a header line naming id, name, "
            r"score, price, active, seen_at$")):
        check_header(things, "file:/d/things/b.csv", None)
