"""``bench/history.py``: the landings of the daily-cost-against-history benchmark.

Built from a real generated landing (SF 0.01); every check recomputes its expectation
from the generator's own files.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from bench import history

REPO = Path(__file__).resolve().parents[3]
INITIAL, DAILY, LATER = "1998-07-31", "1998-08-01", "1998-08-02"


def lines(drop: Path, table: str) -> list[bytes]:
    return [line for part in sorted((drop / table).glob("*.tbl"))
            for line in part.read_bytes().splitlines(keepends=True)]


def key(line: bytes) -> int:
    return int(line.split(b"|")[0])


@pytest.fixture(scope="module")
def landings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    source = tmp_path_factory.mktemp("source")
    subprocess.run([sys.executable, "-m", "pipelines.tpch.datagen", "--sf", "0.01", "--days", "2",
                    "--landing", str(source)], cwd=REPO, check=True, capture_output=True)
    out = tmp_path_factory.mktemp("landings")
    return source, history.prepare(source, out, INITIAL, DAILY, [7, 30])


def test_each_landing_holds_the_last_n_days_of_orders(
        landings: tuple[Path, dict[str, Path]]) -> None:
    source, roots = landings
    assert sorted(roots) == ["30", "7", history.FULL]
    first = date.fromisoformat(INITIAL)
    every = lines(source / f"ds={INITIAL}", "orders")
    for label in ("7", "30"):
        kept = lines(roots[label] / f"ds={INITIAL}", "orders")
        expected = [o for o in every
                    if (first - date.fromisoformat(o.split(b"|")[4].decode())).days < int(label)]
        assert kept == expected and 0 < len(kept) < len(every)
    assert lines(roots[history.FULL] / f"ds={INITIAL}", "orders") == every
    # Dimensions are whole, and the full landing keeps the later drops.
    for root in roots.values():
        assert lines(root / f"ds={INITIAL}", "customer") == lines(source / f"ds={INITIAL}",
                                                                   "customer")
        assert (root / f"ds={INITIAL}" / "_SUCCESS").exists()
        assert (root / f"ds={DAILY}" / "_SUCCESS").exists()
    assert lines(roots[history.FULL] / f"ds={LATER}", "lineitem") == lines(
        source / f"ds={LATER}", "lineitem")
    assert not (roots["7"] / f"ds={LATER}").exists()


def test_every_line_item_is_kept_or_delivered_late(
        landings: tuple[Path, dict[str, Path]]) -> None:
    source, roots = landings
    summary = history.drop_summary(roots[history.FULL].parent)
    original = lines(source / f"ds={INITIAL}", "lineitem")
    daily_source = lines(source / f"ds={DAILY}", "lineitem")
    for label, root in roots.items():
        orders = {key(o) for o in lines(root / f"ds={INITIAL}", "orders")}
        kept = lines(root / f"ds={INITIAL}", "lineitem")
        daily = lines(root / f"ds={DAILY}", "lineitem")
        late = daily[len(daily_source):]
        assert daily[:len(daily_source)] == daily_source
        assert len(late) == summary["late_lines"] >= 5
        # Late lines belong to recent orders and left the initial load.
        assert not set(late) & set(kept)
        assert {key(line) for line in late} <= orders
        # Nothing else is missing: the initial load's lines of the kept orders, less the late.
        assert Counter(kept) + Counter(late) == Counter(
            line for line in original if key(line) in orders), label


def test_the_daily_drop_updates_recent_orders(landings: tuple[Path, dict[str, Path]]) -> None:
    source, roots = landings
    summary = history.drop_summary(roots[history.FULL].parent)
    new = lines(source / f"ds={DAILY}", "orders")
    recent = {key(o): o for o in lines(roots["7"] / f"ds={INITIAL}", "orders")}
    for root in roots.values():
        daily = lines(root / f"ds={DAILY}", "orders")
        assert daily[:len(new)] == new
        updates = daily[len(new):]
        assert len(updates) == summary["updated_orders"] >= 5
        for line in updates:
            before = recent[key(line)].split(b"|")
            after = line.split(b"|")
            # Same order, same month, a new comment: an update, not a new order.
            assert after[:8] == before[:8] and after[8] == history.UPDATED_COMMENT
    assert summary["new_orders"] == len(new)
