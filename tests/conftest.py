"""Shared fixtures: one Spark session for the whole run, tables under ``tmp_path``.

Where things are: ``unit/`` runs inside this process (the Spark session below at most);
``integration/`` starts processes or servers (``spark-submit``, Airflow, moto, the
deployment tools), one folder per concern; ``support/`` holds the helpers tests import.
Fixtures live in the ``conftest.py`` of the folder that uses them (or of a common
parent) and reach tests through pytest, never through an import.

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


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The test session: the pipeline's own factory, with test-sized shuffles and the
    small-drop settings a ``spark-submit`` of a test-sized drop applies."""
    from jobs.spark import SMALL_DATA_CONF, get_session
    from tools.run_tests import SESSION_JVM_OPTS

    # A long-lived JVM: the default JIT with the serial collector
    # (tools/run_tests.py), also in the suite's group 2, whose environment gives its
    # short-lived spark-submits the quick JIT.
    quick_jit = os.environ.get("SPARK_SUBMIT_OPTS")
    os.environ["SPARK_SUBMIT_OPTS"] = SESSION_JVM_OPTS
    try:
        session = get_session("tpch-tests")
    finally:
        if quick_jit is None:
            os.environ.pop("SPARK_SUBMIT_OPTS")
        else:
            os.environ["SPARK_SUBMIT_OPTS"] = quick_jit
    session.conf.set("spark.sql.shuffle.partitions", "2")
    for key, value in SMALL_DATA_CONF.items():
        session.conf.set(key, value)
    yield session
    session.stop()
