"""Building and reading test lakes: generated landing zones, drops run in-process, copies.

The end-to-end tests and the DAG tests build their lakes with these; the lakes themselves
(session fixtures) are in tests/integration/e2e/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.delta_io import is_delta_table, latest_version
from jobs.lake import Lake
from jobs.steps import gold, ingest, quality, silver
from jobs.steps.common import StepContext
from tests.support.environment import environment
from tests.support.tpch import GOLD, SNAPSHOTS, TOMBSTONES, mart

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DATA_LAYERS", "GOLD", "SILVER", "ChaosHistory", "build_history", "copy_lake",
           "expected_gold", "generate", "lake_of", "run_drop", "snapshot", "table_rows",
           "table_versions"]

ROOT = Path(__file__).resolve().parents[2]
DATA_LAYERS = ("bronze", "silver", "quarantine", "gold")
SILVER = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
          TOMBSTONES, SNAPSHOTS)


def generate(landing: Path, *, chaos: bool, sf: str = "0.01", days: int = 3,
             seed: int = 42) -> list[str]:
    """Run the project's generator; return the drops' ``ds`` values, oldest first."""
    cmd = [sys.executable, "-m", "pipelines.tpch.datagen", "--sf", sf, "--days", str(days),
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


def copy_lake(lake: Lake, to: Path) -> Lake:
    """A copy of a local lake (Delta tables use relative paths, so a copy is a lake)."""
    shutil.copytree(lake.root[len("file:"):], to)
    return lake_of(to)


def expected_gold(spark: SparkSession, lake: Lake) -> dict[str, list[tuple[Any, ...]]]:
    """Both marts computed from scratch over the lake's silver, as sorted row tuples."""
    from pyspark.sql import functions as F

    read = {n: spark.read.format("delta").load(lake.table("silver", n))
            for n in ("orders", "lineitem", "customer", "nation")}
    views = {**read, "customer": read["customer"].where(F.col("is_current")),
             "customer_history": read["customer"]}
    return {n: sorted((tuple(r) for r in mart(spark, n, **views).collect()), key=repr)
            for n in GOLD}


@dataclass
class ChaosHistory:
    """The chaos drops processed in order, kept as the lake was after each drop.

    ``after[ds]`` is a read-only copy of the lake right after drop ``ds`` (before any test
    touched it); ``commits[ds]`` is how many Delta commits that drop's clean run made (from
    ``PIPELINE_FAULT_TRACE``). The kill-anywhere tests start from these states.
    """

    landing: Path
    drops: list[str]
    after: dict[str, Path]
    commits: dict[str, int]
    # Settings its runs need (the clean ones here, and the tests' runs of its drops).
    env: dict[str, str] = field(default_factory=dict)

    def before(self, ds: str) -> Path | None:
        """The clean lake before drop ``ds`` (``None``: the empty lake)."""
        i = self.drops.index(ds)
        return self.after[self.drops[i - 1]] if i else None


def _traced_drop(spark: SparkSession, lake: Lake, landing: Path, ds: str,
                 trace: Path) -> int:
    """Run one drop with the fault trace on; return how many Delta commits it made."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_FAULT_TRACE", str(trace))
        run_drop(spark, lake, landing, ds)
    return sum(1 for line in trace.read_text().splitlines() if line.startswith("commit:"))


def build_history(spark: SparkSession, landing: Path, drops: list[str], base: Path,
                  env: dict[str, str] | None = None) -> ChaosHistory:
    """Process the drops in order under ``base``, copying the lake after each drop."""
    lake = lake_of(base / "lake")
    after, commits = {}, {}
    with environment(env or {}):
        for ds in drops:
            commits[ds] = _traced_drop(spark, lake, landing, ds, base / f"trace-{ds}")
            after[ds] = base / f"after-{ds}"
            shutil.copytree(base / "lake", after[ds])
    return ChaosHistory(landing, drops, after, commits, env or {})
