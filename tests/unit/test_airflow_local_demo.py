"""``make demo``'s task lines: ``tools/airflow_local.py`` reading the metadata database.

The database here is a SQLite file with the columns of Airflow's ``dag_run`` and
``task_instance`` tables that the demo reads, filled by hand (no Airflow process).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from tools.airflow_local import FinishedTask, finished_tasks, sqlite_database

DS = "1998-07-30"
SINCE = dt.datetime(2026, 1, 2, 10, 0, 0, tzinfo=dt.UTC)


def _database(path: Path, runs: list[tuple[int, str, str, str]],
              tasks: list[tuple[str, str, int, int, str | None, str | None, str | None]]
              ) -> Path:
    """``runs``: (id, run_id, logical_date, state); ``tasks``: (run_id, task_id, map_index,
    try_number, state, start_date, end_date), all for ``tpch_daily``."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT, "
               "logical_date TEXT, state TEXT)")
    db.execute("CREATE TABLE task_instance (dag_id TEXT, run_id TEXT, task_id TEXT, "
               "map_index INTEGER, try_number INTEGER, state TEXT, start_date TEXT, "
               "end_date TEXT)")
    db.executemany("INSERT INTO dag_run VALUES (?, 'tpch_daily', ?, ?, ?)", runs)
    db.executemany("INSERT INTO task_instance VALUES ('tpch_daily', ?, ?, ?, ?, ?, ?, ?)", tasks)
    db.commit()
    db.close()
    return path


def test_ended_tries_of_the_latest_run_in_the_order_they_ended(tmp_path: Path) -> None:
    database = _database(tmp_path / "airflow.db", runs=[
        (1, "manual__old", "1998-07-30 00:00:00.000000", "success"),
        (2, "manual__new", "1998-07-30 00:00:00.000000", "running"),
        (3, "manual__other_day", "1998-07-31 00:00:00.000000", "running"),
    ], tasks=[
        # The earlier invocation's run: not this one.
        ("manual__old", "ingest", -1, 1, "success", "2026-01-01 09:00:00.000000",
         "2026-01-01 09:00:30.000000"),
        ("manual__new", "wait_for_drop", -1, 1, "success", "2026-01-02 10:00:01.000000",
         "2026-01-02 10:00:07.000000"),
        ("manual__new", "silver", -1, 1, "up_for_retry", "2026-01-02 10:00:20.000000",
         "2026-01-02 10:01:01.200000"),
        ("manual__new", "ingest", -1, 1, "success", "2026-01-02 10:00:08.000000",
         "2026-01-02 10:00:19.500000"),
        # Still running, or waiting: not ended.
        ("manual__new", "gold", -1, 0, None, None, None),
        ("manual__new", "quality", -1, 1, "running", "2026-01-02 10:01:02.000000", None),
        # Ended before this invocation began (a cleared run of the same ds).
        ("manual__new", "notify", -1, 1, "success", "2026-01-02 09:59:00.000000",
         "2026-01-02 09:59:01.000000"),
        ("manual__other_day", "ingest", -1, 1, "success", "2026-01-02 10:00:01.000000",
         "2026-01-02 10:00:02.000000"),
    ])

    tasks, state = finished_tasks(database, "tpch_daily", DS, SINCE)

    assert state == "running"
    assert [(t.task_id, t.state, t.seconds) for t in tasks] == [
        ("wait_for_drop", "success", 6.0),
        ("ingest", "success", 11.5),
        ("silver", "up_for_retry", 41.2),
    ]


def test_no_run_for_the_day_yet(tmp_path: Path) -> None:
    database = _database(tmp_path / "airflow.db", runs=[], tasks=[])
    assert finished_tasks(database, "tpch_daily", DS, SINCE) == ([], None)


def test_a_database_that_is_not_migrated_raises_sqlite_error(tmp_path: Path) -> None:
    database = tmp_path / "empty.db"
    sqlite3.connect(database).close()
    with pytest.raises(sqlite3.Error):
        finished_tasks(database, "tpch_daily", DS, SINCE)


def test_task_line_columns() -> None:
    ended = dt.datetime(2026, 1, 2, 10, 0, tzinfo=dt.UTC)
    assert FinishedTask("silver", -1, 1, "success", 41.2, ended).line(DS) == \
        "1998-07-30  silver            success   41.2 s"
    assert FinishedTask("ingest", 3, 2, "failed", 1234.56, ended).line(DS) == \
        "1998-07-30  ingest[3]         failed  1234.6 s"
    assert FinishedTask("notify", -1, 0, "skipped", None, ended).line(DS) == \
        "1998-07-30  notify            skipped"


@pytest.mark.parametrize(("conn", "expected"), [
    ("sqlite:////home/me/.airflow/airflow.db", Path("/home/me/.airflow/airflow.db")),
    ("sqlite:////tmp/a.db?timeout=30", Path("/tmp/a.db")),
    ("sqlite:///:memory:", None),
    ("postgresql+psycopg2://airflow@localhost/airflow", None),
])
def test_sqlite_database_from_the_connection_url(conn: str, expected: Path | None) -> None:
    assert sqlite_database(conn) == expected
