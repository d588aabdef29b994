"""Airflow helpers for the DAG tests: parsing the DAGs, and alert servers on loopback.

The Airflow environment itself (a throw-away ``AIRFLOW_HOME``, set before anything imports
Airflow) and the fixtures built on these helpers are in tests/integration/dags/conftest.py.
"""

from __future__ import annotations

import email
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["DAGS", "ROOT", "Captured", "free_port", "import_errors_in_a_fresh_process",
           "parse_daily_dag", "slack_webhook", "smtp_server"]

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_daily_dag() -> Any:
    """``tpch_daily`` parsed from its file, retries waiting a second instead of minutes.

    The retry settings keep their real shape (count, backoff); only the delay shrinks. The
    backoff's delays are whole seconds at least (Airflow rounds them up), so 0.1 s makes
    each of a task's three retries wait one second instead of 1-2, 2-4 and 4-8 s.
    """
    import datetime as dt

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "pipeline_dags.py"))
    assert bag.import_errors == {}
    dag = bag.dags["tpch_daily"]
    for task in dag.tasks:
        task.retry_delay = dt.timedelta(seconds=0.1)
    return dag


def import_errors_in_a_fresh_process(**env: str) -> tuple[int, str]:
    """Parse ``dags/`` in a new interpreter under ``env``: (import error count, errors)."""
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "print(len(bag.import_errors))\n"
        "print(repr(bag.import_errors))\n"
    )
    out = subprocess.run([sys.executable, "-c", code],
                         env={**os.environ, "PYTHONPATH": str(DAGS), **env},
                         capture_output=True, text=True, check=True, cwd=ROOT)
    count, errors = out.stdout.strip().splitlines()[-2:]
    return int(count), errors


@dataclass
class Captured:
    """Alerts received by the loopback Slack webhook and SMTP server.

    ``slack_paths`` are the webhook URL paths the Slack messages were posted to (the
    token of a real webhook is its path).
    """

    slack: list[str] = field(default_factory=list)
    mail: list[email.message.Message] = field(default_factory=list)
    slack_paths: list[str] = field(default_factory=list)

    def clear(self) -> None:
        """Forget everything received so far."""
        self.slack.clear()
        self.mail.clear()
        self.slack_paths.clear()


def slack_webhook(captured: Captured) -> ThreadingHTTPServer:
    """A Slack incoming webhook on loopback that records every message in ``captured``.

    :return: the running server (``shutdown()`` stops it).
    """

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            captured.slack.append(json.loads(body)["text"])
            captured.slack_paths.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def smtp_server(captured: Captured) -> tuple[Any, int]:
    """An SMTP server on loopback that records every mail in ``captured``.

    :return: the started ``aiosmtpd`` controller (``stop()`` stops it) and its port.
    """
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            captured.mail.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port
