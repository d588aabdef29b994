"""Airflow fixtures: a throw-away ``AIRFLOW_HOME``, alert capture servers on loopback.

The environment is the one ``tools/airflow_local.py`` gives ``make airflow`` and
``make dag-test`` (same function), pointed at a temporary home. It is set when this
file is imported, before anything imports Airflow, because Airflow reads its
configuration once at import.
"""

from __future__ import annotations

import atexit
import email
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DAGS))  # what Airflow's dag bundle does for the DAG processor

from tools.airflow_local import airflow_env, init  # noqa: E402

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
os.environ.update(airflow_env(AIRFLOW_HOME, port=8080, extra={
    # Never a developer's own metadata database.
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    # dag.test() in Airflow 3.3.2 cannot finish a run of a DAG with deadline alerts (see
    # lakehouse.config.load_config); the live test turns them on with a real scheduler.
    "PIPELINE_RUN_DEADLINE_MINUTES": "0",
}))


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

    bag = DagBag(dag_folder=str(DAGS / "tpch_daily.py"))
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


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the metadata database of the test ``AIRFLOW_HOME`` once."""
    init(os.environ)
    return AIRFLOW_HOME


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


def _slack_server(captured: Captured) -> ThreadingHTTPServer:
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


@pytest.fixture(scope="session")
def alerts() -> Iterator[Captured]:
    """Slack webhook and SMTP server on loopback, wired up as the alert connections."""
    from aiosmtpd.controller import Controller

    captured = Captured()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            captured.mail.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    smtp_port = free_port()
    smtp = Controller(Handler(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    slack = _slack_server(captured)
    os.environ["AIRFLOW_CONN_SLACK_ALERTS"] = json.dumps({
        "conn_type": "slackwebhook",
        "password": f"http://127.0.0.1:{slack.server_address[1]}/services/T000/B000/test",
    })
    os.environ["AIRFLOW_CONN_SMTP_ALERTS"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
        "extra": {"to": "oncall@example.com", "from_email": "airflow@example.com",
                  "disable_ssl": True, "disable_tls": True},
    })
    try:
        yield captured
    finally:
        os.environ.pop("AIRFLOW_CONN_SLACK_ALERTS", None)
        os.environ.pop("AIRFLOW_CONN_SMTP_ALERTS", None)
        slack.shutdown()
        smtp.stop()
