"""The ``emr`` runner in ``dag.test()`` against a local AWS: moto's server on 127.0.0.1.

``tpch_daily`` is parsed with ``PIPELINE_RUNNER=emr`` and run in-process by Airflow; every
operator and sensor is the amazon provider's own (or a subclass that only adds the
failure's cause), talking to the moto server through the ``aws_default`` connection. No
Spark runs: the "cluster" is moto's.

moto 5.2 does not model everything these operators rely on; the workarounds, all inside
the fake service or on the test's side of it, never in place of an operator:

* **Instance fleets.** ``RunJobFlow`` accepts instance fleets but moto does not keep them
  (``ListInstanceFleets`` fails). The fleets are asserted on the ``RunJobFlow`` request
  that ``create_emr_cluster`` actually sent, as moto's request recorder received it
  (``/moto-api/recorder/``, see ``tests/support/aws.py``).
* **Steps stay RUNNING.** moto never moves an EMR step on, and it has no state-manager
  model, no ``CancelSteps`` and no other API that does. The test server (``tests/support/aws.py``)
  registers EMR steps with moto's own state manager (model ``emr::step``, moto's
  ``manual`` progression with ``times=1``: one transition per ``DescribeStep`` of the
  step): a new step is PENDING, the sensor's first poll sees it RUNNING, the second one
  COMPLETED. So every step is polled at least twice, which the tests check.
* **Failing steps.** A step "fails" when the test queued a non-zero exit status for its
  name (``POST /_tests/exit-codes``): it ends FAILED and the server writes the step's
  controller log where EMR writes it, below the cluster's ``LogUri``, ending ``Step failed
  with exitCode N``. The watcher reads that log through S3 like it would on AWS.
* **EMR Serverless** job runs do complete in moto (``SUCCESS`` at once); a queued exit
  status makes one end FAILED with ``ExitCode: N`` in its ``stateDetails``. The
  application is created with boto3 by the test: moto reports a new application STARTED,
  which the provider's create-application operator never accepts as CREATED, and the DAG
  does not create applications anyway.
* **Deferral.** The provider's EMR triggers need ``aiobotocore``, which cannot be
  installed next to this venv's botocore 1.44 (aiobotocore 3.10 needs botocore < 1.43.118),
  so the runs use ``EMR_DEFERRABLE=false``: the sensors poke.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.support.airflow_helpers import (
    ROOT,
    Captured,
    import_errors_in_a_fresh_process,
    parse_daily_dag,
)
from tests.support.aws import (
    ACCOUNT_ID,
    Request,
    client,
    queue_exit_codes,
    recorded_requests,
    start_recording,
    stop_recording,
)
from tests.support.environment import environment

LANDING = "s3://tpch-lakehouse-landing/drops"
LAKE = "s3://tpch-lakehouse-lake/tpch"
BUCKETS = ("tpch-lakehouse-landing", "tpch-lakehouse-lake", "tpch-lakehouse-logs")
SERVERLESS_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/tpch-emr-serverless-job"
PIPELINE = ("ingest", "silver", "gold", "quality", "report")
DEPLOY = ROOT / "deploy" / "aws"


@dataclass
class Run:
    """The outcome of one ``dag.test()`` and the AWS requests Airflow made during it."""

    state: str
    tries: dict[str, int]
    states: dict[str, str]
    requests: list[Request]

    def sent(self, action: str) -> list[Any]:
        """Bodies of the JSON API requests of one action (``RunJobFlow``), in order."""
        return [r.body for r in self.requests if r.action == action]


def _env(endpoint: str) -> dict[str, str]:
    return {
        # moto's documented fake credentials (the local moto server accepts any), marked
        # for the secret scan (tests/integration/repo/test_security.py) where it would
        # take them for real ones.
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": "testing",
            "password": "testing",  # pragma: allowlist secret
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
        "AWS_DEFAULT_REGION": "us-east-1",
        "PIPELINE_RUNNER": "emr",
        "LAKE_URI": LAKE,
        "LANDING_URI": LANDING,
        "EMR_POKE_SECONDS": "0.3",
        "EMR_DEFERRABLE": "false",
        "EMR_STEP_LOG_WAIT_SECONDS": "5",
    }


@pytest.fixture(scope="module")
def aws(moto_endpoint: str, airflow_db: Path) -> Iterator[str]:
    """The local AWS with the project's buckets, wired up as ``aws_default``."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in _env(moto_endpoint).items():
            monkeypatch.setenv(key, value)
        s3 = client("s3", moto_endpoint)
        existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        for bucket in set(BUCKETS) - existing:
            s3.create_bucket(Bucket=bucket)
        yield moto_endpoint
        stop_recording(moto_endpoint)
        queue_exit_codes(moto_endpoint, {})


def _marker(endpoint: str, ds: str) -> None:
    client("s3", endpoint).put_object(Bucket=BUCKETS[0], Key=f"drops/ds={ds}/_SUCCESS", Body=b"")


def _looked_for(request: Request, ds: str) -> bool:
    return request.method == "HEAD" and unquote(request.url).endswith(
        f"/{BUCKETS[0]}/drops/ds={ds}/_SUCCESS")


def _marker_once_looked_for(endpoint: str, ds: str) -> threading.Thread:
    """Upload the drop's marker once the sensor has looked for it (and not found it)."""

    def land() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(_looked_for(r, ds) for r in recorded_requests(endpoint)):
                _marker(endpoint, ds)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=land, daemon=True)
    thread.start()
    return thread


def run_dag(endpoint: str, ds: str, exit_codes: dict[str, list[int]] | None = None,
            before: Callable[[], object] | None = None, **env: str) -> Run:
    """Parse ``tpch_daily`` under ``env`` and run it in-process for ``ds``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    queue_exit_codes(endpoint, exit_codes or {})
    with environment(env):
        dag = parse_daily_dag()
        sensor = dag.get_task("wait_for_drop")
        sensor.poke_interval, sensor.timeout = 1.0, 60.0
        start_recording(endpoint)
        if before is not None:
            before()
        run = dag.test(logical_date=dt.datetime.fromisoformat(ds).replace(tzinfo=dt.UTC))
        with create_session() as session:
            tis = session.query(TaskInstance).filter(TaskInstance.dag_id == "tpch_daily",
                                                     TaskInstance.run_id == run.run_id).all()
            return Run(str(run.state), {t.task_id: t.try_number for t in tis},
                       {t.task_id: str(t.state) for t in tis}, _from_airflow(endpoint))


def _from_airflow(endpoint: str) -> list[Request]:
    """Recorded requests sent by Airflow's AWS hooks (their user agent names Airflow)."""
    return [r for r in recorded_requests(endpoint) if "Airflow/" in r.user_agent]


def _expected_arguments(step: str, ds: str) -> list[str]:
    from lakehouse.config import RUNNERS, PipelineConfig

    from tests.support.runner_commands import job_command

    local = job_command(step, PipelineConfig(runner="local", lake=LAKE, landing=LANDING), ds)
    return [RUNNERS["emr"].application, *local[2:]]


@pytest.fixture(scope="module")
def cluster_run(aws: str) -> Run:
    """A cluster-mode run whose drop lands late and whose ``silver`` fails once (exit 1)."""
    ds = "1998-08-02"
    return run_dag(aws, ds, {f"tpch silver {ds}": [1]},
                   before=lambda: _marker_once_looked_for(aws, ds))


def test_the_cluster_is_created_with_on_demand_primary_and_core_and_a_spot_task_fleet(
        cluster_run: Run) -> None:
    [request] = cluster_run.sent("RunJobFlow")
    fleets = {f["InstanceFleetType"]: f for f in request["Instances"]["InstanceFleets"]}
    assert set(fleets) == {"MASTER", "CORE", "TASK"}
    for kind in ("MASTER", "CORE"):
        assert fleets[kind]["TargetOnDemandCapacity"] >= 1
        assert "TargetSpotCapacity" not in fleets[kind]
    assert fleets["MASTER"]["TargetOnDemandCapacity"] == 1
    task = fleets["TASK"]
    assert task["TargetSpotCapacity"] >= 1 and "TargetOnDemandCapacity" not in task
    spot = task["LaunchSpecifications"]["SpotSpecification"]
    assert spot["AllocationStrategy"] == "price-capacity-optimized"
    assert len({c["InstanceType"] for c in task["InstanceTypeConfigs"]}) >= 4
    assert request["ReleaseLabel"] == "emr-spark-8.0.0"
    assert request["Name"] == "tpch_daily 1998-08-02"
    assert {"Name": "Spark"} in request["Applications"]
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert {"Key": "project", "Value": "tpch-lakehouse"} in request["Tags"]
    classifications = {c["Classification"]: c for c in request["Configurations"]}
    assert classifications["delta-defaults"]["Properties"] == {"delta.enabled": "true"}
    [export] = classifications["spark-env"]["Configurations"]
    assert export["Properties"]["PIPELINE_RUNNER"] == "emr"
    assert export["Properties"]["DELTA_DYNAMODB_TABLE"] == "tpch_delta_log"


def test_every_step_runs_the_contract_command_line_from_the_wheel(cluster_run: Run) -> None:
    from lakehouse.config import RUNNERS

    application = RUNNERS["emr"].application
    added = [step for body in cluster_run.sent("AddJobFlowSteps") for step in body["Steps"]]
    # silver twice: its first step failed and the retry submitted it again.
    assert [s["Name"] for s in added] == [
        f"tpch {step} 1998-08-02" for step in ("ingest", "silver", "silver", "gold",
                                               "quality", "report")
    ]
    for definition in added:
        args = definition["HadoopJarStep"]["Args"]
        step = definition["Name"].split()[1]
        assert definition["HadoopJarStep"]["Jar"] == "command-runner.jar"
        assert definition["ActionOnFailure"] == "CONTINUE"
        assert args[0] == "spark-submit"
        at = args.index(application)
        assert args[at:] == _expected_arguments(step, "1998-08-02")
        options = args[1:at]
        assert options[:2] == ["--deploy-mode", "client"]
        wheel = application.rsplit("/", 1)[0] + "/tpch_lakehouse-0.1.0-py3-none-any.whl"
        assert options[options.index("--py-files") + 1].split(",")[0] == wheel
        assert "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar" in options[
            options.index("--jars") + 1].split(",")


def test_the_sensor_sees_each_step_running_then_complete(cluster_run: Run, aws: str) -> None:
    assert cluster_run.state == "success"
    assert cluster_run.states == {t: "success" for t in (
        "wait_for_drop", "create_emr_cluster", *PIPELINE, *(f"submit_{s}" for s in PIPELINE),
        "publish", "notify", "terminate_emr_cluster")}
    polls: dict[str, int] = {}
    for body in cluster_run.sent("DescribeStep"):
        polls[body["StepId"]] = polls.get(body["StepId"], 0) + 1
    emr = client("emr", aws)
    [cluster] = {b["JobFlowId"] for b in cluster_run.sent("AddJobFlowSteps")}
    steps = emr.list_steps(ClusterId=cluster)["Steps"]
    assert len(steps) == 6
    for step in steps:
        # A new step is PENDING: the first poll moves it on to RUNNING, so a watcher that
        # finished has seen it unfinished first.
        assert polls[step["Id"]] >= 2, step["Name"]
    assert sorted(s["Status"]["State"] for s in steps) == ["COMPLETED"] * 5 + ["FAILED"]


def test_a_transient_step_failure_is_submitted_again_on_retry(cluster_run: Run) -> None:
    assert cluster_run.tries["silver"] == 2
    assert cluster_run.tries["submit_silver"] == 1
    assert {cluster_run.tries[s] for s in PIPELINE if s != "silver"} == {1}


def test_the_drop_sensor_finds_the_marker_uploaded_to_s3(cluster_run: Run) -> None:
    looks = [r for r in cluster_run.requests if _looked_for(r, "1998-08-02")]
    # The marker landed only after the sensor had looked once: it looked again, found it.
    assert len(looks) >= 2
    assert cluster_run.states["wait_for_drop"] == "success"


def test_the_cluster_is_terminated_after_the_run(cluster_run: Run, aws: str) -> None:
    [terminate] = cluster_run.sent("TerminateJobFlows")
    [cluster] = terminate["JobFlowIds"]
    state = client("emr", aws).describe_cluster(ClusterId=cluster)["Cluster"]["Status"]["State"]
    assert state == "TERMINATED"


def test_unusable_input_fails_at_once_and_the_teardown_still_terminates_the_cluster(
        aws: str, alerts: Captured) -> None:
    ds = "1998-08-03"
    _marker(aws, ds)
    alerts.clear()
    run = run_dag(aws, ds, {f"tpch ingest {ds}": [3]})

    assert run.state == "failed"
    assert run.states["ingest"] == "failed" and run.tries["ingest"] == 1
    assert {run.states[s] for s in ("submit_silver", "silver", "gold", "quality")} == {
        "upstream_failed"}
    assert run.states["report"] == "success"  # the report runs after a failed step
    assert run.states["notify"] == "upstream_failed"
    assert run.states["terminate_emr_cluster"] == "success"
    [terminate] = run.sent("TerminateJobFlows")
    state = client("emr", aws).describe_cluster(
        ClusterId=terminate["JobFlowIds"][0])["Cluster"]["Status"]["State"]
    assert state == "TERMINATED"
    [failure] = [m for m in alerts.slack if m.startswith("[FAILED]")]
    assert (f"[FAILED] dag=tpch_daily task=ingest ds={ds} try=1 of 4: UnusableInput: ingest: "
            "unusable input, not retried (exit 3). error: the job exited with status 3"
            ) in failure


@pytest.fixture(scope="module")
def serverless_run(aws: str) -> Run:
    """A serverless-mode run whose ``gold`` job run fails once (exit 1)."""
    ds = "1998-08-04"
    _marker(aws, ds)
    # moto 5.2 accepts only labels shaped like emr-7.12.0, not emr-spark-8.0.0; the DAG never
    # reads the application's release (the application is created outside it).
    application = client("emr-serverless", aws).create_application(
        name="tpch-lakehouse", releaseLabel="emr-7.12.0", type="SPARK",
        tags={"project": "tpch-lakehouse"})["applicationId"]
    return run_dag(aws, ds, {f"tpch gold {ds}": [1]}, EMR_MODE="serverless",
                   EMR_SERVERLESS_APPLICATION_ID=application,
                   EMR_SERVERLESS_EXECUTION_ROLE_ARN=SERVERLESS_ROLE)


def test_serverless_mode_runs_every_step_as_a_job_run(serverless_run: Run) -> None:
    from lakehouse.config import RUNNERS

    assert serverless_run.state == "success"
    assert serverless_run.states == {t: "success" for t in ("wait_for_drop", *PIPELINE,
                                                             "publish", "notify")}
    assert serverless_run.tries["gold"] == 2  # exit 1 is retried, as a new job run
    assert not serverless_run.sent("RunJobFlow")
    started = [r.body for r in serverless_run.requests
               if r.method == "POST" and r.url.endswith("/jobruns")]
    assert [b["name"] for b in started] == [
        f"tpch {s} 1998-08-04" for s in ("ingest", "silver", "gold", "gold", "quality", "report")]
    for body in started:
        driver = body["jobDriver"]["sparkSubmit"]
        step = body["name"].split()[1]
        assert [driver["entryPoint"], *driver["entryPointArguments"]] == _expected_arguments(
            step, "1998-08-04")
        assert driver["entryPoint"] == RUNNERS["emr"].application
        parameters = driver["sparkSubmitParameters"].split()
        assert "spark.emr-serverless.driverEnv.PIPELINE_RUNNER=emr" in parameters
        assert body["executionRoleArn"] == SERVERLESS_ROLE
        assert body["configurationOverrides"]["monitoringConfiguration"][
            "s3MonitoringConfiguration"]["logUri"] == "s3://tpch-lakehouse-logs/emr/serverless/"


def test_the_delta_log_table_definition_creates_the_table_delta_expects(aws: str) -> None:
    from jobs.settings import DELTA_LOG_TABLE, RUNTIMES

    dynamodb = client("dynamodb", aws)
    table = json.loads((DEPLOY / "dynamodb-delta-log-table.json").read_text())
    dynamodb.create_table(**table)
    dynamodb.update_time_to_live(**json.loads(
        (DEPLOY / "dynamodb-delta-log-ttl.json").read_text()))

    described = dynamodb.describe_table(TableName=DELTA_LOG_TABLE)["Table"]
    # Delta's S3DynamoDBLogStore: key (tablePath, fileName), both strings; expireTime TTL.
    assert described["KeySchema"] == [{"AttributeName": "tablePath", "KeyType": "HASH"},
                                      {"AttributeName": "fileName", "KeyType": "RANGE"}]
    assert {(a["AttributeName"], a["AttributeType"])
            for a in described["AttributeDefinitions"]} == {("tablePath", "S"), ("fileName", "S")}
    ttl = dynamodb.describe_time_to_live(TableName=DELTA_LOG_TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expireTime"}
    for runtime in ("emr", "kubernetes"):
        conf = RUNTIMES[runtime].conf
        assert conf["spark.delta.logStore.s3.impl"] == "io.delta.storage.S3DynamoDBLogStore"
        assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3DynamoDBLogStore"
        assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == DELTA_LOG_TABLE
        assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == "us-east-1"


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    def listed(value: str | list[str]) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    return [{**s, "Action": listed(s["Action"]), "Resource": listed(s["Resource"])}
            for s in policy["Statement"]]


# Actions that take no resource but "*" (AWS Service Authorization Reference); each such
# statement must narrow itself with a condition instead.
_UNSCOPED = {"cloudwatch:PutMetricData", "elasticmapreduce:RunJobFlow"}
POLICIES = ("airflow-policy.json", "emr-instance-profile-policy.json",
            "emr-serverless-execution-policy.json", "spark-driver-irsa-policy.json")


@pytest.mark.parametrize("name", POLICIES)
def test_iam_policy_is_valid_and_least_privilege(aws: str, name: str) -> None:
    from lakehouse.config import PipelineConfig
    from lakehouse.emr import emr_settings

    from jobs.settings import DELTA_LOG_TABLE

    defaults = emr_settings(PipelineConfig(runner="emr", lake=LAKE, landing=LANDING))
    passed_roles = {defaults.job_flow_role, defaults.service_role,
                    SERVERLESS_ROLE.rsplit("/", 1)[1]}
    text = (DEPLOY / "iam" / name).read_text()
    iam = client("iam", aws)
    arn = iam.create_policy(PolicyName=f"tpch-{name.removesuffix('.json')}",
                            PolicyDocument=text)["Policy"]["Arn"]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v1"
    for statement in _statements(json.loads(text)):
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action, (name, action)
        if "*" in statement["Resource"]:
            assert statement["Resource"] == ["*"]
            assert set(statement["Action"]) <= _UNSCOPED, statement["Sid"]
            assert statement.get("Condition"), statement["Sid"]
        for resource in statement["Resource"]:
            if resource.startswith("arn:aws:s3:::"):
                assert resource.split(":::")[1].startswith("tpch-lakehouse-"), resource
        if any(a.startswith("dynamodb:") for a in statement["Action"]):
            # What Delta's S3DynamoDBLogStore calls; CreateTable stays with the deployment.
            assert set(statement["Action"]) == {"dynamodb:DescribeTable", "dynamodb:GetItem",
                                                "dynamodb:PutItem", "dynamodb:Query"}
            assert statement["Resource"] == [f"arn:aws:dynamodb:*:*:table/{DELTA_LOG_TABLE}"]
        if "iam:PassRole" in statement["Action"]:
            # Only the roles the emr runner names, and only to the service that needs them.
            assert statement["Action"] == ["iam:PassRole"]
            assert {r.rsplit("/", 1)[1] for r in statement["Resource"]} <= passed_roles
            keys = {key for test in statement["Condition"].values() for key in test}
            assert "iam:PassedToService" in keys


def _iam_action(request: Request) -> str:
    """The IAM action of a recorded request (the JSON, EMR Serverless and S3 calls made)."""
    if request.action:
        return f"elasticmapreduce:{request.action}"
    path = request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
    if path.startswith("applications/"):
        parts = path.split("/")
        if parts[2:] == ["jobruns"]:
            return "emr-serverless:StartJobRun"
        if len(parts) == 4 and parts[2] == "jobruns":
            return "emr-serverless:GetJobRun"
        if parts[2:] == ["start"]:
            return "emr-serverless:StartApplication"
        return "emr-serverless:GetApplication"
    if request.method in ("GET", "HEAD") and "/" in path and "list-type" not in request.url:
        return "s3:GetObject"
    return "s3:ListBucket"


def test_the_airflow_role_allows_every_call_the_runs_made(cluster_run: Run,
                                                          serverless_run: Run) -> None:
    policy = json.loads((DEPLOY / "iam" / "airflow-policy.json").read_text())
    allowed = {a for s in _statements(policy) for a in s["Action"]}
    made = {_iam_action(r) for run in (cluster_run, serverless_run) for r in run.requests}
    assert made <= allowed, made - allowed
    # The run used every EMR permission the role has, except cancelling and tagging.
    assert {a for a in allowed if a.startswith(("elasticmapreduce:", "emr-serverless:"))} - made \
        <= {"emr-serverless:CancelJobRun", "emr-serverless:StartApplication",
            "elasticmapreduce:AddTags"}


def test_serverless_mode_without_an_application_is_an_import_error_naming_it() -> None:
    count, errors = import_errors_in_a_fresh_process(
        PIPELINE_RUNNER="emr", EMR_MODE="serverless", EMR_SERVERLESS_APPLICATION_ID="")
    assert count == 1 and "EMR_SERVERLESS_APPLICATION_ID" in errors


def test_exit_status_is_read_from_emr_logs_and_job_run_details() -> None:
    from lakehouse.emr import exit_status_from_controller_log, exit_status_from_state_details

    controller = ("2026-05-30T10:00:01.000Z INFO startExec 'spark-submit ...'\n"
                  "2026-05-30T10:04:12.000Z WARN Step failed with exitCode 2 and took 251 "
                  "seconds\n")
    assert exit_status_from_controller_log(controller) == 2
    assert exit_status_from_controller_log("INFO Step succeeded\n") is None
    assert exit_status_from_state_details(
        "Job failed, please check complete logs in configured logging destination. "
        "ExitCode: 3. Last few exceptions: ...") == 3
    assert exit_status_from_state_details("Job run cancelled by user") is None


def test_artifact_names_match_the_project_and_its_jars() -> None:
    import tomllib

    from lakehouse.emr import LINEAGE_JAR, PROJECT_WHEEL

    from jobs.settings import OPENLINEAGE_VERSION

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert PROJECT_WHEEL == (f"{project['name'].replace('-', '_')}-{project['version']}"
                             "-py3-none-any.whl")
    assert LINEAGE_JAR == f"openlineage-spark_2.13-{OPENLINEAGE_VERSION}.jar"


def test_emr_deferrable_turns_on_deferral_of_every_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG
    from lakehouse.config import PipelineConfig
    from lakehouse.emr import emr_bracket, emr_step

    config = PipelineConfig(runner="emr", lake=LAKE, landing=LANDING)
    for value, expected in (("true", True), ("false", False)):
        monkeypatch.setenv("EMR_DEFERRABLE", value)
        with DAG(dag_id=f"deferrable_{value}", schedule=None) as dag:
            emr_step("silver", config, "silver", ["silver"])
            bracket = emr_bracket(config)
        assert bracket is not None
        assert dag.get_task("silver").deferrable is expected
        assert bracket[0].deferrable is expected
