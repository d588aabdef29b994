"""Where the pipeline runs and what it reads and writes, resolved once per DAG parse.

Precedence for every setting: the environment variable, then the Airflow Variable of the
same name, then the default. The environment comes first because it costs nothing to
read while parsing; the Variable is the contract's other switch (``PIPELINE_RUNNER``) and
the one a deployment can change from the UI. Values become part of the serialized DAG,
so the command line Airflow shows is exactly the one that runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

__all__ = [
    "CHANNELS",
    "DEFAULT_LAKE",
    "DEFAULT_LANDING",
    "DEFAULT_PIPELINE",
    "LAKE_WRITER_POOL",
    "PROJECT_ROOT",
    "PROJECT_VERSION",
    "RUNNERS",
    "SEVERITY",
    "STEPS",
    "AlertRoutes",
    "PipelineConfig",
    "RunnerSettings",
    "load_config",
    "location_settings",
    "setting",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# pyproject.toml's version, which tags the job image and names the artifacts folder. The
# Airflow image holds the DAGs without the project, so it is repeated here, once;
# tests/integration/repo/test_versions.py keeps the two equal.
PROJECT_VERSION = "0.1.0"
# The pipeline a DAG, a job or a command is about when none is named.
DEFAULT_PIPELINE = "tpch"
DEFAULT_LAKE = str(PROJECT_ROOT / "data" / "lake")
DEFAULT_LANDING = str(PROJECT_ROOT / "data" / "landing")
STEPS = ("ingest", "silver", "gold", "quality")

# One slot shared by every task that writes the lake, in both DAGs. Delta's optimistic
# concurrency already keeps concurrent writers correct; the pool removes the contention
# (and with it the conflict retries) and keeps OPTIMIZE/VACUUM away from daily writers.
LAKE_WRITER_POOL = "lake_writer"


# Every alert channel, in the order an alert is sent to them.
CHANNELS = ("log", "slack", "email")
# The severity of each alert event: the spec's ``alerts`` routes a severity to channels.
SEVERITY = {"failure": "critical", "deadline_missed": "critical", "retry": "warning",
            "success": "info"}


@dataclass(frozen=True)
class AlertRoutes:
    """The channels of each alert severity (the spec's ``alerts``).

    The defaults send every alert to every channel, which is what a pipeline whose spec
    has no ``alerts`` block gets.
    """

    critical: tuple[str, ...] = CHANNELS
    warning: tuple[str, ...] = CHANNELS
    info: tuple[str, ...] = CHANNELS

    def channels(self, event: str) -> tuple[str, ...]:
        """The channels of an event (``failure``, ``retry``, ``deadline_missed``, ``success``)."""
        return tuple(getattr(self, SEVERITY[event]))


@dataclass(frozen=True)
class RunnerSettings:
    """How one runtime starts the job.

    :param application: the job file as the runtime sees it.
    :param spark_conf: ``--conf`` values for ``spark-submit``.
    :param step_timeout: ``execution_timeout`` per step (the initial load is the longest).
    :param image: job image (``kubernetes``).
    :param namespace: namespace of the job pods (``kubernetes``).
    """

    application: str
    spark_conf: dict[str, str] = field(default_factory=dict)
    step_timeout: dict[str, timedelta] = field(default_factory=dict)
    image: str | None = None
    namespace: str | None = None

    def timeout(self, step: str) -> timedelta:
        """``execution_timeout`` of a step."""
        return self.step_timeout.get(step, timedelta(hours=2))


def setting(name: str, default: str) -> str:
    """Read a setting: environment variable, then Airflow Variable, then ``default``.

    :param name: the variable's name (identical in the environment and in Airflow).
    :param default: value when neither is set.
    :return: the value.
    """
    value = os.environ.get(name)
    if value:
        return value
    try:
        from airflow.sdk import Variable

        stored = Variable.get(name, default=None)
    except Exception:
        # Parsing outside a running deployment (a unit test, `python dags/x.py`) has no
        # metadata store to ask; the default is then the only answer.
        stored = None
    return str(stored) if stored else default


RUNNERS: dict[str, RunnerSettings] = {
    "local": RunnerSettings(
        application=str(PROJECT_ROOT / "jobs" / "main.py"),
        spark_conf={"spark.ui.enabled": "false"},
        step_timeout={"silver": timedelta(hours=3)},
    ),
    "kubernetes": RunnerSettings(
        application="/opt/tpch/jobs/main.py",
        step_timeout={"silver": timedelta(hours=3)},
        image=f"tpch-lakehouse-job:{PROJECT_VERSION}",
        namespace="tpch-jobs",
    ),
    "emr": RunnerSettings(
        # jobs/main.py next to the project wheel under EMR_ARTIFACTS_URI (lakehouse.emr).
        application=setting(
            "EMR_ARTIFACTS_URI", f"s3://tpch-lakehouse-artifacts/tpch-lakehouse/{PROJECT_VERSION}"
        ).rstrip("/") + "/main.py",
        step_timeout={"silver": timedelta(hours=3)},
    ),
}


@dataclass(frozen=True)
class PipelineConfig:
    """The resolved configuration of one DAG parse.

    :param runner: ``local``, ``kubernetes`` or ``emr``.
    :param lake: lake URI passed to every job.
    :param landing: landing URI passed to every job and watched by the drop sensor.
    :param run_deadline: a run still unfinished this long after it was queued raises a
        deadline alert; ``None`` turns the alert off.
    :param sla_deadline: a run still unfinished this long after its logical date raises
        the SLA alert (the spec's ``sla_hours``); ``None`` turns it off.
    :param alerts: the channels of each alert severity, from the spec.
    :param pipeline: the pipeline's name (its DAG is ``<pipeline>_daily``).
    :param marts: its gold marts, announced as assets.
    :param schedule: its schedule, from the spec.
    :param start_date: the first date a run (a back-fill) may have, from the spec.
    :param description: the spec's description, shown in the DAG's documentation.
    """

    runner: str
    lake: str
    landing: str
    run_deadline: timedelta | None = timedelta(hours=6)
    pipeline: str = DEFAULT_PIPELINE
    marts: tuple[str, ...] = ()
    schedule: str = "@daily"
    start_date: date = date(2020, 1, 1)
    description: str = ""
    sla_deadline: timedelta | None = None
    alerts: AlertRoutes = AlertRoutes()

    @property
    def settings(self) -> RunnerSettings:
        """The runner's settings."""
        return RUNNERS[self.runner]


def _absolute(uri: str) -> str:
    """Make a local path absolute (relative to the project), keep remote URIs."""
    if "://" in uri:
        return uri[len("file://"):] if uri.startswith("file://") else uri
    path = Path(uri)
    return str(path if path.is_absolute() else (PROJECT_ROOT / path).resolve())


def location_settings(pipeline: str) -> tuple[str, str]:
    """The settings that move a pipeline's lake and landing zone.

    ``<PIPELINE>_LAKE_URI`` / ``<PIPELINE>_LANDING_URI`` for every pipeline, and the
    contract's ``LAKE_URI`` / ``LANDING_URI`` for the default one: one Airflow runs every
    pipeline's DAG, and two pipelines must not share a lake by accident.
    """
    if pipeline == DEFAULT_PIPELINE:
        return "LAKE_URI", "LANDING_URI"
    prefix = pipeline.upper()
    return f"{prefix}_LAKE_URI", f"{prefix}_LANDING_URI"


def load_config(pipeline: str = DEFAULT_PIPELINE) -> PipelineConfig:
    """Resolve ``PIPELINE_RUNNER``, the pipeline's lake and landing, and the deadlines.

    ``PIPELINE_RUN_DEADLINE_MINUTES`` (default 360; ``0`` turns it off) sets the deadline
    alert. In-process runs (``airflow dags test``) turn it off: Airflow 3.3.2's
    ``dag.test()`` fails on DAGs with deadline alerts once the run completes (it looks up
    the alert definitions by id, but in-process they are never stored), and no scheduler
    evaluates deadlines there anyway. ``0`` therefore turns the spec's SLA alert
    (``sla_hours``) off too: it is a deadline alert with the same failure.

    The pipeline's spec (``pipelines/<pipeline>/``) gives its default lake and landing
    (relative to the repository), its schedule, start date, marts, SLA and alert routes;
    see :func:`location_settings` for the settings that override the locations. The
    spec's ``alerts`` route each severity (by default every alert to every channel).

    :return: the configuration.
    :raises ValueError: for an unknown runner (an import error in the UI, naming it).
    :raises SpecError: for an invalid spec (an import error in the UI, naming each problem).
    """
    from jobs.spec.load import load_pipeline

    spec = load_pipeline(pipeline)
    runner = setting("PIPELINE_RUNNER", "local").strip().lower()
    if runner not in RUNNERS:
        raise ValueError(
            f"PIPELINE_RUNNER={runner!r} is not one of {', '.join(sorted(RUNNERS))}"
        )
    minutes = setting("PIPELINE_RUN_DEADLINE_MINUTES", "360")
    try:
        deadline = timedelta(minutes=float(minutes)) if float(minutes) > 0 else None
    except ValueError:
        raise ValueError(f"PIPELINE_RUN_DEADLINE_MINUTES={minutes!r} is not a number") from None
    sla = timedelta(hours=spec.sla_hours) if spec.sla_hours and deadline else None
    routes = AlertRoutes(critical=tuple(spec.alerts.critical),
                         warning=tuple(spec.alerts.warning), info=tuple(spec.alerts.info))
    lake_name, landing_name = location_settings(pipeline)
    return PipelineConfig(
        runner=runner,
        run_deadline=deadline,
        lake=_absolute(setting(lake_name, spec.default_lake())),
        landing=_absolute(setting(landing_name, spec.default_landing())),
        pipeline=pipeline,
        marts=tuple(spec.marts),
        schedule=spec.schedule,
        start_date=spec.start_date,
        description=" ".join(spec.description.split()),
        sla_deadline=sla,
        alerts=routes,
    )


def report_uri(config: PipelineConfig, ds: str) -> str:
    """Where the ``report`` step writes the HTML report of one run date.

    Mirrors ``jobs.steps.report.report_uri`` (a test keeps the two in step; the DAGs
    never import the jobs package).
    """
    return f"{config.lake}/reports/{config.pipeline}_daily_{ds}.html"
