"""Retries by cause: the job's exit status decides whether Airflow retries.

The contract's exit codes mean: ``1`` failed, worth retrying; ``2`` bad arguments or
configuration; ``3`` data-quality gate failed or input unusable. A runner turns a failed
job into one of the exceptions below, and :data:`RETRY_POLICY` (Airflow 3.3's
``retry_policy``) fails the task at once for the permanent ones, with the cause as the
reason shown on the task instance, instead of spending retries that cannot help.
"""

from __future__ import annotations

from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

__all__ = [
    "RETRY_POLICY",
    "ConfigurationError",
    "QualityGateFailed",
    "StepFailed",
    "TransientStepFailure",
    "UnusableInput",
    "failure_for",
]


class StepFailed(Exception):
    """A pipeline step's job failed; subclasses name the cause."""

    cause = "failed"
    exit_code: int | None = None

    def __init__(self, step: str, exit_code: int | None, detail: str = "") -> None:
        self.step = step
        self.exit_code = exit_code
        status = f"exit {exit_code}" if exit_code is not None else "no exit status"
        super().__init__(f"{step}: {self.cause} ({status}). {detail}".strip())


class TransientStepFailure(StepFailed):
    """Exit 1, a signal or a lost process: worth retrying with backoff."""

    cause = "transient failure, will be retried"


class ConfigurationError(StepFailed):
    """Exit 2: bad arguments or configuration; fix the deployment, retrying cannot help."""

    cause = "configuration error, not retried"


class UnusableInput(StepFailed):
    """Exit 3 from a loading step: the drop cannot be used; fix or replace the input."""

    cause = "unusable input, not retried"


class QualityGateFailed(StepFailed):
    """Exit 3 from ``quality``: the gate failed and gold was restored; not retried."""

    cause = "quality gate failed (gold restored to its last good version), not retried"


def failure_for(step: str, exit_code: int | None, detail: str = "") -> StepFailed:
    """Map a job's exit status to the exception that carries its cause.

    :param step: the pipeline step.
    :param exit_code: the process's exit status (negative: killed by that signal).
    :param detail: text appended to the message (e.g. the job's last error line).
    :return: the exception to raise.
    """
    if exit_code == 2:
        return ConfigurationError(step, exit_code, detail)
    if exit_code == 3:
        cls = QualityGateFailed if step == "quality" else UnusableInput
        return cls(step, exit_code, detail)
    return TransientStepFailure(step, exit_code, detail)


RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=ConfigurationError, action=RetryAction.FAIL,
            reason="exit 2: configuration error; retrying cannot help",
        ),
        RetryRule(
            exception=QualityGateFailed, action=RetryAction.FAIL,
            reason="exit 3: data-quality gate failed; gold was restored, retrying cannot help",
        ),
        RetryRule(
            exception=UnusableInput, action=RetryAction.FAIL,
            reason="exit 3: input unusable; fix or replace the drop, retrying cannot help",
        ),
    ],
    default=RetryAction.DEFAULT,
)
