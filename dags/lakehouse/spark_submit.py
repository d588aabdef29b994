"""The ``local`` runner's operator: spark-submit on the Airflow worker's machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException

from lakehouse.command import job_error
from lakehouse.failures import failure_for

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["SparkSubmitStep"]


class SparkSubmitStep(SparkSubmitOperator):
    """SparkSubmitOperator that reports the job's exit status as the failure's cause.

    :param step: the pipeline step this task runs.
    """

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def execute(self, context: Context) -> None:
        """Run spark-submit; map a non-zero exit status to its cause."""
        try:
            super().execute(context)
        except AirflowException as exc:
            # The hook raises one generic exception for every non-zero status; the status
            # itself stays on the hook's process handle.
            process = getattr(self._hook, "_submit_sp", None)
            code = process.returncode if process is not None else None
            raise failure_for(self.step, code, job_error(str(exc))) from exc
