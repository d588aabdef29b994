"""``tpch_daily`` end to end with ``dag.test()``: real Airflow, real spark-submit, real Delta.

One lake, three DAG runs in order, each a scenario of its own:

1. the initial load, whose ``gold`` task fails transiently on its first attempt (exit 1,
   injected once) and succeeds on the retry;
2. the same ``ds`` again, which must change no table;
3. a daily drop that trips the quality gate (exit 3): it fails without a retry, gold is
   left as it was, and the alert reaches the task log, Slack and e-mail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.dags.conftest import Captured, environment, parse_daily_dag
from tests.e2e.conftest import GOLD, generate, lake_of, table_rows, table_versions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow
STEPS = ("ingest", "silver", "gold", "quality")


@dataclass
class Run:
    """The outcome of one ``dag.test()``."""

    state: str
    tries: dict[str, int]
    states: dict[str, str]


@dataclass
class DailyLake:
    """The lake, its landing zone and the drops."""

    root: Path
    landing: Path
    drops: list[str]

    @property
    def lake(self) -> Any:
        return lake_of(self.root)


def run_dag(ds: str, env: dict[str, str], sensor_timeout: float | None = None) -> Run:
    """Parse ``tpch_daily`` under ``env`` and run it in-process for ``ds``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with environment(env):
        dag = parse_daily_dag()
        if sensor_timeout is not None:
            sensor = dag.get_task("wait_for_drop")
            sensor.timeout, sensor.poke_interval = sensor_timeout, 1.0
        run = dag.test(logical_date=dt.datetime.fromisoformat(ds).replace(tzinfo=dt.UTC))
        with create_session() as session:
            tis = session.query(TaskInstance).filter(TaskInstance.dag_id == "tpch_daily",
                                                     TaskInstance.run_id == run.run_id).all()
            return Run(str(run.state), {t.task_id: t.try_number for t in tis},
                       {t.task_id: str(t.state) for t in tis})


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> DailyLake:
    base = tmp_path_factory.mktemp("daily")
    drops = generate(base / "landing", chaos=False, days=1)
    return DailyLake(base / "lake", base / "landing", drops)


def _env(daily: DailyLake, **extra: str) -> dict[str, str]:
    return {"LANDING_URI": str(daily.landing), "LAKE_URI": str(daily.root), **extra}


@pytest.fixture(scope="module")
def statsd() -> Iterator[list[str]]:
    """A StatsD server on loopback: every line the jobs send, in arrival order."""
    lines: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                lines.extend(sock.recv(65536).decode().splitlines())
            except TimeoutError:
                continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    os.environ["STATSD_PORT"] = str(sock.getsockname()[1])
    yield lines
    done.set()
    thread.join()
    sock.close()
    os.environ.pop("STATSD_PORT", None)


@pytest.fixture(scope="module")
def first_run(daily: DailyLake, alerts: Captured, statsd: list[str]) -> Iterator[Run]:
    alerts.clear()
    marker = daily.root.parent / "fault-marker"
    yield run_dag(daily.drops[0], _env(
        daily, PIPELINE_FAULT="before_gold:exit1:once", PIPELINE_FAULT_MARKER=str(marker),
        PIPELINE_METRICS="statsd", OPENLINEAGE_FILE=str(daily.root.parent / "lineage.jsonl")))


def test_initial_load_runs_every_task(first_run: Run) -> None:
    assert first_run.state == "success"
    assert first_run.states == {t: "success" for t in
                                ("wait_for_drop", *STEPS, "report", "notify")}


def test_transient_failure_is_retried_and_the_run_succeeds(first_run: Run,
                                                           daily: DailyLake,
                                                           alerts: Captured) -> None:
    assert first_run.tries["gold"] == 2
    assert {first_run.tries[t] for t in ("ingest", "silver", "quality")} == {1}
    retry = [m for m in alerts.slack if m.startswith("[RETRYING]")]
    assert retry == [
        f"[RETRYING] dag=tpch_daily task=gold ds={daily.drops[0]} try=1 of 4: "
        "TransientStepFailure: gold: transient failure, will be retried (exit 1). "
        "error: RuntimeError: injected transient failure at before_gold"
        + retry[0][retry[0].index(" | log: "):]
    ]
    assert "/dags/tpch_daily/runs/" in retry[0]


def test_tables_and_ledger_are_written(first_run: Run, daily: DailyLake,
                                       spark: SparkSession) -> None:
    ds = daily.drops[0]
    landed = sum(1 for f in (daily.landing / f"ds={ds}" / "orders").glob("*.tbl")
                 for _ in f.open())
    silver = spark.read.format("delta").load(daily.lake.table("silver", "orders"))
    assert silver.count() == landed
    for name in GOLD:
        assert spark.read.format("delta").load(daily.lake.table("gold", name)).count() > 0
    runs = spark.read.format("delta").load(daily.lake.table("ops", "runs")).collect()
    assert {(r["step"], str(r["ds"]), r["status"]) for r in runs} == {
        (step, ds, "succeeded") for step in STEPS
    }


def test_every_step_publishes_its_counts_and_duration_to_statsd(
        first_run: Run, daily: DailyLake, statsd: list[str]) -> None:
    ds = daily.drops[0]
    landed = sum(1 for f in (daily.landing / f"ds={ds}" / "orders").glob("*.tbl")
                 for _ in f.open())
    for step in STEPS:
        assert any(line.startswith(f"tpch.{step}.duration_ms:") and line.endswith("|ms")
                   for line in statsd), step
    # gold's first try failed before it finished: it recorded and published nothing.
    # (report writes no ledger row, so it publishes none either.)
    assert [line for line in statsd if ".succeeded:" in line] == [
        f"tpch.{step}.succeeded:1|c" for step in STEPS]
    assert f"tpch.ingest.rows_written.orders:{landed}|c" in statsd
    assert f"tpch.silver.rows_written.orders:{landed}|c" in statsd


def test_spark_events_carry_their_airflow_task_as_openlineage_parent(
        first_run: Run, daily: DailyLake) -> None:
    from airflow.providers.openlineage.conf import namespace

    events = [json.loads(line) for line in
              (daily.root.parent / "lineage.jsonl").read_text().splitlines()]
    parent = {id(e): e["run"]["facets"]["parent"] for e in events}
    # Each Spark application's own events name the Airflow task try as their parent.
    apps = [e for e in events if parent[id(e)]["job"]["namespace"] == namespace()]
    tries: dict[str, set[str]] = {}
    task_of_app = {}
    for event in apps:
        task = parent[id(event)]["job"]["name"]
        tries.setdefault(task, set()).add(parent[id(event)]["run"]["runId"])
        task_of_app[event["run"]["runId"]] = task
    # One Spark application per task try; gold's two tries have two parent runs.
    assert {task: len(ids) for task, ids in tries.items()} == {
        "tpch_daily.ingest": 1, "tpch_daily.silver": 1, "tpch_daily.gold": 2,
        "tpch_daily.quality": 1, "tpch_daily.report": 1}
    assert all(uuid.UUID(i).version == 7 for ids in tries.values() for i in ids)
    # Every event hangs under the same DAG run, the root.
    assert {(p["root"]["job"]["name"], p["root"]["run"]["runId"]) for p in parent.values()} \
        == {("tpch_daily", next(iter({p["root"]["run"]["runId"] for p in parent.values()})))}
    # The applications' query events (children of an application run) name the tables
    # each task wrote.
    written: dict[str, set[str]] = {}
    for event in events:
        task = task_of_app.get(parent[id(event)]["run"]["runId"])
        if task:
            written.setdefault(task, set()).update(o["name"] for o in event.get("outputs", []))
    assert str(daily.root / "bronze" / "orders") in written["tpch_daily.ingest"]
    assert str(daily.root / "silver" / "orders") in written["tpch_daily.silver"]
    assert str(daily.root / "gold" / "revenue_by_nation") in written["tpch_daily.gold"]


def test_report_is_written_and_the_run_announced(first_run: Run, daily: DailyLake,
                                                 alerts: Captured) -> None:
    ds = daily.drops[0]
    report = daily.root / "reports" / f"tpch_daily_{ds}.html"
    page = report.read_text()
    assert f"run report for {ds}" in page
    # Rows per layer, step durations, expectation outcomes; no quarantine chart for
    # clean data, a sentence instead.
    assert page.count("<svg") == 3
    assert "No rows were quarantined on any day." in page
    done = [m for m in alerts.slack if m.startswith("[SUCCEEDED]")]
    assert len(done) == 1 and done[0].endswith(f"| report: {report}")
    assert f"ds={ds}" in done[0]


def test_second_run_for_the_same_ds_changes_no_table(first_run: Run, daily: DailyLake,
                                                     spark: SparkSession) -> None:
    layers = ("bronze", "silver", "quarantine", "gold")
    before = table_versions(spark, daily.lake, layers)
    again = run_dag(daily.drops[0], _env(daily))
    assert again.state == "success"
    assert table_versions(spark, daily.lake, layers) == before


def test_quality_gate_failure_fails_at_once_keeps_gold_and_alerts(
        first_run: Run, daily: DailyLake, alerts: Captured, spark: SparkSession) -> None:
    ds = daily.drops[1]
    # One unusable line pushes the drop's quarantine ratio above a zero threshold.
    drop = daily.landing / f"ds={ds}" / "lineitem"
    with next(iter(sorted(drop.glob("*.tbl")))).open("a") as f:
        f.write("this|is|not|a|lineitem|\n")
    gold_before = {n: table_rows(spark, daily.lake, "gold", n) for n in GOLD}
    alerts.clear()

    run = run_dag(ds, _env(daily, DQ_MAX_QUARANTINE_RATIO="0"))

    assert run.state == "failed"
    assert run.states["quality"] == "failed" and run.tries["quality"] == 1
    assert run.states["report"] == "success"
    assert run.states["notify"] == "upstream_failed"
    assert {n: table_rows(spark, daily.lake, "gold", n) for n in GOLD} == gold_before
    failure = [m for m in alerts.slack if m.startswith("[FAILED]")]
    assert len(failure) == 1
    assert failure[0].startswith(
        f"[FAILED] dag=tpch_daily task=quality ds={ds} try=1 of 4: QualityGateFailed: "
        "quality: quality gate failed (gold restored to its last good version), not retried "
        "(exit 3). error: "
    )
    assert not [m for m in alerts.slack if m.startswith("[RETRYING]")]
    assert [m["Subject"] for m in alerts.mail] == [failure[0][:200]]
    assert alerts.mail[0]["To"] == "oncall@example.com"
    report = (daily.root / "reports" / f"tpch_daily_{ds}.html").read_text()
    assert "failed" in report


def test_missing_drop_times_out_with_a_message_naming_it(
        first_run: Run, daily: DailyLake, alerts: Captured) -> None:
    alerts.clear()
    run = run_dag("1998-09-01", _env(daily), sensor_timeout=3)
    assert run.state == "failed"
    assert run.states["wait_for_drop"] == "failed" and run.tries["wait_for_drop"] == 1
    assert run.states["ingest"] == "upstream_failed"
    failure = [m for m in alerts.slack if m.startswith("[FAILED]")]
    assert len(failure) == 1
    assert (f"task=wait_for_drop ds=1998-09-01 try=1 of 4: AirflowSensorTimeout: drop "
            f"ds=1998-09-01 is not complete: no {daily.landing}/ds=1998-09-01/_SUCCESS "
            "after 0:00:03") in failure[0]
