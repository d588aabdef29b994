"""End-to-end fixtures: generated landing zones and lakes processed by the real steps."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.delta_io import is_delta_table, latest_version
from jobs.lake import Lake
from jobs.steps import gold, ingest, quality, silver
from jobs.steps.common import StepContext
from jobs.tpch import ORDERS_DELETE, TABLES, table
from tests.conftest import environment

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


def key_of(name: str, value: str) -> tuple[int, ...] | None:
    """The primary key of a raw dbgen line of a table, or ``None`` when it does not parse."""
    fields = value.split("|")
    t = table(name)
    try:
        return tuple(int(fields[t.column_names.index(k)]) for k in t.key)
    except (ValueError, IndexError):
        return None


# Where a landed line can end, per the contract's accounting rule.
OUTCOMES = ("silver", "quarantine", "superseded", "deleted", "unchanged", "duplicate")
Line = tuple[str, str, int]  # (table, _source_file, _line_number)


def _rows(spark: SparkSession, lake: Lake, layer: str, name: str) -> list[Any]:
    uri = lake.table(layer, name)
    return spark.read.format("delta").load(uri).collect() if is_delta_table(spark, uri) else []


def _rows_by_table(spark: SparkSession, lake: Lake, layer: str,
                   names: Iterable[str]) -> dict[str, list[Any]]:
    """Rows of tables of one layer that share a schema, read with one Spark job."""
    from functools import reduce

    from pyspark.sql import functions as F

    out: dict[str, list[Any]] = {n: [] for n in names}
    frames = [spark.read.format("delta").load(lake.table(layer, n)).withColumn("_t", F.lit(n))
              for n in out if is_delta_table(spark, lake.table(layer, n))]
    if frames:
        for r in reduce(lambda a, b: a.unionByName(b), frames).collect():
            out[r["_t"]].append(r)
    return out


def _latest_silver_runs(spark: SparkSession, lake: Lake) -> dict[dt.date, Any]:
    """The latest successful silver run of each drop (a re-run replaces the earlier one)."""
    latest: dict[dt.date, Any] = {}
    for r in _rows(spark, lake, "ops", "runs"):
        if r["step"] == "silver" and r["status"] == "succeeded" and (
                r["ds"] not in latest or r["ended_at"] > latest[r["ds"]]["ended_at"]):
            latest[r["ds"]] = r
    return latest


def account_for_every_line(spark: SparkSession, lake: Lake) -> dict[Line, str]:
    """Check the accounting rule line by line over bronze; return where each line went.

    Every bronze line ends in exactly one of :data:`OUTCOMES`:

    * ``silver``: a silver row carries its lineage (for ``customer`` an SCD2 version, for
      RF2 deletions the tombstone);
    * ``quarantine``: a quarantine row carries its lineage;
    * ``superseded``: silver holds a version of its key from a newer drop;
    * ``deleted``: an order or line item whose order has a tombstone at least as new;
    * ``unchanged``: a customer snapshot line equal to the version valid on its day (no new
      SCD2 version; the line is kept in ``silver/_customer_snapshots``);
    * ``duplicate``: a further copy of an identical line of the same drop and table.

    Asserts that no line is left over, that no identical line is placed twice, and that the
    latest successful silver run of each drop read exactly that drop's bronze lines and
    counted exactly the duplicates found here.

    :return: ``(table, _source_file, _line_number)`` -> outcome, for every bronze line.
    """
    latest = _latest_silver_runs(spark, lake)
    tombstones = {r["o_orderkey"]: r["_ds"]
                  for r in _rows(spark, lake, "silver", "_order_tombstones")}
    snapshots = {(r["_source_file"], r["_line_number"]): r
                 for r in _rows(spark, lake, "silver", "_customer_snapshots")}
    out: dict[Line, str] = {}
    names = (*TABLES, ORDERS_DELETE.name)
    bronze_rows = _rows_by_table(spark, lake, "bronze", names)
    quarantine_rows = _rows_by_table(spark, lake, "quarantine", names)
    for name in names:
        bronze = bronze_rows[name]
        quarantined = {(r["_source_file"], r["_line_number"]) for r in quarantine_rows[name]}
        target = "_order_tombstones" if name == ORDERS_DELETE.name else name
        silver = _rows(spark, lake, "silver", target)
        in_silver = {(r["_source_file"], r["_line_number"]) for r in silver}
        t = table(name)
        newest: dict[tuple[int, ...], dt.date] = {}
        versions: dict[tuple[int, ...], list[Any]] = defaultdict(list)
        for r in silver:
            k = tuple(r[c] for c in t.key)
            newest[k] = max(newest.get(k, r["_ds"]), r["_ds"])
            versions[k].append(r)

        def unchanged(line: Any, k: tuple[int, ...] | None) -> bool:
            snap = snapshots.get((line["_source_file"], line["_line_number"]))
            return name == "customer" and snap is not None and any(
                v["valid_from"] <= line["_ds"] and (v["valid_to"] is None
                                                    or line["_ds"] < v["valid_to"])
                and v["_row_hash"] == snap["_row_hash"] for v in versions[k or ()])

        def placed(line: Any) -> str | None:
            where = (line["_source_file"], line["_line_number"])
            k = key_of(name, line["value"])
            assert not (where in in_silver and where in quarantined), (name, "in both", line)
            if where in in_silver:
                return "silver"
            if where in quarantined:
                return "quarantine"
            if unchanged(line, k):
                return "unchanged"
            if k is not None and k in newest and newest[k] > line["_ds"]:
                return "superseded"
            if (k is not None and name in ("orders", "lineitem")
                    and tombstones.get(k[0]) is not None and tombstones[k[0]] >= line["_ds"]):
                return "deleted"
            return None

        copies: dict[tuple[dt.date, str], list[Any]] = defaultdict(list)
        for line in bronze:
            copies[(line["_ds"], line["value"])].append(line)
        for group in copies.values():
            group.sort(key=lambda r: (r["_source_file"], r["_line_number"]))
            found = [placed(line) for line in group]
            kept = [i for i, o in enumerate(found) if o in ("silver", "quarantine")]
            assert len(kept) <= 1, (name, "an identical line is placed twice", group)
            primary = kept[0] if kept else 0
            for i, line in enumerate(group):
                outcome = found[i] if i == primary else "duplicate"
                assert outcome is not None, (name, "line not accounted for", line)
                out[(name, line["_source_file"], line["_line_number"])] = outcome
        per_drop: dict[dt.date, int] = defaultdict(int)
        for line in bronze:
            per_drop[line["_ds"]] += 1
        for ds, n in per_drop.items():
            assert ds in latest, (name, ds, "bronze lines but no successful silver run")
            assert (latest[ds]["rows_read"] or {}).get(name, 0) == n, (name, ds)
        counted = sum((r["rows_duplicate"] or {}).get(name, 0) for r in latest.values())
        found_dups = sum(1 for line in bronze
                         if out[(name, line["_source_file"], line["_line_number"])]
                         == "duplicate")
        assert found_dups == counted, (name, found_dups, counted)
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
    from jobs.schemas import gold_schema
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


# Primary keys of the silver tables (customer: one row per SCD2 version).
KEYS = {**{name: t.key for name, t in TABLES.items()}, "customer": ("c_custkey", "valid_from"),
        "_order_tombstones": ("o_orderkey",)}
# Columns that differ between two runs of the same input.
VOLATILE = ("_ingested_at",)


def rows(spark: SparkSession, path: Path) -> list[tuple[Any, ...]]:
    """A table's rows without ingestion timestamps, sorted (order-insensitive)."""
    df = spark.read.format("delta").load(str(path))
    df = df.drop(*[c for c in VOLATILE if c in df.columns])
    return sorted((tuple(r) for r in df.collect()), key=repr)


def contents(spark: SparkSession, root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table of a lake (bronze, silver, quarantine, gold)."""
    return {f"{layer}/{t.name}": rows(spark, t)
            for layer in DATA_LAYERS if (root / layer).is_dir()
            for t in sorted((root / layer).iterdir()) if (t / "_delta_log").is_dir()}


def ledger(spark: SparkSession, root: Path) -> Counter[tuple[Any, ...]]:
    """Succeeded step runs with the counts that do not depend on what was there before."""
    runs = spark.read.format("delta").load(str(root / "ops" / "runs")).collect()
    return Counter(
        (r["step"], r["ds"], r["status"], tuple(sorted((r["rows_read"] or {}).items())),
         tuple(sorted((r["rows_quarantined"] or {}).items())),
         tuple(sorted((r["rows_duplicate"] or {}).items())))
        for r in runs if r["status"] == "succeeded")


def difference(name: str, got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> str:
    """Rows only in the tested lake and rows only in the clean one (at most 5 each)."""
    extra, missing = Counter(got) - Counter(want), Counter(want) - Counter(got)
    return (f"{name} differs from the clean run: {sum(extra.values())} rows only here, "
            f"e.g. {list(extra)[:5]}; {sum(missing.values())} rows only in the clean run, "
            f"e.g. {list(missing)[:5]}")


def assert_tables_equal(got: dict[str, list[tuple[Any, ...]]],
                        want: dict[str, list[tuple[Any, ...]]]) -> None:
    """The same tables with the same rows (:func:`contents` of two lakes)."""
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], difference(name, got[name], want[name])


def assert_lake_equal(spark: SparkSession, root: Path, want: dict[str, list[tuple[Any, ...]]],
                      want_ledger: Counter[tuple[Any, ...]]) -> None:
    """The lake at ``root`` equals a clean one: every data table's rows (:func:`contents`),
    no duplicate key in silver, and the same successful step runs (:func:`ledger`), each
    step of each drop recorded once."""
    assert_tables_equal(contents(spark, root), want)
    for name, key in KEYS.items():
        table = root / "silver" / name
        if name != "customer" and table.is_dir():
            keys = [tuple(r[c] for c in key)
                    for r in spark.read.format("delta").load(str(table)).collect()]
            assert len(keys) == len(set(keys)), f"duplicate keys in silver/{name}"
    got_ledger = ledger(spark, root)
    assert got_ledger == want_ledger
    once = Counter((step, ds) for step, ds, *_ in got_ledger.elements())
    assert set(once.values()) == {1}, "a step of a drop is recorded more than once"


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


@pytest.fixture(scope="session")
def chaos_history(spark: SparkSession, chaos_landing: tuple[Path, list[str], dict[str, Any]],
                  tmp_path_factory: pytest.TempPathFactory) -> ChaosHistory:
    """The chaos drops processed in order, with the lake copied after each drop."""
    landing, drops, _ = chaos_landing
    return build_history(spark, landing, drops, tmp_path_factory.mktemp("chaos-history"))


@pytest.fixture(scope="session")
def small_history(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> ChaosHistory:
    """A small zone with injected faults, processed in order: SF 0.001, an initial load and
    two daily drops (``make chaos``'s cheapest kill chains: with this little data a
    killed ``spark-submit`` costs mostly its start-up).

    Its daily drops are mostly injected faults, so the quality gate's quarantine limit is
    lifted for its runs (and for the kill chains' runs of its drops).
    """
    base = tmp_path_factory.mktemp("small-history")
    drops = generate(base / "landing", chaos=True, sf="0.001", days=2, seed=7)
    return build_history(spark, base / "landing", drops, base, {"DQ_MAX_QUARANTINE_RATIO": "1"})


@pytest.fixture(scope="session")
def chaos_initial(chaos_history: ChaosHistory, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The chaos initial load alone (tests copy it before they write)."""
    return copy_lake(lake_of(chaos_history.after[chaos_history.drops[0]]),
                     tmp_path_factory.mktemp("chaos-initial") / "lake")


@pytest.fixture(scope="session")
def chaos_lake(chaos_history: ChaosHistory, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The chaos drops processed in order (a copy: tests may re-run drops on it)."""
    return copy_lake(lake_of(chaos_history.after[chaos_history.drops[-1]]),
                     tmp_path_factory.mktemp("chaos-lake") / "lake")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many ``spark-submit`` runs the kill tests killed, when they ran."""
    from tests.e2e.kills import KILLED, SECONDS

    if KILLED:
        terminalreporter.write_line(
            f"kill-anywhere: {KILLED[True]} runs SIGKILLed and re-run to completion; "
            f"{KILLED[False]} drawn kills came after the run had ended")
        seconds = sorted(SECONDS)
        terminalreporter.write_line(
            f"kill-anywhere: the {len(seconds)} runs took {sum(seconds):.0f} s, "
            f"median {seconds[len(seconds) // 2]:.1f} s, longest {seconds[-1]:.1f} s")
