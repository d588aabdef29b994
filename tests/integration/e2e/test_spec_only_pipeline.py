"""A third pipeline written only as a spec: JSON lines in, silver and a gold mart out.

Nothing here is Python the engine runs: the test writes a spec, one SQL file and two drops
of JSON lines into a temporary ``pipelines/`` folder (``PIPELINES_DIR``), then drives the
contract's command line, ``python -m jobs all --pipeline sensors``, for each drop. The
expected tables are worked out by hand below. The drops are also processed in reverse
order into a second lake, which must end the same.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.lake import lake_of, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SPEC = """
name: sensors
description: Temperature readings of devices at sites, delivered as JSON lines.
schedule: "@daily"
start_date: 2024-01-01
sources:
  devices:
    format: {type: jsonl}
    files: "*.jsonl"
    columns:
      - {name: device_id, type: bigint, nullable: false}
      - {name: site, type: string, nullable: false}
      - {name: model, type: string}
    key: [device_id]
    history: scd2
    track: [site]
  readings:
    format: {type: jsonl, timestamp_format: "yyyy-MM-dd'T'HH:mm:ss"}
    files: "*.jsonl"
    columns:
      - {name: device_id, type: bigint, nullable: false}
      - {name: reading_id, type: bigint, nullable: false}
      - {name: taken_at, type: timestamp, nullable: false}
      - {name: celsius, type: "decimal(5,2)"}
    key: [device_id, reading_id]
    partition: {column: _reading_day, expression: "to_date(taken_at)"}
    deletes: {folder: readings_delete, files: "*.jsonl"}
    expectations:
      - {name: celsius_plausible, check: "celsius BETWEEN -60 AND 60"}
marts:
  site_daily:
    sql: gold/site_daily.sql
    grain: [day, site]
    refresh:
      column: day
      when:
        readings: "SELECT to_date(taken_at) FROM changes"
        devices: all
"""
MART = """
SELECT to_date(r.taken_at) AS day, d.site,
       CAST(count(*) AS BIGINT) AS readings,
       CAST(avg(r.celsius) AS DECIMAL(7, 3)) AS avg_celsius
FROM readings r JOIN devices d ON d.device_id = r.device_id
GROUP BY to_date(r.taken_at), d.site
"""
D1, D2 = "2024-01-01", "2024-01-02"
DROPS: dict[str, dict[str, list[Any]]] = {
    D1: {
        "devices": [{"device_id": 1, "site": "north", "model": "A"},
                    {"device_id": 2, "site": "south", "model": "B"}],
        "readings": [{"device_id": 1, "reading_id": 1, "taken_at": "2024-01-01T10:00:00",
                      "celsius": 20.5},
                     {"device_id": 1, "reading_id": 2, "taken_at": "2024-01-01T11:00:00",
                      "celsius": 21},
                     {"device_id": 2, "reading_id": 1, "taken_at": "2024-01-01T10:00:00",
                      "celsius": "15.25"},
                     "{not json",
                     {"device_id": 2, "reading_id": 2, "taken_at": "2024-01-01T12:00:00",
                      "celsius": 99}],
    },
    D2: {
        # Device 2 moved: a new version from D2 on.
        "devices": [{"device_id": 2, "site": "east", "model": "B"}],
        # A new reading, and a correction of reading (1, 2).
        "readings": [{"device_id": 1, "reading_id": 3, "taken_at": "2024-01-02T09:00:00",
                      "celsius": 19},
                     {"device_id": 1, "reading_id": 2, "taken_at": "2024-01-01T11:00:00",
                      "celsius": 22}],
        "readings_delete": [{"device_id": 1, "reading_id": 1}],
    },
}


def _write(root: Path) -> Path:
    pipelines = root / "pipelines"
    (pipelines / "sensors" / "gold").mkdir(parents=True)
    (pipelines / "sensors" / "pipeline.yaml").write_text(SPEC)
    (pipelines / "sensors" / "gold" / "site_daily.sql").write_text(MART)
    landing = root / "landing"
    for ds, tables in DROPS.items():
        for table, rows in tables.items():
            folder = landing / f"ds={ds}" / table
            folder.mkdir(parents=True)
            lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
            (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n")
        (landing / f"ds={ds}" / "_SUCCESS").write_text("")
    return pipelines


def _all(pipelines: Path, lake: Path, landing: Path, ds: str) -> None:
    env = {**os.environ, "PIPELINES_DIR": str(pipelines)}
    done = subprocess.run([sys.executable, "-m", "jobs", "all", "--pipeline", "sensors",
                           "--ds", ds, "--lake", str(lake), "--landing", str(landing)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def sensors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("sensors")
    pipelines = _write(root)
    env = {**os.environ, "PIPELINES_DIR": str(pipelines)}
    checked = subprocess.run([sys.executable, "-m", "jobs", "validate", "--pipeline",
                              "sensors"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
    assert checked.returncode == 0, checked.stderr
    for ds in (D1, D2):
        _all(pipelines, root / "lake", root / "landing", ds)
    for ds in (D2, D1):
        _all(pipelines, root / "reverse", root / "landing", ds)
    return root / "lake", root / "reverse", root / "landing"


def _values(rows: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    return sorted((r[:width] for r in rows), key=repr)


def test_silver_keeps_the_newest_version_and_drops_the_deleted_reading(
        spark: SparkSession, sensors: tuple[Path, Path, Path]) -> None:
    lake = lake_of(sensors[0])
    ts = dt.datetime
    assert _values(table_rows(spark, lake, "silver", "readings"), 4) == [
        (1, 2, ts(2024, 1, 1, 11), Decimal("22.00")),
        (1, 3, ts(2024, 1, 2, 9), Decimal("19.00")),
        (2, 1, ts(2024, 1, 1, 10), Decimal("15.25")),
    ]


def test_device_history_is_kept_as_scd2(spark: SparkSession,
                                        sensors: tuple[Path, Path, Path]) -> None:
    d = dt.date
    rows = table_rows(spark, lake_of(sensors[0]), "silver", "devices")
    assert _values([(r[0], r[1], r[3], r[4], r[5]) for r in rows], 5) == [
        (1, "north", d(2024, 1, 1), None, True),
        (2, "east", d(2024, 1, 2), None, True),
        (2, "south", d(2024, 1, 1), d(2024, 1, 2), False),
    ]


def test_bad_lines_are_quarantined_with_their_reason(
        spark: SparkSession, sensors: tuple[Path, Path, Path]) -> None:
    rows = table_rows(spark, lake_of(sensors[0]), "quarantine", "readings")
    assert sorted((r[0], r[3], tuple(r[4])) for r in rows) == [
        ('{"device_id": 2, "reading_id": 2, "taken_at": "2024-01-01T12:00:00", '
         '"celsius": 99}', 5, ("celsius_plausible",)),
        ("{not json", 4, ("invalid_json",)),
    ]


def test_gold_is_the_mart_of_the_current_rows(spark: SparkSession,
                                              sensors: tuple[Path, Path, Path]) -> None:
    d = dt.date
    assert table_rows(spark, lake_of(sensors[0]), "gold", "site_daily") == sorted([
        (d(2024, 1, 1), "east", 1, Decimal("15.250")),
        (d(2024, 1, 1), "north", 1, Decimal("22.000")),
        (d(2024, 1, 2), "north", 1, Decimal("19.000")),
    ], key=repr)


def test_drops_in_reverse_order_converge(spark: SparkSession,
                                         sensors: tuple[Path, Path, Path]) -> None:
    lake, reverse = lake_of(sensors[0]), lake_of(sensors[1])
    for layer, name in (("silver", "readings"), ("silver", "devices"),
                        ("quarantine", "readings"), ("gold", "site_daily")):
        assert table_rows(spark, reverse, layer, name) == table_rows(spark, lake, layer,
                                                                     name), name
