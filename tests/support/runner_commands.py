"""The command line a DAG's step task runs, read back from the operator a runner built.

Each runner hands the job's arguments to a different provider's operator, and each
operator assembles the ``spark-submit`` line its own way; these helpers read the line
back and spell out the contract's, so the DAG tests can check that every runner runs it.
Tests import them after putting ``dags/`` on ``sys.path``
(``tests/integration/dags/conftest.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.command import DS, job_arguments

if TYPE_CHECKING:
    from lakehouse.config import PipelineConfig

__all__ = ["job_command", "rendered_command"]


def job_command(step: str, config: PipelineConfig, ds: str = DS) -> list[str]:
    """The contract's command line for one step, without runner options.

    :param step: pipeline step.
    :param config: resolved configuration (its runner's application file).
    :param ds: run date (its template by default).
    :return: ``["spark-submit", application, step, "--ds", ds, "--pipeline", name, "--lake",
        ..., "--landing",
        ...]``.
    """
    return ["spark-submit", config.settings.application, *job_arguments(step, config, ds)]


def rendered_command(task: Any) -> list[str]:
    """The command line a step task will run, after template rendering.

    Runner options (``--master``, ``--conf``, ``--deploy-mode``) sit between
    ``spark-submit`` and the job file; from the job file on, the line should be
    :func:`job_command`'s.

    :param task: a task built by ``lakehouse.runners.step_operator``, templates rendered.
    :return: the command line, program first.
    :raises TypeError: for a task that does not run a pipeline step.
    """
    if hasattr(task, "_get_hook") and hasattr(task, "application"):  # SparkSubmitStep
        # The provider builds the line only inside its hook; its private builder is the
        # one place the local runner's full line exists before spark-submit runs.
        return list(task._get_hook()._build_spark_submit_command(task.application))
    if hasattr(task, "job_driver"):  # EmrServerlessStep: EMR Serverless runs spark-submit
        driver = task.job_driver["sparkSubmit"]
        return ["spark-submit", *driver.get("sparkSubmitParameters", "").split(),
                driver["entryPoint"], *driver.get("entryPointArguments", [])]
    if hasattr(task, "cmds") and hasattr(task, "arguments"):  # PodStep
        return [*task.cmds, *task.arguments]
    if hasattr(task, "steps"):  # EmrStepWatch, EmrAddStepsOperator
        return list(task.steps[0]["HadoopJarStep"]["Args"])
    raise TypeError(f"{type(task).__name__} is not a pipeline step task")
