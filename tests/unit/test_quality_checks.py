"""The quality checks' queries: the touched order months become literals (pruning)."""

from __future__ import annotations

import datetime as dt

from jobs.steps.quality import CHECKS, MONTHS, DatasetCheck


def test_query_renders_the_months_as_a_literal_list() -> None:
    check = DatasetCheck("orders", "x", "fail",
                         f"SELECT count(*) FROM silver_orders WHERE _order_month IN {MONTHS}")

    sql = check.query([dt.date(1998, 8, 1), dt.date(1994, 8, 1)])

    assert sql == ("SELECT count(*) FROM silver_orders WHERE _order_month IN "
                   "(DATE'1994-08-01', DATE'1998-08-01')")


def test_query_without_months_matches_no_partition() -> None:
    check = DatasetCheck("orders", "x", "fail", f"SELECT 1 WHERE DATE'2000-01-01' IN {MONTHS}")

    assert check.query([]) == "SELECT 1 WHERE DATE'2000-01-01' IN (DATE'0001-01-01')"


def test_every_check_that_scans_a_partitioned_table_is_limited_to_the_months() -> None:
    for check in CHECKS:
        if "silver_orders" in check.sql or "silver_lineitem" in check.sql:
            assert MONTHS in check.sql, check.name
        assert "{" not in check.query([dt.date(1998, 8, 1)]), check.name
