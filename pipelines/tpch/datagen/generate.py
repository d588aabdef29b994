"""Split tpchgen-cli output into the landing zone's initial load and daily drops.

Layout written (a contract with the ingestion jobs)::

    <landing>/ds=YYYY-MM-DD/<table>/part-NNNNN.tbl
    <landing>/ds=YYYY-MM-DD/_SUCCESS            (written last, once the drop is complete)
    <landing>/chaos_manifest.json               (only with --chaos)

Drop 0 (the initial load) holds the six dimension tables in full plus every order dated before
the first daily drop and its line items; daily drop ``i`` holds the orders dated ``D_i`` and
their line items. Lines are copied byte-for-byte from tpchgen's output. ``lineitem`` is
streamed once and routed by its order key, so memory stays proportional to the orders of the
daily drops, not to the data size.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import BinaryIO

from pipelines.tpch.datagen.chaos import MANIFEST_NAME, ChaosMaterial, ChaosPlan, plan_chaos
from pipelines.tpch.datagen.errors import DatagenError
from pipelines.tpch.datagen.layout import (
    DIMENSION_TABLES,
    SUCCESS_MARKER,
    TABLES,
    atomic_write_bytes,
    drop_dates,
    ds_dir_name,
    split_fields,
)

__all__ = [
    "DEFAULT_MAX_LINES_PER_FILE",
    "DatagenConfig",
    "DropSummary",
    "LandingSummary",
    "build_landing",
    "find_tpchgen",
    "format_summary",
    "generate",
    "run_tpchgen",
]

DEFAULT_MAX_LINES_PER_FILE = 2_000_000
_BUFFER = 1 << 20
# Sample sizes for chaos: enough distinct rows for every kind, small enough to keep in memory.
_BASE_ORDER_SAMPLE = 32
_CUSTOMER_SAMPLE = 12


@dataclass(frozen=True)
class DatagenConfig:
    """What to generate.

    :param sf: TPC-H scale factor.
    :param days: number of trailing order dates delivered as daily drops (faults go there).
    :param landing: landing root folder.
    :param seed: seed of every random choice of ``--chaos``.
    :param chaos: inject faults into the daily drops and write the manifest.
    :param history_days: extra daily drops for the order dates just before those ``days``.
    :param max_lines_per_file: split orders and lineitem files after this many lines.
    """

    sf: float
    days: int
    landing: Path
    seed: int = 42
    chaos: bool = False
    history_days: int = 0
    max_lines_per_file: int = DEFAULT_MAX_LINES_PER_FILE


@dataclass
class DropSummary:
    """What one drop received.

    :param index: drop number (0 is the initial load).
    :param ds: drop date ``YYYY-MM-DD``.
    :param rows: real tpchgen rows per table.
    :param chaos_lines: lines added by ``--chaos`` per table (including partial snapshots,
        deletions and redelivered files).
    """

    index: int
    ds: str
    rows: dict[str, int] = field(default_factory=dict)
    chaos_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class LandingSummary:
    """Result of one generation.

    :param drops: one summary per drop, initial load first.
    :param manifest: path of the chaos manifest, ``None`` without ``--chaos``.
    :param chaos_entries: number of manifest entries.
    """

    drops: list[DropSummary]
    manifest: Path | None = None
    chaos_entries: int = 0


class _PartSink:
    """Writes ``part-NNNNN.tbl`` files of one table of one drop, starting a new part after
    ``limit`` lines. Each part is written under a hidden name and renamed when complete.

    A plain class with ``__slots__`` rather than a dataclass: its attributes are read for every
    one of millions of lines in the routing loops, where slot access is the cheapest.
    """

    __slots__ = ("count", "directory", "fh", "limit", "part", "rows", "tmp")

    def __init__(self, directory: Path, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.limit = limit
        self.part = 0
        self.rows = 0
        self.count = 0
        self.tmp = directory / ".part-00000.tbl.inprogress"
        self.fh: BinaryIO = open(self.tmp, "wb", buffering=_BUFFER)

    def rotate(self) -> None:
        """Finish the current part and start the next one."""
        self._finish()
        self.part += 1
        self.tmp = self.directory / f".part-{self.part:05d}.tbl.inprogress"
        self.fh = open(self.tmp, "wb", buffering=_BUFFER)

    def _finish(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.directory / f"part-{self.part:05d}.tbl")
        self.rows += self.count
        self.count = 0

    def close(self) -> None:
        """Finish the last part."""
        self._finish()


@dataclass
class _Reservoir:
    """Uniform random sample of ``size`` items from a stream of unknown length (Li's
    Algorithm L), drawing random numbers only for the few items it keeps."""

    size: int
    rng: random.Random
    items: list[bytes] = field(default_factory=list)
    seen: int = 0
    next_take: int = 0
    weight: float = 1.0

    def _unit(self) -> float:
        # random() may return 0.0, whose log is undefined.
        value = self.rng.random()
        while value == 0.0:
            value = self.rng.random()
        return value

    def _schedule(self) -> None:
        self.weight *= math.exp(math.log(self._unit()) / self.size)
        skip = (
            math.floor(math.log(self._unit()) / math.log1p(-self.weight))
            if (self.weight < 1.0)
            else 0
        )
        self.next_take = self.seen + skip

    def offer(self, item: bytes) -> None:
        """Consider one more item of the stream.

        :param item: the item.
        """
        if self.seen < self.size:
            self.items.append(item)
            self.seen += 1
            if self.seen == self.size:
                self._schedule()
            return
        if self.seen == self.next_take:
            self.items[self.rng.randrange(self.size)] = item
            self.seen += 1
            self._schedule()
            return
        self.seen += 1


def find_tpchgen() -> str:
    """Locate the tpchgen-cli executable, preferring the one of the running interpreter's env.

    :return: path of the executable.
    :raises DatagenError: when it cannot be found.
    """
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if found is None:
        raise DatagenError("tpchgen-cli not found next to the Python interpreter or on PATH")
    return found


def _format_sf(sf: float) -> str:
    return str(int(sf)) if sf.is_integer() else repr(sf)


def run_tpchgen(sf: float, out_dir: Path) -> None:
    """Generate every TPC-H table as ``<out_dir>/<table>.tbl``.

    :param sf: scale factor.
    :param out_dir: existing output folder.
    :raises DatagenError: when tpchgen-cli is missing, fails or does not write every table.
    """
    cmd = [find_tpchgen(), "-s", _format_sf(sf), "--output-dir", str(out_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DatagenError(f"cannot run tpchgen-cli: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        tail = detail[-1] if detail else "no output"
        raise DatagenError(f"tpchgen-cli exited with status {proc.returncode}: {tail}")
    missing = [t for t in TABLES if not (out_dir / f"{t}.tbl").is_file()]
    if missing:
        raise DatagenError(f"tpchgen-cli did not write: {', '.join(missing)}")


def generate(config: DatagenConfig) -> LandingSummary:
    """Run tpchgen-cli and build the landing zone from its output.

    tpchgen writes into a hidden scratch folder inside the landing root, so that the dimension
    files can be moved into place by renaming instead of being copied.

    :param config: what to generate.
    :return: what was written.
    :raises DatagenError: on tpchgen failure.
    """
    config.landing.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".datagen-tmp-", dir=config.landing))
    try:
        run_tpchgen(config.sf, scratch)
        return build_landing(scratch, config, consume_source=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _count_lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_BUFFER):
            count += chunk.count(b"\n")
    return count


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _place_file(src: Path, dst: Path, consume: bool) -> None:
    """Put a complete copy of ``src`` at ``dst`` (moved when allowed), newline-terminated."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.inprogress")
    moved = False
    if consume:
        try:
            os.replace(src, tmp)
            moved = True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    if not moved:
        shutil.copyfile(src, tmp)
    if not _ends_with_newline(tmp):
        with open(tmp, "ab") as fh:
            fh.write(b"\n")
    os.replace(tmp, dst)


def _reset_drop_dir(path: Path) -> None:
    # Drop the marker first so a reader never trusts a half-deleted drop.
    (path / SUCCESS_MARKER).unlink(missing_ok=True)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def build_landing(
    source: Path, config: DatagenConfig, consume_source: bool = False
) -> LandingSummary:
    """Build the landing zone from tpchgen output already on disk.

    Every drop folder this run generates is removed and rewritten, so the same arguments give
    the same bytes; folders of other dates are left alone.

    :param source: folder with ``<table>.tbl`` for every TPC-H table.
    :param config: what to generate (``sf`` is only recorded in the manifest here).
    :param consume_source: move the dimension files out of ``source`` instead of copying.
    :return: what was written.
    :raises DatagenError: when a source file is missing or chaos cannot be injected.
    """
    missing = [t for t in TABLES if not (source / f"{t}.tbl").is_file()]
    if missing:
        raise DatagenError(f"missing tpchgen output in {source}: {', '.join(missing)}")
    landing = config.landing
    dates = drop_dates(config.days, config.history_days)
    dirs = [landing / ds_dir_name(d) for d in dates]
    summaries = [DropSummary(i, d.isoformat()) for i, d in enumerate(dates)]
    manifest_path = landing / MANIFEST_NAME

    landing.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)
    for path in dirs:
        _reset_drop_dir(path)

    last = len(dates) - 1
    chaos_drops = list(range(last - config.days + 1, last + 1)) if config.chaos else []
    seed_tag = f"tpch-datagen-sample:{config.seed}"
    base_sample = _Reservoir(_BASE_ORDER_SAMPLE, random.Random(f"{seed_tag}:orders"))

    daily, drop_orders = _split_orders(
        source / "orders.tbl", dates, dirs, config, summaries, chaos_drops, base_sample
    )
    # Line items to keep for chaos: those of the chaos drops' orders and of the sampled
    # initial-load orders (a handful), keyed by the order key's bytes.
    collect: dict[bytes, list[bytes]] = {}
    if config.chaos:
        for drop in chaos_drops:
            for line in drop_orders[drop]:
                collect[line[: line.index(b"|")]] = []
        for line in base_sample.items:
            collect[line[: line.index(b"|")]] = []
    _split_lineitem(source / "lineitem.tbl", daily, dirs, config, summaries, collect)

    for table in DIMENSION_TABLES:
        target = dirs[0] / table / "part-00000.tbl"
        _place_file(source / f"{table}.tbl", target, consume_source)
        summaries[0].rows[table] = _count_lines(target)

    result = LandingSummary(summaries)
    if config.chaos:
        customer_sample = _Reservoir(_CUSTOMER_SAMPLE, random.Random(f"{seed_tag}:customers"))
        with open(dirs[0] / "customer" / "part-00000.tbl", "rb", buffering=_BUFFER) as fh:
            for line in fh:
                customer_sample.offer(line)

        def items_of(lines: list[bytes]) -> list[bytes]:
            return [item for line in lines for item in collect[line[: line.index(b"|")]]]

        material = ChaosMaterial(
            seed=config.seed,
            sf=config.sf,
            drop_dates=dates,
            chaos_drops=chaos_drops,
            drop_orders={d: drop_orders[d] for d in chaos_drops},
            drop_lineitems={d: items_of(drop_orders[d]) for d in chaos_drops},
            base_orders=list(base_sample.items),
            base_lineitems={
                int(split_fields(line)[0]): items_of([line]) for line in base_sample.items
            },
            customers=list(customer_sample.items),
        )
        plan = plan_chaos(material)
        _write_chaos(landing, plan, summaries, dates)
        document = plan.manifest(config.seed, config.sf)
        atomic_write_bytes(manifest_path, (json.dumps(document, indent=2) + "\n").encode())
        result.manifest = manifest_path
        result.chaos_entries = len(plan.entries)

    # Markers last, oldest drop first: a drop becomes visible only once all of it is on disk.
    for path in dirs:
        atomic_write_bytes(path / SUCCESS_MARKER, b"")
    return result


def _split_orders(
    path: Path,
    dates: list[date],
    dirs: list[Path],
    config: DatagenConfig,
    summaries: list[DropSummary],
    chaos_drops: list[int],
    base_sample: _Reservoir,
) -> tuple[dict[bytes, int], dict[int, list[bytes]]]:
    """Route every order to its drop by o_orderdate.

    :return: ``(order key bytes -> drop index for orders of daily drops, real orders lines of
        each chaos drop)``; initial-load orders are not kept (they are most of the data).
    """
    first_daily = dates[1].isoformat().encode()
    last = len(dates) - 1
    # Orders dated after the last daily drop (none in TPC-H) fall into the last drop.
    drop_of_date = {d.isoformat().encode(): i for i, d in enumerate(dates) if i > 0}
    sinks = [_PartSink(d / "orders", config.max_lines_per_file) for d in dirs]
    limit = config.max_lines_per_file
    daily: dict[bytes, int] = {}
    kept: dict[int, list[bytes]] = {d: [] for d in chaos_drops}
    sample = base_sample.offer if config.chaos else None
    line = b""
    with open(path, "rb", buffering=_BUFFER) as fh:
        for line in fh:
            fields = line.split(b"|", 5)
            if fields[4] < first_daily:
                sink = sinks[0]
                if sample is not None:
                    sample(line)
            else:
                drop = drop_of_date.get(fields[4], last)
                daily[fields[0]] = drop
                sink = sinks[drop]
                if drop in kept:
                    kept[drop].append(line)
            if sink.count == limit:
                sink.rotate()
            sink.fh.write(line)
            sink.count += 1
    if line and not line.endswith(b"\n"):
        # tpchgen ends files with a newline; keep every part file newline-terminated anyway.
        sink.fh.write(b"\n")
    for drop, sink in enumerate(sinks):
        sink.close()
        summaries[drop].rows["orders"] = sink.rows
    return daily, kept


def _split_lineitem(
    path: Path,
    daily: dict[bytes, int],
    dirs: list[Path],
    config: DatagenConfig,
    summaries: list[DropSummary],
    collect: dict[bytes, list[bytes]],
) -> None:
    """Stream line items to the drop of their order; keep copies of those in ``collect``."""
    sinks = [_PartSink(d / "lineitem", config.max_lines_per_file) for d in dirs]
    limit = config.max_lines_per_file
    get = daily.get
    line = b""
    sink = sinks[0]
    with open(path, "rb", buffering=_BUFFER) as fh:
        if collect:
            wanted = collect.get
            for line in fh:
                key = line[: line.index(b"|")]
                sink = sinks[get(key, 0)]
                if sink.count == limit:
                    sink.rotate()
                sink.fh.write(line)
                sink.count += 1
                bucket = wanted(key)
                if bucket is not None:
                    bucket.append(line)
        else:
            # Hot loop (6 M lines per scale factor unit): keep it to the bare minimum.
            for line in fh:
                sink = sinks[get(line[: line.index(b"|")], 0)]
                if sink.count == limit:
                    sink.rotate()
                sink.fh.write(line)
                sink.count += 1
    if line and not line.endswith(b"\n"):
        sink.fh.write(b"\n")
    for drop, sink in enumerate(sinks):
        sink.close()
        summaries[drop].rows["lineitem"] = sink.rows


def _write_chaos(
    landing: Path, plan: ChaosPlan, summaries: list[DropSummary], dates: list[date]
) -> None:
    index_of = {ds_dir_name(d): i for i, d in enumerate(dates)}

    def account(rel: str, data: bytes) -> None:
        ds_dir, table = rel.split("/")[:2]
        lines = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
        counts = summaries[index_of[ds_dir]].chaos_lines
        counts[table] = counts.get(table, 0) + lines

    for rel, data in plan.files.items():
        atomic_write_bytes(landing / rel, data)
        account(rel, data)
    for src, dst in plan.copies:
        data = (landing / src).read_bytes()
        atomic_write_bytes(landing / dst, data)
        account(dst, data)


def format_summary(summary: LandingSummary, landing: Path) -> str:
    """Human-readable summary: one line per drop with the rows per table.

    :param summary: what was written.
    :param landing: landing root.
    :return: the text, without a trailing newline.
    """
    out = [f"landing {landing}: {len(summary.drops)} drops"]
    for drop in summary.drops:
        label = "initial load" if drop.index == 0 else f"daily drop {drop.index}"
        parts = []
        for table in (*TABLES, "orders_delete"):
            rows = drop.rows.get(table)
            extra = drop.chaos_lines.get(table)
            if rows is None and extra is None:
                continue
            text = f"{table}={rows}" if rows is not None else f"{table}=0"
            if extra:
                text += f"+{extra}chaos"
            parts.append(text)
        out.append(f"  ds={drop.ds} {label}: {' '.join(parts)}")
    if summary.manifest is not None:
        out.append(f"chaos: {summary.chaos_entries} faults listed in {summary.manifest}")
    return "\n".join(out)
