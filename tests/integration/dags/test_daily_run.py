"""``tpch_daily`` end to end with ``dag.test()``: real Airflow, real spark-submit, real Delta.

One lake, three DAG runs in order, each a scenario of its own:

1. the initial load, where every step's first attempt is SIGKILLed (JVM and Python: a
   lost node, injected once per step, ``KILLS``) at a point that leaves work half done:
   ``ingest`` after one bronze commit, ``silver`` between its line-item MERGE and its
   ledger row, ``gold`` between the commits of its two marts, ``quality`` after its
   ledger row. Airflow retries each, and the tables equal what one clean pass gives: every
   landed line in silver once, gold equal to a from-scratch computation over silver, one
   ledger row per step. ``silver`` also meets a real Delta write conflict
   (``PIPELINE_CONFLICT``), which the job absorbs without an Airflow retry;
2. the same ``ds`` again, which must change no table;
3. a daily drop that trips the quality gate (exit 3), through a storm of kills (``STORM``):
   ingest, silver, gold and quality each lose three tries in a row, each try at a later
   point than the last (mid-write; between a commit and the step's ledger row, or
   between gold's marts; after it; quality's last one halfway through restoring gold),
   and the report loses one. The
   gate's exit 3 is not retried, gold is left as it was before the drop, the alerts reach
   the task log, Slack and e-mail, and every table and the ledger equal a clean
   in-process run of the drop (gate failure included) on a copy of the lake taken just
   before.

That is 17 SIGKILLed task tries (``spark-submit``, JVM and Python), each at its own
point, every one retried by Airflow.

The first run's environment also holds fake credentials (AWS keys, a password on the
``spark_default`` connection, a Slack webhook token), and none of them may show up in
its task logs, alerts or lineage events.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.message
import json
import os
import secrets
import socket
import string
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.errors import QualityGateError
from tests.support.airflow_helpers import Captured, parse_daily_dag
from tests.support.compare import assert_lake_equal, contents, ledger
from tests.support.environment import environment
from tests.support.lake import (
    GOLD,
    copy_lake,
    expected_gold,
    generate,
    lake_of,
    run_drop,
    table_rows,
    table_versions,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow
STEPS = ("ingest", "silver", "gold", "quality")
# Where the first attempt of each step of the initial load is killed (jobs/fault.py).
KILLS = {"ingest": "after_write:bronze/lineitem", "silver": "after_write:silver/lineitem",
         "gold": "after_write:gold/daily_line_summary", "quality": "after_quality"}
# The storm on the drop that fails the gate: where each try of each task is killed, in
# the order one try after another reaches them (``<step>@``: the point fires only in that
# step; several steps write the ledger and the expectation results). A try redoes an
# unrecorded step from its start: ingest rewrites both bronze tables, silver MERGEs
# again, gold recomputes both marts (written side by side); a recorded step has nothing
# left to do. Silver's third try dies between its expectation results and its ledger
# row; gold's marts are written side by side, so its first two tries die mid-write of one
# and after the other's commit, in either order. Quality's tries die before and after
# writing their results, then after restoring the first mart (the marts are restored one
# after the other, this one first).
STORM = {
    "ingest": ("during_write:bronze/orders", "after_write:bronze/lineitem", "after_ingest"),
    "silver": ("during_write:silver/orders", "after_write:silver/lineitem",
               "after_write:ops/dq_results"),
    "gold": ("during_write:gold/daily_line_summary", "after_write:gold/revenue_by_nation",
             "after_write:ops/runs"),
    "quality": ("before_write:ops/dq_results", "after_write:ops/dq_results",
                "after_write:gold/daily_line_summary"),
    "report": ("after_report",),
}


@dataclass
class Run:
    """The outcome of one ``dag.test()``.

    ``output`` (when asked for) is everything the run printed: its task logs.
    ``alerts`` and ``webhook_paths`` (kept by fixtures that need them later): the alerts
    it sent (Slack texts, whole e-mails) and the webhook paths the Slack ones went to.
    """

    state: str
    tries: dict[str, int]
    states: dict[str, str]
    output: str = ""
    alerts: list[str] = field(default_factory=list)
    webhook_paths: list[str] = field(default_factory=list)
    asset_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class DailyLake:
    """The lake, its landing zone and the drops."""

    root: Path
    landing: Path
    drops: list[str]

    @property
    def lake(self) -> Any:
        return lake_of(self.root)


@contextlib.contextmanager
def printed(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Collect what this process and its subprocesses print during the block.

    ``dag.test()`` runs every task inside this process, and Airflow 3.3's in-process
    supervisor writes no per-task log files: a task's log (Airflow's lines, the
    operator's, and spark-submit's output, which the SparkSubmitHook logs line by line)
    goes to this process's standard output and error. Under pytest's output capture
    that is read from the capture, and written back so pytest still reports it; with
    capture off (``-s``) the two file descriptors are redirected for the block.

    :return: filled when the block ends: the output, then the error stream.
    """
    collected: list[str] = []
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None and capture.is_globally_capturing():
        earlier = capture.read_global_capture()
        try:
            yield collected
        finally:
            during = capture.read_global_capture()
            collected += [during.out, during.err]
            sys.stdout.write(earlier.out + during.out)
            sys.stderr.write(earlier.err + during.err)
        return
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield collected
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            collected.append(sink.read().decode("utf-8", "replace"))


def run_dag(ds: str, env: dict[str, str], sensor_timeout: float | None = None,
            request: pytest.FixtureRequest | None = None) -> Run:
    """Parse ``tpch_daily`` under ``env`` and run it in-process for ``ds``.

    :param request: when given, the run's output is kept in :attr:`Run.output`.
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with environment(env):
        dag = parse_daily_dag()
        if sensor_timeout is not None:
            sensor = dag.get_task("wait_for_drop")
            sensor.timeout, sensor.poke_interval = sensor_timeout, 1.0
        logical_date = dt.datetime.fromisoformat(ds).replace(tzinfo=dt.UTC)
        with printed(request) if request else contextlib.nullcontext([]) as output:
            run = dag.test(logical_date=logical_date)
        with create_session() as session:
            tis = session.query(TaskInstance).filter(TaskInstance.dag_id == "tpch_daily",
                                                     TaskInstance.run_id == run.run_id).all()
            events: dict[str, list[dict[str, Any]]] = {}
            for name, extra in session.query(AssetModel.name, AssetEvent.extra).join(
                    AssetModel, AssetEvent.asset_id == AssetModel.id).filter(
                    AssetEvent.source_run_id == run.run_id):
                events.setdefault(name, []).append(dict(extra))
            return Run(str(run.state), {t.task_id: t.try_number for t in tis},
                       {t.task_id: str(t.state) for t in tis}, "".join(output),
                       asset_events=events)


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


@dataclass
class Planted:
    """Fake credentials in the first run's environment: name -> value, and the env."""

    values: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@pytest.fixture(scope="module")
def planted(alerts: Captured) -> Planted:
    """Unique fake credentials where a deployment keeps real ones.

    AWS keys in the environment (what boto3 and S3A would pick up), a login and password
    on ``spark_default`` (the connection every step's SparkSubmitOperator reads), and a
    token in the ``slack_alerts`` webhook URL (the retry alert posts to it).
    """
    values = {
        "AWS_ACCESS_KEY_ID": "AKIA" + _random(string.ascii_uppercase + "234567", 16),
        "AWS_SECRET_ACCESS_KEY": _random(string.ascii_letters + string.digits + "+/", 40),
        "spark_default password": _random(string.ascii_letters + string.digits, 24),
        "slack_alerts token": _random(string.ascii_letters + string.digits, 24),
    }
    slack = json.loads(os.environ["AIRFLOW_CONN_SLACK_ALERTS"])
    slack["password"] = slack["password"].rsplit("/", 1)[0] + "/" + values["slack_alerts token"]
    return Planted(values, {
        "AWS_ACCESS_KEY_ID": values["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": values["AWS_SECRET_ACCESS_KEY"],
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({
            "conn_type": "spark", "host": "local[2]", "login": "pipeline",
            "password": values["spark_default password"]}),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps(slack),
    })


def _mail_text(message: email.message.Message) -> str:
    """An e-mail's headers and body parts, decoded (a plain search misses base64 text)."""
    headers = [f"{k}: {make_header(decode_header(str(v)))}" for k, v in message.items()]
    parts = [part.get_payload(decode=True) for part in message.walk()
             if not part.is_multipart()]
    return "\n".join([*headers, *(p.decode("utf-8", "replace") for p in parts
                                   if isinstance(p, bytes))])


@pytest.fixture(scope="module")
def first_run(daily: DailyLake, alerts: Captured, statsd: list[str], planted: Planted,
              request: pytest.FixtureRequest) -> Iterator[Run]:
    alerts.clear()
    marker = daily.root.parent / "fault-marker"
    run = run_dag(daily.drops[0], _env(
        daily, PIPELINE_FAULT=",".join(f"{point}:once" for point in KILLS.values()),
        PIPELINE_FAULT_MARKER=str(marker),
        PIPELINE_CONFLICT="silver/orders",
        PIPELINE_METRICS="statsd", OPENLINEAGE_FILE=str(daily.root.parent / "lineage.jsonl"),
        **planted.env), request=request)
    # Later runs clear the captured alerts: keep this run's, with the webhook paths.
    run.alerts = [*alerts.slack, *map(_mail_text, alerts.mail)]
    run.webhook_paths = list(alerts.slack_paths)
    yield run


def test_initial_load_runs_every_task(first_run: Run) -> None:
    assert first_run.state == "success"
    assert first_run.states == {t: "success" for t in
                                ("wait_for_drop", *STEPS, "publish", "report", "notify")}


def test_a_passed_gate_announces_each_gold_table_with_where_it_is(first_run: Run,
                                                                  daily: DailyLake) -> None:
    assert first_run.asset_events == {
        f"tpch_gold_{table}": [{"lake": str(daily.root), "ds": daily.drops[0],
                                "location": f"{daily.root}/gold/{table}"}]
        for table in ("daily_line_summary", "revenue_by_nation")}


def test_every_killed_step_is_retried_and_the_run_succeeds(first_run: Run, daily: DailyLake,
                                                           alerts: Captured) -> None:
    assert {step: first_run.tries[step] for step in STEPS} == dict.fromkeys(STEPS, 2)
    retries = [m for m in alerts.slack if m.startswith("[RETRYING]")]
    assert [m[:m.index(" | log: ")] for m in retries] == [
        f"[RETRYING] dag=tpch_daily task={step} ds={daily.drops[0]} try=1 of 4: "
        f"TransientStepFailure: {step}: transient failure, will be retried (exit -9)."
        for step in STEPS
    ]
    assert all("/dags/tpch_daily/runs/" in m for m in retries)


def test_a_write_conflict_is_absorbed_inside_the_job(first_run: Run, daily: DailyLake) -> None:
    """A concurrent commit to silver/orders while silver's MERGE writes: Delta refuses the
    MERGE's commit and the job retries it. Airflow's one retry of silver is the kill's
    (exit -9, above), not the conflict's."""
    assert first_run.tries["silver"] == 2
    assert (f"merge into file:{daily.root}/silver/orders: write conflict (attempt 1/5, "
            "MetadataChangedException)") in first_run.output


def test_tables_and_ledger_are_written(first_run: Run, daily: DailyLake,
                                       spark: SparkSession) -> None:
    ds = daily.drops[0]
    # A clean drop: every landed line reaches silver, once, whatever the killed first
    # attempts had committed.
    tables = sorted(p.name for p in (daily.landing / f"ds={ds}").iterdir() if p.is_dir())
    assert len(tables) == 8
    landed = {t: sum(1 for f in (daily.landing / f"ds={ds}" / t).glob("*.tbl") for _ in f.open())
              for t in tables}
    assert {t: spark.read.format("delta").load(daily.lake.table("silver", t)).count()
            for t in tables} == landed
    # gold's first try was killed after one mart's commit; the retry's marts are what a
    # from-scratch computation over silver gives.
    assert {n: table_rows(spark, daily.lake, "gold", n) for n in GOLD} == expected_gold(
        spark, daily.lake)
    for name in GOLD:
        assert spark.read.format("delta").load(daily.lake.table("gold", name)).count() > 0
    runs = spark.read.format("delta").load(daily.lake.table("ops", "runs")).collect()
    # Killed attempts leave no row; quality's retry found its own row and added none.
    assert sorted((r["step"], str(r["ds"]), r["status"]) for r in runs) == sorted(
        (step, ds, "succeeded") for step in STEPS)


def test_every_step_publishes_its_counts_and_duration_to_statsd(
        first_run: Run, daily: DailyLake, statsd: list[str]) -> None:
    ds = daily.drops[0]
    landed = sum(1 for f in (daily.landing / f"ds={ds}" / "orders").glob("*.tbl")
                 for _ in f.open())
    for step in STEPS:
        assert any(line.startswith(f"tpch.{step}.duration_ms:") and line.endswith("|ms")
                   for line in statsd), step
    # The killed tries of ingest, silver and gold had not finished: they recorded and
    # published nothing; quality's was killed after publishing, and its retry had nothing
    # to do. (report writes no ledger row, so it publishes none either.)
    assert [line for line in statsd if ".succeeded:" in line] == [
        f"tpch.{step}.succeeded:1|c" for step in STEPS]
    assert f"tpch.ingest.rows_written.orders:{landed}|c" in statsd
    # Rows read are the drop's; rows written are what the run changed, and silver's killed
    # try had already merged the orders that its retry then found in place.
    assert f"tpch.silver.rows_read.orders:{landed}|c" in statsd
    assert "tpch.silver.rows_written.orders:0|c" in statsd


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
    # One Spark application per task try; each step's two tries have two parent runs.
    assert {task: len(ids) for task, ids in tries.items()} == {
        **{f"tpch_daily.{step}": 2 for step in STEPS}, "tpch_daily.report": 1}
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


def test_no_planted_credential_reaches_a_task_log_an_alert_or_lineage(
        first_run: Run, daily: DailyLake, planted: Planted) -> None:
    ds = daily.drops[0]
    logs = first_run.output
    # The logs are the run's: Airflow's task lines, the operator's command line, the
    # job's own log (through spark-submit) and the retry alert's log line.
    assert "Spark-Submit cmd: spark-submit --master local[2]" in logs
    for step in STEPS:
        assert f"{step} {ds}: starting (lake file:{daily.root}, landing file:" in logs, step
    assert f"pipeline alert: [RETRYING] dag=tpch_daily task=gold ds={ds}" in logs
    # The planted values were in use: the retry alert went to the webhook with the token.
    assert f"/services/T000/B000/{planted.values['slack_alerts token']}" in first_run.webhook_paths
    assert any(a.startswith("[RETRYING]") for a in first_run.alerts)
    lineage = (daily.root.parent / "lineage.jsonl").read_text()
    assert '"eventType"' in lineage

    for name, value in planted.values.items():
        assert value not in logs, f"{name} appears in a task log"
        assert not [a for a in first_run.alerts if value in a], f"{name} appears in an alert"
        assert value not in lineage, f"{name} appears in a lineage event"


def test_second_run_for_the_same_ds_changes_no_table(first_run: Run, daily: DailyLake,
                                                     spark: SparkSession) -> None:
    layers = ("bronze", "silver", "quarantine", "gold")
    before = table_versions(spark, daily.lake, layers)
    again = run_dag(daily.drops[0], _env(daily))
    assert again.state == "success"
    assert table_versions(spark, daily.lake, layers) == before


@dataclass
class GateRun:
    """The gate drop's run, gold before it, and the clean lake to compare with.

    ``reference``: a copy of the lake from just before the run, where the drop then ran
    in-process, uninterrupted, to the same failed gate.
    """

    run: Run
    gold_before: dict[str, list[tuple[Any, ...]]]
    reference: Path


@pytest.fixture(scope="module")
def gate_run(first_run: Run, daily: DailyLake, alerts: Captured, spark: SparkSession,
             tmp_path_factory: pytest.TempPathFactory) -> GateRun:
    ds = daily.drops[1]
    # One unusable line pushes the drop's quarantine ratio above a zero threshold.
    drop = daily.landing / f"ds={ds}" / "lineitem"
    with next(iter(sorted(drop.glob("*.tbl")))).open("a") as f:
        f.write("this|is|not|a|lineitem|\n")
    gold_before = {n: table_rows(spark, daily.lake, "gold", n) for n in GOLD}
    reference = tmp_path_factory.mktemp("gate-reference") / "lake"
    copy_lake(daily.lake, reference)
    alerts.clear()
    faults = [f"{step}@{point}:once" for step, points in STORM.items() for point in points]
    run = run_dag(ds, _env(daily, DQ_MAX_QUARANTINE_RATIO="0", PIPELINE_FAULT=",".join(faults),
                           PIPELINE_FAULT_MARKER=str(daily.root.parent / "storm-marker")))
    with environment({"DQ_MAX_QUARANTINE_RATIO": "0"}), \
            pytest.raises(QualityGateError, match="gold restored"):
        run_drop(spark, lake_of(reference), daily.landing, ds)
    return GateRun(run, gold_before, reference)


def test_quality_gate_failure_fails_at_once_keeps_gold_and_alerts(
        gate_run: GateRun, daily: DailyLake, alerts: Captured, spark: SparkSession) -> None:
    ds, run = daily.drops[1], gate_run.run
    assert run.state == "failed"
    # Every marker was claimed: each kill happened at its own point, none was skipped.
    assert len(list(daily.root.parent.glob("storm-marker.*"))) == sum(map(len, STORM.values()))
    assert {step: run.tries[step] for step in STORM} == {
        step: len(points) + 1 for step, points in STORM.items()}
    assert run.states["quality"] == "failed"
    assert run.states["report"] == "success"
    assert run.states["notify"] == "upstream_failed"
    # A failed gate announces nothing.
    assert run.states["publish"] == "upstream_failed" and run.asset_events == {}
    # The killed third gold try had committed both marts and its ledger row, and a killed
    # quality try had restored one mart: the gate still leaves gold as before this drop.
    assert {n: table_rows(spark, daily.lake, "gold", n) for n in GOLD} == gate_run.gold_before
    failure = [m for m in alerts.slack if m.startswith("[FAILED]")]
    assert len(failure) == 1
    assert failure[0].startswith(
        f"[FAILED] dag=tpch_daily task=quality ds={ds} try=4 of 4: QualityGateFailed: "
        "quality: quality gate failed (gold restored to its last good version), not retried "
        "(exit 3). error: "
    )
    retries = [m[:m.index(" | log: ")] for m in alerts.slack if m.startswith("[RETRYING]")]
    assert retries == [
        f"[RETRYING] dag=tpch_daily task={step} ds={ds} try={n} of "
        f"{2 if step == 'report' else 4}: TransientStepFailure: "
        f"{step}: transient failure, will be retried (exit -9)."
        for step, points in STORM.items() for n in range(1, len(points) + 1)
    ]
    # Every alert goes to Slack and by e-mail: the steps' retries, the failure, then the
    # retry of the report (which runs after a failed step).
    assert [m["Subject"] for m in alerts.mail] == [m[:200] for m in alerts.slack]
    assert alerts.mail[-2]["Subject"] == failure[0][:200]
    assert {m["To"] for m in alerts.mail} == {"oncall@example.com"}
    report = (daily.root / "reports" / f"tpch_daily_{ds}.html").read_text()
    assert "failed" in report


def test_after_the_kills_every_table_and_the_ledger_equal_a_clean_run(
        gate_run: GateRun, daily: DailyLake, spark: SparkSession) -> None:
    """Bronze, silver, quarantine and gold row for row (order-insensitive), no duplicate
    key in silver, the same successful step runs with the same counts, each once."""
    assert_lake_equal(spark, daily.root, contents(spark, gate_run.reference),
                      ledger(spark, gate_run.reference))


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
