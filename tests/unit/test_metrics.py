"""Step metrics: the exact StatsD lines on a loopback socket; the sink choice and its failures.

CloudWatch on a moto server is tests/integration/jobs/test_cloudwatch_metrics.py.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from jobs.metrics import StepMetrics, metrics_sink, publish, statsd_lines

RUN = StepMetrics(
    step="silver",
    ds=dt.date(1998, 8, 2),
    status="succeeded",
    started_at=dt.datetime(1998, 8, 3, 0, 5, 0, tzinfo=dt.UTC),
    ended_at=dt.datetime(1998, 8, 3, 0, 5, 37, 250000, tzinfo=dt.UTC),
    rows={"read": {"orders": 1500}, "written": {"orders": 1490, "orders_deleted": 2},
          "quarantined": {"orders": 8}, "duplicate": {}},
)


def test_statsd_lines_name_step_counter_and_table() -> None:
    assert statsd_lines(RUN) == [
        "tpch.silver.duration_ms:37250|ms",
        "tpch.silver.succeeded:1|c",
        "tpch.silver.rows_read.orders:1500|c",
        "tpch.silver.rows_written.orders:1490|c",
        "tpch.silver.rows_written.orders_deleted:2|c",
        "tpch.silver.rows_quarantined.orders:8|c",
    ]


def test_a_failed_run_counts_as_failed() -> None:
    failed = StepMetrics("gold", RUN.ds, "failed", RUN.started_at, RUN.ended_at)
    assert statsd_lines(failed) == ["tpch.gold.duration_ms:37250|ms", "tpch.gold.failed:1|c"]


def test_sink_follows_the_runtime_unless_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_METRICS", raising=False)
    assert metrics_sink("local") == "statsd"
    assert metrics_sink("kubernetes") == metrics_sink("emr") == "cloudwatch"
    monkeypatch.setenv("PIPELINE_METRICS", "off")
    assert metrics_sink("emr") == "off"


def test_statsd_datagrams_arrive(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        monkeypatch.setenv("PIPELINE_METRICS", "statsd")
        monkeypatch.setenv("STATSD_HOST", "127.0.0.1")
        monkeypatch.setenv("STATSD_PORT", str(server.getsockname()[1]))
        assert publish(RUN) == "statsd"
        received = [server.recv(65536).decode() for _ in statsd_lines(RUN)]
    assert received == statsd_lines(RUN)


def test_an_unknown_or_unreachable_sink_never_fails_the_step(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PIPELINE_METRICS", "graphite")
    assert publish(RUN) == "failed:graphite"
    monkeypatch.setenv("PIPELINE_METRICS", "cloudwatch")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert publish(RUN) == "failed:cloudwatch"
    assert "could not publish cloudwatch metrics of step silver" in caplog.text
