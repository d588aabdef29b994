"""A live Airflow, started the way ``make airflow`` starts it, runs ``tpch_daily``.

API server, scheduler (LocalExecutor), DAG processor and triggerer run as separate
processes on a free loopback port. The test unpauses ``tpch_daily``, triggers a run for
the daily drop through the REST API, polls it to success, checks the tables, and shuts
everything down cleanly. The run deadline is set shorter than a run, so the deadline
alert fires for real: the scheduler notices the miss, the triggerer runs the callback,
and the alert arrives on the loopback Slack webhook.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.airflow_api import api_token
from tests.support.airflow_helpers import Captured, free_port
from tests.support.lake import generate, lake_of
from tools.airflow_local import Airflow, airflow_env, start

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow


def call(airflow: Airflow, token: str, method: str, path: str,
         body: dict[str, Any] | None = None) -> Any:
    """One REST API call as the admin."""
    request = urllib.request.Request(
        f"{airflow.url}/api/v2{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait_for(what: str, probe: Any, timeout: float, every: float = 2.0) -> Any:
    """Poll ``probe()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, alerts: Captured) -> Iterator[
        tuple[Airflow, Path, list[str]]]:
    base = tmp_path_factory.mktemp("live")
    drops = generate(base / "landing", chaos=False, days=1)
    port = free_port()
    env = airflow_env(base / "airflow", port, extra={
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{base}/airflow/airflow.db",
        "LANDING_URI": str(base / "landing"),
        "LAKE_URI": str(base / "lake"),
        # Only the run the test triggers: no catch-up run for "yesterday".
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PIPELINE_RUN_DEADLINE_MINUTES": "0.25",
    })
    airflow = start(env, port)
    try:
        airflow.wait_healthy()
        yield airflow, base, drops
    finally:
        airflow.stop()
        # Clean shutdown: no process of any component's group is left, the port is free.
        for proc in airflow.processes.values():
            with pytest.raises(ProcessLookupError):
                os.killpg(proc.pid, 0)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_triggered_run_succeeds_and_writes_the_tables(
        live: tuple[Airflow, Path, list[str]], alerts: Captured,
        spark: SparkSession) -> None:
    airflow, base, drops = live
    ds = drops[1]  # a daily drop: small, and enough to write every layer
    alerts.clear()
    token = api_token(airflow.url, airflow.home)
    wait_for("the DAG processor to register tpch_daily",
             lambda: _registered(airflow, token), timeout=180)
    call(airflow, token, "PATCH", "/dags/tpch_daily", {"is_paused": False})
    run = call(airflow, token, "POST", "/dags/tpch_daily/dagRuns",
               {"dag_run_id": f"live__{ds}", "logical_date": f"{ds}T00:00:00Z"})
    assert run["logical_date"].startswith(ds)

    state = wait_for(
        "the run to finish",
        lambda: _finished(airflow, token, run["dag_run_id"]), timeout=600, every=5)
    tasks = call(airflow, token, "GET",
                 f"/dags/tpch_daily/dagRuns/{run['dag_run_id']}/taskInstances")
    summary = {t["task_id"]: t["state"] for t in tasks["task_instances"]}
    assert state == "success", summary
    assert set(summary.values()) == {"success"}

    lake = lake_of(base / "lake")
    landed = sum(1 for f in (base / "landing" / f"ds={ds}" / "orders").glob("*.tbl")
                 for _ in f.open())
    assert spark.read.format("delta").load(lake.table("silver", "orders")).count() == landed
    runs = spark.read.format("delta").load(lake.table("ops", "runs")).collect()
    assert {(r["step"], r["status"]) for r in runs} == {
        (s, "succeeded") for s in ("ingest", "silver", "gold", "quality")
    }
    assert (base / "lake" / "reports" / f"tpch_daily_{ds}.html").is_file()

    late = wait_for("the deadline alert",
                    lambda: [m for m in alerts.slack if m.startswith("[DEADLINE MISSED]")],
                    timeout=120)
    assert late[0].startswith(f"[DEADLINE MISSED] dag=tpch_daily task=(whole run) ds={ds}")


def _registered(airflow: Airflow, token: str) -> bool:
    try:
        return bool(call(airflow, token, "GET", "/dags/tpch_daily")["dag_id"])
    except urllib.error.HTTPError:
        return False


def _finished(airflow: Airflow, token: str, run_id: str) -> str | None:
    state = call(airflow, token, "GET", f"/dags/tpch_daily/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None
