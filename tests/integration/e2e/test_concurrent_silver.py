"""Silver runs at once, as real ``spark-submit`` processes, end like serial runs.

On the property tests' lake and with their reference model (tests/support/model.py). The
``base`` fixture is built again here because this module runs in the other group of
``make test`` (tools/run_tests.py). The deterministic counterpart, another writer's
commits injected in the middle of a run, is in test_properties.py.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobs.steps import ingest
from tests.support.kills import assert_done_or_retry, together
from tests.support.lake import lake_of
from tests.support.model import (
    CUSTOMERS,
    ITEMS,
    ORDERS,
    customer_line,
    ds_of,
    expected_tables,
    item_line,
    land,
    landed,
    month,
    order_line,
)
from tests.support.model_lake import READ, actual_tables, build_base, difference, process

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def base(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The property tests' base lake, built once for this module."""
    return build_base(spark, tmp_path_factory.mktemp("property-base"))


def test_the_same_drop_twice_and_the_next_drop_at_once_equal_the_model(
    spark: SparkSession, base: tuple[Path, Path], tmp_path: Path,
) -> None:
    """Found by this test: three ``spark-submit jobs/main.py silver`` runs at once (one
    drop twice, the next drop beside them; both drops move order 1 to another month and
    change customer 1, whose SCD2 history each run rebuilds from the snapshots it reads),
    left line item ``(1, 1)`` in the month of the losing version of its order. Delta
    serialises the commits of one table, not of the pair ``orders``/``lineitem``: a run
    moved the line items for the version it read, then lost the orders MERGE to the newer
    drop. A silver run now checks for other writers' commits to the tables of its orders
    section and, if it finds any, repairs the keys it touched and does the section again.

    Each run must end 0, or 1 with a one-line message (Airflow retries it); after the
    drops are re-run in-process (a no-op for a run that recorded success), silver,
    quarantine and gold must equal the model."""
    base_landing, base_lake = base
    shutil.copytree(base_lake, tmp_path / "lake")
    lake, landing = lake_of(tmp_path / "lake"), tmp_path / "landing"
    assert month(dt.date.fromisoformat(ORDERS[1][3])) != month(dt.date.fromisoformat(ORDERS[3][3]))
    land(landing, ds_of(0), {"orders/part-1.tbl": [order_line(1, ORDERS[1]),
                                                   order_line(2, ORDERS[2])],
                             "lineitem/part-1.tbl": [item_line((1, 5), ITEMS[2])],
                             "customer/part-1.tbl": [customer_line(1, CUSTOMERS[1])]})
    land(landing, ds_of(1), {"orders/part-1.tbl": [order_line(1, ORDERS[3])],
                             "lineitem/part-1.tbl": [item_line((1, 5), ITEMS[3]),
                                                     item_line((2, 6), ITEMS[4])],
                             "customer/part-1.tbl": [customer_line(1, CUSTOMERS[3])]})
    for drop in (0, 1):
        process(spark, lake, landing, ds_of(drop), force=False, steps=(ingest,))
    runs = [("silver", ds_of(d).isoformat()) for d in (0, 0, 1)]
    for result in together(tmp_path / "lake", landing, runs):
        assert_done_or_retry(result)
    for drop in (0, 1):
        process(spark, lake, landing, ds_of(drop), force=False)

    expected, _ = expected_tables([*landed(base_landing), *landed(landing)])
    actual = actual_tables(spark, lake)
    for name in READ:
        assert actual[name] == expected[name], difference(name, actual, expected)
