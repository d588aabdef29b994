"""DAG ``tpch_daily``: the daily TPC-H lakehouse run for the logical date ``ds``."""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, TriggerRule, chain, dag, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
from lakehouse.alerts import alert_message, deadline_missed, deliver
from lakehouse.assets import gold_assets
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
    * **Concurrency**: one run at a time (`max_active_runs=1`) and one lake writer at a
      time across DAGs (pool `lake_writer`, 1 slot), so back-fills apply in date order
      and maintenance never overlaps a writer.
    * **Re-runs** are safe: a step whose input did not change commits nothing.
    * **Assets**: the gold tables are published by `quality` when the gate passes.
    """
    wait_for_drop = drop_sensor(CONFIG)
    steps = [
        step_operator(
            step, CONFIG, pool=LAKE_WRITER_POOL,
            outlets=gold_assets(CONFIG) if step == "quality" else None,
        )
        for step in STEPS
    ]
    # The report also runs after a failed step: it is how a person sees the failure.
    report = step_operator("report", CONFIG, trigger_rule=TriggerRule.ALL_DONE, retries=1)

    @task(task_id="notify", retries=0)
    def notify(ds: str | None = None, **context: object) -> str:
        """Announce the finished run with the report's location."""
        fields = alert_message("success", {**context, "ds": ds})
        fields["text"] += f" | report: {report_uri(CONFIG, ds or '')}"
        deliver(fields)
        return fields["text"]

    done = notify()
    chain(wait_for_drop, *steps, report, done)
    # The run fails when the gate fails, even though the report (ALL_DONE) succeeded.
    steps[-1] >> done

    bracket = compute_bracket(CONFIG)
    if bracket is not None:
        setup, teardown = bracket
        chain(wait_for_drop, setup, steps[0])
        [report, done] >> teardown.as_teardown(setups=setup)


tpch_daily()
