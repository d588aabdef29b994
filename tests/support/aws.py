"""A local AWS for tests: moto's server on 127.0.0.1, plus what moto 5.2 does not model.

:func:`moto_server` starts moto's own server (``moto.server.main``, the function behind
the ``moto_server`` script) in a subprocess bound to 127.0.0.1 on a free port, waits
until it answers and yields its endpoint URL. Nothing is sent anywhere else.

The subprocess is this module (``python -m tests.support.aws``): it runs the unchanged moto
server after teaching it the two things the EMR tests need and moto 5.2 lacks. Both
stay inside the fake service; the code under test talks to it through the ordinary AWS
APIs only.

* **EMR steps progress.** moto creates every step ``RUNNING`` or ``PENDING`` and never
  changes it. Here a step's state is a moto *managed state* (moto's own mechanism for
  state progression, ``moto.moto_api.state_manager``) under the model name ``emr::step``
  with the transitions ``PENDING -> RUNNING -> COMPLETED``. The default transition is
  moto's ``manual`` one with ``times=1``, advanced by each ``DescribeStep`` of that
  step, exactly as moto does for Batch jobs or DAX clusters: the first poll of a waiter
  sees the step running, the next one sees it finished. The progression can be changed
  with moto's documented ``/moto-api/state-manager/set-transition`` endpoint.
* **Steps and job runs can fail, as a program does.** ``POST /_tests/exit-codes`` with
  ``{"<step or job run name>": [exit status, ...]}`` queues the exit statuses of the
  next runs of that name (a run not listed exits 0). An EMR step whose program exits
  non-zero ends ``FAILED`` with ``FailureDetails``, and its logs are written where EMR
  writes them, ``<LogUri><cluster id>/steps/<step id>/{controller,stderr}.gz``, the
  controller log ending ``Step failed with exitCode N`` as EMR's does. An EMR Serverless
  job run ends ``FAILED`` with ``ExitCode: N`` in its ``stateDetails``.

moto's request recorder (``/moto-api/recorder/...``, switched on by
:func:`start_recording`) keeps every request the server receives, so a test can assert
on the requests an operator really sent (:func:`recorded_requests`).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ACCOUNT_ID",
    "EXIT_CODES_ROUTE",
    "REGION",
    "Request",
    "client",
    "moto_server",
    "queue_exit_codes",
    "recorded_requests",
    "start_recording",
    "stop_recording",
]

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
EXIT_CODES_ROUTE = "/_tests/exit-codes"
STEP_MODEL = "emr::step"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def moto_server(startup_timeout: float = 30.0) -> Iterator[str]:
    """Run moto's server on 127.0.0.1 for the duration of the block.

    :param startup_timeout: seconds to wait for the server to answer.
    :return: (yields) the endpoint URL, ``http://127.0.0.1:<port>``.
    :raises RuntimeError: when the server does not answer in time (its output attached).
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="moto-") as home:
        env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(Path(home) / "recording.jsonl"),
               "PYTHONPATH": str(ROOT)}
        log = Path(home) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "tests.support.aws", "-H", "127.0.0.1", "-p", str(port)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + startup_timeout
            while not _answers(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{log.read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def client(service: str, endpoint: str) -> Any:
    """A boto3 client for the local server (fake credentials, :data:`REGION`)."""
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _post(endpoint: str, path: str, body: object | None = None) -> bytes:
    data = json.dumps(body if body is not None else {}).encode()
    request = urllib.request.Request(f"{endpoint}{path}", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def queue_exit_codes(endpoint: str, codes: dict[str, list[int]]) -> None:
    """Set the exit statuses of the next runs per step or job run name (replaces all)."""
    _post(endpoint, EXIT_CODES_ROUTE, codes)


def start_recording(endpoint: str) -> None:
    """Forget recorded requests and record from now on (moto's request recorder)."""
    _post(endpoint, "/moto-api/recorder/reset-recording")
    _post(endpoint, "/moto-api/recorder/start-recording")


def stop_recording(endpoint: str) -> None:
    """Stop recording and forget what was recorded."""
    _post(endpoint, "/moto-api/recorder/stop-recording")
    _post(endpoint, "/moto-api/recorder/reset-recording")


@dataclass(frozen=True)
class Request:
    """One request the server received: the API action and its JSON body, if any."""

    action: str
    method: str
    url: str
    body: Any
    user_agent: str


def _header(entry: dict[str, Any], name: str) -> str:
    return str(next((v for k, v in entry["headers"].items() if k.lower() == name), ""))


def recorded_requests(endpoint: str) -> list[Request]:
    """Requests recorded since :func:`start_recording`, oldest first.

    :return: one :class:`Request` per request; ``action`` is the ``X-Amz-Target``
        operation for JSON APIs (``RunJobFlow``), empty for REST APIs (S3, EMR Serverless).
    """
    with urllib.request.urlopen(f"{endpoint}/moto-api/recorder/download-recording",
                                timeout=10) as response:
        lines = response.read().decode().splitlines()
    requests = []
    for line in lines:
        entry = json.loads(line)
        raw = entry.get("body") or ""
        if entry.get("body_encoded"):
            raw = base64.b64decode(raw)
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = raw
        action = _header(entry, "x-amz-target").rsplit(".", 1)[-1]
        requests.append(Request(action, entry["method"], entry["url"], body,
                                _header(entry, "user-agent")))
    return requests


# --- server side: runs inside the moto subprocess -------------------------------------

_exit_codes: dict[str, list[int]] = {}
_exit_codes_lock = threading.Lock()


def _next_exit_code(name: str | None) -> int:
    with _exit_codes_lock:
        queued = _exit_codes.get(name or "") or []
        return queued.pop(0) if queued else 0


def _write_step_logs(cluster: Any, step: Any, code: int) -> None:
    """Write a failed step's logs where EMR writes them (below the cluster's LogUri)."""
    from moto.s3.models import s3_backends

    if not cluster.log_uri or not cluster.log_uri.startswith("s3://"):
        return
    bucket, _, prefix = cluster.log_uri[len("s3://"):].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    base = f"{prefix}{cluster.id}/steps/{step.id}"
    controller = (f"INFO startExec '{' '.join(step.args)}'\n"
                  f"WARN Step failed with exitCode {code} and took 2 seconds\n")
    stderr = f"error: the job exited with status {code}\n"
    s3 = s3_backends[ACCOUNT_ID]["aws"]
    s3.put_object(bucket, f"{base}/controller.gz", gzip.compress(controller.encode()))
    s3.put_object(bucket, f"{base}/stderr.gz", gzip.compress(stderr.encode()))


def _install_emr_step_lifecycle() -> None:
    from moto.core.utils import utcnow
    from moto.emr import models
    from moto.moto_api import state_manager
    from moto.moto_api._internal.managed_state_model import ManagedState

    state_manager.register_default_transition(
        model_name=STEP_MODEL, transition={"progression": "manual", "times": 1})

    class ManagedStep(models.Step):  # type: ignore[misc]
        """moto's EMR step whose state progresses under moto's state manager."""

        # moto files its models by the service named in the module path.
        __module__ = models.__name__

        def __init__(self, state: str, **kwargs: Any) -> None:
            self._lifecycle = ManagedState(
                STEP_MODEL, [("PENDING", "RUNNING"), ("RUNNING", "COMPLETED")])
            self.failure_details: dict[str, str] | None = None
            # EMR queues every new step as PENDING (moto starts a cluster's first one
            # RUNNING); its first poll then sees it running, the next one finished.
            super().__init__("PENDING", **kwargs)

        @property
        def state(self) -> str:
            return str(self._state)

        @state.setter
        def state(self, value: str) -> None:
            self._state = value
            self._lifecycle.status = value

        @property
        def status(self) -> dict[str, Any]:
            status = dict(super().status)
            if self.failure_details:
                status["FailureDetails"] = self.failure_details
            return status

        def observe(self, cluster: Any) -> None:
            """One poll of this step: let the state manager move it on."""
            self._lifecycle.advance()
            new = self._lifecycle.status
            if new == self._state:
                return
            if new == "RUNNING":
                self.start_date_time = utcnow()
            if new == "COMPLETED":
                code = _next_exit_code(self.name)
                if code:
                    new = "FAILED"
                    self._lifecycle.status = new
                    log = f"{cluster.log_uri or ''}{cluster.id}/steps/{self.id}/stderr.gz"
                    self.failure_details = {"Reason": "Unknown Error.", "LogFile": log,
                                            "Message": f"the step exited with status {code}"}
                    _write_step_logs(cluster, self, code)
                self.end_date_time = utcnow()
            self._state = new

    describe_step = models.ElasticMapReduceBackend.describe_step

    def observed_describe_step(self: Any, cluster_id: str, step_id: str) -> Any:
        step = describe_step(self, cluster_id, step_id)
        if isinstance(step, ManagedStep):
            step.observe(self.clusters[cluster_id])
        return step

    models.Step = ManagedStep
    models.ElasticMapReduceBackend.describe_step = observed_describe_step


def _install_serverless_exit_codes() -> None:
    from moto.emrserverless import models

    start_job_run = models.EMRServerlessBackend.start_job_run

    def start_failing_job_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        job_run = start_job_run(self, *args, **kwargs)
        code = _next_exit_code(kwargs.get("name"))
        if code:
            job_run.state = "FAILED"
            job_run.state_details = (
                "Job failed, please check complete logs in configured logging destination. "
                f"ExitCode: {code}. Last few exceptions: error: the job exited with status "
                f"{code}")
        return job_run

    models.EMRServerlessBackend.start_job_run = start_failing_job_run


def _serve(argv: list[str]) -> None:
    import moto.server

    _install_emr_step_lifecycle()
    _install_serverless_exit_codes()

    class WithTestRoutes(moto.server.DomainDispatcherApplication):  # type: ignore[misc]
        """moto's WSGI application plus the route that queues exit statuses."""

        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == EXIT_CODES_ROUTE:
                size = int(environ.get("CONTENT_LENGTH") or 0)
                queued = json.loads(environ["wsgi.input"].read(size) or b"{}")
                with _exit_codes_lock:
                    _exit_codes.clear()
                    _exit_codes.update({k: [int(c) for c in v] for k, v in queued.items()})
                start_response("200 OK", [("Content-Type", "application/json")])
                return [b"{}"]
            return super().__call__(environ, start_response)

    moto.server.DomainDispatcherApplication = WithTestRoutes
    moto.server.main(argv)


if __name__ == "__main__":
    _serve(sys.argv[1:])
