"""The job's command line as every runner passes it, and the error line it answers with.

Every runner runs the contract's command line,
``spark-submit <runner options> <jobs/main.py> <step> --ds <ds> --pipeline <name> --lake
<lake> --landing <landing>``; the part after the job file is :func:`job_arguments`, the same
for all of them. A job that fails prints its cause as a last ``error: ...`` line (``jobs/main.py``),
which :func:`job_error` finds in the output a runner collected, for the failure that
:func:`lakehouse.failures.failure_for` makes of the exit status.

This module imports nothing but the configuration's types: the runner modules
(:mod:`lakehouse.spark_submit`, :mod:`lakehouse.pod`, :mod:`lakehouse.emr`) and
:mod:`lakehouse.runners`, which picks one of them, all import it, never each other.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakehouse.config import PipelineConfig

__all__ = ["DS", "job_arguments", "job_error"]

# The run date, rendered by Airflow from the DAG run's logical date.
DS = "{{ ds }}"
_ERROR_LINE = re.compile(r"^error: .*$", re.MULTILINE)


def job_arguments(step: str, config: PipelineConfig, ds: str = DS) -> list[str]:
    """The job's arguments after the application file (templated ``ds`` by default).

    :param step: pipeline step.
    :param config: resolved configuration.
    :param ds: run date or its template.
    :return: ``[step, "--ds", ds, "--pipeline", name, "--lake", lake, "--landing",
        landing]``.
    """
    return [step, "--ds", ds, "--pipeline", config.pipeline, "--lake", config.lake,
            "--landing", config.landing]


def job_error(text: str) -> str:
    """The job's own last ``error: ...`` line, if the output carries one."""
    found = _ERROR_LINE.findall(text)
    return found[-1] if found else ""
