"""The local runner's Airflow task overhead per step: what Airflow adds to a ``spark-submit``.

    python -m bench.airflow_overhead --lake LAKE --landing LANDING --ds YYYY-MM-DD --work DIR

The lake must already hold ``ds`` fully processed, so every Spark task of the re-run is a
no-op (the job finds its ledger rows and exits without a data job): what a task costs is
then ``spark-submit``'s fixed cost (JVM, session, ledger check), the same by hand, plus
what Airflow adds around it (starting the task, the operator launching and following
``spark-submit``, recording the outcome).

:func:`measure` runs ``tpch_daily`` for ``ds`` the way ``make dag-test`` does
(``tools/airflow_local.py dag-test``: the project's Airflow environment, the metadata
database migrated first, then ``airflow dags test``, i.e. ``dag.test()``) in a subprocess
with a fresh ``AIRFLOW_HOME`` and SQLite database under ``work``. It reads every task
instance's duration and the DAG run's wall time from that database, then runs each Spark
step the DAG ran by hand, with the same command line and environment as the rest of the
benchmark (:func:`bench.common.job`, :func:`bench.common.env`). A task's overhead is its
Airflow duration minus the duration of the same no-op ``spark-submit`` by hand.

The operator's command line equals the hand-run one: its ``--master local[2]`` and
``spark.ui.enabled=false`` are also ``spark-defaults.conf``'s values. Lineage and the alert
channels are off in the Airflow run (their settings are not passed on), so neither side
talks to anything but the local disk.

What it measures is ``dag.test()``'s cost: tasks run one after the other inside the test
process (Airflow's in-process supervisor), so a task's overhead is the task runner's and
the operator's own work. A deployment's executor also starts a process and parses the DAG
file for every task, and its scheduler adds the delay between tasks; neither is in these
numbers. ``report`` is the one step that is not a no-op on a re-run: it reads the ledgers
and rewrites the day's HTML page every time, by hand as under Airflow.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Progress, env, job
from tools.airflow_local import airflow_env

__all__ = ["DAG_ID", "main", "measure"]

DAG_ID = "tpch_daily"
# Settings of a developer's own deployment, lineage backend or alert channels: the
# measured run is a fresh local deployment that sends nothing anywhere.
_NOT_PASSED_ON = ("AIRFLOW", "OPENLINEAGE_")


def _airflow_env(home: Path, lake: Path, landing: Path) -> dict[str, str]:
    """The environment of ``tools/airflow_local.py dag-test`` for a fresh deployment.

    :param home: ``AIRFLOW_HOME``; its SQLite file is the metadata database.
    :param lake: ``LAKE_URI``.
    :param landing: ``LANDING_URI``.
    :return: the environment.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_PASSED_ON)}
    return airflow_env(home, base={**base, **env()}, extra={
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "LAKE_URI": str(lake),
        "LANDING_URI": str(landing),
    })


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _run_seconds(run: dict[str, Any]) -> float | None:
    """A DAG run's wall time, from its creation or start, whichever is later, to its end.

    ``dag.test()`` stores the logical date as the run's ``start_date``; its ``run_after``
    is the moment it created the run.
    """
    starts = [s for s in (run["start_date"], run["run_after"]) if s]
    if not starts:
        return None
    return _seconds(max(starts, key=dt.datetime.fromisoformat), run["end_date"])


def _step(rendered: str | None) -> str | None:
    """The pipeline step of a task, from its rendered ``application_args``; ``None`` if none."""
    if not rendered:
        return None
    args = json.loads(rendered).get("application_args")
    return str(args[0]) if isinstance(args, list) and args else None


def _read_run(database: Path, ds: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The DAG run of ``ds`` and its task instances (in start order) from the metadata DB.

    :param database: the SQLite file.
    :param ds: the run's logical date.
    :return: ``(run, tasks)``: state, start and end of each (the run's ``run_after`` too),
        and each task's rendered fields (``None`` for tasks without templated fields).
    :raises LookupError: when the database holds no run of ``DAG_ID`` for ``ds``.
    """
    # closing(): the connection's own context manager ends a transaction, not the connection.
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        run = db.execute(
            "SELECT run_id, state, start_date, run_after, end_date FROM dag_run "
            "WHERE dag_id = ? AND substr(logical_date, 1, 10) = ? ORDER BY id DESC LIMIT 1",
            (DAG_ID, ds),
        ).fetchone()
        if run is None:
            raise LookupError(f"no {DAG_ID} run for ds={ds} in {database}")
        tasks = db.execute(
            "SELECT ti.task_id, ti.state, ti.start_date, ti.end_date, ti.try_number, "
            "rtif.rendered_fields FROM task_instance AS ti "
            "LEFT JOIN rendered_task_instance_fields AS rtif ON rtif.dag_id = ti.dag_id "
            "AND rtif.task_id = ti.task_id AND rtif.run_id = ti.run_id "
            "AND rtif.map_index = ti.map_index "
            "WHERE ti.dag_id = ? AND ti.run_id = ? ORDER BY ti.start_date",
            (DAG_ID, run["run_id"]),
        ).fetchall()
        return dict(run), [dict(t) for t in tasks]


def measure(lake: Path, landing: Path, ds: str, work: Path,
            progress: Progress | None = None) -> dict[str, Any]:
    """Run ``tpch_daily`` for an already processed ``ds`` under Airflow, then its steps by hand.

    :param lake: a lake in which ``ds`` is fully processed.
    :param landing: the lake's landing zone.
    :param ds: the run date.
    :param work: scratch folder: ``airflow-overhead/home`` (recreated) is the
        ``AIRFLOW_HOME``, ``logs/`` receives the Airflow run's and each hand run's output.
    :param progress: prints each run as an item of its current section (default: a
        section of its own).
    :return: ``ds``; ``dag_run_s`` (the DAG run's wall time); ``dag_test_s`` (the whole
        subprocess: migration, parsing, run); ``between_tasks_s`` (run time outside any
        task); ``tasks``, in start order, each with ``task_id``, ``step`` (``None`` for
        tasks that run no Spark job), ``state``, ``tries``, ``airflow_s``, ``direct_s``
        and ``overhead_s`` (both ``None`` without a step); ``median_overhead_s`` over the
        steps; and ``log`` (the Airflow run's output).
    :raises RuntimeError: when the DAG run or a hand run fails; the message names its log.
    """
    if progress is None:
        progress = Progress(["airflow overhead"])
        progress.section("airflow overhead")
    lake, landing, work = lake.resolve(), landing.resolve(), work.resolve()
    home = work / "airflow-overhead" / "home"
    shutil.rmtree(home, ignore_errors=True)
    log = work / "logs" / "airflow-overhead-dag-test.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    progress.item(f"airflow dags test {DAG_ID} {ds}")
    with log.open("w", encoding="utf-8") as out:
        started = time.perf_counter()
        code = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "airflow_local.py"), "dag-test", "--ds", ds],
            cwd=ROOT, env=_airflow_env(home, lake, landing), stdout=out,
            stderr=subprocess.STDOUT, check=False,
        ).returncode
        dag_test_s = time.perf_counter() - started
    progress.done(f"{dag_test_s:.1f} s, exit {code}")
    try:
        run, instances = _read_run(home / "airflow.db", ds)
    except (LookupError, sqlite3.Error) as exc:
        raise RuntimeError(f"{DAG_ID} for ds={ds} did not run ({exc}); see {log}") from exc
    if code != 0 or run["state"] != "success":
        raise RuntimeError(f"{DAG_ID} for ds={ds} ended {run['state']} (exit {code}); "
                           f"see {log} and {home / 'logs'}")

    steps = [_step(ti["rendered_fields"]) for ti in instances]
    progress.expect(1 + sum(step is not None for step in steps))
    tasks: list[dict[str, Any]] = []
    for ti, step in zip(instances, steps, strict=True):
        airflow_s = _seconds(ti["start_date"], ti["end_date"])
        direct_s = None
        if step is not None:
            direct_s = progress.run(
                f"{step} by hand (no-op)", job(step, ds, lake, landing),
                work / "logs" / f"airflow-overhead-{step}.log", env()).wall_s
        tasks.append({
            "task_id": ti["task_id"], "step": step, "state": ti["state"],
            "tries": ti["try_number"], "airflow_s": airflow_s, "direct_s": direct_s,
            "overhead_s": None if airflow_s is None or direct_s is None
            else airflow_s - direct_s,
        })
    dag_run_s = _run_seconds(run)
    overheads = [t["overhead_s"] for t in tasks if t["overhead_s"] is not None]
    return {
        "ds": ds,
        "dag_run_s": dag_run_s,
        "dag_test_s": dag_test_s,
        "between_tasks_s": None if dag_run_s is None
        else dag_run_s - sum(t["airflow_s"] or 0.0 for t in tasks),
        "tasks": tasks,
        "median_overhead_s": statistics.median(overheads) if overheads else None,
        "log": str(log),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring.

    Prints :func:`measure`'s result as JSON on standard output; its progress lines go to
    standard error.
    """
    parser = argparse.ArgumentParser(prog="python -m bench.airflow_overhead")
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--ds", required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(args.lake, args.landing, args.ds, args.work)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
