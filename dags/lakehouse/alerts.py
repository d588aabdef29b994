"""Alerts: one notifier for failures, retries, missed deadlines and finished runs.

Each event has a severity (:data:`lakehouse.config.SEVERITY`: a failure or a missed
deadline is ``critical``, a retry a ``warning``, a finished run ``info``), and the
pipeline's spec routes each severity to channels (``alerts``). An alert goes only to the
channels of its route:

* ``log``: the log of the process that raises it (the task log for task callbacks, the
  triggerer log for deadline alerts);
* ``slack``: when the Airflow connection ``slack_alerts`` (type *Slack Incoming Webhook*,
  the webhook URL or token in its password) exists;
* ``email``: when the Airflow connection ``smtp_alerts`` (type *SMTP*) exists; the
  recipients are its extra field ``to`` (comma-separated).

A routed channel without its connection is skipped. Secrets therefore live only in
Airflow connections (or the secrets backend behind them). A channel that fails to deliver
is logged and does not hide the others.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier

from lakehouse.config import CHANNELS

__all__ = [
    "SLACK_CONN_ID",
    "SMTP_CONN_ID",
    "PipelineAlert",
    "alert_message",
    "deadline_missed",
    "deliver",
]

SLACK_CONN_ID = "slack_alerts"
SMTP_CONN_ID = "smtp_alerts"
log = logging.getLogger("airflow.task")


def _cause(exception: BaseException | str | None) -> str:
    if exception is None:
        return "unknown"
    if isinstance(exception, str):
        return exception
    first = str(exception).strip().splitlines()
    return f"{type(exception).__name__}: {first[0] if first else ''}".strip()


def alert_message(event: str, context: Any, sla_hours: float | None = None) -> dict[str, str]:
    """Build the alert's fields from an Airflow callback context.

    Task callbacks carry the task instance (``ti``) and, on failure or retry, the
    ``exception``; deadline callbacks carry only the DAG run as a plain dict.

    :param event: ``failure``, ``retry``, ``deadline_missed`` or ``success``.
    :param context: the callback context.
    :param sla_hours: for ``deadline_missed``: the deadline is the spec's SLA, this many
        hours after the logical date (``None``: the run deadline).
    :return: ``dag``, ``task``, ``ds``, ``try``, ``cause``, ``log_url`` and ``text``.
    """
    ti = context.get("ti")
    if ti is not None:
        fields = {
            "dag": ti.dag_id,
            "task": ti.task_id,
            "ds": str(context.get("ds", "")),
            "try": f"{ti.try_number} of {ti.max_tries + 1}" if hasattr(ti, "max_tries")
            else str(ti.try_number),
            "cause": _cause(context.get("exception")) if event != "success" else "succeeded",
            "log_url": str(getattr(ti, "log_url", "")),
        }
    else:
        run = context.get("dag_run") or {}
        deadline = context.get("deadline") or {}
        logical = str(run.get("logical_date") or "")
        run_id = run.get("dag_run_id", run.get("run_id", ""))
        due = deadline.get("deadline_time", "")
        fields = {
            "dag": str(run.get("dag_id", "")),
            "task": "(whole run)",
            "ds": logical[:10],
            "try": "-",
            "cause": (f"SLA missed: run {run_id} not published by its SLA deadline {due} "
                      f"({sla_hours:g} hours after its logical date)"
                      if sla_hours is not None
                      else f"run {run_id} not finished by its deadline {due}"),
            "log_url": "",
        }
    headline = {
        "failure": "FAILED", "retry": "RETRYING", "deadline_missed": "DEADLINE MISSED",
        "success": "SUCCEEDED",
    }.get(event, event.upper())
    if event == "deadline_missed" and sla_hours is not None:
        headline = "SLA MISSED"
    fields["text"] = (
        f"[{headline}] dag={fields['dag']} task={fields['task']} ds={fields['ds']} "
        f"try={fields['try']}: {fields['cause']}"
        + (f" | log: {fields['log_url']}" if fields["log_url"] else "")
    )
    return fields


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk.bases.hook import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:
        # Not configured (AirflowNotFoundException) is the normal case for local runs.
        return None


def _to_slack(text: str) -> None:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID).send(text=text)


def _to_smtp(fields: dict[str, str], recipients: str) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in fields.items() if k != "text"
    )
    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
        hook.send_email_smtp(
            to=[r.strip() for r in recipients.split(",") if r.strip()],
            subject=fields["text"][:200],
            html_content=f"<p>{html.escape(fields['text'])}</p><table>{rows}</table>",
        )


def deliver(fields: dict[str, str], channels: Sequence[str]) -> list[str]:
    """Send an alert to the routed channels that are configured.

    :param fields: from :func:`alert_message`.
    :param channels: the route of the alert's severity: any of ``log``, ``slack`` and
        ``email``; an empty route sends nothing.
    :return: the channels it reached, in the order ``log``, ``slack``, ``email``.
    """
    unknown = set(channels) - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown alert channel(s) {sorted(unknown)}; "
                         f"channels are {', '.join(CHANNELS)}")
    reached = []
    if "log" in channels:
        log.warning("pipeline alert: %s", fields["text"])
        reached.append("log")
    if "slack" in channels and _connection(SLACK_CONN_ID) is not None:
        try:
            _to_slack(fields["text"])
            reached.append("slack")
        except Exception:
            log.exception("pipeline alert: Slack delivery failed")
    smtp = _connection(SMTP_CONN_ID) if "email" in channels else None
    if smtp is not None:
        recipients = str(smtp.extra_dejson.get("to", ""))
        if not recipients:
            log.error("pipeline alert: connection %s has no 'to' in its extra", SMTP_CONN_ID)
        else:
            try:
                _to_smtp(fields, recipients)
                reached.append("email")
            except Exception:
                log.exception("pipeline alert: e-mail delivery failed")
    return reached


class PipelineAlert(BaseNotifier):
    """Airflow notifier that sends :func:`alert_message` through :func:`deliver`.

    :param event: ``failure``, ``retry``, ``deadline_missed`` or ``success``.
    :param channels: the route of the event's severity (``PipelineConfig.alerts``).
    """

    template_fields = ()

    def __init__(self, event: str, channels: Sequence[str] = CHANNELS,
                 context: Any = None) -> None:
        super().__init__(context=context)
        self.event = event
        self.channels = tuple(channels)

    def notify(self, context: Any) -> None:
        """Send the alert (task and DAG callbacks)."""
        deliver(alert_message(self.event, context), self.channels)

    async def async_notify(self, context: Any) -> None:
        """Send the alert from the triggerer (deadline alerts); delivery is blocking I/O."""
        await asyncio.to_thread(self.notify, context)


async def deadline_missed(context: Any = None, channels: Sequence[str] = CHANNELS,
                          sla_hours: float | None = None, **_: Any) -> None:
    """Deadline-alert callback (runs in the triggerer): alert that a run is late.

    Airflow calls it with the deadline's ``AsyncCallback`` kwargs and ``context``.

    :param context: what Airflow passes to deadline callbacks (the DAG run and deadline).
    :param channels: the route of ``critical`` alerts.
    :param sla_hours: set for the SLA deadline (hours after the logical date).
    """
    fields = alert_message("deadline_missed", context or {}, sla_hours=sla_hours)
    await asyncio.to_thread(deliver, fields, channels)
