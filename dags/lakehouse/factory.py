"""The DAG factory: a pipeline spec in, its two DAGs out.

``<pipeline>_daily`` runs the pipeline for the logical date ``ds``: wait for the drop's
``_SUCCESS`` marker, run the jobs ``ingest`` -> ``silver`` -> ``gold`` -> ``quality`` (the
publish gate), announce the gold marts as assets when the gate passed, write the HTML run
report and notify. ``<pipeline>_maintenance`` compacts and vacuums the pipeline's lake
every Sunday. Every step runs the contract's command line through the runner named by
``PIPELINE_RUNNER``; what differs between pipelines comes from their specs (schedule,
start date, marts, default locations, SLA, alert routes) through
:func:`lakehouse.config.load_config`.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, TriggerRule, chain, dag, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from lakehouse.alerts import alert_message, deadline_missed, deliver
from lakehouse.assets import announce_gold, gold_assets
from lakehouse.config import LAKE_WRITER_POOL, STEPS, PipelineConfig, load_config, report_uri
from lakehouse.defaults import task_defaults
from lakehouse.lineage import LINEAGE_MACROS
from lakehouse.runners import compute_bracket, step_operator
from lakehouse.sensors import drop_sensor

__all__ = ["daily_dag", "maintenance_dag", "pipeline_dags"]

# Presets Airflow reads as cron expressions (a data interval per period).
_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0",
            "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *"}


def _timetable(schedule: str) -> Any:
    """Data intervals: the run for ds=D starts when D is over, the moment its drop can be
    complete; D is the logical date and the jobs' ``--ds``."""
    if schedule == "@once":
        return schedule
    if schedule in ("None", "none"):
        return None
    return CronDataIntervalTimetable(_PRESETS.get(schedule, schedule), timezone="UTC")


def _start(config: PipelineConfig) -> Any:
    import pendulum

    return pendulum.datetime(config.start_date.year, config.start_date.month,
                             config.start_date.day, tz="UTC")


def _deadlines(config: PipelineConfig) -> list[DeadlineAlert]:
    """The daily DAG's deadline alerts, both ``critical``: the run deadline (from when the
    run was queued) and the spec's SLA (from the logical date), each when it is on."""
    # Callback kwargs are stored with the DAG as JSON: plain lists and numbers.
    critical = list(config.alerts.channels("deadline_missed"))
    alerts = []
    if config.run_deadline:
        alerts.append(DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=config.run_deadline,
            name="run_deadline",
            callback=AsyncCallback(deadline_missed, kwargs={"channels": critical}),
        ))
    if config.sla_deadline:
        alerts.append(DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=config.sla_deadline,
            name="sla",
            callback=AsyncCallback(deadline_missed, kwargs={
                "channels": critical,
                "sla_hours": config.sla_deadline.total_seconds() / 3600,
            }),
        ))
    return alerts


def daily_dag(config: PipelineConfig) -> DAG:
    """Build ``<pipeline>_daily``.

    :param config: the pipeline's resolved configuration.
    :return: the DAG.
    """

    @dag(
        dag_id=f"{config.pipeline}_daily",
        schedule=_timetable(config.schedule),
        start_date=_start(config),
        catchup=False,
        max_active_runs=1,
        default_args=task_defaults(config),
        user_defined_macros=LINEAGE_MACROS,
        deadline=_deadlines(config) or None,
        tags=[config.pipeline, "lakehouse", f"runner:{config.runner}"],
        doc_md=_daily_doc(config),
    )
    def daily() -> None:
        wait_for_drop = drop_sensor(config)
        steps = [step_operator(step, config, pool=LAKE_WRITER_POOL) for step in STEPS]
        # The report also runs after a failed step: it is how a person sees the failure.
        report = step_operator("report", config, trigger_rule=TriggerRule.ALL_DONE,
                               retries=1)

        @task(task_id="notify", retries=0)
        def notify(ds: str | None = None, **context: object) -> str:
            """Announce the finished run with the report's location."""
            fields = alert_message("success", {**context, "ds": ds})
            fields["text"] += f" | report: {report_uri(config, ds or '')}"
            deliver(fields, config.alerts.channels("success"))
            return fields["text"]

        @task(task_id="publish", outlets=gold_assets(config), retries=1)
        def publish(ds: str | None = None, **context: Any) -> dict[str, dict[str, str]]:
            """Announce the gold marts the gate passed: one asset event each."""
            return announce_gold(config, ds or "", context["outlet_events"])

        done = notify()
        chain(wait_for_drop, *steps, report, done)
        # Only a passed gate is announced, and the run fails when the gate fails, even
        # though the report (ALL_DONE) succeeded.
        steps[-1] >> publish() >> done

        bracket = compute_bracket(config)
        if bracket is not None:
            setup, teardown = bracket
            chain(wait_for_drop, setup, steps[0])
            [report, done] >> teardown.as_teardown(setups=setup)

    return daily()


def _route(config: PipelineConfig, event: str) -> str:
    return f"`[{', '.join(config.alerts.channels(event))}]`"


def _sla_doc(config: PipelineConfig) -> str:
    if config.sla_deadline is None:
        return ""
    hours = config.sla_deadline.total_seconds() / 3600
    return f" A run unfinished {hours:g} hours after its logical date misses its SLA."


def _daily_doc(config: PipelineConfig) -> str:
    return f"""
### {config.pipeline}: daily lakehouse run

{config.description}

For the logical date `ds`: wait for the drop's `_SUCCESS` marker, then run the jobs
`ingest` → `silver` → `gold` → `quality` (the publish gate), announce the gold marts,
write the HTML run report and notify. Every step runs the contract's command line
`spark-submit jobs/main.py <step> --ds {{{{ ds }}}} --pipeline {config.pipeline} --lake …
--landing …` through the runner named by `PIPELINE_RUNNER` (local / kubernetes / emr).

* **Retries by cause**: exit 1 retries with exponential backoff; exit 2 (configuration)
  and exit 3 (unusable input, failed quality gate) fail at once.
* **Concurrency**: one scheduled run at a time (`max_active_runs=1`; a back-fill has its
  own `--max-active-runs`) and one lake-writing task at a time across DAGs (pool
  `lake_writer`, 1 slot), so maintenance never overlaps a writer. The tables do not
  depend on the order in which drops are processed.
* **Re-runs** are safe: a step whose input did not change commits nothing.
* **Alerts** (the spec's `alerts`): failures and missed deadlines go to
  {_route(config, "failure")}, retries to {_route(config, "retry")}, the finished run to
  {_route(config, "success")}.{_sla_doc(config)}
* **Assets**: `publish` announces each gold mart
  (`x-lakehouse://{config.pipeline}/gold/<mart>`, the same asset wherever the lake lives)
  once the gate has passed; each event's extra says where the data is (`lake`,
  `location`) and for which `ds`.
"""


def maintenance_dag(config: PipelineConfig) -> DAG:
    """Build ``<pipeline>_maintenance``: Sundays 03:00 UTC, OPTIMIZE and VACUUM.

    :param config: the pipeline's resolved configuration.
    :return: the DAG.
    """

    @dag(
        dag_id=f"{config.pipeline}_maintenance",
        schedule="0 3 * * 0",
        start_date=_start(config),
        catchup=False,
        max_active_runs=1,
        default_args=task_defaults(config),
        user_defined_macros=LINEAGE_MACROS,
        tags=[config.pipeline, "lakehouse", f"runner:{config.runner}"],
        doc_md=f"""
### {config.pipeline}: lake maintenance

Sundays 03:00 UTC: `maintain` compacts small files (OPTIMIZE) and removes files no
longer referenced (VACUUM, retention at least 7 days, so readers and killed writers are
never cut short). It takes the single `lake_writer` pool slot, so it never runs at the
same time as a step that writes the lake.
""",
    )
    def maintenance() -> None:
        maintain = step_operator("maintain", config, pool=LAKE_WRITER_POOL)
        bracket = compute_bracket(config)
        if bracket is not None:
            setup, teardown = bracket
            chain(setup, maintain, teardown.as_teardown(setups=setup))

    return maintenance()


def pipeline_dags(names: list[str]) -> dict[str, DAG]:
    """Both DAGs of every named pipeline, by DAG id.

    :raises SpecError: naming every problem of an invalid spec (Airflow shows it as the
        DAG file's import error).
    """
    dags: dict[str, DAG] = {}
    for name in names:
        config = load_config(name)
        for built in (daily_dag(config), maintenance_dag(config)):
            dags[built.dag_id] = built
    return dags
