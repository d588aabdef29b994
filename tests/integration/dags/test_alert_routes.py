"""The spec's ``alerts`` routes and ``sla_hours`` in the DAGs a spec gets.

A spec written to a temporary ``pipelines/`` folder (``PIPELINES_DIR``) is built into its
DAGs by ``lakehouse.factory.pipeline_dags``, as ``dags/pipeline_dags.py`` does. The
callbacks and deadline alerts of those DAGs are then checked as declared, and called the
way Airflow calls them, against a Slack webhook and an SMTP server on loopback (the
``slack_alerts`` and ``smtp_alerts`` connections), to see where each alert arrives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_helpers import Captured, slack_webhook, smtp_server
from tests.support.specs import NAME, write_spec

ROUTED = {
    'schedule: "@daily"\n': 'schedule: "@daily"\nsla_hours: 30\n'
                            "alerts: {critical: [slack, log], warning: [log], info: []}\n",
}
DS = "2024-01-02"
LOG_URL = f"http://127.0.0.1:8080/dags/{NAME}_daily/runs/r/tasks/ingest?try_number=1"


class TI:
    """The task-instance fields an alert reads from a task callback's context."""

    def __init__(self, task_id: str = "ingest") -> None:
        self.dag_id, self.task_id = f"{NAME}_daily", task_id
        self.try_number, self.max_tries, self.log_url = 1, 3, LOG_URL


@pytest.fixture
def alert_log() -> Iterator[list[str]]:
    """Every message the alerts write to their log (``airflow.task``)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("airflow.task")
    handler, level, disabled = Keep(logging.DEBUG), logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """A Slack webhook and an SMTP server on loopback, wired up as the alert connections,
    stopped when the test ends (failed or not)."""
    captured = Captured()
    slack = slack_webhook(captured)
    try:
        smtp, smtp_port = smtp_server(captured)
        try:
            monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps({
                "conn_type": "slackwebhook",
                "password": f"http://127.0.0.1:{slack.server_address[1]}/services/T000/B000/t",
            }))
            monkeypatch.setenv("AIRFLOW_CONN_SMTP_ALERTS", json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
                "extra": {"to": "oncall@example.com", "from_email": "airflow@example.com",
                          "disable_ssl": True, "disable_tls": True},
            }))
            yield captured
        finally:
            smtp.stop()
    finally:
        slack.shutdown()
        slack.server_close()


def _dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replace: dict[str, str] | None,
          run_deadline_minutes: str = "360") -> dict[str, Any]:
    """The DAGs of the test spec (``SPEC`` with ``replace`` applied)."""
    from lakehouse.factory import pipeline_dags

    write_spec(tmp_path, replace)
    monkeypatch.setenv("PIPELINES_DIR", str(tmp_path / "pipelines"))
    # tests/integration/dags/conftest.py turns deadline alerts off for dag.test(); these
    # DAGs are only built, never run, so their deadlines can be on.
    monkeypatch.setenv("PIPELINE_RUN_DEADLINE_MINUTES", run_deadline_minutes)
    return pipeline_dags([NAME])


def _failure(dag: Any) -> None:
    from lakehouse.failures import failure_for

    dag.default_args["on_failure_callback"](
        {"ti": TI(), "ds": DS, "exception": failure_for("ingest", 1), "dag": dag})


def _retry(dag: Any) -> None:
    from lakehouse.failures import failure_for

    dag.default_args["on_retry_callback"](
        {"ti": TI(), "ds": DS, "exception": failure_for("ingest", 1), "dag": dag})


def _success(dag: Any) -> str:
    """Run the ``notify`` task's code as the task runner does (it returns the text)."""
    return str(dag.get_task("notify").python_callable(ds=DS, ti=TI("notify")))


def _sla_missed(dag: Any) -> None:
    """Call the SLA deadline's callback the way the triggerer does: its kwargs plus the
    deadline context."""
    from airflow.sdk._shared.module_loading import import_string

    sla = next(a for a in dag.deadline if a.name == "sla")
    callback = import_string(sla.callback.path)
    asyncio.run(callback(**sla.callback.kwargs, context={
        "dag_run": {"dag_id": dag.dag_id, "dag_run_id": f"scheduled__{DS}T00:00:00+00:00",
                    "logical_date": f"{DS}T00:00:00+00:00"},
        "deadline": {"id": "d1", "deadline_time": "2024-01-03T06:00:00+00:00"},
    }))


def test_routes_reach_the_callbacks_of_both_dags(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    dags = _dags(tmp_path, monkeypatch, ROUTED)
    assert set(dags) == {f"{NAME}_daily", f"{NAME}_maintenance"}
    for dag in dags.values():
        failure = dag.default_args["on_failure_callback"]
        retry = dag.default_args["on_retry_callback"]
        assert (failure.event, failure.channels) == ("failure", ("slack", "log"))
        assert (retry.event, retry.channels) == ("retry", ("log",))
    daily = dags[f"{NAME}_daily"]
    assert [a.callback.kwargs["channels"] for a in daily.deadline] == [["slack", "log"]] * 2


def test_the_daily_dag_has_the_run_deadline_and_the_sla(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.definitions.deadline import DeadlineReference

    daily = _dags(tmp_path, monkeypatch, ROUTED)[f"{NAME}_daily"]
    run, sla = daily.deadline
    assert run.name == "run_deadline"
    assert run.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert run.interval == dt.timedelta(minutes=360)
    assert "sla_hours" not in run.callback.kwargs
    assert sla.name == "sla"
    assert sla.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    assert sla.interval == dt.timedelta(hours=30)
    assert sla.callback.kwargs["sla_hours"] == 30
    assert run.callback.path == sla.callback.path == "lakehouse.alerts.deadline_missed"


def test_deadlines_off_turns_the_sla_off_too(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # How in-process runs (dag.test()) turn deadline alerts off: see load_config.
    daily = _dags(tmp_path, monkeypatch, ROUTED, run_deadline_minutes="0")[f"{NAME}_daily"]
    assert not daily.deadline


def test_each_severity_reaches_only_its_route(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, received: Captured,
        alert_log: list[str]) -> None:
    daily = _dags(tmp_path, monkeypatch, ROUTED)[f"{NAME}_daily"]

    _failure(daily)
    failed = (f"[FAILED] dag={NAME}_daily task=ingest ds={DS} try=1 of 4: "
              "TransientStepFailure: ingest: ")
    assert len(received.slack) == 1 and received.slack[0].startswith(failed)
    assert received.slack[0].endswith(f" | log: {LOG_URL}")
    assert received.slack_paths == ["/services/T000/B000/t"]
    assert alert_log == [f"pipeline alert: {received.slack[0]}"]
    assert received.mail == []  # critical is [slack, log] here: no e-mail

    received.clear()
    alert_log.clear()
    _retry(daily)
    assert received.slack == [] and received.slack_paths == [] and received.mail == []
    assert len(alert_log) == 1
    assert alert_log[0].startswith(f"pipeline alert: [RETRYING] dag={NAME}_daily task=ingest")

    alert_log.clear()
    text = _success(daily)
    assert text.startswith(f"[SUCCEEDED] dag={NAME}_daily task=notify ds={DS}")
    assert " | report: " in text
    assert received.slack == [] and received.mail == [] and alert_log == []


def test_a_missed_sla_is_critical_and_names_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, received: Captured,
        alert_log: list[str]) -> None:
    daily = _dags(tmp_path, monkeypatch, ROUTED)[f"{NAME}_daily"]
    _sla_missed(daily)
    assert received.slack == [
        f"[SLA MISSED] dag={NAME}_daily task=(whole run) ds={DS} try=-: SLA missed: run "
        f"scheduled__{DS}T00:00:00+00:00 not published by its SLA deadline "
        "2024-01-03T06:00:00+00:00 (30 hours after its logical date)"
    ]
    assert alert_log == [f"pipeline alert: {received.slack[0]}"]
    assert received.mail == []


def test_a_spec_without_alerts_keeps_every_channel_for_every_event(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, received: Captured,
        alert_log: list[str]) -> None:
    dags = _dags(tmp_path, monkeypatch, None)
    daily = dags[f"{NAME}_daily"]
    everywhere = ("log", "slack", "email")
    for dag in dags.values():
        assert set(dag.default_args["on_failure_callback"].channels) == set(everywhere)
        assert set(dag.default_args["on_retry_callback"].channels) == set(everywhere)
    # No sla_hours: the run deadline alone.
    (run,) = daily.deadline
    assert run.name == "run_deadline"
    assert set(run.callback.kwargs["channels"]) == set(everywhere)

    _failure(daily)
    _retry(daily)
    _success(daily)
    headlines = [m.split(" ", 1)[0] for m in received.slack]
    assert headlines == ["[FAILED]", "[RETRYING]", "[SUCCEEDED]"]
    assert [m["Subject"] for m in received.mail] == [m[:200] for m in received.slack]
    assert {m["To"] for m in received.mail} == {"oncall@example.com"}
    assert alert_log == [f"pipeline alert: {m}" for m in received.slack]
