"""Random pipeline specs, their drops, and in pure Python the tables the engine must give.

The generic engine's property test (``tests/integration/e2e/test_spec_properties.py``)
draws a :class:`SpecDraw` (column types, a composite key, a file format per table, a
partition, a delete feed, a child table, an SCD2 table, row expectations, marts with and
without bounded refresh) and a few :class:`DropDraw` (rows over small key spaces, exact
duplicates, two versions of a key, lines that do not parse, deletions). This module turns
them into a spec folder (:func:`write_pipeline`) and landed files (:func:`land_drop`), and
computes silver, quarantine and gold from the landed files alone (:func:`expected`), by
the rules ``docs/pipelines.md`` states for every spec:

* per drop and table, exact duplicate lines count once (the first copy by file and
  line); two different clean versions of one key are all quarantined
  (``conflicting_versions_in_drop``); a line that does not parse, or fails a ``drop``
  expectation (a NULL result fails), is quarantined with its reasons;
* a ``latest`` table keeps the newest ``_ds`` of a key, or with a ``sequence`` column the
  highest ``(sequence, _ds)``; within a drop, versions of a key below its highest sequence
  value are superseded and two different ones at it are conflicts; a deletion at ``ds`` removes the
  versions with ``_ds <= ds`` of the key (and of its children, matched through the
  parent key); the newest deletion of a key is its tombstone;
* a child row needs its parent: while the parent is not in silver, its versions newer
  than the parent's deletion are quarantined as ``orphan_<child>``; a child lives in its
  parent's partition;
* an ``scd2`` table keeps every snapshot, and versions ordered by ``_ds`` where a run of
  snapshots with equal tracked columns is one version valid from the run's first
  snapshot (its content the first snapshot's when every column is tracked, else the
  run's newest); ``valid_to`` is the next version's start;
* a mart is its SQL over those tables (written here a second time, in Python).

Nothing here imports the engine's code: the model is independent of what it checks.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "BAD_KINDS",
    "BASE_DS",
    "SEQUENCE_VALUES",
    "DropDraw",
    "SpecDraw",
    "TableRows",
    "ds_of",
    "expected",
    "land_drop",
    "pipeline_yaml",
    "read_specs",
    "write_pipeline",
]

BASE_DS = dt.date(2024, 3, 1)
CONFLICT = "conflicting_versions_in_drop"
Key = tuple[Any, ...]
Row = tuple[Any, ...]

# The value spaces of each column (None is NULL); small, so collisions are frequent.
INT_VALUES: tuple[Any, ...] = (-1, 0, 7, None)
DECIMAL_VALUES: tuple[Any, ...] = (Decimal("-1.00"), Decimal("0.50"), Decimal("12.25"), None)
GROUP_VALUES: tuple[Any, ...] = ("x", "y", "z w", None)
DATE_VALUES: tuple[Any, ...] = (dt.date(2024, 1, 30), dt.date(2024, 2, 2), None)
BOOL_VALUES: tuple[Any, ...] = (True, False, None)
QTY_VALUES: tuple[Any, ...] = (1, 5, None)
COLOUR_VALUES: tuple[Any, ...] = ("red", "blue")
SIZE_VALUES: tuple[Any, ...] = (1, 2)
SEQUENCE_VALUES: tuple[Any, ...] = (1, 2, 3)
BAD_KINDS = ("bad_number", "null_key", "short_line", "not_json", "null_required")


def ds_of(drop: int) -> dt.date:
    """The ``ds`` of drawn drop number ``drop``."""
    return BASE_DS + dt.timedelta(days=drop)


@dataclass(frozen=True)
class Col:
    name: str
    type: str
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One source of a drawn spec."""

    name: str
    fmt: str  # delimited | csv | jsonl | parquet
    columns: tuple[Col, ...]
    key: tuple[str, ...]
    history: str = "latest"
    track: tuple[str, ...] | None = None
    trailing: bool = False  # delimited: a separator after the last field
    sequence: str | None = None  # a column that orders versions (else the drop's date)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def col(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class SpecDraw:
    """A drawn pipeline: the parent ``p`` (maybe partitioned, with deletes, with a child
    ``c``), maybe an SCD2 table ``s``, and what the marts and expectations are."""

    name: str
    p: TableSpec
    partition: str | None = None  # None | "month" | "bucket"
    deletes: bool = False
    expectation: str | None = None  # None | "drop" | "warn": n >= 0
    c: TableSpec | None = None
    s: TableSpec | None = None
    refresh: str = "bounded"  # bounded | all | none

    @property
    def tables(self) -> list[TableSpec]:
        return [t for t in (self.p, self.c, self.s) if t is not None]

    @property
    def part_column(self) -> str | None:
        return {"month": "_month", "bucket": "_bucket", None: None}[self.partition]

    def part_value(self, row: dict[str, Any]) -> Any:
        if self.partition == "month":
            return row["d"].replace(day=1)
        if self.partition == "bucket":
            return row["k"] % 2
        return None

    @property
    def n_type(self) -> str:
        return self.p.col("n").type

    @property
    def feed(self) -> str:
        return "p_delete"

    @property
    def expectation_name(self) -> str:
        return "n_not_negative"


@dataclass(frozen=True)
class TableRows:
    """One table's part of a drop: rows by key, extra lines and lines that do not parse.

    ``extra`` lines land in a second file: ``(key, content)`` whose content equals the
    row's (an exact duplicate) or differs (a second version of the key in the drop).
    ``bad`` are kinds from :data:`BAD_KINDS`, each one line in the second file.
    """

    rows: dict[Key, Row] = field(default_factory=dict)
    extra: tuple[tuple[Key, Row], ...] = ()
    bad: tuple[str, ...] = ()


@dataclass(frozen=True)
class DropDraw:
    """One drop: rows per table name, and the parent keys it deletes."""

    tables: dict[str, TableRows]
    deletes: tuple[Key, ...] = ()


# -- the spec as files -----------------------------------------------------------------------

def _format(t: TableSpec) -> dict[str, Any]:
    if t.fmt == "delimited":
        return {"type": "delimited", "separator": "|", "trailing_separator": t.trailing}
    return {"type": t.fmt}


def _files(t: TableSpec) -> str:
    return {"delimited": "*.txt", "csv": "*.csv", "jsonl": "*.jsonl",
            "parquet": "*.parquet"}[t.fmt]


def _source(t: TableSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": _format(t), "files": _files(t),
        "columns": [{"name": c.name, "type": c.type, "nullable": c.nullable}
                    for c in t.columns],
        "key": list(t.key),
    }
    if t.sequence is not None:
        out["sequence"] = t.sequence
    if t.history == "scd2":
        out["history"] = "scd2"
        if t.track is not None:
            out["track"] = list(t.track)
    return out


def _sum_type(spec: SpecDraw) -> str:
    return "DECIMAL(38,2)" if spec.n_type.startswith("decimal") else "BIGINT"


def mart_sql(spec: SpecDraw) -> dict[str, str]:
    """The marts' SQL files by name."""
    out = {"p_by_g": f"SELECT g, CAST(count(*) AS BIGINT) AS rows, "
                     f"CAST(sum(n) AS {_sum_type(spec)}) AS total FROM p GROUP BY g"}
    if spec.c is not None:
        on = " AND ".join(f"c.{k} = p.{k}" for k in spec.p.key)
        out["c_by_g"] = ("SELECT p.g, CAST(count(*) AS BIGINT) AS items, "
                         f"CAST(sum(c.qty) AS BIGINT) AS qty FROM c JOIN p ON {on} "
                         "GROUP BY p.g")
    if spec.s is not None:
        out["s_by_colour"] = ("SELECT colour, CAST(count(*) AS BIGINT) AS current_keys, "
                              "CAST(sum(size) AS BIGINT) AS size FROM s GROUP BY colour")
    return out


def pipeline_yaml(spec: SpecDraw) -> dict[str, Any]:
    """The spec document (written as JSON, which is YAML)."""
    p = _source(spec.p)
    if spec.partition == "month":
        p["partition"] = {"column": "_month", "expression": "trunc(d, 'MM')", "type": "date"}
    elif spec.partition == "bucket":
        p["partition"] = {"column": "_bucket", "expression": "pmod(k, 2)", "type": "bigint"}
    if spec.deletes:
        p["deletes"] = {"folder": spec.feed, "files": _files(spec.p)}
    if spec.expectation is not None:
        p["expectations"] = [{"name": spec.expectation_name, "check": "n >= 0",
                              "action": spec.expectation}]
    sources: dict[str, Any] = {"p": p}
    if spec.c is not None:
        c = _source(spec.c)
        c["parent"] = {"table": "p", "key": {k: k for k in spec.p.key}}
        sources["c"] = c
    if spec.s is not None:
        sources["s"] = _source(spec.s)
    marts: dict[str, Any] = {}
    for name in mart_sql(spec):
        mart: dict[str, Any] = {"sql": f"gold/{name}.sql",
                                "grain": ["colour"] if name == "s_by_colour" else ["g"]}
        if spec.refresh == "all":
            mart["refresh"] = {"column": mart["grain"][0],
                               "when": {name[0]: "all"} | ({"p": "all"} if name == "c_by_g"
                                                           else {})}
        elif spec.refresh == "bounded":
            if name == "p_by_g":
                mart["refresh"] = {"column": "g", "when": {"p": "SELECT g FROM changes"}}
            elif name == "c_by_g":
                on = " AND ".join(f"x.{k} = p.{k}" for k in spec.p.key)
                mart["refresh"] = {"column": "g", "when": {
                    "p": "SELECT g FROM changes",
                    "c": f"SELECT p.g FROM changes x JOIN p ON {on}"}}
            else:
                mart["refresh"] = {"column": "colour", "when": {
                    "s": "SELECT colour FROM changes"}}
        marts[name] = mart
    return {"name": spec.name, "schedule": "@daily", "start_date": "2024-01-01",
            "sources": sources, "marts": marts}


def write_pipeline(pipelines: Path, spec: SpecDraw) -> Path:
    """Write ``<pipelines>/<name>/pipeline.yaml`` and its mart SQL files."""
    folder = pipelines / spec.name
    (folder / "gold").mkdir(parents=True)
    (folder / "pipeline.yaml").write_text(json.dumps(pipeline_yaml(spec), indent=1),
                                          encoding="utf-8")
    for name, sql in mart_sql(spec).items():
        (folder / "gold" / f"{name}.sql").write_text(sql + "\n", encoding="utf-8")
    return folder


# -- drops as files --------------------------------------------------------------------------

def _text(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if fmt == "csv" and ("," in text or '"' in text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    return json.dumps(str(value))


def render_line(t: TableSpec, row: dict[str, Any]) -> str:
    """One text line of a row in the table's format."""
    if t.fmt == "jsonl":
        return "{" + ", ".join(f'"{c}": {_json_value(row[c])}' for c in t.names) + "}"
    sep = "|" if t.fmt == "delimited" else ","
    line = sep.join(_text(row[c], t.fmt) for c in t.names)
    return line + sep if t.trailing else line


def bad_line(t: TableSpec, kind: str, row: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """A line of ``kind`` built from a valid ``row``, and the reasons it must get."""
    if kind == "not_json" and t.fmt == "jsonl":
        return render_line(t, row)[:-1], ("invalid_json",)
    if kind == "short_line" and t.fmt != "jsonl":
        line = render_line(t, row)
        sep = "|" if t.fmt == "delimited" else ","
        return line[:line.rindex(sep)] if not t.trailing else line[:-1], ("wrong_field_count",)
    if kind == "null_key":
        return render_line(t, {**row, t.key[0]: None}), (f"null_key:{t.key[0]}",)
    if kind == "null_required":
        required = [c for c in t.columns if not c.nullable and c.name not in t.key]
        if required:
            name = required[0].name
            return render_line(t, {**row, name: None}), (f"null_value:{name}",)
    numeric = next(c for c in t.columns if c.name not in t.key
                   and (c.type in ("int", "bigint") or c.type.startswith("decimal")))
    reason = ("bad_decimal" if numeric.type.startswith("decimal") else "not_an_integer")
    if t.fmt == "jsonl":
        text = render_line(t, row).replace(f'"{numeric.name}": {_json_value(row[numeric.name])}',
                                           f'"{numeric.name}": "1x"')
    else:
        text = render_line(t, {**row, numeric.name: "1x"})
    return text, (f"{reason}:{numeric.name}",)


def _row(t: TableSpec, key: Key, content: Row) -> dict[str, Any]:
    return dict(zip(t.names, (*key, *content), strict=True))


def table_files(t: TableSpec, rows: TableRows) -> dict[str, list[dict[str, Any] | str]]:
    """File name -> records (a dict for a row, a str for a raw bad line)."""
    first: list[dict[str, Any] | str] = [_row(t, k, c) for k, c in rows.rows.items()]
    second: list[dict[str, Any] | str] = [_row(t, k, c) for k, c in rows.extra]
    template = _row(t, *next(iter(rows.rows.items()))) if rows.rows else None
    for kind in rows.bad if t.fmt != "parquet" and template is not None else ():
        second.append(bad_line(t, kind, template)[0])
    ext = _files(t)[1:]
    return {name: lines for name, lines in ((f"part-1{ext}", first), (f"part-2{ext}", second))
            if lines}


def _arrow_type(type_name: str) -> Any:
    import pyarrow as pa

    if type_name.startswith("decimal"):
        return pa.decimal128(9, 2)
    return {"int": pa.int32(), "bigint": pa.int64(), "string": pa.string(),
            "date": pa.date32(), "boolean": pa.bool_()}[type_name]


def _write_file(path: Path, t: TableSpec, records: list[dict[str, Any] | str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if t.fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [r for r in records if isinstance(r, dict)]
        pq.write_table(pa.table({c.name: pa.array([r[c.name] for r in rows],
                                                  _arrow_type(c.type))
                                 for c in t.columns}), path)
        return
    lines = [r if isinstance(r, str) else render_line(t, r) for r in records]
    if t.fmt == "csv":
        lines = [",".join(t.names), *lines]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def land_drop(landing: Path, spec: SpecDraw, ds: dt.date, drop: DropDraw) -> None:
    """Write a drop's files (replacing what was landed for ``ds``), then ``_SUCCESS``."""
    folder = landing / f"ds={ds.isoformat()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    by_name = {t.name: t for t in spec.tables}
    for name, rows in drop.tables.items():
        t = by_name[name]
        for file, records in table_files(t, rows).items():
            _write_file(folder / name / file, t, records)
    if spec.deletes and drop.deletes:
        feed = TableSpec(spec.feed, spec.p.fmt,
                         tuple(spec.p.col(k) for k in spec.p.key), spec.p.key,
                         trailing=spec.p.trailing)
        records: list[dict[str, Any] | str] = [dict(zip(spec.p.key, k, strict=True))
                                               for k in drop.deletes]
        _write_file(folder / spec.feed / f"part-1{_files(spec.p)[1:]}", feed, records)
    (folder / "_SUCCESS").write_bytes(b"")


# -- the landed files, read back -------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """One landed record: typed values (or the reasons it failed), text and lineage."""

    ds: dt.date
    uri: str
    number: int
    text: str | None  # the raw line (None for Parquet: bronze keeps its own JSON)
    values: dict[str, Any] | None  # None: a text line that did not parse
    reasons: tuple[str, ...]

    @property
    def lineage(self) -> Row:
        return (self.ds, self.uri, self.number)


def _parse_text(t: TableSpec, text: str) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """Parse a line this module wrote: its values, or the reasons it is bad (the inverse
    of :func:`render_line` and :func:`bad_line`, by the rules of ``docs/pipelines.md``)."""
    if t.fmt == "jsonl":
        try:
            record = json.loads(text, parse_float=Decimal)
        except ValueError:
            return None, ("invalid_json",)
        raw = {c: None if record.get(c) is None else str(record[c]).lower()
               if isinstance(record[c], bool) else str(record[c]) for c in t.names}
    else:
        sep = "|" if t.fmt == "delimited" else ","
        fields = _split_csv(text) if t.fmt == "csv" else text.split(sep)
        if t.trailing:
            if fields[-1:] != [""]:
                return None, ("wrong_field_count",)
            fields = fields[:-1]
        if len(fields) != len(t.columns):
            return None, ("wrong_field_count",)
        raw = {c: (None if v == "" else v) for c, v in zip(t.names, fields, strict=True)}
    values: dict[str, Any] = {}
    reasons: list[str] = []
    for c in t.columns:
        v = raw[c.name]
        if v is None:
            if c.name in t.key:
                reasons.append(f"null_key:{c.name}")
            elif not c.nullable:
                reasons.append(f"null_value:{c.name}")
            values[c.name] = None
            continue
        try:
            values[c.name] = _typed(c.type, v)
        except ValueError:
            kind = "bad_decimal" if c.type.startswith("decimal") else "not_an_integer"
            reasons.append(f"{kind}:{c.name}")
    return (values if not reasons else None), tuple(reasons)


def _split_csv(text: str) -> list[str]:
    import csv

    return next(csv.reader([text]))


def _typed(type_name: str, text: str) -> Any:
    if type_name in ("int", "bigint"):
        return int(text)
    if type_name.startswith("decimal"):
        if not text.replace("-", "", 1).replace(".", "", 1).isdigit():
            raise ValueError(text)
        return Decimal(text).quantize(Decimal("0.01"))
    if type_name == "date":
        return dt.date.fromisoformat(text)
    if type_name == "boolean":
        return {"true": True, "false": False}[text]
    return text


def read_landed(landing: Path, spec: SpecDraw) -> dict[str, list[Line]]:
    """Every landed record per table (delete feed included), read back from disk."""
    by_name = {t.name: t for t in spec.tables}
    if spec.deletes:
        by_name[spec.feed] = TableSpec(spec.feed, spec.p.fmt,
                                       tuple(spec.p.col(k) for k in spec.p.key), spec.p.key,
                                       trailing=spec.p.trailing)
    out: dict[str, list[Line]] = defaultdict(list)
    for path in sorted(landing.glob("ds=*/*/part-*")):
        t = by_name[path.parent.name]
        ds = dt.date.fromisoformat(path.parent.parent.name[3:])
        uri = "file:" + str(path)
        if t.fmt == "parquet":
            import pyarrow.parquet as pq

            for number, record in enumerate(pq.read_table(path).to_pylist(), start=1):
                values = {c: (Decimal(v).quantize(Decimal("0.01"))
                              if isinstance(v, Decimal) else v) for c, v in record.items()}
                reasons = tuple(
                    (f"null_key:{c.name}" if c.name in t.key else f"null_value:{c.name}")
                    for c in t.columns
                    if values[c.name] is None and (c.name in t.key or not c.nullable))
                out[t.name].append(Line(ds, uri, number, None, values, reasons))
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        start = 2 if t.fmt == "csv" else 1
        for number, text in enumerate(lines[start - 1:], start=start):
            values, reasons = _parse_text(t, text)
            out[t.name].append(Line(ds, uri, number, text, values, reasons))
    return out


# -- the model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Version:
    """The valid version of a key in one drop."""

    row: dict[str, Any]
    line: Line


@dataclass
class Model:
    versions: dict[str, dict[Key, dict[dt.date, Version]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict)))
    quarantine: dict[str, dict[Row, Row]] = field(default_factory=lambda: defaultdict(dict))
    seen: Counter[str] = field(default_factory=Counter)


def _identity(line: Line) -> str:
    """What makes two records the same line (Parquet: the record's values)."""
    return line.text if line.text is not None else repr(sorted(
        (k, repr(v)) for k, v in (line.values or {}).items()))


def _quarantined(line: Line, reasons: tuple[str, ...]) -> Row:
    return (line.text, tuple(sorted(set(reasons))))


def read_drops(spec: SpecDraw, landed: dict[str, list[Line]]) -> Model:
    """Per table and drop: duplicates counted once, conflicts and bad lines quarantined,
    ``drop`` expectations applied; the valid version of each key per drop."""
    model = Model()
    keys = {t.name: t.key for t in spec.tables} | {spec.feed: spec.p.key}
    for name, lines in landed.items():
        # Copies of one line: (ds, key, identity) -> the lines, and their reasons.
        copies: dict[tuple[dt.date, Key | None, str], list[Line]] = defaultdict(list)
        reasons_of: dict[tuple[dt.date, Key | None, str], tuple[str, ...]] = {}
        for line in lines:
            reasons = list(line.reasons)
            values = line.values
            if not reasons and values is not None and name == "p" and spec.expectation:
                n = values["n"]
                if n is None or n < 0:
                    model.seen["expectation_failed"] += 1
                    if spec.expectation == "drop":
                        reasons.append(spec.expectation_name)
            key = tuple(values[k] for k in keys[name]) if values is not None else None
            group = (line.ds, key if not reasons else None, _identity(line))
            copies[group].append(line)
            reasons_of[group] = tuple(reasons)
        clean: dict[tuple[dt.date, Key], list[Line]] = defaultdict(list)
        for group, same in copies.items():
            first = min(same, key=lambda x: (x.uri, x.number))
            model.seen["duplicate_lines"] += len(same) - 1
            if reasons_of[group]:
                model.quarantine[name][first.lineage] = _quarantined(first, reasons_of[group])
                model.seen["bad_lines"] += 1
            else:
                ds, key, _ = group
                assert key is not None
                clean[(ds, key)].append(first)
        sequence = next((t.sequence for t in spec.tables if t.name == name), None)
        for (ds, key), firsts in clean.items():
            if sequence is not None and len(firsts) > 1:
                # The highest sequence value is the drop's version; lower ones are
                # superseded (valid, counted, not quarantined).
                top = max(x.values[sequence] for x in firsts if x.values is not None)
                model.seen["superseded_in_drop"] += sum(
                    1 for x in firsts if x.values is not None and x.values[sequence] < top)
                firsts = [x for x in firsts if x.values is not None
                          and x.values[sequence] == top]
            if len(firsts) > 1:
                model.seen["conflicts"] += 1
                for line in firsts:
                    model.quarantine[name][line.lineage] = _quarantined(line, (CONFLICT,))
                continue
            (line,) = firsts
            assert line.values is not None
            model.versions[name][key][ds] = Version(line.values, line)
    return model


def _scd2(spec: TableSpec, snapshots: dict[dt.date, Version]
          ) -> list[tuple[Version, dt.date, dt.date | None]]:
    """``(content version, valid_from, valid_to)`` of one key, oldest first."""
    value_columns = {c for c in spec.names if c not in spec.key}
    tracked = spec.track if spec.track is not None else tuple(value_columns)
    partial = set(tracked) != value_columns
    runs: list[list[Version]] = []
    for ds in sorted(snapshots):
        v = snapshots[ds]
        if runs and all(runs[-1][-1].row[c] == v.row[c] for c in tracked):
            runs[-1].append(v)
        else:
            runs.append([v])
    out = []
    for i, run in enumerate(runs):
        content = run[-1] if partial else run[0]
        to = runs[i + 1][0].line.ds if i + 1 < len(runs) else None
        out.append((content, run[0].line.ds, to))
    return out


def expected(spec: SpecDraw, landing: Path) -> tuple[dict[str, dict[Key, Row]], Counter[str]]:
    """Silver, quarantine and gold as the model says, keyed like :func:`read_tables`.

    :return: ``layer/table`` -> key -> row, and counts of what the drops exercised.
    """
    model = read_drops(spec, read_landed(landing, spec))
    v, seen = model.versions, model.seen
    out: dict[str, dict[Key, Row]] = {}
    p_cols = spec.p.names
    tomb = {k: max(by_ds) for k, by_ds in v[spec.feed].items()} if spec.deletes else {}
    if spec.deletes:
        out["silver/_p_tombstones"] = {
            k: (*k, *v[spec.feed][k][ds].line.lineage) for k, ds in tomb.items()}
    parents: dict[Key, Version] = {}
    def order(by_ds: dict[dt.date, Version]) -> Callable[[dt.date], Any]:
        if spec.p.sequence is None:
            return lambda ds: ds
        return lambda ds: (by_ds[ds].row[spec.p.sequence], ds)

    for k, by_ds in v["p"].items():
        newest = max(by_ds, key=order(by_ds))
        if newest != max(by_ds):
            seen["late_drop_older_sequence"] += 1
        seen["versions_replaced"] += len(by_ds) - 1
        if k in tomb and newest <= tomb[k]:
            seen["deleted"] += 1
        else:
            parents[k] = by_ds[newest]
        if spec.partition and len({spec.part_value(x.row) for x in by_ds.values()}) > 1:
            seen["partition_moves"] += 1
    part = spec.part_column
    out["silver/p"] = {k: (*(x.row[c] for c in p_cols), *x.line.lineage,
                           *([spec.part_value(x.row)] if part else []))
                       for k, x in parents.items()}
    if spec.c is not None:
        children: dict[Key, Version] = {}
        for k, by_ds in v["c"].items():
            pk = k[:len(spec.p.key)]
            alive = {ds: x for ds, x in by_ds.items() if pk not in tomb or ds > tomb[pk]}
            seen["child_versions_deleted"] += len(by_ds) - len(alive)
            if pk in parents and alive:
                children[k] = alive[max(alive)]
            for x in alive.values() if pk not in parents else ():
                model.quarantine["c"][x.line.lineage] = _quarantined(x.line, ("orphan_c",))
                seen["orphans"] += 1
        out["silver/c"] = {
            k: (*(x.row[c] for c in spec.c.names), *x.line.lineage,
                *([spec.part_value(parents[k[:len(spec.p.key)]].row)] if part else []))
            for k, x in children.items()}
    if spec.s is not None:
        s = spec.s
        out["silver/_s_snapshots"] = {
            (*k, ds): (*(x.row[c] for c in s.names), *x.line.lineage)
            for k, by_ds in v["s"].items() for ds, x in by_ds.items()}
        out["silver/s"] = {}
        for k, by_ds in v["s"].items():
            history = _scd2(s, by_ds)
            seen["scd2_versions"] += len(history)
            for x, start, to in history:
                out["silver/s"][(*k, start)] = (*(x.row[c] for c in s.names), start, to,
                                                to is None, *x.line.lineage)
    for t in [*spec.tables, *([spec.feed] if spec.deletes else [])]:
        name = t if isinstance(t, str) else t.name
        out[f"quarantine/{name}"] = dict(model.quarantine[name])
    out |= _gold(spec, out)
    return out, seen


def _gold(spec: SpecDraw, silver: dict[str, dict[Key, Row]]) -> dict[str, dict[Key, Row]]:
    """The marts of :func:`mart_sql`, over the model's silver."""
    def summed(values: list[Any]) -> Any:
        present = [x for x in values if x is not None]
        return sum(present) if present else None

    p_names = spec.p.names
    p_rows = [dict(zip(p_names, r, strict=False)) for r in silver["silver/p"].values()]
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in p_rows:
        groups[(r["g"],)].append(r)
    out = {"gold/p_by_g": {g: (len(rs), summed([r["n"] for r in rs]))
                           for g, rs in groups.items()}}
    if spec.c is not None:
        by_key = {tuple(r[k] for k in spec.p.key): r for r in p_rows}
        items: dict[Key, list[Any]] = defaultdict(list)
        for r in silver["silver/c"].values():
            child = dict(zip(spec.c.names, r, strict=False))
            parent = by_key[tuple(child[k] for k in spec.p.key)]
            items[(parent["g"],)].append(child["qty"])
        out["gold/c_by_g"] = {g: (len(q), summed(q)) for g, q in items.items()}
    if spec.s is not None:
        names = spec.s.names
        current: dict[Key, list[int]] = defaultdict(list)
        for r in silver["silver/s"].values():
            row = dict(zip(names, r, strict=False))
            if r[len(names) + 2]:
                current[(row["colour"],)].append(row["size"])
        out["gold/s_by_colour"] = {g: (len(z), sum(z)) for g, z in current.items()}
    return out


def read_specs(spec: SpecDraw) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``layer/table`` -> (key columns, value columns) to read from the lake, keyed and
    ordered like :func:`expected`."""
    lineage = ("_ds", "_source_file", "_line_number")
    part = (spec.part_column,) if spec.part_column else ()
    out = {"silver/p": (spec.p.key, (*spec.p.names, *lineage, *part)),
           "gold/p_by_g": (("g",), ("rows", "total"))}
    if spec.deletes:
        out["silver/_p_tombstones"] = (spec.p.key, (*spec.p.key, *lineage))
    if spec.c is not None:
        out["silver/c"] = (spec.c.key, (*spec.c.names, *lineage, *part))
        out["gold/c_by_g"] = (("g",), ("items", "qty"))
    if spec.s is not None:
        out["silver/_s_snapshots"] = ((*spec.s.key, "_ds"), (*spec.s.names, *lineage))
        out["silver/s"] = ((*spec.s.key, "valid_from"),
                           (*spec.s.names, "valid_from", "valid_to", "is_current", *lineage))
        out["gold/s_by_colour"] = (("colour",), ("current_keys", "size"))
    for name in [t.name for t in spec.tables] + ([spec.feed] if spec.deletes else []):
        out[f"quarantine/{name}"] = (lineage, ("raw", "reasons"))
    return out

