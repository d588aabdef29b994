"""The ``kubernetes`` runner's operator: the job image in a pod, driver inside the pod."""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException

from lakehouse.failures import failure_for
from lakehouse.runners import job_error

__all__ = ["PodStep", "container_exit_code"]


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
