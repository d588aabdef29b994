"""DAG ``tpch_daily``: the daily TPC-H lakehouse run for the logical date ``ds``."""

from __future__ import annotations

from typing import Any

from airflow.sdk import CronDataIntervalTimetable, TriggerRule, chain, dag, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
from lakehouse.alerts import alert_message, deadline_missed, deliver
from lakehouse.assets import announce_gold, gold_assets
from lakehouse.config import LAKE_WRITER_POOL, STEPS, load_config, report_uri
from lakehouse.defaults import START_DATE, task_defaults
from lakehouse.lineage import LINEAGE_MACROS
from lakehouse.runners import compute_bracket, step_operator
from lakehouse.sensors import drop_sensor

CONFIG = load_config()


@dag(
    dag_id="tpch_daily",
    # Data intervals: the run for ds=D starts when D is over (00:00 UTC on D+1), the
    # moment its drop can be complete; D is the logical date and the jobs' --ds.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    user_defined_macros=LINEAGE_MACROS,
    deadline=(
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=CONFIG.run_deadline,
            callback=AsyncCallback(deadline_missed),
        )
        if CONFIG.run_deadline
        else None
    ),
    tags=["tpch", "lakehouse", f"runner:{CONFIG.runner}"],
)
def tpch_daily() -> None:
    """
    ### TPC-H daily lakehouse run

    For the logical date `ds`: wait for the drop's `_SUCCESS` marker, then run the jobs
    `ingest` → `silver` → `gold` → `quality` (the publish gate), write the HTML run
    report and notify. Every step runs the contract's command line
    `spark-submit jobs/main.py <step> --ds {{ ds }} --lake … --landing …` through the
    runner named by `PIPELINE_RUNNER` (local / kubernetes / emr).

    * **Retries by cause**: exit 1 retries with exponential backoff; exit 2 (configuration)
      and exit 3 (unusable input, failed quality gate) fail at once.
    * **Concurrency**: one scheduled run at a time (`max_active_runs=1`; a back-fill has
      its own `--max-active-runs`) and one lake-writing task at a time across DAGs (pool
      `lake_writer`, 1 slot), so maintenance never overlaps a writer. The tables do not
      depend on the order in which drops are processed.
    * **Re-runs** are safe: a step whose input did not change commits nothing.
    * **Assets**: `publish` announces the gold tables (`x-lakehouse://tpch/gold/<table>`,
      the same asset wherever the lake lives) once the gate has passed; each event's
      extra says where the data is (`lake`, `location`) and for which `ds`.
    """
    wait_for_drop = drop_sensor(CONFIG)
    steps = [step_operator(step, CONFIG, pool=LAKE_WRITER_POOL) for step in STEPS]
    # The report also runs after a failed step: it is how a person sees the failure.
    report = step_operator("report", CONFIG, trigger_rule=TriggerRule.ALL_DONE, retries=1)

    @task(task_id="notify", retries=0)
    def notify(ds: str | None = None, **context: object) -> str:
        """Announce the finished run with the report's location."""
        fields = alert_message("success", {**context, "ds": ds})
        fields["text"] += f" | report: {report_uri(CONFIG, ds or '')}"
        deliver(fields)
        return fields["text"]

    @task(task_id="publish", outlets=gold_assets(), retries=1)
    def publish(ds: str | None = None, **context: Any) -> dict[str, dict[str, str]]:
        """Announce the gold tables the gate passed: one asset event each."""
        return announce_gold(CONFIG, ds or "", context["outlet_events"])

    done = notify()
    chain(wait_for_drop, *steps, report, done)
    # Only a passed gate is announced, and the run fails when the gate fails, even though
    # the report (ALL_DONE) succeeded.
    steps[-1] >> publish() >> done

    bracket = compute_bracket(CONFIG)
    if bracket is not None:
        setup, teardown = bracket
        chain(wait_for_drop, setup, steps[0])
        [report, done] >> teardown.as_teardown(setups=setup)


tpch_daily()
