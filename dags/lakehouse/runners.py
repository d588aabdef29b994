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

This module only picks the runner: the runner modules import what they share from
:mod:`lakehouse.command` (the job's arguments, its error line), never from here, and are
imported when a task of theirs is built, so parsing a DAG loads only the provider of the
configured runner (the amazon provider would bring boto3 into every parse).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.command import DS, job_arguments
from lakehouse.config import PROJECT_ROOT, PipelineConfig
from lakehouse.failures import RETRY_POLICY
from lakehouse.lineage import lineage_conf

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, TaskGroup

__all__ = ["compute_bracket", "step_operator"]


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
