"""The ``kubernetes`` runner: the job image in a pod on EKS, the Spark driver inside it.

The pod starts from the driver pod template that the Kubernetes manifests ship
(``k8s/base/spark/driver-pod-template.yaml``: service account, on-demand node affinity,
non-root security contexts, read-only root file system with ``/tmp`` on an ``emptyDir``,
the executor template mounted from a ConfigMap). This module adds what differs per step:

* **Small steps** (``quality``, ``report``, ``maintain`` by default) run Spark in the pod,
  ``--master local[*]``; the pod gets the cores and memory.
* **Large steps** (``K8S_EXECUTOR_STEPS``, default ``ingest,silver,gold``) run the driver
  in the pod in client mode against the cluster's API server, with executors on spot
  nodes from the executor pod template; Spark's decommissioning (``jobs/settings.py``)
  migrates their shuffle and cached blocks when a spot node is reclaimed.

Either way the container runs the contract's command line, ``spark-submit <runner
options> /opt/tpch/jobs/main.py <step> --ds ... --lake ... --landing ...``.

A retried or restarted task never starts a second writer: with ``durable`` (the
provider's reattach on Airflow 3.3) the next try reconnects to the pod the earlier try
started (its identity persisted in Airflow's task state, else found by the task's labels,
which leave out the try number) and follows it to the end instead of creating another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException
from kubernetes.client import models as k8s

from lakehouse.command import job_error
from lakehouse.config import PROJECT_ROOT, PipelineConfig, setting
from lakehouse.failures import RETRY_POLICY, failure_for
from lakehouse.lineage import lineage_conf

__all__ = [
    "EXECUTOR_TEMPLATE",
    "PodStep",
    "StepResources",
    "container_exit_code",
    "executor_steps",
    "pod_step",
    "runner_options",
]

# Where the driver pod template mounts the ConfigMap `spark-pod-templates`.
EXECUTOR_TEMPLATE = "/opt/spark/pod-templates/executor.yaml"
DRIVER_TEMPLATE = PROJECT_ROOT / "k8s" / "base" / "spark" / "driver-pod-template.yaml"
# Fixed ports, so the NetworkPolicy can name what executors may reach on the driver.
DRIVER_PORT = "7078"
BLOCK_MANAGER_PORT = "7079"
# Filled by Kubernetes from the pod itself (downward API) and expanded in the arguments.
_POD_IP = "SPARK_DRIVER_POD_IP"
_POD_NAME = "SPARK_DRIVER_POD_NAME"


@dataclass(frozen=True)
class StepResources:
    """What one step's pod (and, for large steps, its executors) gets.

    Requests equal limits for the driver pod (Guaranteed QoS: the last to be evicted
    under node pressure). ``driver_memory`` leaves room for off-heap memory and Python.
    """

    cpu: str
    memory: str
    driver_memory: str
    executors: int = 0
    executor_cores: int = 2
    executor_memory: str = "6g"


LOCAL_STEP = StepResources(cpu="2", memory="8Gi", driver_memory="6g")


def executor_steps() -> frozenset[str]:
    """Steps that run executors on spot nodes (``K8S_EXECUTOR_STEPS``, comma-separated)."""
    raw = setting("K8S_EXECUTOR_STEPS", "ingest,silver,gold")
    return frozenset(s.strip() for s in raw.split(",") if s.strip())


def step_resources(step: str) -> StepResources:
    """Resources of one step's pod: a small driver for distributed steps, else LOCAL_STEP."""
    if step not in executor_steps():
        return LOCAL_STEP
    return StepResources(
        cpu="1",
        memory="4Gi",
        driver_memory="3g",
        executors=int(setting("K8S_EXECUTOR_INSTANCES", "4")),
        executor_cores=int(setting("K8S_EXECUTOR_CORES", "2")),
        executor_memory=setting("K8S_EXECUTOR_MEMORY", "6g"),
    )


def _conf(pairs: dict[str, str]) -> list[str]:
    return [arg for key, value in pairs.items() for arg in ("--conf", f"{key}={value}")]


def runner_options(step: str, image: str, namespace: str) -> list[str]:
    """``spark-submit`` options between the program and the job file, for one step.

    :param step: pipeline step.
    :param image: the job image (executors run the same image).
    :param namespace: namespace of the driver pod and its executors.
    :return: ``--master ...`` and ``--conf`` options.
    """
    resources = step_resources(step)
    lineage = _conf(lineage_conf())
    if not resources.executors:
        return ["--master", "local[*]",
                *_conf({"spark.driver.memory": resources.driver_memory}), *lineage]
    api_server = setting("K8S_API_SERVER", "https://kubernetes.default.svc:443")
    return [
        "--master", f"k8s://{api_server}",
        "--deploy-mode", "client",
        *_conf({
            "spark.driver.memory": resources.driver_memory,
            # Executors connect back to the driver pod by IP on fixed ports.
            "spark.driver.host": f"$({_POD_IP})",
            "spark.driver.bindAddress": "0.0.0.0",
            "spark.driver.port": DRIVER_PORT,
            "spark.blockManager.port": BLOCK_MANAGER_PORT,
            # The driver pod owns its executors: deleting it garbage-collects them.
            "spark.kubernetes.driver.pod.name": f"$({_POD_NAME})",
            "spark.kubernetes.namespace": namespace,
            "spark.kubernetes.container.image": image,
            "spark.kubernetes.executor.podTemplateFile": EXECUTOR_TEMPLATE,
            "spark.kubernetes.executor.podNamePrefix": f"tpch-{step.replace('_', '-')}",
            "spark.executor.instances": str(resources.executors),
            "spark.executor.cores": str(resources.executor_cores),
            "spark.executor.memory": resources.executor_memory,
            "spark.kubernetes.executor.request.cores": str(resources.executor_cores),
            "spark.kubernetes.executor.limit.cores": str(resources.executor_cores),
        }),
        *lineage,
    ]


def container_exit_code(remote_pod: Any, container: str) -> int | None:
    """Exit status of a finished pod's container, if Kubernetes reported one.

    :param remote_pod: the pod as read back from the API server.
    :param container: container name.
    :return: the exit status or ``None``.
    """
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        terminated = getattr(getattr(status, "state", None), "terminated", None)
        if status.name == container and terminated is not None:
            return int(terminated.exit_code)
    return None


class PodStep(KubernetesPodOperator):
    """KubernetesPodOperator that reports the job container's exit status as the cause.

    :param step: the pipeline step this task runs.
    """

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def cleanup(self, pod: Any, remote_pod: Any) -> None:
        """Delete the pod as configured; map a failed container to its cause."""
        try:
            super().cleanup(pod, remote_pod)
        except AirflowException as exc:
            code = container_exit_code(remote_pod, self.base_container_name)
            raise failure_for(self.step, code, job_error(str(exc))) from exc


def pod_step(step: str, config: PipelineConfig, task_id: str, job_args: list[str],
             **kwargs: Any) -> PodStep:
    """Build the task that runs one step in a pod.

    :param step: pipeline step.
    :param config: resolved configuration (runner ``kubernetes``).
    :param task_id: task id.
    :param job_args: the job's arguments after the job file (templated ``ds``).
    :param kwargs: further operator arguments (pool, outlets, callbacks, trigger rule).
    :return: the operator.
    """
    settings = config.settings
    image = setting("K8S_JOB_IMAGE", settings.image or "")
    namespace = setting("K8S_NAMESPACE", settings.namespace or "")
    resources = step_resources(step)
    quantity = {"cpu": resources.cpu, "memory": resources.memory}
    return PodStep(
        task_id=task_id,
        step=step,
        name=f"tpch-{step.replace('_', '-')}",
        namespace=namespace,
        image=image,
        pod_template_file=setting("K8S_DRIVER_POD_TEMPLATE", str(DRIVER_TEMPLATE)),
        cmds=["spark-submit"],
        arguments=[*runner_options(step, image, namespace), settings.application, *job_args],
        env_vars={"PIPELINE_RUNNER": "kubernetes"},
        pod_runtime_info_envs=[
            k8s.V1EnvVar(name=_POD_IP, value_from=k8s.V1EnvVarSource(
                field_ref=k8s.V1ObjectFieldSelector(field_path="status.podIP"))),
            k8s.V1EnvVar(name=_POD_NAME, value_from=k8s.V1EnvVarSource(
                field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.name"))),
        ],
        container_resources=k8s.V1ResourceRequirements(requests=quantity, limits=quantity),
        labels={"tpch-step": step},
        on_finish_action="delete_pod",
        on_kill_action="delete_pod",
        get_logs=True,
        durable=True,
        log_events_on_failure=True,
        startup_timeout_seconds=600,
        execution_timeout=settings.timeout(step),
        retry_policy=RETRY_POLICY,
        **kwargs,
    )
