"""Re-pointing ``tpch_daily`` at another lake keeps its gold assets working.

The user's steps, through the same command ``make dag-test`` runs
(``tools/airflow_local.py dag-test``), in one ``AIRFLOW_HOME``: the DAG runs for a drop
against lake A, then for the same drop against an empty lake B, then it is parsed with the
``emr`` runner and an ``s3://`` lake. Gold assets used to carry the lake's location in
their URI, so the second lake's assets were *inactive* (their names were taken) and the
task announcing them failed. Here every run must succeed, every passed gate must emit one
event per gold table saying where the data is, and a downstream DAG scheduled on the gold
assets must be due after each run, as the scheduler decides it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tools.airflow_local import airflow_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
GOLD = ("daily_line_summary", "revenue_by_nation")
CONSUMER = '''
from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from lakehouse.assets import gold_asset

GOLD = [gold_asset("tpch", mart) for mart in ("daily_line_summary", "revenue_by_nation")]


@dag(dag_id="gold_consumer", schedule=GOLD,
     start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def gold_consumer() -> None:
    """Downstream of every gold table of tpch_daily."""

    @task
    def read() -> None:
        pass

    read()


gold_consumer()
'''
# The scheduler's own decision: which DAGs are due because of queued asset events.
DUE = '''
import json

from airflow.models.dag import DagModel
from airflow.utils.session import create_session

with create_session() as session:
    _, triggered = DagModel.dags_needing_dagruns(session)
    print(json.dumps(sorted(triggered)))
'''


def _dags_folder(path: Path) -> Path:
    path.mkdir()
    (path / "pipeline_dags.py").symlink_to(ROOT / "dags" / "pipeline_dags.py")
    (path / "lakehouse").symlink_to(ROOT / "dags" / "lakehouse")
    (path / "gold_consumer.py").write_text(CONSUMER)
    return path


def _env(home: Path, dags: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("AIRFLOW") and k not in ("LAKE_URI", "LANDING_URI")}
    return airflow_env(home, base=base, extra={
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        **extra,
    })


def _query(home: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute(sql, args).fetchall()


def _dag_test(env: dict[str, str], ds: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "airflow_local.py"),
                           "dag-test", "--ds", ds], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=1200)


def _due(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", DUE], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=300)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_dag_runs_against_lake_a_then_lake_b_and_announces_both(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    subprocess.run([sys.executable, "-m", "pipelines.tpch.datagen", "--sf", "0.001", "--days", "1",
                    "--landing", str(landing)], cwd=ROOT, check=True, capture_output=True)
    # The initial load: the first drop.
    ds = min(p.name[3:] for p in landing.iterdir() if p.name.startswith("ds="))
    home, dags = tmp_path / "airflow-home", _dags_folder(tmp_path / "dags")

    for name in ("lake-a", "lake-b"):
        lake = tmp_path / name
        env = _env(home, dags, LANDING_URI=str(landing), LAKE_URI=str(lake))
        done = _dag_test(env, ds)
        runs = _query(home, "SELECT run_id, state FROM dag_run WHERE dag_id = 'tpch_daily' "
                            "ORDER BY id DESC LIMIT 1")
        assert done.returncode == 0 and runs[0][1] == "success", (
            name, runs, done.stdout[-3000:], done.stderr[-3000:])
        events = _query(home, "SELECT a.name, a.uri, e.extra FROM asset_event e "
                              "JOIN asset a ON a.id = e.asset_id WHERE e.source_run_id = ?",
                        runs[0][0])
        assert sorted((n, u, json.loads(x)) for n, u, x in events) == [
            (f"tpch_gold_{t}", f"x-lakehouse://tpch/gold/{t}",
             {"lake": str(lake), "location": f"{lake}/gold/{t}", "ds": ds}) for t in GOLD]
        assert _due(env) == ["gold_consumer"]
        # What the scheduler does once it has created the consumer's run.
        with sqlite3.connect(home / "airflow.db") as db:
            db.execute("DELETE FROM asset_dag_run_queue WHERE target_dag_id = 'gold_consumer'")

    # The emr runner with an s3:// lake declares the very same assets, all still active.
    emr = _env(home, dags, LANDING_URI="s3://landing-bucket/landing",
               LAKE_URI="s3://lake-bucket/lake", PIPELINE_RUNNER="emr",
               EMR_ARTIFACTS_URI="s3://artifacts-bucket/lakehouse")
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "dags", "reserialize"], env=emr, cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    assets = _query(home, "SELECT a.name, a.uri, act.name IS NOT NULL FROM asset a "
                          "LEFT JOIN asset_active act ON act.name = a.name AND act.uri = a.uri")
    # Every asset the DAGs declare is active (other pipelines' included), and TPC-H's are
    # the very ones the local runs announced.
    assert all(active for _, _, active in assets), assets
    assert sorted(a for a in assets if str(a[0]).startswith("tpch_")) == [
        (f"tpch_gold_{t}", f"x-lakehouse://tpch/gold/{t}", 1) for t in GOLD]
