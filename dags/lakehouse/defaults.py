"""Task settings shared by the project's DAGs: retries by cause and alert callbacks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lakehouse.alerts import PipelineAlert
from lakehouse.config import PipelineConfig

__all__ = ["task_defaults"]


def task_defaults(config: PipelineConfig) -> dict[str, Any]:
    """``default_args``: task-level settings only.

    Exit 1 (transient) is retried 3 times after 2, 4 and 8 minutes (exponential backoff
    as a multiplier, capped at 30 minutes); exit 2 and 3 fail at once through each step's
    ``retry_policy`` (:mod:`lakehouse.failures`). A failure alerts on the spec's
    ``critical`` route, a retry on its ``warning`` route.

    :param config: the pipeline's resolved configuration (its alert routes).
    """
    return {
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": PipelineAlert("failure", config.alerts.channels("failure")),
        "on_retry_callback": PipelineAlert("retry", config.alerts.channels("retry")),
    }
