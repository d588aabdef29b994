"""The flights generator (pipelines/flights/datagen.py) and the DuckDB reference of its gold.

The package's CSV files are read here with the csv module alone, so every expectation is
computed independently of both the generator and the reference.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import zipfile
from collections import Counter, defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.flights import datagen
from tests.support import flights_reference as ref

ROOT = Path(__file__).resolve().parents[2]
PLAIN_DAYS = 3
CHAOS_DAYS, CHAOS_SINCE, CHAOS_SEED = 4, date(2013, 12, 20), 11


@functools.cache
def package_text(table: str) -> str:
    """The package's file of one table, as text."""
    folder = ref.data_dir()
    if table == "flights":
        with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
            return archive.read("flights.csv").decode()
    return (folder / f"{table}.csv").read_text()


def package_header(table: str) -> str:
    return package_text(table).splitlines(keepends=True)[0]


@functools.cache
def package_lines(table: str) -> tuple[str, ...]:
    """The package's data lines of one table (header dropped), newline included."""
    return tuple(package_text(table).splitlines(keepends=True)[1:])


def row_date(line: str) -> date:
    """Local date of a flights or weather line, from its year, month and day fields.

    The package's files quote no field (test_package_files_quote_nothing), so a split on
    commas finds the fields.
    """
    fields = line.split(",", 5)
    offset = 0 if fields[0].isdigit() else 1  # weather starts with its origin
    return date(int(fields[offset]), int(fields[offset + 1]), int(fields[offset + 2]))


def test_package_files_quote_nothing() -> None:
    for table in datagen.TABLES:
        assert '"' not in package_text(table), table


def drops_of(landing: Path) -> list[Path]:
    return sorted(landing.glob("ds=*"))


def data_lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)[1:]


@pytest.fixture(scope="module")
def plain_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("flights-plain")
    assert datagen.main(["--landing", str(landing), "--days", str(PLAIN_DAYS)]) == 0
    return landing


@pytest.fixture(scope="module")
def chaos_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("flights-chaos")
    assert datagen.main(["--landing", str(landing), "--days", str(CHAOS_DAYS), "--chaos",
                         "--seed", str(CHAOS_SEED), "--since", CHAOS_SINCE.isoformat()]) == 0
    return landing


@pytest.fixture(scope="module")
def manifest(chaos_landing: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((chaos_landing / datagen.MANIFEST_NAME).read_text())
    return loaded


# --- Layout -------------------------------------------------------------------------------

def test_initial_load_then_one_drop_per_trailing_flight_date(plain_landing: Path) -> None:
    names = [p.name for p in drops_of(plain_landing)]
    assert names == ["ds=2013-12-28", "ds=2013-12-29", "ds=2013-12-30", "ds=2013-12-31"]
    for drop in drops_of(plain_landing):
        assert (drop / datagen.SUCCESS_MARKER).is_file()
    initial = sorted(p.name for p in (plain_landing / names[0]).iterdir())
    assert initial == ["_SUCCESS", "airlines", "airports", "flights", "planes", "weather"]
    # The package's weather ends the evening before the year's last day, so the last
    # drop has flights only.
    assert sorted(p.name for p in (plain_landing / names[-1]).iterdir()) == [
        "_SUCCESS", "flights"]
    assert not (plain_landing / datagen.MANIFEST_NAME).exists()


def test_every_flight_lands_in_exactly_one_drop_of_its_date(plain_landing: Path) -> None:
    landed: list[str] = []
    for drop in drops_of(plain_landing):
        ds = date.fromisoformat(drop.name.removeprefix("ds="))
        for table in ("flights", "weather"):
            path = drop / table / datagen.DATA_FILE
            if not path.exists():
                continue
            lines = data_lines(path)
            if drop.name == "ds=2013-12-28":
                assert all(row_date(line) <= ds for line in lines)
            else:
                assert all(row_date(line) == ds for line in lines)
            if table == "flights":
                landed += lines
    source = package_lines("flights")
    assert len(landed) == len(source) == 336_776
    assert Counter(landed) == Counter(source)


def test_drops_reassemble_the_package_files_exactly(plain_landing: Path) -> None:
    folder = ref.data_dir()
    initial = plain_landing / "ds=2013-12-28"
    for table in ("airlines", "airports", "planes"):
        assert (initial / table / datagen.DATA_FILE).read_bytes() == (
            folder / f"{table}.csv").read_bytes()
    for table in ("flights", "weather"):
        by_date: dict[date, list[str]] = defaultdict(list)
        for drop in drops_of(plain_landing):
            path = drop / table / datagen.DATA_FILE
            if path.exists():
                assert path.read_text().splitlines(keepends=True)[0] == (
                    package_header(table))
                for line in data_lines(path):
                    by_date[row_date(line)].append(line)
        expected: dict[date, list[str]] = defaultdict(list)
        for line in package_lines(table):
            expected[row_date(line)].append(line)
        # Same lines per date, in the package's order.
        assert by_date == expected, table


def test_since_cuts_the_initial_load() -> None:
    landing = datagen.build_landing(2, since=date(2013, 12, 1))
    flights = data_lines_of(landing.files["ds=2013-12-29/flights/part-00000.csv"])
    assert min(row_date(line) for line in flights) == date(2013, 12, 1)
    expected = sum(1 for line in package_lines("flights")
                   if date(2013, 12, 1) <= row_date(line) <= date(2013, 12, 29))
    assert len(flights) == expected


def data_lines_of(data: bytes) -> list[str]:
    return data.decode().splitlines(keepends=True)[1:]


def test_success_markers_are_written_after_every_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[str] = []
    original = datagen._atomic_write

    def record(path: Path, data: bytes) -> None:
        written.append(path.relative_to(tmp_path).as_posix())
        original(path, data)

    monkeypatch.setattr(datagen, "_atomic_write", record)
    datagen.write_landing(datagen.build_landing(1, 0, True, date(2013, 12, 28)), tmp_path)
    # Oldest drop first, once every file and the manifest are on disk.
    assert written[-2:] == ["ds=2013-12-30/_SUCCESS", "ds=2013-12-31/_SUCCESS"]
    assert sum(rel.endswith(datagen.SUCCESS_MARKER) for rel in written) == 2
    assert datagen.MANIFEST_NAME in written


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert datagen.main(["--landing", str(tmp_path), "--days", "1", "--since",
                         "2013-12-31"]) == 2
    assert "initial load needs at least one flight date" in capsys.readouterr().err
    assert datagen.main(["--landing", str(tmp_path), "--days", "0", "--chaos"]) == 2
    assert "--chaos needs at least one daily drop" in capsys.readouterr().err


# --- Determinism --------------------------------------------------------------------------

def test_same_arguments_give_byte_identical_output(chaos_landing: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert datagen.main(["--landing", str(again), "--days", str(CHAOS_DAYS), "--chaos",
                         "--seed", str(CHAOS_SEED), "--since", CHAOS_SINCE.isoformat()]) == 0
    first = {p.relative_to(chaos_landing): p.read_bytes()
             for p in sorted(chaos_landing.rglob("*")) if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in sorted(again.rglob("*"))
              if p.is_file()}
    assert first == second


def test_another_seed_injects_other_faults() -> None:
    one = datagen.build_landing(CHAOS_DAYS, 1, True, CHAOS_SINCE).manifest
    two = datagen.build_landing(CHAOS_DAYS, 2, True, CHAOS_SINCE).manifest
    assert one is not None and two is not None
    assert one["entries"] != two["entries"]


# --- Chaos --------------------------------------------------------------------------------

def test_every_fault_kind_is_injected(manifest: dict[str, Any]) -> None:
    assert {e["kind"] for e in manifest["entries"]} == set(datagen.KINDS)
    assert (manifest["seed"], manifest["days"], manifest["since"]) == (
        CHAOS_SEED, CHAOS_DAYS, CHAOS_SINCE.isoformat())
    daily = {f"2013-12-{d}" for d in (28, 29, 30, 31)}
    assert {e["ds"] for e in manifest["entries"]} <= daily


def line_at(landing: Path, entry: dict[str, Any]) -> list[str]:
    lines = (landing / entry["file"]).read_text().splitlines()
    assert entry["line"] >= 2, "line 1 is the header"
    return next(csv.reader([lines[entry["line"] - 1]]))


def test_manifest_lines_carry_their_faults(chaos_landing: Path,
                                           manifest: dict[str, Any]) -> None:
    header = next(csv.reader([package_header("flights")]))
    plane_header = next(csv.reader([package_header("planes")]))
    source = set(package_lines("flights"))
    for entry in manifest["entries"]:
        fields = line_at(chaos_landing, entry)
        kind = entry["kind"]
        if kind == "wrong_field_count":
            assert len(fields) == len(header) - 1
        elif kind == "flight_withdrawn":
            assert entry["table"] == "flights_delete"
            assert fields == [str(k) for k in entry["key"]]
        elif kind == "plane_change":
            row = dict(zip(plane_header, fields, strict=True))
            assert [row["tailnum"]] == entry["key"]
            assert all(row[c] == v for c, v in entry["values"].items())
        else:
            row = dict(zip(header, fields, strict=True))
            if entry["key"] is not None:
                assert [row[c] if c in ("carrier", "origin") else int(row[c])
                        for c in datagen.FLIGHT_KEY] == entry["key"]
            for column, value in (entry["values"] or {}).items():
                assert row[column] == value, (kind, column)
            line = (chaos_landing / entry["file"]).read_text().splitlines(
                keepends=True)[entry["line"] - 1]
            assert (line in source) == (kind in ("exact_duplicate", "late_flight")), kind
        assert (entry["reason"] is not None) == (entry["expect"] == "quarantine")


def test_exact_duplicates_copy_a_line_of_their_own_drop(chaos_landing: Path,
                                                        manifest: dict[str, Any]) -> None:
    for entry in manifest["entries"]:
        if entry["kind"] == "exact_duplicate":
            line = (chaos_landing / entry["file"]).read_text().splitlines(
                keepends=True)[entry["line"] - 1]
            real = chaos_landing / f"ds={entry['ds']}" / "flights" / datagen.DATA_FILE
            assert data_lines(real).count(line) == 1


def test_late_flights_leave_their_own_drop(chaos_landing: Path,
                                           manifest: dict[str, Any]) -> None:
    late = [e for e in manifest["entries"] if e["kind"] == "late_flight"]
    assert late
    for entry in late:
        line = (chaos_landing / entry["file"]).read_text().splitlines(
            keepends=True)[entry["line"] - 1]
        assert entry["origin_ds"] < entry["ds"]
        assert row_date(line).isoformat() == entry["origin_ds"]
        for drop in drops_of(chaos_landing):
            part = drop / "flights" / datagen.DATA_FILE
            assert line not in data_lines(part), drop.name


def test_real_files_plus_late_flights_reassemble_the_source(chaos_landing: Path,
                                                            manifest: dict[str, Any]) -> None:
    landed: list[str] = []
    for drop in drops_of(chaos_landing):
        landed += data_lines(drop / "flights" / datagen.DATA_FILE)
    for entry in manifest["entries"]:
        if entry["kind"] == "late_flight":
            landed.append((chaos_landing / entry["file"]).read_text().splitlines(
                keepends=True)[entry["line"] - 1])
    source = [line for line in package_lines("flights") if row_date(line) >= CHAOS_SINCE]
    assert Counter(landed) == Counter(source)


def test_no_flight_is_used_by_two_faults(manifest: dict[str, Any]) -> None:
    keys = Counter(json.dumps(e["key"]) for e in manifest["entries"]
                   if e["key"] is not None and e["table"] != "planes"
                   and e["kind"] != "conflicting_versions")
    assert max(keys.values()) == 1
    pairs = Counter(json.dumps(e["key"]) for e in manifest["entries"]
                    if e["kind"] == "conflicting_versions")
    assert list(pairs.values()) == [2]


def test_changed_flights_come_from_older_drops(manifest: dict[str, Any]) -> None:
    for entry in manifest["entries"]:
        if entry["kind"] in ("flight_correction", "conflicting_versions", "flight_withdrawn"):
            assert date(*entry["key"][:3]) < date.fromisoformat(entry["ds"])


# --- The reference ------------------------------------------------------------------------

def spec_rules(action: str) -> dict[str, set[str]]:
    spec = yaml.safe_load((ROOT / "pipelines" / "flights" / "pipeline.yaml").read_text())
    out: dict[str, set[str]] = {}
    for table, source in spec["sources"].items():
        out[table] = {e["name"] for e in source.get("expectations", [])
                      if e.get("scope", "row") == "row"
                      and (e.get("action", "drop") == "warn") == (action == "warn")}
    return out


def test_reference_rules_are_the_specs_expectations() -> None:
    assert {t: set(r) for t, r in ref.DROP_RULES.items()} == spec_rules("drop")
    assert {t: set(r) for t, r in ref.WARN_RULES.items()} == spec_rules("warn")


def test_round_half_away_from_zero() -> None:
    assert ref.round_half_away(5, 200, 2) == Decimal("0.03")
    assert ref.round_half_away(-5, 200, 2) == Decimal("-0.03")
    assert ref.round_half_away(2, 3, 2) == Decimal("0.67")
    assert ref.round_half_away(1, 3, 4) == Decimal("0.3333")
    assert ref.round_half_away(7, 7, 4) == Decimal("1.0000")
    assert ref.round_half_away(3, 0, 2) is None


@pytest.fixture(scope="module")
def plain_reference() -> Any:
    return ref.load(days=PLAIN_DAYS)


def quantize(numerator: int, denominator: int, places: str) -> Decimal:
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(places),
                                                                rounding=ROUND_HALF_UP)


def test_reference_silver_counts_follow_the_key_rules(plain_reference: Any) -> None:
    counts = ref.silver_counts(plain_reference)
    # Every flight and every weather hour but the 1,048 mph one is unique under its key.
    assert counts == {"flights": len(package_lines("flights")), "airlines": 16,
                      "airports": 1458, "planes": 3322, "planes_history": 3322,
                      "weather": len(package_lines("weather")) - 1}
    assert ref.quarantine_counts(plain_reference) == {("weather", "wind_speed_plausible"): 1}
    assert ref.warning_counts(plain_reference)[("flights", "departed_flight_has_arr_delay")] == (
        1175)


def test_departure_delay_daily_matches_an_independent_sum(plain_reference: Any) -> None:
    names = {row["carrier"]: row["name"]
             for row in csv.DictReader(io.StringIO(package_header("airlines")
                                                   + "".join(package_lines("airlines"))))}
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    header = package_header("flights")
    for row in csv.DictReader(io.StringIO(header + "".join(package_lines("flights")))):
        g = groups[(date(int(row["year"]), int(row["month"]), int(row["day"])),
                    row["carrier"], row["origin"])]
        g[0] += 1
        if row["dep_time"] == "NA":
            g[1] += 1
        else:
            g[2] += int(row["dep_delay"])
            g[3] += 1
            g[4] += int(row["dep_delay"]) >= 15
    expected = []
    for (day, carrier, origin), (n, cancelled, total, departed, late) in sorted(groups.items()):
        expected.append((day, carrier, names[carrier], origin, n, cancelled,
                         total if departed else None,
                         quantize(total, departed, "0.01") if departed else None, late,
                         quantize(late, departed, "0.0001") if departed else None))
    mart = ref.departure_delay_daily(plain_reference)
    assert mart == expected
    assert sum(r[4] for r in mart) == ref.silver_counts(plain_reference)["flights"]
    assert sum(r[5] for r in mart) == 8255


def test_ontime_by_weather_matches_an_independent_join(plain_reference: Any) -> None:
    weather: dict[tuple[str, str], dict[str, str]] = {}
    header = package_header("weather")
    for row in csv.DictReader(io.StringIO(header + "".join(package_lines("weather")))):
        if row["wind_speed"] != "NA" and float(row["wind_speed"]) >= 200:
            continue  # quarantined: wind_speed_plausible
        weather[(row["origin"], row["time_hour"])] = row
    groups: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    header = package_header("flights")
    for row in csv.DictReader(io.StringIO(header + "".join(package_lines("flights")))):
        w = weather.get((row["origin"], row["time_hour"]))
        if w is None:
            condition = "no_weather"
        elif float(w["visib"]) < 1:
            condition = "low_visibility"
        elif float(w["precip"]) > 0:
            condition = "precipitation"
        elif w["wind_speed"] != "NA" and float(w["wind_speed"]) >= 25:
            condition = "high_wind"
        else:
            condition = "clear"
        g = groups[(int(row["hour"]), condition)]
        g[0] += 1
        g[1] += row["dep_time"] == "NA"
        g[2] += row["dep_delay"] != "NA" and int(row["dep_delay"]) < 15
    expected = [(hour, condition, n, cancelled, ontime, quantize(ontime, n, "0.0001"))
                for (hour, condition), (n, cancelled, ontime) in sorted(groups.items())]
    assert ref.ontime_by_weather(plain_reference) == expected


def test_reference_applies_the_chaos_manifest(manifest: dict[str, Any]) -> None:
    con = ref.load(days=CHAOS_DAYS, since=CHAOS_SINCE, manifest=manifest)
    entries = manifest["entries"]
    in_range = sum(1 for line in package_lines("flights") if row_date(line) >= CHAOS_SINCE)
    deleted = [e for e in entries if e["expect"] == "deleted"]
    counts = ref.silver_counts(con)
    assert counts["flights"] == in_range - len(deleted)
    versions = sum(1 for e in entries if e["expect"] == "scd2_version")
    assert counts["planes_history"] == 3322 + versions and counts["planes"] == 3322
    for entry in entries:
        where = " AND ".join(f"{c} = ?" for c in datagen.FLIGHT_KEY)
        if entry["kind"] == "flight_correction":
            got = con.execute(f"SELECT dep_time, dep_delay FROM flights WHERE {where}",
                              entry["key"]).fetchall()
            assert got == [(int(entry["values"]["dep_time"]),
                            int(entry["values"]["dep_delay"]))]
        elif entry["expect"] == "deleted":
            assert con.execute(f"SELECT count(*) FROM flights WHERE {where}",
                               entry["key"]).fetchall() == [(0,)]
    quarantined = ref.quarantine_counts(con, manifest)
    # The 1,048 mph hour is in February, before --since: only injected lines remain.
    assert sum(quarantined.values()) == sum(e["expect"] == "quarantine" for e in entries)
    assert ref.duplicate_counts(manifest) == {"flights": 1}
    with pytest.raises(ValueError, match="the manifest is of --days 4"):
        ref.load(days=3, since=CHAOS_SINCE, manifest=manifest)
