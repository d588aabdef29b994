"""End-to-end fixtures: generated landing zones and lakes processed by the real steps.

The helpers that build, read and compare these lakes are in tests/support/ (lake.py,
compare.py, accounting.py); the kill launcher whose counts the summary prints is
tests/support/kills.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import kills
from tests.support.lake import ChaosHistory, build_history, copy_lake, generate, lake_of, run_drop

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.lake import Lake


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
    if kills.KILLED:
        terminalreporter.write_line(
            f"kill-anywhere: {kills.KILLED[True]} runs SIGKILLed and re-run to completion; "
            f"{kills.KILLED[False]} drawn kills came after the run had ended")
        seconds = sorted(kills.SECONDS)
        terminalreporter.write_line(
            f"kill-anywhere: the {len(seconds)} runs took {sum(seconds):.0f} s, "
            f"median {seconds[len(seconds) // 2]:.1f} s, longest {seconds[-1]:.1f} s")
