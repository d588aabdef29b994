"""Pipeline specs: the TPC-H spec is valid, and each kind of bad spec is refused with the
problem's file, line, field and cause.

Each bad spec is ``tests/support/specs.py``'s small valid spec broken in one place; the
expected line is found in the broken text, so the assertion is exact. The SQL checks use
the session ``spark`` fixture (analysis only, no job runs).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobs.errors import EXIT_CONFIG, ConfigError, SpecError
from jobs.spec.check import check_structure
from jobs.spec.cli import validate_pipeline
from jobs.spec.load import (
    list_pipelines,
    load_pipeline,
    pipeline_dir,
    read_mart_sql,
    read_spec,
)
from jobs.spec.new import draft_spec, infer_type, new_pipeline
from jobs.spec.schema import silver_struct
from tests.support.specs import (
    MART_SQL,
    NAME,
    SAMPLE_KEYS,
    line_of,
    set_keys,
    spec_text,
    write_samples,
    write_spec,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPEC_FILE = f"pipelines/{NAME}/pipeline.yaml"
# A plain latest table (no partition, deletes, parent or children) ordered by a column.
STOCK = """\
  stock:
    format: {type: jsonl}
    columns:
      - {name: sku, type: string, nullable: false}
      - {name: updated, type: timestamp, nullable: false}
      - {name: label, type: string}
    key: [sku]
    sequence: updated
"""
SUGGESTIONS = re.compile(r" Did you mean one of the following\? \[[^\]]*\]\.")


def problems_of(root: Path, spark: SparkSession | None = None) -> list[str]:
    """The problems as lines, without Spark's list of similar names (its order varies)."""
    return [SUGGESTIONS.sub("", str(p)) for p in validate_pipeline(NAME, root, spark)]


def at(text: str, fragment: str, field: str, cause: str, occurrence: int = 1) -> str:
    return f"{SPEC_FILE}:{line_of(text, fragment, occurrence)}: {field}: {cause}"


# ----------------------------------------------------------------------------- valid


def test_tpch_spec_is_valid_sql_checks_included(spark: SparkSession,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINES_DIR", raising=False)

    assert validate_pipeline("tpch", spark=spark) == []
    assert "tpch" in list_pipelines()
    pipeline = load_pipeline("tpch")
    assert read_mart_sql(pipeline, "daily_line_summary").lstrip().startswith("--")


def test_small_spec_is_valid_sql_checks_included(tmp_path: Path, spark: SparkSession) -> None:
    write_spec(tmp_path)

    assert problems_of(tmp_path, spark) == []


def test_silver_struct_has_lineage_scd2_and_the_parents_partition(tmp_path: Path) -> None:
    write_spec(tmp_path)
    pipeline = load_pipeline(NAME, tmp_path)

    customers = silver_struct(pipeline, "customers").simpleString()
    items = silver_struct(pipeline, "items").simpleString()

    assert customers == (
        "struct<customer_id:bigint,country:string,valid_from:date,valid_to:date,"
        "is_current:boolean,_ds:date,_source_file:string,_line_number:bigint,"
        "_row_hash:bigint>")
    assert items == (
        "struct<order_id:bigint,line:int,qty:int,_ds:date,_source_file:string,"
        "_line_number:bigint,_row_hash:bigint,_order_month:date>")


def test_pipelines_dir_names_the_folder_of_pipelines(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(tmp_path)
    monkeypatch.setenv("PIPELINES_DIR", str(tmp_path / "pipelines"))

    assert list_pipelines() == [NAME]
    assert pipeline_dir(NAME) == tmp_path / "pipelines" / NAME
    pipeline = load_pipeline(NAME)
    assert read_mart_sql(pipeline, "sales_by_country") == MART_SQL


# --------------------------------------------------------------------- fields and YAML


@pytest.mark.parametrize(
    ("replace", "fragment", "field", "cause"),
    [
        ({"{name: country, type: string}": "{name: country, type: strin}"}, "type: strin}",
         "sources.customers.columns.1.type",
         "unknown type 'strin'; expected one of bigint, int, smallint, double, boolean, "
         "string, date, timestamp or decimal(p,s)"),
        ({'{name: amount, type: "decimal(15,2)"}': '{name: amount, type: "decimal(40,2)"}'},
         "decimal(40,2)", "sources.orders.columns.3.type",
         "decimal(40,2) needs 1 <= p <= 38 and s <= p"),
        ({"    history: scd2": "    histroy: scd2"}, "histroy",
         "sources.customers.histroy",
         "unknown field 'histroy'; did you mean 'history'? (fields: format, files, folder, "
         "columns, key, sequence, partition, history, track, deletes, parent, expectations, "
         "description)"),
        ({"scope: drop, action: warn}": "scope: drop, action: block}"}, "action: block",
         "sources.orders.expectations.1.action",
         "'block' is not one of 'warn', 'drop' or 'fail'"),
        ({"    key: [customer_id]": "    key: []"}, "key: []", "sources.customers.key",
         "needs at least 1 item(s), has 0"),
        ({"  items:\n": "  orders:\n"}, "  orders:", "sources.orders",
         "duplicate key 'orders' (first at line 12): YAML would keep only the last one"),
    ],
    ids=["unknown_type", "decimal_40", "unknown_field", "bad_action", "empty_key",
         "duplicate_table"],
)
def test_field_problem_names_file_line_field_and_cause(
        tmp_path: Path, replace: dict[str, str], fragment: str, field: str,
        cause: str) -> None:
    text = spec_text(replace)
    write_spec(tmp_path, replace)
    occurrence = 2 if fragment == "  orders:" else 1

    assert problems_of(tmp_path) == [at(text, fragment, field, cause, occurrence)]
    with pytest.raises(SpecError) as raised:
        load_pipeline(NAME, tmp_path)
    assert raised.value.exit_code == EXIT_CONFIG
    assert str(raised.value) == at(text, fragment, field, cause, occurrence)


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    write_spec(tmp_path, {"grain: [order_date, country]": "grain: [order_date, country"})

    assert problems_of(tmp_path) == [
        f"{SPEC_FILE}:40: invalid YAML: expected ',' or ']', but got ':' (while parsing a "
        "flow sequence at line 39)"]


def test_every_problem_is_reported_at_once(tmp_path: Path, spark: SparkSession) -> None:
    replace = {"key: [customer_id]": "key: [customer]", 'schedule: "@daily"': "schedule: daily",
               "table: sales_by_country": "table: sales", 'check: "qty > 0"': 'check: "qtty > 0"'}
    text = spec_text(replace)
    write_spec(tmp_path, replace)

    problems = problems_of(tmp_path, spark)

    assert [p.split(": ")[1] for p in problems] == [
        "schedule", "sources.customers.key.0", "sources.items.expectations.0.check",
        "gate.checks.0.table"]
    assert problems[0] == at(text, "schedule: daily", "schedule",
                             "'daily' is neither a cron expression (5 fields: minute hour "
                             "day month weekday) nor one of @daily, @hourly, @weekly, "
                             "@monthly, @yearly, @once, None")


# ------------------------------------------------------------------ whole-spec checks


@pytest.mark.parametrize(
    ("replace", "fragment", "field", "cause"),
    [
        ({"name: shop": "name: shops"}, "name: shops", "name",
         "'shops' differs from its folder 'shop': the name must be the folder's"),
        ({"key: [customer_id]": "key: [customer]"}, "key: [customer]",
         "sources.customers.key.0",
         "key column 'customer' is not a column (columns: customer_id, country)"),
        ({"{name: country, type: string}": "{name: country, type: string}\n"
          "      - {name: country, type: date}"},
         "{name: country, type: date}", "sources.customers.columns.2.name",
         "duplicate column 'country' (also columns.1)"),
        ({"parent: {table: orders,": "parent: {table: order,"}, "table: order,",
         "sources.items.parent.table",
         "parent 'order' is not a source (sources: customers, orders, items)"),
        ({"key: {order_id: order_id}": "key: {order_id: customer_id}"},
         "key: {order_id: customer_id}", "sources.items.parent.key",
         "maps to customer_id; a parent key must map to exactly the key of orders: order_id"),
        ({"parent: {table: orders, key: {order_id: order_id}}":
          "parent: {table: items, key: {order_id: order_id, line: line}}"},
         "parent: {table: items", "sources.items.parent.table",
         "parents form a cycle: items -> items"),
        ({"    parent: {table: orders,": "    partition: {column: _order_month, expression: "
          "order_date}\n    parent: {table: orders,"},
         "expression: order_date", "sources.items.partition.expression",
         "a child table lives in its parent's partition: remove the expression"),
        ({", expression: \"trunc(order_date, 'MM')\"}": "}"}, "partition: {column: _order_month}",
         "sources.orders.partition",
         "a table without a parent needs an expression for its partition (only a child "
         "takes its parent's)"),
        ({"deletes: {folder: orders_delete}": "deletes: {folder: items}"}, "folder: items",
         "sources.orders.deletes.folder", "folder 'items' is already the folder of source items"),
        ({"  sales_by_country:\n": "  customers_history:\n",
          "table: sales_by_country": "table: customers_history"}, "  customers_history:",
         "marts.customers_history",
         "mart name 'customers_history' is taken by the history view of scd2 source customers"),
        ({"sql: gold/sales_by_country.sql": "sql: gold/sales.sql"}, "sql: gold/sales.sql",
         "marts.sales_by_country.sql", "file gold/sales.sql not found in pipelines/shop/"),
        ({"column: order_date": "column: orders"}, "column: orders",
         "marts.sales_by_country.refresh.column",
         "'orders' is not a grain column (grain: order_date, country)"),
        ({"customers: all": "customer: all"}, "customer: all",
         "marts.sales_by_country.refresh.when.customer",
         "'customer' is not a source (sources: customers, orders, items)"),
        ({"table: sales_by_country": "table: sales"}, "table: sales", "gate.checks.0.table",
         "'sales' is neither a source nor a mart (tables: customers, orders, items, "
         "sales_by_country)"),
        ({'schedule: "@daily"': 'schedule: "0 2 * *"'}, "schedule:", "schedule",
         "'0 2 * *' is neither a cron expression (5 fields: minute hour day month weekday) "
         "nor one of @daily, @hourly, @weekly, @monthly, @yearly, @once, None"),
        ({"    history: scd2\n": "    history: scd2\n    partition: {column: _c, "
          "expression: customer_id, type: bigint}\n"}, "partition: {column: _c",
         "sources.customers.partition",
         "an scd2 table has no partition: its history is rebuilt from every snapshot of a "
         "key"),
        ({"    history: scd2\n": "    history: scd2\n    deletes: {folder: gone}\n"},
         "deletes: {folder: gone}", "sources.customers.deletes",
         "an scd2 table has no deletes: its history is rebuilt from every snapshot of a key"),
        ({"    key: [order_id]\n": "    key: [order_id]\n    sequence: order_id\n"},
         "sequence: order_id", "sources.orders.sequence",
         "'order_id': a table with a partition, a delete feed and children orders versions "
         "by the drop's date, _ds (its deletions, partition moves and children compare "
         "drops' dates); a sequence column is for a history: latest table without "
         "partition, deletes, parent or children"),
        ({"    history: scd2\n": "    history: scd2\n    sequence: customer_id\n"},
         "sequence: customer_id", "sources.customers.sequence",
         "'customer_id': an scd2 table orders versions by the drop's date, _ds (a version "
         "is valid from its drop's date); a sequence column is for a history: latest table "
         "without partition, deletes, parent or children"),
        ({"    key: [order_id, line]\n": "    key: [order_id, line]\n    sequence: line\n"},
         "sequence: line", "sources.items.sequence",
         "'line': a child table orders versions by the drop's date, _ds (it is written in "
         "one section with its parent orders, which compares drops' dates); a sequence "
         "column is for a history: latest table without partition, deletes, parent or "
         "children"),
        ({"marts:\n": STOCK.replace("type: timestamp, nullable: false", "type: timestamp")
          + "marts:\n"}, "sequence: updated", "sources.stock.sequence",
         "sequence column 'updated' must be declared nullable: false (a version without a "
         "sequence value cannot be ordered)"),
        ({"marts:\n": STOCK.replace("type: timestamp", "type: double") + "marts:\n"},
         "sequence: updated", "sources.stock.sequence",
         "sequence column 'updated' is double; a sequence is bigint, int, smallint, date, "
         "timestamp or decimal(p,s)"),
        ({"marts:\n": STOCK.replace("sequence: updated", "sequence: updated_at")
          + "marts:\n"}, "sequence: updated_at", "sources.stock.sequence",
         "sequence column 'updated_at' is neither _ds nor a column (columns: sku, updated, "
         "label)"),
    ],
    ids=["name_not_folder", "key_column_missing", "duplicate_column", "parent_not_a_source",
         "parent_key_not_parents_key", "parent_cycle", "child_partition_expression",
         "partition_without_expression", "folder_clash", "mart_name_clash",
         "mart_sql_missing", "refresh_column_not_in_grain", "refresh_unknown_table",
         "gate_unknown_table", "bad_schedule", "scd2_with_partition", "scd2_with_deletes",
         "sequence_on_family", "sequence_on_scd2", "sequence_on_child",
         "sequence_nullable", "sequence_not_ordered_type", "sequence_not_a_column"],
)
def test_whole_spec_problem_names_file_line_field_and_cause(
        tmp_path: Path, spark: SparkSession, replace: dict[str, str], fragment: str,
        field: str, cause: str) -> None:
    text = spec_text(replace)
    write_spec(tmp_path, replace)

    expected = at(text, fragment, field, cause)
    assert problems_of(tmp_path) == [expected]
    # The SQL checks add nothing: a problem is reported once, not again by what it breaks.
    assert problems_of(tmp_path, spark) == [expected]


def test_sequence_column_of_a_plain_latest_table_is_valid(tmp_path: Path,
                                                          spark: SparkSession) -> None:
    for typ in ("timestamp", "bigint", "int", "smallint", "date", '"decimal(20,0)"'):
        write_spec(tmp_path, {"marts:\n": STOCK.replace("type: timestamp", f"type: {typ}")
                              + "marts:\n"})
        assert problems_of(tmp_path, spark) == [], typ


def test_cron_expression_and_presets_are_schedules(tmp_path: Path) -> None:
    for schedule in ('"30 2 * * 1-5"', '"@hourly"', "None"):
        write_spec(tmp_path, {'schedule: "@daily"': f"schedule: {schedule}"})
        assert problems_of(tmp_path) == [], schedule


# ------------------------------------------------------------------------- SQL checks


@pytest.mark.parametrize(
    ("replace", "fragment", "field", "cause"),
    [
        ({'check: "qty > 0"': 'check: "qtty > 0"'}, "qtty", "sources.items.expectations.0.check",
         "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with "
         "name `qtty` cannot be resolved. SQLSTATE: 42703; line 1 pos 0"),
        ({"parent.order_date IS": "parent.orderdate IS"}, "parent.orderdate",
         "sources.items.expectations.1.check",
         "[FIELD_NOT_FOUND] No such struct field `orderdate` in `order_id`, `customer_id`, "
         "`order_date`, `amount`. SQLSTATE: 42704; line 1 pos 0"),
        ({'check: "qty > 0"': 'check: "qty >> > 0"'}, "qty >> > 0",
         "sources.items.expectations.0.check",
         "[PARSE_SYNTAX_ERROR] Syntax error at or near '>'. SQLSTATE: 42601 (line 1, pos 7)"),
        ({'check: "qty > 0"': 'check: "qty + 1"'}, "qty + 1", "sources.items.expectations.0.check",
         "returns int, not boolean"),
        ({'check: "count(*) > 0"': 'check: "amount > 0"'}, "scope: drop",
         "sources.orders.expectations.1.check",
         "is not an aggregate: a drop-scope expectation is one condition over the drop's "
         "rows, e.g. count(*) > 0"),
        ({'check: "amount > 0"}': 'check: "count(*) > 0"}'}, "amount_positive",
         "sources.orders.expectations.0.check",
         "is an aggregate: a row expectation is a condition on one row (aggregates need "
         "scope: drop)"),
        ({"trunc(order_date, 'MM')": "year(order_date)"}, "year(order_date)",
         "sources.orders.partition.expression", "returns int, not the partition type date"),
        ({"grain: [order_date, country]": "grain: [order_date, region]"}, "grain:",
         "marts.sales_by_country.grain.1",
         "grain column 'region' is not a column of gold/sales_by_country.sql (columns: "
         "order_date, country, amount, orders)"),
        ({'orders: "SELECT order_date FROM changes"': 'orders: "SELECT amount FROM changes"'},
         "SELECT amount FROM changes", "marts.sales_by_country.refresh.when.orders",
         "returns decimal(15,2), not date (the type of order_date)"),
        ({'orders: "SELECT order_date FROM changes"':
          'orders: "SELECT order_date, _change_type FROM changes"'}, "_change_type FROM",
         "marts.sales_by_country.refresh.when.orders",
         "returns 2 columns; a refresh query returns one, the order_date values to recompute"),
        ({"SELECT count(*) FROM orders WHERE": "SELECT 'x' FROM orders WHERE"}, "SELECT 'x'",
         "gate.checks.0.sql",
         "returns (string); a gate check returns one number, the count of violations"),
        ({"{touched:orders}": "{touched:items} AND amount_x > 0"}, "{touched:items}",
         "gate.checks.0.sql",
         "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with "
         "name `amount_x` cannot be resolved. SQLSTATE: 42703; line 1 pos 73"),
    ],
    ids=["expectation_unknown_column", "expectation_unknown_parent_field",
         "expectation_does_not_parse", "expectation_not_boolean", "drop_scope_not_aggregate",
         "row_scope_aggregate", "partition_expression_wrong_type", "grain_not_in_mart_sql",
         "refresh_query_wrong_type", "refresh_query_two_columns", "gate_not_numeric",
         "gate_unknown_column"],
)
def test_sql_problem_names_file_line_field_and_spark_cause(
        tmp_path: Path, spark: SparkSession, replace: dict[str, str], fragment: str,
        field: str, cause: str) -> None:
    text = spec_text(replace)
    write_spec(tmp_path, replace)

    assert problems_of(tmp_path, spark) == [at(text, fragment, field, cause)]


def test_mart_sql_naming_an_unknown_column_names_the_sql_file(tmp_path: Path,
                                                              spark: SparkSession) -> None:
    write_spec(tmp_path, sql={"gold/sales_by_country.sql":
                              MART_SQL.replace("SELECT o.order_date", "SELECT o.order_dat")})

    assert problems_of(tmp_path, spark) == [
        f"pipelines/{NAME}/gold/sales_by_country.sql:2: marts.sales_by_country.sql: "
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with "
        "name `o`.`order_dat` cannot be resolved. SQLSTATE: 42703; line 2 pos 7"]


def test_mart_sql_that_is_not_a_query_is_refused_not_run(tmp_path: Path,
                                                         spark: SparkSession) -> None:
    write_spec(tmp_path, sql={"gold/sales_by_country.sql": "DROP TABLE orders"})

    assert problems_of(tmp_path, spark) == [
        f"pipelines/{NAME}/gold/sales_by_country.sql:1: marts.sales_by_country.sql: "
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'orders': extra input 'orders'. "
        "SQLSTATE: 42601 (line 1, pos 11)"]


def test_a_mart_may_read_another_mart(tmp_path: Path, spark: SparkSession) -> None:
    text = spec_text().replace("gate:\n", (
        "  country_totals:\n    sql: gold/country_totals.sql\n    grain: [country]\n"
        "gate:\n"))
    write_spec(tmp_path, text=text, sql={
        "gold/sales_by_country.sql": MART_SQL,
        "gold/country_totals.sql":
            "SELECT country, sum(amount) AS amount FROM sales_by_country GROUP BY country"})

    assert problems_of(tmp_path, spark) == []


# ------------------------------------------------------------------------ new-pipeline


def test_infer_type_of_text_values() -> None:
    assert infer_type(["1", "-20", ""]) == ("bigint", None)
    assert infer_type(["1.5", "20.25", "3"]) == ("decimal(15,2)", None)
    assert infer_type(["1.125", "2"]) == ("double", None)
    assert infer_type(["12345678901234.50"]) == ("decimal(38,2)", None)
    assert infer_type(["true", "FALSE"]) == ("boolean", None)
    assert infer_type(["2024-02-29", ""]) == ("date", None)
    assert infer_type(["2024-02-30"]) == ("string", None)
    assert infer_type(["2024-01-01 10:00:00"]) == ("timestamp", None)
    assert infer_type(["2024-01-01T10:00:00"]) == ("timestamp", "yyyy-MM-dd'T'HH:mm:ss")
    assert infer_type(["", ""]) == ("string", None)


def test_new_pipeline_infers_each_format_and_leaves_the_key_to_the_user(
        tmp_path: Path) -> None:
    write_samples(tmp_path / "sample")

    text = draft_spec("drafted", tmp_path / "sample")

    assert "    format: {type: csv, separator: \",\"}" in text
    assert "      - {name: customer_id, type: bigint, source: \"Customer ID\"}" in text
    assert "      - {name: balance, type: \"decimal(15,2)\", source: \"Balance\"}" in text
    assert ('    format: {type: delimited, separator: "|", trailing_separator: true}' in text)
    assert "      - {name: col_3, type: timestamp}" in text
    assert "      - {name: col_4, type: boolean}" in text
    assert "      - {name: score, type: double}" in text
    assert "      - {name: at, type: date}" in text
    assert "      - {name: price, type: \"decimal(12,2)\"}" in text
    assert "      - {name: qty, type: int}" in text
    assert "Unique and never empty in the sample: customer_id, name, joined, balance." in text
    new_pipeline("drafted", tmp_path / "sample", tmp_path)
    with pytest.raises(SpecError) as raised:
        read_spec("drafted", tmp_path)
    assert [p.field for p in raised.value.problems] == [
        f"sources.{t}.key" for t in ("customers", "events", "orders", "stock")]
    assert {p.cause for p in raised.value.problems} == {"needs at least 1 item(s), has 0"}

    set_keys(pipeline_dir("drafted", tmp_path) / "pipeline.yaml", SAMPLE_KEYS)
    assert check_structure(read_spec("drafted", tmp_path)) == []


def test_new_pipeline_refuses_to_overwrite_a_pipeline(tmp_path: Path) -> None:
    write_samples(tmp_path / "sample")
    write_spec(tmp_path)

    with pytest.raises(ConfigError, match="exists already: new-pipeline never overwrites"):
        new_pipeline(NAME, tmp_path / "sample", tmp_path)
    assert (tmp_path / "pipelines" / NAME / "pipeline.yaml").read_text(
        encoding="utf-8") == spec_text()
