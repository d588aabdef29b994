"""Draft a spec from sample files: ``python -m jobs new-pipeline NAME --from-sample DIR``.

``DIR/<table>/*`` holds a few files of each table. For each table the draft states what
the files show: the format (from the extension and the content: Parquet's magic bytes, a
``{`` opening each line for JSON lines, else text), the separator of text files (the one
of ``| , TAB ;`` that splits every line into the same number of fields), a trailing
separator, a header line, and each column's name and type. Only the user can decide the
key, the sequence and the history mode: the draft leaves ``key: []``, which ``validate``
refuses, with comments saying what to choose and which columns the sample suggests.

Types of text values (empty values are nulls and do not vote): integers are ``bigint`` (a
sample's range says little about next year's, narrow to ``int`` by hand); numbers with at
most 2 decimals are ``decimal(15,2)`` (``decimal(38,2)`` past 13 integer digits), as money
usually is; other numbers are ``double``; ``true``/``false`` is ``boolean``;
``YYYY-MM-DD`` is ``date``; ``YYYY-MM-DD HH:MM:SS`` (or with ``T``) is ``timestamp``;
anything else, or a column that is always empty, is ``string``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.errors import ConfigError
from jobs.spec.document import SPEC_FILE
from jobs.spec.load import pipeline_dir
from jobs.spec.model import COLUMN_NAME, IDENTIFIER

__all__ = ["SAMPLE_ROWS", "ColumnDraft", "TableDraft", "draft_spec", "draft_table",
           "infer_type", "new_pipeline"]

# Rows read from each table's files: enough to see every format trait and most types.
SAMPLE_ROWS = 2000
_SEPARATORS = ("|", ",", "\t", ";")
_PARQUET = (".parquet", ".pq")
_JSON = (".jsonl", ".ndjson", ".json")
_INTEGER = re.compile(r"^[+-]?\d+$")
_FIXED = re.compile(r"^[+-]?(\d+)\.(\d+)$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}([ T])\d{2}:\d{2}:\d{2}$")
_HEADER_FIELD = re.compile(r"^[A-Za-z_][\w .-]*$")


@dataclass
class ColumnDraft:
    """A column as the sample shows it."""

    name: str
    type: str
    source: str | None = None
    values: list[Any] = field(default_factory=list, repr=False)


@dataclass
class TableDraft:
    """A table as the sample shows it: format options, files glob and columns."""

    name: str
    format: dict[str, Any]
    files: str
    columns: list[ColumnDraft]
    notes: list[str]

    def key_candidates(self) -> list[str]:
        """Columns whose sample values are never empty and never repeat."""
        out = []
        for column in self.columns:
            values = [v for v in column.values if v not in (None, "")]
            if values and len(values) == len(column.values) and (
                    len(set(map(str, values))) == len(values)):
                out.append(column.name)
        return out


class _JsonNumber(str):
    """A JSON number with a fraction, kept as written so its decimals can be counted."""

    __slots__ = ()


def infer_type(values: Iterable[str]) -> tuple[str, str | None]:
    """The spec type of a text column and, for timestamps, its format.

    :param values: the column's sample values (empty strings are nulls).
    :return: ``(type name, timestamp format or None)``.
    """
    present = [v.strip() for v in values if v.strip() != ""]
    if not present:
        return "string", None
    if all(_INTEGER.match(v) for v in present):
        return "bigint", None
    if all(_INTEGER.match(v) or _FIXED.match(v) for v in present):
        fixed = [m for v in present if (m := _FIXED.match(v))]
        scale = max(len(m[2]) for m in fixed)
        digits = max(len(v.lstrip("+-").split(".")[0]) for v in present)
        if scale <= 2:
            return ("decimal(15,2)" if digits <= 13 else "decimal(38,2)"), None
    if all(_FLOAT.match(v) for v in present):
        return "double", None
    if all(v.lower() in ("true", "false") for v in present):
        return "boolean", None
    if all(_DATE.match(v) and _valid_date(v) for v in present):
        return "date", None
    stamps = [m for v in present if (m := _TIMESTAMP.match(v))]
    if len(stamps) == len(present) and len({m[1] for m in stamps}) == 1:
        sep = stamps[0][1]
        return "timestamp", "yyyy-MM-dd'T'HH:mm:ss" if sep == "T" else None
    return "string", None


def _valid_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _column_name(raw: str, index: int, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", raw.strip()).strip("_").lower()
    if not name:
        name = f"col_{index + 1}"
    elif not re.match(COLUMN_NAME, name):
        name = f"col_{name}"
    name = name[:128]
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _kind(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"PAR1") or path.suffix.lower() in _PARQUET:
        return "parquet"
    text = head.decode("utf-8", errors="replace").lstrip()
    if path.suffix.lower() in _JSON or text.startswith("{"):
        return "jsonl"
    return "csv" if path.suffix.lower() == ".csv" else "text"


def _glob(files: Sequence[Path]) -> str:
    suffixes = {f.suffix.lower() for f in files}
    if len(suffixes) == 1 and "" not in suffixes:
        return f"*{files[0].suffix}"
    return "*"


def draft_table(folder: Path) -> TableDraft:
    """Infer one table from the files of its sample folder.

    :raises ConfigError: for an unusable folder (no files, mixed formats, unreadable).
    """
    name = folder.name
    if not re.match(IDENTIFIER, name):
        raise ConfigError(f"{folder}: {name!r} is not a table name (lower case letters, "
                          "digits and _, starting with a letter): rename the folder")
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith((
        ".", "_")))
    if not files:
        raise ConfigError(f"{folder}: no sample files")
    kinds = {_kind(f) for f in files}
    if len(kinds) > 1:
        raise ConfigError(f"{folder}: files of different formats ({', '.join(sorted(kinds))})")
    kind = kinds.pop()
    try:
        if kind == "parquet":
            return _draft_parquet(name, files)
        if kind == "jsonl":
            return _draft_jsonl(name, files)
        return _draft_text(name, files, csv_extension=kind == "csv")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{folder}: cannot read the sample: {exc}") from None


def _text_lines(files: Sequence[Path]) -> list[str]:
    lines: list[str] = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
                if len(lines) >= SAMPLE_ROWS:
                    return lines
    return lines


def _split(lines: Sequence[str], separator: str, quoted: bool) -> list[list[str]]:
    if quoted:
        return list(csv.reader(lines, delimiter=separator, quotechar='"'))
    return [line.split(separator) for line in lines]


def _draft_text(name: str, files: Sequence[Path], csv_extension: bool) -> TableDraft:
    lines = _text_lines(files)
    if not lines:
        raise ValueError("the files are empty")
    quoted = csv_extension or any(line.startswith('"') for line in lines)
    best: tuple[int, str] | None = None
    for separator in _SEPARATORS:
        widths = {len(row) for row in _split(lines, separator, quoted)}
        if len(widths) == 1 and (width := widths.pop()) > 1 and (
                best is None or width > best[0]):
            best = (width, separator)
    separator = best[1] if best else ("," if quoted else "|")
    rows = _split(lines, separator, quoted)
    trailing = all(row and row[-1] == "" for row in rows) and all(
        line.endswith(separator) for line in lines)
    if trailing:
        rows = [row[:-1] for row in rows]
    header = _has_header(rows)
    notes = [f"{len(files)} file(s), {len(lines)} line(s) read"]
    if best is None:
        notes.append("no separator splits every line alike: one column")
    raw_names = rows[0] if header else [""] * len(rows[0])
    data = rows[1:] if header else rows
    taken: set[str] = set()
    columns = []
    timestamp_format = None
    for i, raw in enumerate(raw_names):
        values = [row[i] if i < len(row) else "" for row in data]
        kind, stamp = infer_type(values)
        timestamp_format = timestamp_format or stamp
        column_name = _column_name(raw, i, taken)
        source = raw if header and raw != column_name else None
        columns.append(ColumnDraft(column_name, kind, source, values))
    if not header:
        notes.append("no header line: name the columns")
    fmt: dict[str, Any] = {"type": "csv" if quoted else "delimited", "separator": separator}
    if quoted and not header:
        fmt["header"] = False
    if not quoted and header:
        fmt["header"] = True
    if trailing:
        fmt["trailing_separator"] = True
    if timestamp_format:
        fmt["timestamp_format"] = timestamp_format
    return TableDraft(name, fmt, _glob(files), columns, notes)


def _has_header(rows: Sequence[Sequence[str]]) -> bool:
    """A first line of names over data: every field a name, and some column's data typed
    (not string) or none of its values repeating the first line's."""
    first = rows[0]
    if not all(_HEADER_FIELD.match(value.strip()) for value in first):
        return False
    if len(set(first)) != len(first) or len(rows) < 2:
        return False
    for i, value in enumerate(first):
        data = [row[i] for row in rows[1:] if i < len(row)]
        if infer_type(data)[0] != "string" or value not in data:
            return True
    return False


def _draft_jsonl(name: str, files: Sequence[Path]) -> TableDraft:
    records: list[dict[str, Any]] = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line, parse_float=_JsonNumber)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path.name} line {number}: not JSON: {exc.msg}") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{path.name} line {number}: not a JSON object")
                records.append(record)
                if len(records) >= SAMPLE_ROWS:
                    break
    if not records:
        raise ValueError("the files are empty")
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    taken: set[str] = set()
    columns = []
    notes = [f"{len(files)} file(s), {len(records)} record(s) read"]
    timestamp_format = None
    for i, key in enumerate(keys):
        values = [r.get(key) for r in records]
        kind, stamp = _json_type([v for v in values if v is not None])
        timestamp_format = timestamp_format or stamp
        column_name = _column_name(key, i, taken)
        if any(isinstance(v, dict | list) for v in values):
            notes.append(f"{column_name}: nested values, read as JSON text")
        columns.append(ColumnDraft(column_name, kind, key if key != column_name else None,
                                   values))
    fmt_options: dict[str, Any] = {"type": "jsonl"}
    if timestamp_format:
        fmt_options["timestamp_format"] = timestamp_format
    return TableDraft(name, fmt_options, _glob(files), columns, notes)


def _json_type(values: Sequence[Any]) -> tuple[str, str | None]:
    if not values:
        return "string", None
    if all(isinstance(v, bool) for v in values):
        return "boolean", None
    if all(isinstance(v, int | _JsonNumber) and not isinstance(v, bool) for v in values):
        return infer_type(str(v) for v in values)
    if all(isinstance(v, str) and not isinstance(v, _JsonNumber) for v in values):
        kind, fmt = infer_type(values)
        return (kind, fmt) if kind in ("date", "timestamp") else ("string", None)
    return "string", None


def _draft_parquet(name: str, files: Sequence[Path]) -> TableDraft:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def spec_type(arrow: pa.DataType) -> str:
        if pa.types.is_boolean(arrow):
            return "boolean"
        if pa.types.is_int8(arrow) or pa.types.is_int16(arrow) or pa.types.is_uint8(arrow):
            return "smallint"
        if pa.types.is_int32(arrow) or pa.types.is_uint16(arrow):
            return "int"
        if pa.types.is_integer(arrow):
            return "bigint"
        if pa.types.is_floating(arrow):
            return "double"
        if pa.types.is_decimal(arrow) and arrow.precision <= 38:
            return f"decimal({arrow.precision},{arrow.scale})"
        if pa.types.is_date(arrow):
            return "date"
        if pa.types.is_timestamp(arrow):
            return "timestamp"
        return "string"

    schemas = [pq.read_schema(f) for f in files]
    first = schemas[0]
    for path, schema in zip(files[1:], schemas[1:], strict=True):
        if schema.names != first.names:
            raise ValueError(f"{path.name} has other columns than {files[0].name}")
    batch = next(pq.ParquetFile(files[0]).iter_batches(batch_size=SAMPLE_ROWS), None)
    rows: dict[str, list[Any]] = batch.to_pydict() if batch is not None else {}
    taken: set[str] = set()
    columns = []
    for i, arrow_field in enumerate(first):
        column_name = _column_name(arrow_field.name, i, taken)
        columns.append(ColumnDraft(
            column_name, spec_type(arrow_field.type),
            arrow_field.name if arrow_field.name != column_name else None,
            rows.get(arrow_field.name, [])))
    notes = [f"{len(files)} file(s); types from the Parquet schema"]
    return TableDraft(name, {"type": "parquet"}, _glob(files), columns, notes)


def _flow(mapping: dict[str, Any]) -> str:
    """A flow mapping whose strings are JSON-quoted (valid YAML double-quoted scalars)."""
    parts = []
    for key, value in mapping.items():
        text = json.dumps(value) if isinstance(value, str) else str(value).lower()
        if isinstance(value, str) and key in ("name", "type") and re.match(r"^[a-z_]\w*$",
                                                                           value):
            text = value
        parts.append(f"{key}: {text}")
    return "{" + ", ".join(parts) + "}"


def draft_spec(name: str, sample_dir: Path) -> str:
    """The text of a drafted ``pipeline.yaml`` for the tables of ``sample_dir``.

    :raises ConfigError: for a name that is not a pipeline name or an unusable sample.
    """
    if not re.match(IDENTIFIER, name) or len(name) > 64:
        raise ConfigError(f"{name!r} is not a pipeline name (lower case letters, digits "
                          "and _, starting with a letter)")
    if not sample_dir.is_dir():
        raise ConfigError(f"--from-sample {sample_dir}: not a folder")
    folders = sorted(p for p in sample_dir.iterdir() if p.is_dir()
                     and not p.name.startswith((".", "_")))
    if not folders:
        raise ConfigError(f"--from-sample {sample_dir}: no table folders (expected "
                          f"{sample_dir}/<table>/<files>)")
    tables = [draft_table(folder) for folder in folders]
    out = [
        f"# Drafted by `python -m jobs new-pipeline {name} --from-sample {sample_dir}`.",
        "# Every field is described in docs/pipelines.md. The lines marked DECIDE are yours:",
        f"# `python -m jobs validate --pipeline {name}` refuses the spec until each key is set.",
        f"name: {name}",
        f"description: {json.dumps(f'Tables drafted from {sample_dir.name}.')}",
        'schedule: "@daily"',
        "",
        "sources:",
    ]
    for table in tables:
        out.append(f"  {table.name}:")
        out += [f"    # sample: {note}" for note in table.notes]
        out.append(f"    format: {_flow(table.format)}")
        out.append(f"    files: {json.dumps(table.files)}")
        out.append("    columns:")
        for column in table.columns:
            col: dict[str, Any] = {"name": column.name, "type": column.type}
            if column.source is not None:
                col["source"] = column.source
            out.append(f"      - {_flow(col)}")
        candidates = table.key_candidates()
        hint = (f" Unique and never empty in the sample: {', '.join(candidates)}."
                if candidates else " No column is unique in the sample: a key may need "
                "several columns.")
        ordered = [c.name for c in table.columns if c.type in ("date", "timestamp")]
        out += [
            "    # DECIDE: the columns that identify a row; a newer version of a key replaces",
            f"    # the older one.{hint}",
            "    key: []",
            "    # DECIDE: what orders two versions of a key: _ds (the drop's date, newest wins)",
            "    # or a column of the row"
            + (f" ({', '.join(ordered)})" if ordered else "")
            + ", declared nullable: false (latest tables without partition, deletes,",
            "    # parent or children only).",
            "    sequence: _ds",
            "    # DECIDE: keep only the latest version of each key (latest) or every version",
            "    # with valid_from / valid_to / is_current (scd2).",
            "    history: latest",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


def new_pipeline(name: str, sample_dir: Path, root: Path | None = None) -> Path:
    """Write ``<pipelines>/<name>/pipeline.yaml`` drafted from ``sample_dir``.

    :param name: the new pipeline's name (its folder).
    :param sample_dir: a folder holding ``<table>/<files>``.
    :param root: see :func:`jobs.spec.load.pipelines_root`.
    :return: the file written.
    :raises ConfigError: when the pipeline exists already or the sample is unusable.
    """
    target = pipeline_dir(name, root) / SPEC_FILE
    if target.exists():
        raise ConfigError(f"{target} exists already: new-pipeline never overwrites a "
                          "pipeline")
    text = draft_spec(name, sample_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("x", encoding="utf-8") as handle:
        handle.write(text)
    return target
