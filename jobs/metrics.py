"""Step metrics: each finished step run's counts and duration, to CloudWatch or StatsD.

The ledger row in ``ops/runs`` is the record; metrics are the live view of the same
numbers for dashboards and alarms. Where they go is chosen by ``PIPELINE_METRICS``:

* ``cloudwatch`` (default on the ``kubernetes`` and ``emr`` runtimes, i.e. on AWS):
  ``PutMetricData`` in namespace ``PIPELINE_METRICS_NAMESPACE`` (default
  ``TpchLakehouse``), credentials and region from the default AWS chain
  (IRSA on EKS, the instance profile on EMR). ``AWS_ENDPOINT_URL`` is honoured by boto3.
* ``statsd`` (default elsewhere): plain StatsD over UDP to ``STATSD_HOST:STATSD_PORT``
  (default ``127.0.0.1:8125``, where Airflow's own StatsD exporter listens).
* ``off``: nothing.

Publishing never fails a step: the data is already committed and recorded when metrics
are sent, so an unreachable endpoint is a logged warning, not a retry.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Metric",
    "StepMetrics",
    "cloudwatch_data",
    "metrics_sink",
    "publish",
    "statsd_lines",
]

log = logging.getLogger(__name__)

NAMESPACE = "TpchLakehouse"
_STATSD_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_COUNTERS = ("read", "written", "quarantined", "duplicate")


@dataclass(frozen=True)
class Metric:
    """One data point: ``name`` with dimensions, a value and its unit."""

    name: str
    value: float
    unit: str
    dimensions: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StepMetrics:
    """The numbers of one finished step run (what its ``ops/runs`` row holds).

    :param step: step name.
    :param ds: run date.
    :param status: ``succeeded``, ``failed``, ...
    :param started_at: start (UTC).
    :param ended_at: end (UTC).
    :param rows: ``{"read"|"written"|"quarantined"|"duplicate": {table: rows}}``.
    """

    step: str
    ds: dt.date
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime
    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def points(self) -> Iterator[Metric]:
        """Duration and outcome per step, then one row count per counter and table."""
        step = (("Step", self.step),)
        seconds = (self.ended_at - self.started_at).total_seconds()
        yield Metric("StepDuration", round(seconds, 3), "Seconds", step)
        yield Metric("StepSucceeded" if self.status == "succeeded" else "StepFailed",
                     1, "Count", step)
        for kind in _COUNTERS:
            for table, n in sorted(self.rows.get(kind, {}).items()):
                yield Metric(f"Rows{kind.capitalize()}", n, "Count",
                             (*step, ("Table", table)))


def metrics_sink(runtime: str | None = None) -> str:
    """The sink for this process: ``PIPELINE_METRICS`` or the runtime's default."""
    chosen = os.environ.get("PIPELINE_METRICS", "").strip().lower()
    if chosen:
        return chosen
    runtime = runtime or os.environ.get("PIPELINE_RUNNER", "local")
    return "cloudwatch" if runtime in {"kubernetes", "emr"} else "statsd"


def statsd_lines(metrics: StepMetrics, prefix: str = "tpch") -> list[str]:
    """StatsD lines: ``tpch.<step>.duration_ms:<ms>|ms``, counters as ``|c``.

    Dimensions become name segments (StatsD has none): ``tpch.silver.rows_written.orders``.
    """
    lines = []
    for point in metrics.points():
        parts = [prefix, metrics.step]
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", point.name).lower()
        if point.name == "StepDuration":
            lines.append(f"{prefix}.{metrics.step}.duration_ms:{int(point.value * 1000)}|ms")
            continue
        parts.append(name.removeprefix("step_"))
        parts += [value for key, value in point.dimensions if key != "Step"]
        safe = ".".join(_STATSD_SAFE.sub("_", p) for p in parts)
        lines.append(f"{safe}:{int(point.value)}|c")
    return lines


def cloudwatch_data(metrics: StepMetrics) -> list[dict[str, Any]]:
    """``MetricData`` entries for ``PutMetricData``, time-stamped at the run's end."""
    return [
        {
            "MetricName": point.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in point.dimensions],
            "Timestamp": metrics.ended_at,
            "Value": float(point.value),
            "Unit": point.unit,
        }
        for point in metrics.points()
    ]


def _send_statsd(metrics: StepMetrics) -> None:
    host = os.environ.get("STATSD_HOST", "127.0.0.1")
    port = int(os.environ.get("STATSD_PORT", "8125"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for line in statsd_lines(metrics):
            sock.sendto(line.encode("ascii"), (host, port))


def _send_cloudwatch(metrics: StepMetrics) -> None:
    import boto3

    client = boto3.client("cloudwatch")
    data = cloudwatch_data(metrics)
    for start in range(0, len(data), 1000):  # PutMetricData takes up to 1000 entries
        client.put_metric_data(
            Namespace=os.environ.get("PIPELINE_METRICS_NAMESPACE", NAMESPACE),
            MetricData=data[start:start + 1000],
        )


def publish(metrics: StepMetrics) -> str:
    """Send one run's metrics to the configured sink; never raises.

    :return: the sink used (``off`` when disabled), or ``failed:<sink>``.
    """
    sink = metrics_sink()
    senders = {"statsd": _send_statsd, "cloudwatch": _send_cloudwatch}
    if sink == "off":
        return sink
    if sink not in senders:
        log.warning("PIPELINE_METRICS=%r is not one of cloudwatch, statsd, off: "
                    "metrics not sent", sink)
        return f"failed:{sink}"
    try:
        senders[sink](metrics)
    except Exception as exc:  # metrics are best effort; the ledger row is the record
        log.warning("could not publish %s metrics of step %s: %s", sink, metrics.step, exc)
        return f"failed:{sink}"
    return sink
