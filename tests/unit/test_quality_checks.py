"""The quality checks' queries: the touched partitions become literals (pruning)."""

from __future__ import annotations

import datetime as dt
import re

from jobs.steps.quality import DatasetCheck, checks
from tests.support.tpch import TPCH

TOUCHED = "{touched:orders}"


def test_query_renders_the_touched_partitions_as_a_literal_list() -> None:
    check = DatasetCheck("orders", "x", "fail",
                         f"SELECT count(*) FROM orders WHERE _order_month IN {TOUCHED}")

    sql = check.query(TPCH, {"orders": [dt.date(1994, 8, 1), dt.date(1998, 8, 1)]})

    assert sql == ("SELECT count(*) FROM orders WHERE _order_month IN "
                   "(DATE'1994-08-01', DATE'1998-08-01')")


def test_a_child_reads_the_partitions_its_family_touched() -> None:
    check = DatasetCheck("lineitem", "x", "fail",
                         "SELECT count(*) FROM lineitem WHERE _order_month IN "
                         "{touched:lineitem}")

    sql = check.query(TPCH, {"orders": [dt.date(1998, 8, 1)]})

    assert sql.endswith("_order_month IN (DATE'1998-08-01')")


def test_query_without_touched_partitions_matches_no_partition() -> None:
    check = DatasetCheck("orders", "x", "fail", f"SELECT 1 WHERE DATE'2000-01-01' IN {TOUCHED}")

    assert check.query(TPCH, {}) == "SELECT 1 WHERE DATE'2000-01-01' IN (CAST(NULL AS DATE))"


def test_every_check_that_scans_a_partitioned_table_is_limited_to_the_touched_ones() -> None:
    names = [c.name for c in checks(TPCH)]
    assert names[:4] == ["region_key_unique", "nation_key_unique", "supplier_key_unique",
                         "customer_key_unique"]
    assert {"customer_one_current_version", "customer_versions_contiguous",
            "lineitem_has_parent", "daily_line_summary_reconciles"} <= set(names)
    for check in checks(TPCH):
        if re.search(r"\b(orders|lineitem)\b", check.sql):
            assert "{touched:" in check.sql, check.name
        assert "{" not in check.query(TPCH, {"orders": [dt.date(1998, 8, 1)]}), check.name
