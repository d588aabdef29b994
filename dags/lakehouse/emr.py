"""The ``emr`` runner: the contract's command line as EMR steps or EMR Serverless job runs.

``EMR_MODE`` (read like every setting: environment, Airflow Variable, default) picks how:

* ``cluster`` (default): one transient EMR on EC2 cluster per DAG run. The setup task
  ``create_emr_cluster`` (EmrCreateJobFlowOperator) starts it with instance fleets, the
  primary and core fleets on demand and a task fleet on spot spread over several
  instance types with the ``price-capacity-optimized`` allocation strategy. Each pipeline
  step is a task group of two tasks: ``submit_<step>`` (EmrAddStepsOperator) adds the EMR
  step, ``<step>`` (:class:`EmrStepWatch`, the EmrStepSensor) waits for it and carries
  the step's pool, outlets, retries and timeout. The teardown ``terminate_emr_cluster``
  (EmrTerminateJobFlowOperator) ends the cluster whatever happened to the steps.
* ``serverless``: each step is one job run (:class:`EmrServerlessStep`, the
  EmrServerlessStartJobOperator) on an existing EMR Serverless application
  (``EMR_SERVERLESS_APPLICATION_ID``, created once with auto-start and auto-stop); there
  is no compute to set up or tear down.

Either way the job runs the contract's command line, ``spark-submit <runner options>
<artifacts>/main.py <step> --ds ... --lake ... --landing ...``, with the project wheel
from ``EMR_ARTIFACTS_URI`` on ``--py-files``. Runner options: client deploy mode on EC2
(``spark-submit`` then exits with the job's own status, which EMR writes into the step's
controller log), EMR's Delta Lake jars including the DynamoDB log store, and the
OpenLineage configuration of :mod:`lakehouse.lineage`.

**Release.** ``emr-spark-8.0.0`` (May 2026) is the first EMR release with Spark 4: Spark
4.0.2-amzn-0 and Delta 4.0.0-amzn-1, Scala 2.13, Python 3.11, on EC2, EKS and
Serverless. The jobs are built and tested with Spark 4.0.1 and Delta 4.0.1; on EMR they
run on EMR's builds of the same minor versions (same table protocol, no new features
used), which is the supported combination there, rather than shipping our own Delta jars
next to EMR's. EMR 7.x ships Spark 3.5 and Delta 3.x and cannot run these jobs.

**Failures.** EMR does not return a step's exit status through its API; the controller
log EMR writes below the cluster's ``LogUri`` ends with ``Step failed with exitCode N``.
:class:`EmrStepWatch` reads it (waiting up to ``EMR_STEP_LOG_WAIT_SECONDS`` for EMR to
upload it) and raises :mod:`lakehouse.failures`' exception for that status, so exit 2 and
3 fail at once and exit 1 is retried, as with the other runners; a status it cannot find
counts as transient. A retry first looks for the step of the earlier try: it follows it
if it is still pending or running (no second writer), and submits the step again only if
it failed. EMR Serverless puts the driver's status into the job run's ``stateDetails``
(``ExitCode: N``).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook
from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrServerlessStartJobOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import TaskGroup
from airflow.sdk.exceptions import AirflowException

from lakehouse.command import DS, job_error
from lakehouse.config import PipelineConfig, setting
from lakehouse.failures import RETRY_POLICY, StepFailed, failure_for
from lakehouse.lineage import lineage_conf

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

__all__ = [
    "EMR_CLUSTER_TASK",
    "EMR_DELTA_JARS",
    "MODES",
    "PROJECT_WHEEL",
    "TERMINATE_TASK",
    "EmrServerlessStep",
    "EmrSettings",
    "EmrStepWatch",
    "emr_bracket",
    "emr_settings",
    "emr_step",
    "exit_status_from_controller_log",
    "exit_status_from_state_details",
    "job_environment",
    "job_flow_overrides",
    "runner_options",
    "step_name",
]

MODES = ("cluster", "serverless")
EMR_CLUSTER_TASK = "create_emr_cluster"
TERMINATE_TASK = "terminate_emr_cluster"
CLUSTER_ID = f"{{{{ ti.xcom_pull(task_ids='{EMR_CLUSTER_TASK}') }}}}"
# `pip wheel --no-deps .` of this project; uploaded with jobs/main.py to EMR_ARTIFACTS_URI.
PROJECT_WHEEL = "tpch_lakehouse-0.1.0-py3-none-any.whl"
# The OpenLineage Spark listener (jobs.settings.OPENLINEAGE_VERSION), in <artifacts>/jars/.
LINEAGE_JAR = "openlineage-spark_2.13-1.37.0.jar"
# Delta Lake as EMR installs it on every node and in the Serverless image; the first jar
# also holds Delta's Python API (`delta.tables`), hence it is on --py-files as well.
EMR_DELTA_JARS = (
    "/usr/share/aws/delta/lib/delta-spark.jar",
    "/usr/share/aws/delta/lib/delta-storage.jar",
    "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar",
)
# Clusters carry this tag; the Airflow role's IAM policy only touches tagged clusters.
PROJECT_TAG = {"Key": "project", "Value": "tpch-lakehouse"}
_CONTROLLER_EXIT = re.compile(r"Step failed with exitCode (-?\d+)")
_SERVERLESS_EXIT = re.compile(r"exit ?code:?\s*(-?\d+)", re.IGNORECASE)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _deferrable(value: str) -> bool:
    """``EMR_DEFERRABLE``: ``true``, ``false`` or ``auto``.

    ``auto`` defers when the provider can: its triggers need ``aiobotocore`` (the amazon
    provider's ``aiobotocore`` extra) where the triggerer runs.
    """
    if value == "auto":
        return importlib.util.find_spec("aiobotocore") is not None
    if value not in ("true", "false"):
        raise ValueError(f"EMR_DEFERRABLE={value!r} is not one of true, false, auto")
    return value == "true"


@dataclass(frozen=True)
class EmrSettings:
    """The ``emr`` runner's settings, resolved once per use at parse time.

    :param mode: ``cluster`` (EMR on EC2) or ``serverless``.
    :param application: the job file on S3 (the ``emr`` runner's ``application``).
    :param wheel: the project wheel on S3.
    :param release_label: EMR release, with Spark 4 and Delta 4.
    :param log_uri: where EMR writes cluster, step and job run logs.
    :param job_flow_role: EC2 instance profile of the cluster nodes.
    :param service_role: EMR service role.
    :param subnet_ids: subnets the fleets may use (empty: the account's default VPC).
    :param primary_types: instance types of the on-demand primary fleet.
    :param core_types: instance types of the on-demand core fleet.
    :param task_types: instance types of the spot task fleet (several, for capacity).
    :param core_units: on-demand capacity units of the core fleet.
    :param task_units: spot capacity units of the task fleet.
    :param idle_timeout: the cluster ends itself after this long without steps, should
        the teardown never run.
    :param poke_seconds: seconds between status polls of steps, job runs and clusters
        (AWS waiters take whole seconds, at least one).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param step_log_wait_seconds: how long a failed step's watcher waits for EMR to upload
        the controller log that holds the exit status.
    :param serverless_application_id: the EMR Serverless application (``serverless``).
    :param serverless_role_arn: the job runs' execution role (``serverless``).
    :param dynamodb_table: the Delta log store's DynamoDB table.
    :param dynamodb_region: its region.
    """

    mode: str
    application: str
    wheel: str
    release_label: str
    log_uri: str
    job_flow_role: str
    service_role: str
    subnet_ids: tuple[str, ...]
    primary_types: tuple[str, ...]
    core_types: tuple[str, ...]
    task_types: tuple[str, ...]
    core_units: int
    task_units: int
    idle_timeout: timedelta
    poke_seconds: float
    deferrable: bool
    step_log_wait_seconds: int
    serverless_application_id: str
    serverless_role_arn: str
    dynamodb_table: str
    dynamodb_region: str

    @property
    def artifacts(self) -> str:
        """The S3 prefix that holds the job file, the wheel and the jars."""
        return self.application.rsplit("/", 1)[0]


def emr_settings(config: PipelineConfig) -> EmrSettings:
    """Resolve the ``emr`` runner's settings.

    :param config: resolved configuration (runner ``emr``).
    :return: the settings.
    :raises ValueError: for an unknown mode, or a serverless mode without an application
        or an execution role (an import error in the UI that names the setting).
    """
    mode = setting("EMR_MODE", "cluster").strip().lower()
    if mode not in MODES:
        raise ValueError(f"EMR_MODE={mode!r} is not one of {', '.join(MODES)}")
    application = config.settings.application
    artifacts = application.rsplit("/", 1)[0]
    settings = EmrSettings(
        mode=mode,
        application=application,
        wheel=setting("EMR_WHEEL", f"{artifacts}/{PROJECT_WHEEL}"),
        release_label=setting("EMR_RELEASE_LABEL", "emr-spark-8.0.0"),
        log_uri=setting("EMR_LOG_URI", "s3://tpch-lakehouse-logs/emr/"),
        job_flow_role=setting("EMR_JOB_FLOW_ROLE", "tpch-emr-instance"),
        service_role=setting("EMR_SERVICE_ROLE", "tpch-emr-service"),
        subnet_ids=_csv(setting("EMR_SUBNET_IDS", "")),
        primary_types=_csv(setting("EMR_PRIMARY_INSTANCE_TYPES",
                                   "m7i.xlarge,m6i.xlarge,m5.xlarge")),
        core_types=_csv(setting("EMR_CORE_INSTANCE_TYPES",
                                "m7i.2xlarge,m6i.2xlarge,m5.2xlarge")),
        task_types=_csv(setting(
            "EMR_TASK_INSTANCE_TYPES",
            "m7i.2xlarge,m6i.2xlarge,m6a.2xlarge,m5.2xlarge,r6i.2xlarge,r5.2xlarge")),
        core_units=int(setting("EMR_CORE_UNITS", "2")),
        task_units=int(setting("EMR_TASK_SPOT_UNITS", "4")),
        idle_timeout=timedelta(minutes=int(setting("EMR_IDLE_TIMEOUT_MINUTES", "60"))),
        poke_seconds=float(setting("EMR_POKE_SECONDS", "60")),
        deferrable=_deferrable(setting("EMR_DEFERRABLE", "auto").strip().lower()),
        step_log_wait_seconds=int(setting("EMR_STEP_LOG_WAIT_SECONDS", "300")),
        serverless_application_id=setting("EMR_SERVERLESS_APPLICATION_ID", ""),
        serverless_role_arn=setting("EMR_SERVERLESS_EXECUTION_ROLE_ARN", ""),
        dynamodb_table=setting("DELTA_DYNAMODB_TABLE", "tpch_delta_log"),
        dynamodb_region=setting("DELTA_DYNAMODB_REGION", "us-east-1"),
    )
    if mode == "serverless":
        for name, value in (("EMR_SERVERLESS_APPLICATION_ID", settings.serverless_application_id),
                            ("EMR_SERVERLESS_EXECUTION_ROLE_ARN", settings.serverless_role_arn)):
            if not value:
                raise ValueError(f"EMR_MODE=serverless needs {name}")
    return settings


def step_name(step: str) -> str:
    """The EMR step's and the job run's name (templated ``ds``): unique per cluster."""
    return f"tpch {step} {DS}"


def job_environment(settings: EmrSettings) -> dict[str, str]:
    """Environment of the job on EMR: the runtime switch and the Delta log store's table."""
    return {
        "PIPELINE_RUNNER": "emr",
        "DELTA_DYNAMODB_TABLE": settings.dynamodb_table,
        "DELTA_DYNAMODB_REGION": settings.dynamodb_region,
    }


def _conf(pairs: dict[str, str]) -> list[str]:
    return [arg for key, value in pairs.items() for arg in ("--conf", f"{key}={value}")]


def runner_options(settings: EmrSettings) -> list[str]:
    """``spark-submit`` options between the program and the job file.

    :param settings: the runner's settings (``mode`` decides the deploy mode and how the
        job's environment is passed: ``spark-env`` on a cluster, ``--conf`` on Serverless).
    :return: the options.
    """
    lineage = lineage_conf()
    jars = [*EMR_DELTA_JARS, *([f"{settings.artifacts}/jars/{LINEAGE_JAR}"] if lineage else [])]
    options = ["--deploy-mode", "client"] if settings.mode == "cluster" else []
    options += ["--jars", ",".join(jars), "--py-files", f"{settings.wheel},{EMR_DELTA_JARS[0]}"]
    if settings.mode == "serverless":
        env = job_environment(settings)
        options += _conf({f"spark.emr-serverless.driverEnv.{k}": v for k, v in env.items()})
        options += _conf({f"spark.executorEnv.{k}": v for k, v in env.items()})
    return [*options, *_conf(lineage)]


def step_definition(step: str, settings: EmrSettings, job_args: list[str]) -> dict[str, Any]:
    """The EMR step that runs one pipeline step (``command-runner.jar`` runs the line).

    ``ActionOnFailure=CONTINUE``: a failed step leaves the cluster up for the report step;
    the teardown ends it.
    """
    return {
        "Name": step_name(step),
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["spark-submit", *runner_options(settings), settings.application,
                     *job_args],
        },
    }


def _fleet(name: str, kind: str, types: tuple[str, ...], *, on_demand: int = 0,
           spot: int = 0) -> dict[str, Any]:
    fleet: dict[str, Any] = {
        "Name": name,
        "InstanceFleetType": kind,
        # Types of one size class (8 vCPUs for core and task): one unit each.
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in types],
    }
    if spot:
        fleet["TargetSpotCapacity"] = spot
        fleet["LaunchSpecifications"] = {"SpotSpecification": {
            "AllocationStrategy": "price-capacity-optimized",
            # Without spot capacity after 10 minutes the task fleet starts on demand
            # instead: a slower, dearer run rather than a failed one.
            "TimeoutDurationMinutes": 10,
            "TimeoutAction": "SWITCH_TO_ON_DEMAND",
        }}
    else:
        fleet["TargetOnDemandCapacity"] = on_demand
        fleet["LaunchSpecifications"] = {"OnDemandSpecification": {
            "AllocationStrategy": "lowest-price"}}
    return fleet


def job_flow_overrides(settings: EmrSettings) -> dict[str, Any]:
    """``RunJobFlow`` request of the transient cluster (templated name).

    The primary and core fleets are on demand: HDFS and the driver (client mode, on the
    primary node) must not disappear with a spot reclaim. Executors scale out on the spot
    task fleet.
    """
    instances: dict[str, Any] = {
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
        "InstanceFleets": [
            _fleet("primary", "MASTER", settings.primary_types, on_demand=1),
            _fleet("core", "CORE", settings.core_types, on_demand=settings.core_units),
            _fleet("task-spot", "TASK", settings.task_types, spot=settings.task_units),
        ],
    }
    if settings.subnet_ids:
        instances["Ec2SubnetIds"] = list(settings.subnet_ids)
    return {
        "Name": "{{ dag.dag_id }} {{ ds }}",
        "ReleaseLabel": settings.release_label,
        "LogUri": settings.log_uri,
        "JobFlowRole": settings.job_flow_role,
        "ServiceRole": settings.service_role,
        "VisibleToAllUsers": True,
        "Applications": [{"Name": "Spark"}],
        "Configurations": [
            {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
            # spark-env.sh exports these to the spark-submit of every step.
            {"Classification": "spark-env", "Configurations": [
                {"Classification": "export", "Properties": job_environment(settings)},
            ]},
        ],
        "Instances": instances,
        "StepConcurrencyLevel": 1,
        "AutoTerminationPolicy": {"IdleTimeout": int(settings.idle_timeout.total_seconds())},
        "Tags": [PROJECT_TAG, {"Key": "dag", "Value": "{{ dag.dag_id }}"}],
    }


def exit_status_from_controller_log(text: str) -> int | None:
    """The exit status in an EMR step's controller log (``Step failed with exitCode N``)."""
    found = _CONTROLLER_EXIT.findall(text)
    return int(found[-1]) if found else None


def exit_status_from_state_details(text: str) -> int | None:
    """The exit status in an EMR Serverless job run's ``stateDetails`` (``ExitCode: N``)."""
    found = _SERVERLESS_EXIT.search(text or "")
    return int(found.group(1)) if found else None


class EmrStepWatch(EmrStepSensor):
    """EmrStepSensor for one pipeline step: names the cause of a failure, retries the step.

    A retry (try 2 and later) first looks for the step of an earlier try on the cluster by
    its name: it follows it while it is pending or running (never a second writer) and
    submits the same step again only if it failed.

    :param step: the pipeline step.
    :param steps: the EMR step definition, as ``submit_<step>`` added it (templated).
    :param step_log_wait_seconds: how long to wait for the controller log of a failed step.
    """

    template_fields: Sequence[str] = (*EmrStepSensor.template_fields, "steps")
    template_fields_renderers: ClassVar[dict[str, str]] = {"steps": "json"}

    def __init__(self, *, step: str, steps: list[dict[str, Any]],
                 step_log_wait_seconds: int = 300, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.steps = steps
        self.step_log_wait_seconds = step_log_wait_seconds

    def execute(self, context: Context) -> None:
        """Watch the step (or the one this retry follows or submits)."""
        ti = context["ti"]
        if ti.try_number > 1:
            self.step_id = self._step_of_this_try()
        # Deferral resumes in a new operator object: remember which step it waits for.
        ti.xcom_push(key="step_id", value=self.step_id)
        try:
            super().execute(context)
        except AirflowException as exc:
            failure = self._step_failure()
            if failure is None:
                raise
            raise failure from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after deferral; a failed step raises its cause."""
        self.step_id = context["ti"].xcom_pull(task_ids=self.task_id, key="step_id") or self.step_id
        try:
            super().execute_complete(context, event)
        except AirflowException as exc:
            failure = self._step_failure()
            if failure is None:
                raise
            raise failure from exc

    def _step_of_this_try(self) -> str:
        name = self.steps[0]["Name"]
        listed = self.hook.conn.list_steps(ClusterId=self.job_flow_id)["Steps"]  # newest first
        earlier = next((s for s in listed if s["Name"] == name), None)
        if earlier is not None and earlier["Status"]["State"] not in self.failed_states:
            self.log.info("Following step %s (%s) of an earlier try", earlier["Id"],
                          earlier["Status"]["State"])
            return str(earlier["Id"])
        step_ids = self.hook.add_job_flow_steps(job_flow_id=self.job_flow_id, steps=self.steps)
        self.log.info("Submitted %r again as step %s", name, step_ids[0])
        return str(step_ids[0])

    def _step_failure(self) -> StepFailed | None:
        """The cause of the watched step's failure; ``None`` if it did not fail."""
        status = self.hook.conn.describe_step(ClusterId=self.job_flow_id,
                                              StepId=self.step_id)["Step"]["Status"]
        state = status["State"]
        if state not in self.failed_states:
            return None
        code, error = self._exit_status() if state == "FAILED" else (None, "")
        reason = (status.get("FailureDetails") or {}).get("Message") or f"EMR step {state}"
        return failure_for(self.step, code, error or f"{reason} ({self.step_id})")

    def _read_log(self, s3: Any, bucket: str, key: str) -> str | None:
        if not s3.check_for_key(key, bucket):
            return None
        body = s3.get_key(key, bucket).get()["Body"].read()
        return gzip.decompress(body).decode("utf-8", errors="replace")

    def _exit_status(self) -> tuple[int | None, str]:
        """Exit status and the job's last ``error:`` line, from the step's logs on S3."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        cluster = self.hook.conn.describe_cluster(ClusterId=self.job_flow_id)["Cluster"]
        log_uri = cluster.get("LogUri")
        if not log_uri:
            return None, ""
        s3 = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                    verify=self.verify)
        bucket, prefix = S3Hook.parse_s3_url(log_uri)
        base = f"{prefix.rstrip('/')}/{self.job_flow_id}/steps/{self.step_id}".lstrip("/")
        deadline = time.monotonic() + self.step_log_wait_seconds
        while (controller := self._read_log(s3, bucket, f"{base}/controller.gz")) is None:
            if time.monotonic() >= deadline:
                self.log.warning("No controller log of step %s after %ss: exit status unknown",
                                 self.step_id, self.step_log_wait_seconds)
                return None, ""
            time.sleep(min(10.0, max(self.step_log_wait_seconds / 10, 0.5)))
        stderr = self._read_log(s3, bucket, f"{base}/stderr.gz") or ""
        return exit_status_from_controller_log(controller), job_error(stderr)


class EmrServerlessStep(EmrServerlessStartJobOperator):
    """EmrServerlessStartJobOperator for one pipeline step; a failed run raises its cause.

    :param step: the pipeline step.
    """

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def execute(self, context: Context, event: dict[str, Any] | None = None) -> str | None:
        """Start the job run and wait for it; a failed run raises its cause."""
        try:
            return super().execute(context, event)
        except AirflowException as exc:
            failure = self._run_failure(self.job_id)
            if failure is None:
                raise
            raise failure from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after deferral; a failed run raises its cause."""
        try:
            return super().execute_complete(context, event)
        except AirflowException as exc:
            failure = self._run_failure(((event or {}).get("job_details") or {}).get("job_id"))
            if failure is None:
                raise
            raise failure from exc

    def _run_failure(self, job_id: str | None) -> StepFailed | None:
        if not job_id:
            return None
        run = self.hook.conn.get_job_run(applicationId=self.application_id,
                                         jobRunId=job_id)["jobRun"]
        if run["state"] not in EmrServerlessHook.JOB_FAILURE_STATES:
            return None
        details = run.get("stateDetails") or f"job run {job_id} {run['state']}"
        return failure_for(self.step, exit_status_from_state_details(details), details)


def _attempts(timeout: timedelta, poke_seconds: float) -> int:
    return max(1, math.ceil(timeout.total_seconds() / poke_seconds))


def _waiter_delay(settings: EmrSettings) -> int:
    return max(1, round(settings.poke_seconds))


def _serverless_step(step: str, task_id: str, settings: EmrSettings, job_args: list[str],
                     timeout: timedelta, **kwargs: Any) -> EmrServerlessStep:
    return EmrServerlessStep(
        task_id=task_id,
        step=step,
        application_id=settings.serverless_application_id,
        execution_role_arn=settings.serverless_role_arn,
        name=step_name(step),
        job_driver={"sparkSubmit": {
            "entryPoint": settings.application,
            "entryPointArguments": job_args,
            # Space-separated, as EMR Serverless reads it; no value holds a space.
            "sparkSubmitParameters": " ".join(runner_options(settings)),
        }},
        configuration_overrides={"monitoringConfiguration": {"s3MonitoringConfiguration": {
            "logUri": f"{settings.log_uri.rstrip('/')}/serverless/"}}},
        # EMR Serverless cancels a run that outlives the task's own timeout.
        config={"executionTimeoutMinutes": math.ceil(timeout.total_seconds() / 60)},
        wait_for_completion=True,
        waiter_delay=_waiter_delay(settings),
        waiter_max_attempts=_attempts(timeout, _waiter_delay(settings)),
        deferrable=settings.deferrable,
        execution_timeout=timeout,
        retry_policy=RETRY_POLICY,
        **kwargs,
    )


def _cluster_step(step: str, task_id: str, settings: EmrSettings, job_args: list[str],
                  timeout: timedelta, **kwargs: Any) -> TaskGroup:
    definition = step_definition(step, settings, job_args)
    submit_id = f"submit_{task_id}"
    # The trigger rule decides when the step starts, so it belongs to the submission; the
    # pool is held by both tasks, while the step is submitted and while it runs.
    submit_kwargs = {k: kwargs[k] for k in ("pool",) if k in kwargs}
    if "trigger_rule" in kwargs:
        submit_kwargs["trigger_rule"] = kwargs.pop("trigger_rule")
    with TaskGroup(group_id=f"emr_{task_id}", prefix_group_id=False,
                   tooltip=f"{step} as an EMR step") as group:
        submit = EmrAddStepsOperator(
            task_id=submit_id,
            job_flow_id=CLUSTER_ID,
            steps=[definition],
            wait_for_completion=False,
            **submit_kwargs,
        )
        watch = EmrStepWatch(
            task_id=task_id,
            step=step,
            job_flow_id=CLUSTER_ID,
            step_id=f"{{{{ ti.xcom_pull(task_ids='{submit_id}')[0] }}}}",
            steps=[definition],
            step_log_wait_seconds=settings.step_log_wait_seconds,
            # Poke mode holds a worker slot and the pool slot while the step runs, as the
            # other runners' tasks do; deferral (EMR_DEFERRABLE) frees the worker slot.
            mode="poke",
            # The deferred trigger polls in whole seconds.
            poke_interval=_waiter_delay(settings) if settings.deferrable else settings.poke_seconds,
            timeout=timeout.total_seconds(),
            max_attempts=_attempts(timeout, _waiter_delay(settings)),
            deferrable=settings.deferrable,
            execution_timeout=timeout,
            retry_policy=RETRY_POLICY,
            **kwargs,
        )
        submit >> watch
    return group


def emr_step(step: str, config: PipelineConfig, task_id: str, job_args: list[str],
             **kwargs: Any) -> TaskGroup | EmrServerlessStep:
    """Build what runs one step on EMR.

    :param step: pipeline step.
    :param config: resolved configuration (runner ``emr``).
    :param task_id: id of the task whose success means the step succeeded.
    :param job_args: the job's arguments after the job file (templated ``ds``).
    :param kwargs: further operator arguments (pool, outlets, callbacks, trigger rule).
    :return: the task group ``submit_<task_id>`` -> ``<task_id>`` (cluster mode) or the
        job run task ``<task_id>`` (serverless mode).
    """
    settings = emr_settings(config)
    timeout = config.settings.timeout(step)
    build = _serverless_step if settings.mode == "serverless" else _cluster_step
    return build(step, task_id, settings, job_args, timeout, **kwargs)


def emr_bracket(config: PipelineConfig) -> tuple[BaseOperator, BaseOperator] | None:
    """Create and terminate the run's cluster (cluster mode); ``None`` for Serverless.

    The creation waits until the cluster is up, so a cluster that cannot start fails its
    own task (and is terminated by it) instead of the first step.
    """
    settings = emr_settings(config)
    if settings.mode != "cluster":
        return None
    create = EmrCreateJobFlowOperator(
        task_id=EMR_CLUSTER_TASK,
        emr_conn_id=None,
        job_flow_overrides=job_flow_overrides(settings),
        wait_for_completion=True,
        waiter_delay=_waiter_delay(settings),
        waiter_max_attempts=_attempts(timedelta(minutes=45), _waiter_delay(settings)),
        deferrable=settings.deferrable,
    )
    terminate = EmrTerminateJobFlowOperator(task_id=TERMINATE_TASK, job_flow_id=CLUSTER_ID)
    return create, terminate
