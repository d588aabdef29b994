"""Airflow fixtures: a throw-away ``AIRFLOW_HOME``, alert capture servers on loopback.

The environment is the one ``tools/airflow_local.py`` gives ``make airflow`` and
``make dag-test`` (same function), pointed at a temporary home. It is set when this
file is imported, before anything imports Airflow, because Airflow reads its
configuration once at import. The helpers these fixtures use are in
tests/support/airflow_helpers.py.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.airflow_helpers import DAGS, ROOT, Captured, slack_webhook, smtp_server

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DAGS))  # what Airflow's dag bundle does for the DAG processor

from tools.airflow_local import airflow_env, init

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
os.environ.update(airflow_env(AIRFLOW_HOME, port=8080, extra={
    # Never a developer's own metadata database.
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    # dag.test() in Airflow 3.3.2 cannot finish a run of a DAG with deadline alerts (see
    # lakehouse.config.load_config); the live test turns them on with a real scheduler.
    "PIPELINE_RUN_DEADLINE_MINUTES": "0",
}))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the metadata database of the test ``AIRFLOW_HOME`` once."""
    init(os.environ)
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def alerts() -> Iterator[Captured]:
    """Slack webhook and SMTP server on loopback, wired up as the alert connections."""
    captured = Captured()
    smtp, smtp_port = smtp_server(captured)
    slack = slack_webhook(captured)
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
