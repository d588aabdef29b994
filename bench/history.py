"""Landing zones for "daily cost against history": one daily drop, lakes of growing history.

The generator's initial load holds every order up to its date (about 2,400 days of them).
For a lake that holds only the last *N* days, :func:`prepare` keeps the initial load's
orders of those days (and their line items) and all dimensions. Every such landing gets the
same daily drop: the generator's next drop (new orders and their line items) plus

* updates of recent orders: one in ten of the new-order count, taken from the initial
  load's last seven days and re-delivered with a new comment (so they update rows of the
  same recent months in every lake), and
* late line items: one in a hundred of the drop's line items, held back from the initial
  load and delivered with the daily drop instead.

The landing named ``full`` keeps the whole initial load (its line items less the late
ones) and every later drop; the benchmark's main lake is built from it. Files are copied
part by part (the pipeline reads one part per task); unchanged files are hard links.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.common import count_lines, table_files

FULL = "full"
RECENT_DAYS = 7
UPDATED_COMMENT = b"bench: updated order"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _key(line: bytes) -> int:
    return int(line[: line.index(b"|")])


def _fields(line: bytes) -> list[bytes]:
    return line.rstrip(b"\n").split(b"|")


def _every(items: Sequence[bytes], n: int) -> list[bytes]:
    """``n`` items spread evenly over ``items`` (deterministic)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _updated(line: bytes) -> bytes:
    fields = _fields(line)
    fields[8] = UPDATED_COMMENT
    return b"|".join(fields) + b"\n"


def prepare(source: Path, out: Path, initial: str, daily: str, days: Iterable[int]
            ) -> dict[str, Path]:
    """Write one landing per history length (and ``full``) under ``out``; reuse them after.

    :param source: the generator's landing (initial load, then daily drops).
    :param out: folder for the landings (``out/<N>`` and ``out/full``).
    :param initial: the initial load's ``ds``.
    :param daily: the daily drop that every landing receives (the first after ``initial``).
    :param days: history lengths in days.
    :return: label (``"7"``, ..., ``"full"``) -> landing root.
    """
    lengths = sorted(set(days))
    labels = [str(n) for n in lengths] + [FULL]
    roots = {label: out / label for label in labels}
    marker = out / f".prepared-{initial}-{daily}-{'-'.join(labels)}"
    if marker.exists():
        return roots
    shutil.rmtree(out, ignore_errors=True)
    first, next_drop = source / f"ds={initial}", source / f"ds={daily}"
    first_day = dt.date.fromisoformat(initial)

    # Order dates of the initial load, and the recent orders.
    order_day: dict[int, int] = {}
    recent: list[bytes] = []
    for part in table_files(first, "orders"):
        with part.open("rb") as f:
            for line in f:
                fields = _fields(line)
                day = (first_day - dt.date.fromisoformat(fields[4].decode())).days
                order_day[int(fields[0])] = day
                if day < RECENT_DAYS:
                    recent.append(line)
    new_orders = count_lines(table_files(next_drop, "orders"))
    new_lines = count_lines(table_files(next_drop, "lineitem"))
    recent.sort(key=_key)
    updates = _every(recent, max(5, new_orders // 10))
    updated_keys = {_key(line) for line in updates}
    # Late line items: of recent orders that are not updated, spread over them.
    candidates: list[bytes] = []
    for part in table_files(first, "lineitem"):
        with part.open("rb") as f:
            candidates += [line for line in f
                           if order_day.get(_key(line), RECENT_DAYS) < RECENT_DAYS
                           and _key(line) not in updated_keys]
    candidates.sort(key=lambda line: (_key(line), _fields(line)[3]))
    late = set(_every(candidates, max(5, new_lines // 100)))

    # The initial load of every landing.
    for table_dir in sorted(p for p in first.iterdir() if p.is_dir()):
        table = table_dir.name
        for part in table_files(first, table):
            if table not in ("orders", "lineitem"):
                for root in roots.values():
                    _link(part, root / f"ds={initial}" / table / part.name)
                continue
            outs = {label: (root / f"ds={initial}" / table / part.name)
                    for label, root in roots.items()}
            for path in outs.values():
                path.parent.mkdir(parents=True, exist_ok=True)
            handles = {label: path.open("wb") for label, path in outs.items()}
            try:
                with part.open("rb") as f:
                    for line in f:
                        if line in late:
                            continue
                        day = order_day[_key(line)]
                        for label, handle in handles.items():
                            if label == FULL or day < int(label):
                                handle.write(line)
            finally:
                for handle in handles.values():
                    handle.close()
    for root in roots.values():
        _link(first / "_SUCCESS", root / f"ds={initial}" / "_SUCCESS")

    # The daily drop: new orders plus updates; its line items plus the late ones.
    for root in roots.values():
        drop = root / f"ds={daily}"
        for table_dir in sorted(p for p in next_drop.iterdir() if p.is_dir()):
            for i, part in enumerate(table_files(next_drop, table_dir.name)):
                target = drop / table_dir.name / part.name
                extra = ((updates if table_dir.name == "orders" else sorted(late, key=_key))
                         if i == 0 and table_dir.name in ("orders", "lineitem") else [])
                if not extra:
                    _link(part, target)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as handle:
                    handle.write(part.read_bytes())
                    for line in extra:
                        handle.write(_updated(line) if table_dir.name == "orders" else line)
        _link(next_drop / "_SUCCESS", drop / "_SUCCESS")
    # The later drops, for the main lake only.
    for later in sorted(source.glob("ds=*")):
        if later.name > f"ds={daily}":
            for path in later.rglob("*"):
                if path.is_file():
                    _link(path, roots[FULL] / later.name / path.relative_to(later))
    (out / "drop.json").write_text(json.dumps({
        "ds": daily, "new_orders": new_orders, "new_lines": new_lines,
        "updated_orders": len(updates), "late_lines": len(late)}))
    marker.touch()
    return roots


def drop_summary(out: Path) -> dict[str, Any]:
    """What :func:`prepare` put into the daily drop (counts of each kind)."""
    return dict(json.loads((out / "drop.json").read_text()))
