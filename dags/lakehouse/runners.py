"""The runner seam: one task per pipeline step, whatever runs the job.

Every runner executes the contract's command line,
``spark-submit <jobs/main.py> <step> --ds <ds> --lake <lake> --landing <landing>``;
only the way it is started differs (:data:`lakehouse.config.RUNNERS` holds the
per-runner settings):

* ``local``: :class:`SparkSubmitStep`, the apache-spark provider's SparkSubmitOperator on
  the ``spark_default`` connection (``local[2]``), run by the Airflow worker itself.
* ``kubernetes``: :class:`PodStep`, a KubernetesPodOperator running the job image with the
  driver in the pod; a retried or restarted task reattaches to the running pod instead of
  starting a second writer.
* ``emr``: EMR steps on one transient cluster per DAG run, created by a setup task and
  terminated by a teardown task that runs even when a step fails.

Each runner turns a failed job into :mod:`lakehouse.failures`' exception for its exit
status, so Airflow retries transient failures and fails permanent ones at once.
:func:`rendered_command` is the test hook that shows the command line each runner runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lakehouse.config import PROJECT_ROOT, PipelineConfig
from lakehouse.failures import RETRY_POLICY
from lakehouse.lineage import lineage_conf

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context, TaskGroup

__all__ = [
    "DS",
    "compute_bracket",
    "job_arguments",
    "job_command",
    "job_error",
    "rendered_command",
    "step_operator",
]

DS = "{{ ds }}"
_ERROR_LINE = re.compile(r"^error: .*$", re.MULTILINE)


def job_arguments(step: str, config: PipelineConfig, ds: str = DS) -> list[str]:
    """The job's arguments after the application file (templated ``ds`` by default).

    :param step: pipeline step.
    :param config: resolved configuration.
    :param ds: run date or its template.
    :return: ``[step, "--ds", ds, "--lake", lake, "--landing", landing]``.
    """
    return [step, "--ds", ds, "--lake", config.lake, "--landing", config.landing]


def job_command(step: str, config: PipelineConfig, ds: str = DS) -> list[str]:
    """The contract's command line for one step, as every runner runs it.

    :return: ``["spark-submit", application, *job_arguments(...)]``.
    """
    return ["spark-submit", config.settings.application, *job_arguments(step, config, ds)]


def job_error(text: str) -> str:
    """The job's own last ``error: ...`` line, if the output carries one."""
    found = _ERROR_LINE.findall(text)
    return found[-1] if found else ""


def _local_lineage_conf() -> dict[str, str]:
    """Lineage settings for ``spark-submit`` on this machine, with the listener's jar.

    The OpenLineage jar sits in the local jar cache but not on the default classpath
    (``spark-defaults.conf`` names Delta's jars only: the extra jar costs about 3 s of CPU
    per Spark start). ``spark.jars`` replaces the default list, so it names every cached
    jar, Delta's included.
    """
    conf = lineage_conf()
    jars = sorted((PROJECT_ROOT / ".cache" / "jars").glob("*.jar"))
    if conf and jars:
        conf["spark.jars"] = ",".join(str(jar) for jar in jars)
    return conf


def _local(step: str, config: PipelineConfig, task_id: str, **kwargs: Any) -> BaseOperator:
    settings = config.settings
    from lakehouse.spark_submit import SparkSubmitStep

    operator: BaseOperator = SparkSubmitStep(
        task_id=task_id,
        step=step,
        conn_id="spark_default",
        application=settings.application,
        application_args=job_arguments(step, config),
        name=f"tpch-{step}-{DS}",
        conf={**settings.spark_conf, **_local_lineage_conf()},
        execution_timeout=settings.timeout(step),
        retry_policy=RETRY_POLICY,
        **kwargs,
    )
    return operator


def _kubernetes(step: str, config: PipelineConfig, task_id: str, **kwargs: Any) -> BaseOperator:
    from lakehouse.pod import pod_step

    return pod_step(step, config, task_id, job_arguments(step, config), **kwargs)


EMR_CLUSTER_TASK = "create_emr_cluster"


def _emr(step: str, config: PipelineConfig, task_id: str, **kwargs: Any) -> BaseOperator:
    # Cluster mode: a task group (submit_<step> -> <step>); serverless mode: one job run task.
    from lakehouse.emr import emr_step

    group: Any = emr_step(step, config, task_id, job_arguments(step, config), **kwargs)
    return group


_FACTORIES = {"local": _local, "kubernetes": _kubernetes, "emr": _emr}


def step_operator(step: str, config: PipelineConfig, *, task_id: str | None = None,
                  **kwargs: Any) -> BaseOperator | TaskGroup:
    """Build the task that runs one step with the configured runner.

    :param step: pipeline step (also the task id unless ``task_id`` is given).
    :param config: resolved configuration.
    :param kwargs: further operator arguments (pool, outlets, callbacks, trigger rule).
    :return: the operator, or for EMR on a cluster a task group (``submit_<step>`` adds
        the EMR step, ``<step>`` waits for it); either way ``dag.get_task(step)`` is the
        task that succeeds or fails with the step.
    """
    return _FACTORIES[config.runner](step, config, task_id or step, **kwargs)


def compute_bracket(config: PipelineConfig) -> tuple[BaseOperator, BaseOperator] | None:
    """Setup and teardown around the steps, for runners with per-run compute (EMR).

    :return: ``(setup, teardown)`` or ``None`` when the runner needs none.
    """
    if config.runner != "emr":
        return None
    from lakehouse.emr import emr_bracket

    return emr_bracket(config)


def rendered_command(task: Any, context: Context | None = None) -> list[str]:
    """The command line a step task will run, after template rendering.

    Test hook: ``job_command`` must be a suffix-compatible view of every runner's line
    (runner options such as ``--master`` sit between ``spark-submit`` and the file).

    :param task: a task built by :func:`step_operator`, templates already rendered.
    :param context: unused; accepted so callers can pass a render context.
    :return: the command line, program first.
    """
    if hasattr(task, "_get_hook") and hasattr(task, "application"):  # SparkSubmitStep
        return list(task._get_hook()._build_spark_submit_command(task.application))
    if hasattr(task, "cmds") and hasattr(task, "arguments"):  # PodStep
        return [*task.cmds, *task.arguments]
    if hasattr(task, "steps"):  # EmrAddStepsOperator
        return list(task.steps[0]["HadoopJarStep"]["Args"])
    raise TypeError(f"{type(task).__name__} is not a pipeline step task")
