"""End-to-end fixtures: generated landing zones and lakes processed by the real steps."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.delta_io import is_delta_table, latest_version
from jobs.lake import Lake
from jobs.steps import gold, ingest, quality, silver
from jobs.steps.common import StepContext

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[2]
DATA_LAYERS = ("bronze", "silver", "quarantine", "gold")
SILVER = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
          "_order_tombstones", "_customer_snapshots")
GOLD = ("daily_line_summary", "revenue_by_nation")


def generate(landing: Path, *, chaos: bool, sf: str = "0.01", days: int = 3,
             seed: int = 42) -> list[str]:
    """Run the project's generator; return the drops' ``ds`` values, oldest first."""
    cmd = [sys.executable, "-m", "jobs.datagen", "--sf", sf, "--days", str(days),
           "--seed", str(seed), "--landing", str(landing)]
    if chaos:
        cmd.append("--chaos")
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return sorted(p.name[3:] for p in landing.iterdir() if p.name.startswith("ds="))


def lake_of(path: Path) -> Lake:
    """A lake rooted at a local folder."""
    return Lake("file:" + str(path))


def run_drop(spark: SparkSession, lake: Lake, landing: Path, ds: str,
             steps: Iterable[Any] = (ingest, silver, gold, quality)) -> None:
    """Run the steps of ``all`` for one drop, in-process on the shared session."""
    ctx = StepContext(spark, lake, "file:" + str(landing), dt.date.fromisoformat(ds))
    for step in steps:
        step.run(ctx)


def table_versions(spark: SparkSession, lake: Lake,
                   layers: Iterable[str] = (*DATA_LAYERS, "ops")) -> dict[str, int | None]:
    """Current Delta version of every table in the given layers."""
    out: dict[str, int | None] = {}
    root = Path(lake.root[len("file:"):])
    for layer in layers:
        folder = root / layer
        if folder.is_dir():
            for table in sorted(folder.iterdir()):
                out[f"{layer}/{table.name}"] = latest_version(spark, lake.table(layer, table.name))
    return out


def table_rows(spark: SparkSession, lake: Lake, layer: str, name: str,
               drop: Iterable[str] = ()) -> list[tuple[Any, ...]]:
    """All rows of a table as sorted tuples (order-insensitive comparison)."""
    uri = lake.table(layer, name)
    if not is_delta_table(spark, uri):
        return []
    df = spark.read.format("delta").load(uri).drop(*drop)
    return sorted((tuple(r) for r in df.collect()), key=repr)


def snapshot(spark: SparkSession, lake: Lake) -> dict[str, list[tuple[Any, ...]]]:
    """Silver and gold contents, for comparing lakes built in different orders."""
    out = {f"silver/{n}": table_rows(spark, lake, "silver", n) for n in SILVER}
    out |= {f"gold/{n}": table_rows(spark, lake, "gold", n) for n in GOLD}
    return out


@pytest.fixture(scope="session")
def plain_landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """SF 0.01, initial load plus three daily drops, no faults."""
    landing = tmp_path_factory.mktemp("plain") / "landing"
    return landing, generate(landing, chaos=False)


@pytest.fixture(scope="session")
def plain_lake(spark: SparkSession, plain_landing: tuple[Path, list[str]],
               tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The plain drops processed in order."""
    landing, drops = plain_landing
    lake = lake_of(tmp_path_factory.mktemp("plain-lake"))
    for ds in drops:
        run_drop(spark, lake, landing, ds)
    return lake


@pytest.fixture(scope="session")
def chaos_landing(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[str], dict[str, Any]]:
    """SF 0.01 with every kind of injected fault, and the generator's manifest."""
    landing = tmp_path_factory.mktemp("chaos") / "landing"
    drops = generate(landing, chaos=True)
    manifest = json.loads((landing / "chaos_manifest.json").read_text())
    return landing, drops, manifest


def copy_lake(lake: Lake, to: Path) -> Lake:
    """A copy of a local lake (Delta tables use relative paths, so a copy is a lake)."""
    shutil.copytree(lake.root[len("file:"):], to)
    return lake_of(to)


def expected_gold(spark: SparkSession, lake: Lake) -> dict[str, list[tuple[Any, ...]]]:
    """Both marts computed from scratch over the lake's silver, as sorted row tuples."""
    from jobs.steps.gold import gold_schema
    from jobs.transforms.gold import daily_line_summary, revenue_by_nation

    read = {n: spark.read.format("delta").load(lake.table("silver", n))
            for n in ("orders", "lineitem", "customer", "nation")}
    marts = {
        "daily_line_summary": daily_line_summary(read["lineitem"]),
        "revenue_by_nation": revenue_by_nation(read["orders"], read["lineitem"],
                                               read["customer"], read["nation"]),
    }
    return {n: sorted((tuple(r) for r in df.select(*gold_schema(n).names).collect()), key=repr)
            for n, df in marts.items()}


@pytest.fixture(scope="session")
def chaos_initial(spark: SparkSession, chaos_landing: tuple[Path, list[str], dict[str, Any]],
                  tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The chaos initial load alone (tests copy it before they write)."""
    landing, drops, _ = chaos_landing
    lake = lake_of(tmp_path_factory.mktemp("chaos-initial") / "lake")
    run_drop(spark, lake, landing, drops[0])
    return lake


@pytest.fixture(scope="session")
def chaos_lake(spark: SparkSession, chaos_landing: tuple[Path, list[str], dict[str, Any]],
               chaos_initial: Lake, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The chaos drops processed in order (the initial load is a copy of ``chaos_initial``)."""
    landing, drops, _ = chaos_landing
    lake = copy_lake(chaos_initial, tmp_path_factory.mktemp("chaos-lake") / "lake")
    for ds in drops[1:]:
        run_drop(spark, lake, landing, ds)
    return lake
