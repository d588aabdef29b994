"""Shared fixtures: one Spark session for the whole run, tables under ``tmp_path``.

One session-scoped SparkSession (``local[2]``, UI off, few shuffle partitions, Delta from
the project's jar cache) keeps the suite within its time budget: starting Spark costs
about ten seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

os.environ.setdefault("PIPELINE_RUNNER", "local")


# Tests that drive Airflow run their jobs as spark-submit subprocesses and mostly wait on
# them; the rest share this process's Spark session. With `-n 2 --dist loadgroup` (what
# `make test` runs) the two groups run side by side, each on one worker, so the session
# fixtures of each group are built once.
AIRFLOW_E2E = ("tests/dags/test_daily_run.py", "tests/dags/test_live_airflow.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test in one of two xdist groups: Airflow end-to-end, or the rest."""
    for item in items:
        group = "airflow" if item.nodeid.startswith(AIRFLOW_E2E) else "spark"
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The test session: the pipeline's own factory, with test-sized shuffles."""
    from jobs.spark import get_session

    session = get_session("tpch-tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()
