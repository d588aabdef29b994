"""Kill anywhere: SIGKILLed ``spark-submit`` runs, re-run to completion, equal a clean run.

The landing zones are generated with every kind of injected fault: a small one (SF 0.001,
an initial load and two daily drops) and the suite's chaos zone (SF 0.01, an initial load
and three daily drops). The reference is a clean in-order
run of the zone, kept as it was after each drop (``small_history`` and ``chaos_history``
in ``tests/integration/e2e/conftest.py``). Each chain starts
from a copy of the reference as it was before one drop, runs ``spark-submit jobs/main.py
all`` for that drop and kills it, again and again at later points, the
way a retried task that keeps losing its node would; each run resumes from what the killed
ones left. Then the drop is re-run to completion and the lake must equal the reference
after that drop: every table's contents (order-insensitive, ingestion timestamps aside), no
duplicate keys, and a ledger that records each step of each drop exactly once with the
same counts.

Targeted points come from :mod:`jobs.fault` (``PIPELINE_FAULT``: named points and
mid-write watchers, deterministic); random points are kill times drawn from a recorded
seed, and commit numbers drawn from the traced clean run.

``make chaos N=<kills> CHAOS_SEED=<seed>`` runs 18 targeted kills on the small zone (a
chain of 9 over each daily drop, every step of ``all`` killed at least twice per drop), and
on the chaos zone 31 targeted kills (the initial load and the three daily drops), N random
ones (25 by default, 3 when run directly) and the concurrency test. (The kills during
``maintain``'s OPTIMIZE and VACUUM are in ``make test``: test_gate_and_maintain.py.)

A kill costs a fresh ``spark-submit`` (JVM, session, the first query's warm-up) plus the
redo of the step it cut short, so the kills of one drop form one chain, and a drop is
finished and compared once per chain.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.compare import assert_lake_equal, assert_tables_equal, contents, ledger
from tests.support.environment import environment
from tests.support.kills import Kill, assert_done_or_retry, submit, together
from tests.support.lake import ChaosHistory, lake_of, run_drop

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


# Not in `make test` (the whole module is marked `chaos`): every kill costs a fresh
# spark-submit and the redo of the step it cut short, more than the suite's time budget
# holds for chains of them. `make test` kills only where the suite already has a lake and
# a reference: task tries through Airflow on drops it runs anyway
# (tests/integration/dags/test_daily_run.py), `maintain` on the plain lake
# (test_gate_and_maintain.py) and silver between an order's writes and its line items'
# on the property tests' lake (test_properties.py).
pytestmark = [pytest.mark.slow, pytest.mark.chaos]

SEED = int(os.environ.get("CHAOS_SEED", "20261126"))
RANDOM_KILLS = int(os.environ.get("CHAOS_RANDOM_KILLS") or "3")


def assert_same_as_reference(spark: SparkSession, root: Path, ref: ReferenceContents,
                             ds: str) -> None:
    """The lake at ``root`` equals the clean one after drop ``ds``: tables, keys, ledger."""
    assert_lake_equal(spark, root, *ref.after(ds))


def copy(src: Path | None, dst: Path) -> Path:
    if src is not None:
        shutil.copytree(src, dst)
    else:
        dst.mkdir(parents=True)
    return dst


@pytest.fixture(scope="module")
def small_reference(spark: SparkSession, small_history: ChaosHistory) -> ReferenceContents:
    """:func:`reference_contents` of the small zone."""
    return ReferenceContents(spark, small_history)


@pytest.fixture(scope="module")
def reference_contents(spark: SparkSession, chaos_history: ChaosHistory) -> ReferenceContents:
    """The clean lake's tables and ledger after each drop, each read once when first asked."""
    return ReferenceContents(spark, chaos_history)


class ReferenceContents:
    """Cached :func:`contents` and :func:`ledger` of the reference after each drop."""

    def __init__(self, spark: SparkSession, kl: ChaosHistory) -> None:
        self.spark, self.kl = spark, kl
        self._cache: dict[str, tuple[dict[str, list[tuple[Any, ...]]],
                                     Counter[tuple[Any, ...]]]] = {}

    def after(self, ds: str) -> tuple[dict[str, list[tuple[Any, ...]]], Counter[tuple[Any, ...]]]:
        if ds not in self._cache:
            root = self.kl.after[ds]
            self._cache[ds] = (contents(self.spark, root), ledger(self.spark, root))
        return self._cache[ds]


def run_chain(spark: SparkSession, kl: ChaosHistory, ref: ReferenceContents, tmp_path: Path,
              ds: str, kills: list[Kill]) -> Path:
    """Kill ``all`` of drop ``ds`` at each point in turn, then finish the drop."""
    root = copy(kl.before(ds), tmp_path / "lake")
    for kill in kills:
        submit(root, kl.landing, "all", ds, kill, kl.env)
    finish_and_compare(spark, kl, ref, ds, root)
    return root


# Each chain's points are in the order one run of `all` passes them, step by step: a run
# resumes after the steps the killed ones completed and redoes the step they cut short, so
# every point is reached. (Inside silver, dimensions and orders run side by side.) The
# drops: 1998-07-31 and 1998-08-02 update customers and orders and add line items;
# 1998-08-01 also deletes orders (RF2). Silver's last commit before its ledger row is its
# expectation results (ops/dq_results); quality writes them again after gold.
INITIAL = [Kill("during_write:bronze/lineitem"), Kill("after_write:bronze/orders"),
           Kill("after_ingest"), Kill("during_write:silver/orders"),
           Kill("after_write:silver/customer"), Kill("after_write:silver/lineitem"),
           Kill("after_write:gold/daily_line_summary"), Kill("before_quality")]
FIRST_DAILY = [Kill("before_write:bronze/orders"), Kill("during_write:bronze/lineitem"),
               Kill("after_write:ops/runs"), Kill("during_write:silver/customer"),
               Kill("after_write:silver/_customer_snapshots"), Kill("after_write:silver/orders"),
               Kill("after_write:silver/lineitem"), Kill("after_write:ops/dq_results"),
               Kill("during_write:gold/daily_line_summary"),
               Kill("after_write:gold/revenue_by_nation")]
SECOND_DAILY = [Kill("during_write:bronze/orders"), Kill("after_ingest"),
                Kill("after_write:silver/_orders_tombstones"), Kill("after_write:silver/customer"),
                Kill("during_write:silver/lineitem"), Kill("after_write:gold/daily_line_summary"),
                Kill("before_quality")]
THIRD_DAILY = [Kill("after_write:bronze/customer"), Kill("during_write:silver/orders"),
               Kill("after_write:quarantine/lineitem"), Kill("before_write:gold/revenue_by_nation"),
               Kill("before_write:ops/dq_results"), Kill("after_quality")]


@pytest.mark.parametrize(("drop", "kills"), [
    pytest.param(0, INITIAL, id="initial_load"),
    pytest.param(1, FIRST_DAILY, id="first_daily_drop"),
    pytest.param(2, SECOND_DAILY, id="second_daily_drop"),
    pytest.param(3, THIRD_DAILY, id="third_daily_drop"),
])
def test_targeted_kills_then_a_rerun_equal_the_clean_run(
        spark: SparkSession, chaos_history: ChaosHistory, reference_contents: ReferenceContents,
        tmp_path: Path, drop: int, kills: list[Kill]) -> None:
    run_chain(spark, chaos_history, reference_contents, tmp_path, chaos_history.drops[drop], kills)


# The small zone's chains, over its two daily drops (SF 0.001, mostly injected faults).
# The first drop changes customers (SCD2), deletes orders (RF2) and brings a late line
# item; the second changes customers and brings updated, duplicated and bad orders and
# line items. Each step of `all` is killed at least twice per drop, each time with work
# half done: during a bronze write, between a bronze commit and ingest's ledger row,
# between silver's MERGEs and between its last MERGE and its ledger row, between gold's
# marts, during a mart's write, and around quality's results and ledger row. A silver kill
# makes the next run redo silver from the start, the dearest redo, so each chain has few.
SMALL_FIRST = [Kill("during_write:bronze/customer"), Kill("after_write:bronze/orders"),
               Kill("after_write:ops/runs"), Kill("after_write:silver/_orders_tombstones"),
               Kill("after_write:silver/lineitem"), Kill("during_write:gold/daily_line_summary"),
               Kill("after_write:gold/revenue_by_nation"), Kill("after_write:ops/dq_results"),
               Kill("after_quality")]
SMALL_SECOND = [Kill("before_write:bronze/lineitem"), Kill("during_write:bronze/orders"),
                Kill("after_ingest"), Kill("after_write:silver/_customer_snapshots"),
                Kill("after_write:ops/dq_results"), Kill("after_silver"),
                Kill("after_write:gold/daily_line_summary"), Kill("before_quality"),
                Kill("before_write:ops/runs")]


@pytest.mark.parametrize(("drop", "kills"), [
    pytest.param(1, SMALL_FIRST, id="first_daily_drop"),
    pytest.param(2, SMALL_SECOND, id="second_daily_drop"),
])
def test_kills_in_every_step_of_a_small_drop_then_a_rerun_equal_the_clean_run(
        spark: SparkSession, small_history: ChaosHistory, small_reference: ReferenceContents,
        tmp_path: Path, drop: int, kills: list[Kill]) -> None:
    run_chain(spark, small_history, small_reference, tmp_path, small_history.drops[drop], kills)


def draw_kills(rng: random.Random, commits: dict[str, int], n: int) -> list[tuple[str, Kill]]:
    """``n`` random kills of daily runs: a drop, then a commit number or a time."""
    drawn = []
    for _ in range(n):
        ds = rng.choice(sorted(commits))
        if rng.random() < 0.5:
            drawn.append((ds, Kill(f"commit:{rng.randint(1, commits[ds])}", drawn=True)))
        else:
            drawn.append((ds, Kill(after_s=round(rng.uniform(6.0, 45.0), 2), drawn=True)))
    return drawn


def test_random_kills_then_a_rerun_equal_the_clean_run(
        spark: SparkSession, chaos_history: ChaosHistory, reference_contents: ReferenceContents,
        tmp_path: Path) -> None:
    """Random kills from a recorded seed; a chain goes on until a run gets through."""
    rng = random.Random(SEED)
    daily = {ds: n for ds, n in chaos_history.commits.items() if ds != chaos_history.drops[0]}
    # Grouped by drop (stable): one chain per drop unless a run gets through, so a finish
    # and a comparison are paid per chain, not per kill.
    kills = sorted(draw_kills(rng, daily, RANDOM_KILLS), key=lambda k: k[0])
    print(f"seed {SEED}: " + ", ".join(f"{ds} {kill}" for ds, kill in kills))
    chain: tuple[str, Path] | None = None
    for n, (ds, kill) in enumerate(kills):
        if chain is None or chain[0] != ds:
            if chain is not None:
                finish_and_compare(spark, chaos_history, reference_contents, *chain)
            chain = (ds, copy(chaos_history.before(ds), tmp_path / f"lake-{n}"))
        proc = submit(chain[1], chaos_history.landing, "all", ds, kill)
        if proc.returncode == 0:
            finish_and_compare(spark, chaos_history, reference_contents, *chain)
            chain = None
    if chain is not None:
        finish_and_compare(spark, chaos_history, reference_contents, *chain)


def finish_and_compare(spark: SparkSession, kl: ChaosHistory, ref: ReferenceContents, ds: str,
                       root: Path) -> None:
    """Run drop ``ds`` to completion; the lake must equal the clean one after that drop."""
    with environment(kl.env):
        run_drop(spark, lake_of(root), kl.landing, ds)
    assert_same_as_reference(spark, root, ref, ds)


def test_the_same_drop_twice_and_another_drop_at_once_equal_the_clean_run(
        spark: SparkSession, chaos_history: ChaosHistory, reference_contents: ReferenceContents,
        tmp_path: Path) -> None:
    """Three runs on one lake at once: the same drop twice, and the next drop beside them.

    Each run ends 0, or 1 after its bounded conflict retries (Airflow retries it, with a
    clean message, no traceback); then the drops re-run to completion give the clean run's
    tables and ledger counts.
    """
    first, second = chaos_history.drops[1], chaos_history.drops[2]
    root = copy(chaos_history.before(first), tmp_path / "lake")
    results = together(root, chaos_history.landing, [("all", first), ("all", first),
                                                 ("all", second)])
    for result in results:
        assert_done_or_retry(result)
    for ds in (first, second):
        run_drop(spark, lake_of(root), chaos_history.landing, ds)
    want, want_ledger = reference_contents.after(second)
    assert_tables_equal(contents(spark, root), want)
    # Two runs of one step and drop may both record success; their counts are the same.
    assert set(ledger(spark, root)) == set(want_ledger)
