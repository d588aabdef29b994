"""Step metrics reach CloudWatch: every data point, read back from a moto server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobs.metrics import StepMetrics, cloudwatch_data, publish

# The same run as tests/unit/test_metrics.py's: 37.25 s, 1490 orders written.
RUN = StepMetrics(
    step="silver",
    ds=dt.date(1998, 8, 2),
    status="succeeded",
    started_at=dt.datetime(1998, 8, 3, 0, 5, 0, tzinfo=dt.UTC),
    ended_at=dt.datetime(1998, 8, 3, 0, 5, 37, 250000, tzinfo=dt.UTC),
    rows={"read": {"orders": 1500}, "written": {"orders": 1490, "orders_deleted": 2},
          "quarantined": {"orders": 8}, "duplicate": {}},
)


def test_cloudwatch_receives_every_point(moto_endpoint: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("PIPELINE_METRICS", "cloudwatch")
    monkeypatch.setenv("PIPELINE_METRICS_NAMESPACE", "TpchLakehouseTest")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert publish(RUN) == "cloudwatch"

    client = boto3.client("cloudwatch")
    listed = client.list_metrics(Namespace="TpchLakehouseTest")["Metrics"]
    got = sorted((m["MetricName"], tuple(sorted((d["Name"], d["Value"])
                                               for d in m["Dimensions"]))) for m in listed)
    assert got == sorted((d["MetricName"], tuple(sorted((x["Name"], x["Value"])
                                                       for x in d["Dimensions"])))
                         for d in cloudwatch_data(RUN))
    stats: Any = client.get_metric_statistics(
        Namespace="TpchLakehouseTest", MetricName="RowsWritten",
        Dimensions=[{"Name": "Step", "Value": "silver"}, {"Name": "Table", "Value": "orders"}],
        StartTime=RUN.started_at, EndTime=RUN.ended_at + dt.timedelta(minutes=1),
        Period=60, Statistics=["Sum"])
    assert [p["Sum"] for p in stats["Datapoints"]] == [1490.0]
    duration = client.get_metric_statistics(
        Namespace="TpchLakehouseTest", MetricName="StepDuration",
        Dimensions=[{"Name": "Step", "Value": "silver"}],
        StartTime=RUN.started_at, EndTime=RUN.ended_at + dt.timedelta(minutes=1),
        Period=60, Statistics=["Maximum"], Unit="Seconds")
    assert [p["Maximum"] for p in duration["Datapoints"]] == [37.25]
