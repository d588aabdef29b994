"""DAG ``tpch_maintenance``: weekly OPTIMIZE and VACUUM of every lake table."""

from __future__ import annotations

from airflow.sdk import chain, dag
from lakehouse.config import LAKE_WRITER_POOL, load_config
from lakehouse.defaults import START_DATE, task_defaults
from lakehouse.lineage import LINEAGE_MACROS
from lakehouse.runners import compute_bracket, step_operator

CONFIG = load_config()


@dag(
    dag_id="tpch_maintenance",
    schedule="0 3 * * 0",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(),
    user_defined_macros=LINEAGE_MACROS,
    tags=["tpch", "lakehouse", f"runner:{CONFIG.runner}"],
)
def tpch_maintenance() -> None:
    """
    ### TPC-H lake maintenance

    Sundays 03:00 UTC: `maintain` compacts small files (OPTIMIZE) and removes files no
    longer referenced (VACUUM, retention at least 7 days, so readers and killed writers
    are never cut short). It takes the single `lake_writer` pool slot, so it never runs
    at the same time as a `tpch_daily` step that writes the lake.
    """
    maintain = step_operator("maintain", CONFIG, pool=LAKE_WRITER_POOL)
    bracket = compute_bracket(CONFIG)
    if bracket is not None:
        setup, teardown = bracket
        chain(setup, maintain, teardown.as_teardown(setups=setup))


tpch_maintenance()
