"""Tests of the pure bronze -> silver transforms in ``jobs.transforms.silver``.

Inputs are literal dbgen lines in a DataFrame shaped like bronze (``value`` plus lineage);
several cases share one DataFrame, told apart by ``_source_file``, to keep Spark jobs few.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from chispa import assert_df_equality

from jobs.catalog import Expectation
from jobs.transforms.silver import (
    CONFLICT_REASON,
    parse_lines,
    with_drop_dedup,
    with_expectations,
    with_row_hash,
)
from tests.support.tpch import TABLES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DS = dt.date(1998, 8, 1)
LINES_SCHEMA = "value string, _ds date, _source_file string, _line_number bigint"
ORDERS = TABLES["orders"]
LINEITEM = TABLES["lineitem"]
ORDER_LINE = (
    "1|36901|O|173665.47|1996-01-02|5-LOW|Clerk#000000951|0|nstructions sleep furiously among |"
)
LINEITEM_LINE = (
    "1|155190|7706|1|17|21168.23|0.04|0.02|N|O|1996-03-13|1996-02-12|1996-03-22|"
    "DELIVER IN PERSON|TRUCK|egular courts above the|"
)
ORDERS_TYPED = (
    "o_orderkey bigint, o_custkey bigint, o_orderstatus string, o_totalprice decimal(15,2), "
    "o_orderdate date, o_orderpriority string, o_clerk string, o_shippriority int, "
    "o_comment string"
)
REASONS_SCHEMA = "_source_file string, _reasons array<string>"


def field(line: str, index: int, value: str) -> str:
    """``line`` with its 0-based field ``index`` replaced by ``value``."""
    parts = line.split("|")
    parts[index] = value
    return "|".join(parts)


def lines(spark: SparkSession, cases: list[tuple[str, str]]) -> DataFrame:
    """Bronze-shaped lines: one per ``(source_file, value)``, numbered from 1."""
    return spark.createDataFrame(
        [(value, DS, name, i) for i, (name, value) in enumerate(cases, start=1)], LINES_SCHEMA
    )


def test_clean_orders_line_gives_typed_columns_and_no_reasons(spark: SparkSession) -> None:
    parsed = parse_lines(lines(spark, [("orders.tbl", ORDER_LINE)]), ORDERS)

    expected = spark.createDataFrame(
        [(1, 36901, "O", Decimal("173665.47"), dt.date(1996, 1, 2), "5-LOW",
          "Clerk#000000951", 0, "nstructions sleep furiously among ",
          DS, "orders.tbl", 1, ORDER_LINE, [])],
        f"{ORDERS_TYPED}, _ds date, _source_file string, _line_number bigint, value string, "
        "_reasons array<string>",
    )
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


def test_clean_lineitem_line_gives_typed_columns_and_no_reasons(spark: SparkSession) -> None:
    parsed = parse_lines(lines(spark, [("lineitem.tbl", LINEITEM_LINE)]), LINEITEM)

    expected = spark.createDataFrame(
        [(1, 155190, 7706, 1, Decimal("17.00"), Decimal("21168.23"), Decimal("0.04"),
          Decimal("0.02"), "N", "O", dt.date(1996, 3, 13), dt.date(1996, 2, 12),
          dt.date(1996, 3, 22), "DELIVER IN PERSON", "TRUCK", "egular courts above the",
          DS, "lineitem.tbl", 1, LINEITEM_LINE, [])],
        "l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber int, "
        "l_quantity decimal(15,2), l_extendedprice decimal(15,2), l_discount decimal(15,2), "
        "l_tax decimal(15,2), l_returnflag string, l_linestatus string, l_shipdate date, "
        "l_commitdate date, l_receiptdate date, l_shipinstruct string, l_shipmode string, "
        "l_comment string, _ds date, _source_file string, _line_number bigint, value string, "
        "_reasons array<string>",
    )
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


def test_each_malformed_orders_line_gets_exactly_its_reason(spark: SparkSession) -> None:
    from pyspark.sql import functions as F

    cases = [
        ("clean", ORDER_LINE),
        ("one_field_short", ORDER_LINE.rsplit("|", 2)[0] + "|"),
        ("one_field_extra", ORDER_LINE + "extra|"),
        ("no_trailing_bar", ORDER_LINE[:-1]),
        ("invalid_utf8_first_byte", ORDER_LINE),  # rewritten below with a 0xFF byte
        ("invalid_utf8_in_comment", ORDER_LINE),  # rewritten below with 0xC3 0x28
        ("key_not_integer", field(ORDER_LINE, 0, "12x")),
        ("custkey_not_integer", field(ORDER_LINE, 1, "12x")),
        ("shippriority_overflows_int", field(ORDER_LINE, 7, "99999999999")),
        ("key_null_token", field(ORDER_LINE, 0, "NULL")),
        ("key_empty", field(ORDER_LINE, 0, "")),
        ("key_backslash_n_token", field(ORDER_LINE, 0, "\\N")),
        ("non_key_null_token", field(ORDER_LINE, 1, "NULL")),
        ("date_feb_30", field(ORDER_LINE, 4, "1998-02-30")),
        ("date_short_year", field(ORDER_LINE, 4, "98-1-1")),
        ("decimal_two_points", field(ORDER_LINE, 3, "12.3.4")),
        ("decimal_three_places", field(ORDER_LINE, 3, "1.234")),
        ("two_bad_fields", field(field(ORDER_LINE, 1, "x"), 4, "1998-13-01")),
    ]
    head, _, _ = ORDER_LINE.rpartition("among ")
    df = lines(spark, cases).withColumn(
        "value",
        F.when(F.col("_source_file") == "invalid_utf8_first_byte",
               F.concat(F.expr("cast(unhex('FF') AS string)"), F.lit(ORDER_LINE[1:])))
        .when(F.col("_source_file") == "invalid_utf8_in_comment",
              F.concat(F.lit(head), F.expr("cast(unhex('C328') AS string)"), F.lit("|")))
        .otherwise(F.col("value")),
    )

    parsed = parse_lines(df, ORDERS).select("_source_file", "_reasons")

    expected = spark.createDataFrame(
        [
            ("clean", []),
            ("one_field_short", ["wrong_field_count"]),
            ("one_field_extra", ["wrong_field_count"]),
            ("no_trailing_bar", ["wrong_field_count"]),
            ("invalid_utf8_first_byte", ["invalid_utf8"]),
            ("invalid_utf8_in_comment", ["invalid_utf8"]),
            ("key_not_integer", ["not_an_integer:o_orderkey"]),
            ("custkey_not_integer", ["not_an_integer:o_custkey"]),
            ("shippriority_overflows_int", ["not_an_integer:o_shippriority"]),
            ("key_null_token", ["null_key:o_orderkey"]),
            ("key_empty", ["null_key:o_orderkey"]),
            ("key_backslash_n_token", ["null_key:o_orderkey"]),
            ("non_key_null_token", ["not_an_integer:o_custkey"]),
            ("date_feb_30", ["bad_date:o_orderdate"]),
            ("date_short_year", ["bad_date:o_orderdate"]),
            ("decimal_two_points", ["bad_decimal:o_totalprice"]),
            ("decimal_three_places", ["bad_decimal:o_totalprice"]),
            ("two_bad_fields", ["not_an_integer:o_custkey", "bad_date:o_orderdate"]),
        ],
        REASONS_SCHEMA,
    )
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


def test_each_malformed_lineitem_line_gets_exactly_its_reason(spark: SparkSession) -> None:
    cases = [
        ("clean", LINEITEM_LINE),
        ("missing_trailing_bar", LINEITEM_LINE[:-1]),
        ("linenumber_null_token", field(LINEITEM_LINE, 3, "NULL")),
        ("orderkey_empty", field(LINEITEM_LINE, 0, "")),
        ("partkey_not_integer", field(LINEITEM_LINE, 1, "12x")),
        ("quantity_two_points", field(LINEITEM_LINE, 4, "12.3.4")),
        ("discount_three_places", field(LINEITEM_LINE, 6, "1.234")),
        ("shipdate_feb_30", field(LINEITEM_LINE, 10, "1998-02-30")),
        ("receiptdate_short_year", field(LINEITEM_LINE, 12, "98-1-1")),
    ]

    parsed = parse_lines(lines(spark, cases), LINEITEM).select("_source_file", "_reasons")

    expected = spark.createDataFrame(
        [
            ("clean", []),
            ("missing_trailing_bar", ["wrong_field_count"]),
            ("linenumber_null_token", ["null_key:l_linenumber"]),
            ("orderkey_empty", ["null_key:l_orderkey"]),
            ("partkey_not_integer", ["not_an_integer:l_partkey"]),
            ("quantity_two_points", ["bad_decimal:l_quantity"]),
            ("discount_three_places", ["bad_decimal:l_discount"]),
            ("shipdate_feb_30", ["bad_date:l_shipdate"]),
            ("receiptdate_short_year", ["bad_date:l_receiptdate"]),
        ],
        REASONS_SCHEMA,
    )
    assert_df_equality(parsed, expected, ignore_row_order=True, ignore_nullable=True)


# -- with_expectations ---------------------------------------------------------------------

STATUS_F = Expectation("status_is_f", "o_orderstatus = 'F'", "drop")
PRICE_LOW = Expectation("price_below_1000", "o_totalprice < 1000", "drop")
URGENT = Expectation("priority_urgent", "o_orderpriority = '1-URGENT'", "warn")
CUSTKEY_SMALL = Expectation("custkey_below_100", "o_custkey < 100", "fail")
EXPECTATION_COLUMNS = "_source_file string, _reasons array<string>, _warnings array<string>, " \
    "_failures array<string>"


def checked(df: DataFrame) -> DataFrame:
    return df.select("_source_file", "_reasons", "_warnings", "_failures")


def test_failed_drop_expectations_are_appended_to_reasons(spark: SparkSession) -> None:
    good = field(field(ORDER_LINE, 2, "F"), 3, "500.00")
    cases = [
        ("passes_both", good),
        ("fails_both", ORDER_LINE),
        ("fails_price_only", field(ORDER_LINE, 2, "F")),
    ]

    out = with_expectations(parse_lines(lines(spark, cases), ORDERS), [STATUS_F, PRICE_LOW])

    expected = spark.createDataFrame(
        [
            ("passes_both", [], [], []),
            ("fails_both", ["status_is_f", "price_below_1000"], [], []),
            ("fails_price_only", ["price_below_1000"], [], []),
        ],
        EXPECTATION_COLUMNS,
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


def test_failed_warn_expectation_keeps_the_row_and_records_a_warning(
    spark: SparkSession,
) -> None:
    cases = [("urgent", field(ORDER_LINE, 5, "1-URGENT")), ("low", ORDER_LINE)]

    out = with_expectations(parse_lines(lines(spark, cases), ORDERS), [URGENT])

    expected = spark.createDataFrame(
        [("urgent", [], [], []), ("low", [], ["priority_urgent"], [])], EXPECTATION_COLUMNS
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


def test_failed_fail_expectation_goes_to_reasons_and_failures(spark: SparkSession) -> None:
    cases = [("small", field(ORDER_LINE, 1, "7")), ("large", ORDER_LINE)]

    out = with_expectations(parse_lines(lines(spark, cases), ORDERS), [CUSTKEY_SMALL])

    expected = spark.createDataFrame(
        [("small", [], [], []), ("large", ["custkey_below_100"], [], ["custkey_below_100"])],
        EXPECTATION_COLUMNS,
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


def test_condition_that_evaluates_to_null_counts_as_failed(spark: SparkSession) -> None:
    from pyspark.sql import functions as F

    order_rules = [e for e in LINEITEM.expectations if e.needs_parent]
    cases = [("order_known", LINEITEM_LINE), ("order_unknown", LINEITEM_LINE)]
    # The parent's columns as the child's lookup gives them: NULL for an unknown order.
    parsed = parse_lines(lines(spark, cases), LINEITEM).withColumn(
        "parent",
        F.when(F.col("_source_file") == "order_known",
               F.struct(F.lit(dt.date(1996, 1, 2)).alias("o_orderdate"))),
    )

    out = with_expectations(parsed, order_rules)

    expected = spark.createDataFrame(
        [("order_known", [], [], []), ("order_unknown", ["l_shipdate_after_orderdate"], [], [])],
        EXPECTATION_COLUMNS,
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


def test_expectations_are_not_evaluated_on_rows_with_parse_reasons(spark: SparkSession) -> None:
    cases = [("bad_price", field(ORDER_LINE, 3, "12.3.4"))]
    on_price = [
        Expectation("price_present", "o_totalprice IS NOT NULL", "drop"),
        Expectation("price_present_warn", "o_totalprice IS NOT NULL", "warn"),
        Expectation("price_present_fail", "o_totalprice IS NOT NULL", "fail"),
    ]

    out = with_expectations(parse_lines(lines(spark, cases), ORDERS), on_price)

    expected = spark.createDataFrame(
        [("bad_price", ["bad_decimal:o_totalprice"], [], [])], EXPECTATION_COLUMNS
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


def test_warn_expectation_is_evaluated_on_a_clean_row_that_fails_a_drop_expectation(
    spark: SparkSession,
) -> None:
    # The row parsed cleanly, so every expectation of the call applies to it: the fail
    # rule is recorded alongside the drop rule, and so must the warn rule be.
    cases = [("fails_all", ORDER_LINE)]

    out = with_expectations(
        parse_lines(lines(spark, cases), ORDERS), [STATUS_F, URGENT, CUSTKEY_SMALL]
    )

    expected = spark.createDataFrame(
        [("fails_all", ["status_is_f", "custkey_below_100"], ["priority_urgent"],
          ["custkey_below_100"])],
        EXPECTATION_COLUMNS,
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


def test_second_evaluation_extends_existing_warnings(spark: SparkSession) -> None:
    first = with_expectations(parse_lines(lines(spark, [("o", ORDER_LINE)]), ORDERS), [URGENT])
    again = Expectation("status_is_f_warn", "o_orderstatus = 'F'", "warn")

    out = with_expectations(first, [again])

    expected = spark.createDataFrame(
        [("o", [], ["priority_urgent", "status_is_f_warn"], [])], EXPECTATION_COLUMNS
    )
    assert_df_equality(checked(out), expected, ignore_row_order=True, ignore_nullable=True)


# -- with_drop_dedup -----------------------------------------------------------------------

DEDUP_COLUMNS = "_source_file string, _line_number bigint, _is_duplicate boolean, " \
    "_reasons array<string>"


def deduped(spark: SparkSession, rows: list[tuple[str, int, str]]) -> DataFrame:
    """Parse orders lines given as ``(source_file, line_number, value)`` and dedup them."""
    df = spark.createDataFrame([(v, DS, f, n) for f, n, v in rows], LINES_SCHEMA)
    out = with_drop_dedup(parse_lines(df, ORDERS), ORDERS.key)
    return out.select("_source_file", "_line_number", "_is_duplicate", "_reasons")


def test_exact_duplicates_keep_the_lowest_file_and_line(spark: SparkSession) -> None:
    other = field(ORDER_LINE, 0, "2")
    out = deduped(spark, [
        ("b.tbl", 1, ORDER_LINE),
        ("a.tbl", 7, ORDER_LINE),
        ("a.tbl", 3, ORDER_LINE),
        ("b.tbl", 2, other),
    ])

    expected = spark.createDataFrame(
        [
            ("a.tbl", 3, False, []),
            ("a.tbl", 7, True, []),
            ("b.tbl", 1, True, []),
            ("b.tbl", 2, False, []),
        ],
        DEDUP_COLUMNS,
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_two_clean_versions_of_one_key_both_conflict(spark: SparkSession) -> None:
    changed = field(ORDER_LINE, 8, "a corrected comment")
    out = deduped(spark, [("a.tbl", 1, ORDER_LINE), ("a.tbl", 2, changed)])

    expected = spark.createDataFrame(
        [("a.tbl", 1, False, [CONFLICT_REASON]), ("a.tbl", 2, False, [CONFLICT_REASON])],
        DEDUP_COLUMNS,
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_invalid_copy_of_a_key_does_not_conflict_with_its_valid_line(
    spark: SparkSession,
) -> None:
    invalid = field(ORDER_LINE, 3, "12.3.4")
    out = deduped(spark, [("a.tbl", 1, invalid), ("a.tbl", 2, ORDER_LINE)])

    expected = spark.createDataFrame(
        [("a.tbl", 1, False, ["bad_decimal:o_totalprice"]), ("a.tbl", 2, False, [])],
        DEDUP_COLUMNS,
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_with_a_sequence_the_highest_version_wins_and_lower_ones_are_superseded(
    spark: SparkSession,
) -> None:
    later = field(ORDER_LINE, 4, "1996-01-05")
    same_day = field(later, 8, "another comment")
    other_key = field(ORDER_LINE, 0, "2")
    df = spark.createDataFrame([(v, DS, f, n) for f, n, v in [
        ("a.tbl", 1, ORDER_LINE),   # key 1, 1996-01-02: superseded by line 2
        ("a.tbl", 2, later),        # key 1, 1996-01-05: the drop's version
        ("a.tbl", 3, ORDER_LINE),   # an exact copy of line 1
        ("b.tbl", 1, other_key),    # key 2, 1996-01-02: its two highest versions differ
        ("b.tbl", 2, field(other_key, 8, "another comment")),
        ("b.tbl", 3, field(other_key, 4, "1995-12-31")),  # key 2, lower: superseded
        ("c.tbl", 1, field(later, 0, "3")),                # key 3, alone
        ("c.tbl", 2, field(same_day, 0, "3")[:-3]),        # key 3, broken: not a version
    ]], LINES_SCHEMA)

    out = with_drop_dedup(parse_lines(df, ORDERS), ORDERS.key, ["o_orderdate"]).select(
        "_source_file", "_line_number", "_is_duplicate", "_is_superseded", "_reasons")

    expected = spark.createDataFrame(
        [
            ("a.tbl", 1, False, True, []),
            ("a.tbl", 2, False, False, []),
            ("a.tbl", 3, True, False, []),
            ("b.tbl", 1, False, False, [CONFLICT_REASON]),
            ("b.tbl", 2, False, False, [CONFLICT_REASON]),
            ("b.tbl", 3, False, True, []),
            ("c.tbl", 1, False, False, []),
            ("c.tbl", 2, False, False, ["wrong_field_count"]),
        ],
        "_source_file string, _line_number bigint, _is_duplicate boolean, "
        "_is_superseded boolean, _reasons array<string>",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_without_a_sequence_no_line_is_marked_superseded(spark: SparkSession) -> None:
    df = spark.createDataFrame([(ORDER_LINE, DS, "a.tbl", 1)], LINES_SCHEMA)

    out = with_drop_dedup(parse_lines(df, ORDERS), ORDERS.key)

    assert "_is_superseded" not in out.columns


# -- with_row_hash -------------------------------------------------------------------------

def test_row_hash_follows_tpch_columns_and_ignores_lineage(spark: SparkSession) -> None:
    base = (1, 36901, "O", Decimal("173665.47"), dt.date(1996, 1, 2), "5-LOW",
            "Clerk#000000951", 0, "a comment")
    changed_values = (2, 36902, "F", Decimal("173665.48"), dt.date(1996, 1, 3), "1-URGENT",
                      "Clerk#000000952", 1, "another comment")
    rows = [("base", *base, DS, "a.tbl", 1), ("lineage", *base, dt.date(1998, 8, 2), "b.tbl", 9)]
    for i, name in enumerate(ORDERS.column_names):
        values = list(base)
        values[i] = changed_values[i]
        rows.append((f"changed:{name}", *values, DS, "a.tbl", 1))
    df = spark.createDataFrame(
        rows, f"case string, {ORDERS_TYPED}, _ds date, _source_file string, _line_number bigint"
    )

    hashed = with_row_hash(df, ORDERS.column_names)

    assert dict(hashed.dtypes)["_row_hash"] == "bigint"
    hashes = {r["case"]: r["_row_hash"] for r in hashed.select("case", "_row_hash").collect()}
    assert hashes["lineage"] == hashes["base"]
    changed = {case: h for case, h in hashes.items() if case.startswith("changed:")}
    assert len(changed) == len(ORDERS.column_names)
    assert [case for case, h in changed.items() if h == hashes["base"]] == []
