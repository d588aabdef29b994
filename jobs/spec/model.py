"""The pipeline spec: what a data engineer writes in ``pipelines/<name>/pipeline.yaml``.

The models check the shape of each field (types, allowed values, defaults); the checks
that need the whole spec (a key column that exists, a parent that is a table, SQL that
resolves against the declared columns) are in :mod:`jobs.spec.check`. Every model forbids
unknown fields, so a misspelt option is an error rather than a silently ignored line.

Nothing here imports Spark: the DAG factory reads specs while Airflow parses DAGs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SIMPLE_TYPES",
    "Action",
    "Alerts",
    "Column",
    "DatasetCheck",
    "Deletes",
    "Expectation",
    "FileFormat",
    "Gate",
    "Mart",
    "Parent",
    "Partition",
    "Pipeline",
    "Refresh",
    "Source",
    "is_decimal",
]

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
# Lineage and engine columns start with "_"; a user column may not.
COLUMN_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
SIMPLE_TYPES = ("bigint", "int", "smallint", "double", "boolean", "string", "date", "timestamp")
_DECIMAL = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")

Action = Literal["warn", "drop", "fail"]
Name = Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]


def is_decimal(type_name: str) -> tuple[int, int] | None:
    """``(precision, scale)`` of a ``decimal(p,s)`` type name, else ``None``."""
    found = _DECIMAL.match(type_name)
    return (int(found[1]), int(found[2])) if found else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileFormat(_Strict):
    """How a source's files are written.

    ``delimited`` is text split on ``separator`` with no quoting unless ``quote`` is set
    (dbgen's ``|`` files: ``trailing_separator: true``); ``csv`` is the same with RFC 4180
    quoting (``quote: '"'``) and a header line by default; ``jsonl`` is one JSON object per
    line, its keys the column names (or each column's ``source``); ``parquet`` is read
    with its own schema and each column cast to the declared type.
    """

    type: Literal["delimited", "csv", "jsonl", "parquet"]
    separator: str = Field(default="", description="field separator (delimited, csv)")
    header: bool | None = None
    quote: str | None = None
    trailing_separator: bool = False
    null_values: tuple[str, ...] = ("",)
    encoding: Literal["utf-8"] = "utf-8"
    date_format: str = "yyyy-MM-dd"
    timestamp_format: str = "yyyy-MM-dd HH:mm:ss"

    @model_validator(mode="after")
    def _defaults_by_type(self) -> FileFormat:
        text = self.type in ("delimited", "csv")
        if text and not self.separator:
            object.__setattr__(self, "separator", "|" if self.type == "delimited" else ",")
        if self.type == "csv":
            if self.header is None:
                object.__setattr__(self, "header", True)
            if self.quote is None:
                object.__setattr__(self, "quote", '"')
        elif self.header is None:
            object.__setattr__(self, "header", False)
        if not text and (self.separator or self.quote or self.trailing_separator
                         or self.header):
            raise ValueError(f"separator, quote, header and trailing_separator apply to "
                             f"delimited and csv files, not to {self.type}")
        if text and len(self.separator) != 1:
            raise ValueError(f"separator must be one character, not {self.separator!r}")
        if self.quote is not None and len(self.quote) != 1:
            raise ValueError(f"quote must be one character, not {self.quote!r}")
        if self.quote is not None and self.quote == self.separator:
            raise ValueError("quote and separator must differ")
        return self


class Column(_Strict):
    """One typed column of a source table."""

    name: Annotated[str, Field(pattern=COLUMN_NAME, max_length=128)]
    type: str
    nullable: bool = True
    source: str | None = Field(
        default=None, description="the field's name in the file when it differs (CSV "
        "header, JSON key, Parquet column)")
    description: str = ""

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value in SIMPLE_TYPES:
            return value
        dec = is_decimal(value)
        if dec is None:
            raise ValueError(f"unknown type {value!r}; expected one of "
                             f"{', '.join(SIMPLE_TYPES)} or decimal(p,s)")
        precision, scale = dec
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError(f"decimal({precision},{scale}) needs 1 <= p <= 38 and s <= p")
        return f"decimal({precision},{scale})"


class Partition(_Strict):
    """The silver partition column: derived from the row by a SQL expression.

    A child table (``parent``) has no expression of its own: its rows live in their
    parent's partition, so a parent and its children are always read and rewritten
    together.
    """

    column: Annotated[str, Field(pattern=r"^_[a-z][a-z0-9_]*$")]
    expression: str | None = None
    type: Literal["date", "int", "bigint", "string"] = "date"


class Deletes(_Strict):
    """A delete feed: files listing keys that leave silver (with their children).

    Deletions are sequenced like upserts: a delete at ``_ds`` removes versions not newer
    than it, and a version newer than the delete comes back.
    """

    folder: Name
    files: str = "*"
    format: FileFormat | None = None
    columns: tuple[Column, ...] | None = Field(
        default=None, description="the columns of a delete line, in file order "
        "(default: the table's key columns)")
    expectations: tuple[Expectation, ...] = ()


class Parent(_Strict):
    """A child table's parent: ``key`` maps child columns to the parent's key columns."""

    table: Name
    key: dict[str, str]


class Expectation(_Strict):
    """A named SQL boolean over a row (``scope: row``) or over the drop's rows
    (``scope: drop``, an aggregate such as ``count(*) > 0``).

    A row expectation of a child table may read its parent's columns as
    ``parent.<column>``. A NULL result counts as a failure.
    """

    name: Name
    check: str = Field(min_length=1)
    action: Action = "drop"
    scope: Literal["row", "drop"] = "row"

    @model_validator(mode="after")
    def _drop_scope_cannot_drop(self) -> Expectation:
        if self.scope == "drop" and self.action == "drop":
            raise ValueError("a drop-scope expectation cannot drop rows: use warn or fail")
        return self


class Source(_Strict):
    """One source table: its files, columns, key and how versions combine in silver."""

    format: FileFormat
    files: str = Field(default="*", description="glob of the file names in the table's "
                       "folder of a drop")
    folder: Name | None = None
    columns: tuple[Column, ...] = Field(min_length=1)
    key: tuple[str, ...] = Field(min_length=1)
    sequence: str = "_ds"
    partition: Partition | None = None
    history: Literal["latest", "scd2"] = "latest"
    track: tuple[str, ...] | None = None
    deletes: Deletes | None = None
    parent: Parent | None = None
    expectations: tuple[Expectation, ...] = ()
    description: str = ""

    @model_validator(mode="after")
    def _track_needs_scd2(self) -> Source:
        if self.track is not None and self.history != "scd2":
            raise ValueError("track applies to history: scd2 only")
        return self


class Refresh(_Strict):
    """Which grain rows of a mart a silver change touches.

    ``column`` is the grain column the recompute is bounded by; ``when`` maps each silver
    table the mart depends on to a SQL query over the view ``changes`` (that table's
    changed rows, before and after images) and the silver views, returning the
    ``column`` values to recompute, or to ``all`` (any change recomputes the whole mart).
    """

    column: str
    when: dict[str, str]


class Mart(_Strict):
    """A gold table: SQL over the silver views, its grain, and how changes reach it."""

    sql: str = Field(description="file of the query, relative to the pipeline folder")
    grain: tuple[str, ...] = Field(min_length=1)
    refresh: Refresh | None = None
    description: str = ""


class DatasetCheck(_Strict):
    """A dataset-level check: SQL that returns the number of violations."""

    name: Name
    table: str
    sql: str = Field(min_length=1)
    action: Literal["warn", "fail"] = "fail"


class Gate(_Strict):
    """The quality gate that decides whether a drop's gold is published."""

    max_quarantine_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    checks: tuple[DatasetCheck, ...] = ()


class Alerts(_Strict):
    """Where alerts go, by severity: ``slack``, ``email`` and ``log`` channels.

    Every severity goes to every channel unless the spec narrows it (a channel without
    its Airflow connection is skipped anyway).
    """

    critical: tuple[Literal["slack", "email", "log"], ...] = ("slack", "email", "log")
    warning: tuple[Literal["slack", "email", "log"], ...] = ("slack", "email", "log")
    info: tuple[Literal["slack", "email", "log"], ...] = ("slack", "email", "log")


class Pipeline(_Strict):
    """A whole pipeline: its sources, marts, gate, schedule and default locations."""

    name: Name
    description: str = ""
    schedule: str = "@daily"
    start_date: dt.date = dt.date(2020, 1, 1)
    landing: str | None = Field(default=None, description="default landing URI; relative "
                                "paths are below the repository root")
    lake: str | None = None
    sla_hours: float | None = Field(default=None, gt=0)
    sources: dict[str, Source] = Field(min_length=1)
    marts: dict[str, Mart] = Field(default_factory=dict)
    gate: Gate = Field(default_factory=Gate)
    alerts: Alerts = Field(default_factory=Alerts)

    @field_validator("sources", "marts")
    @classmethod
    def _identifiers(cls, value: dict[str, object]) -> dict[str, object]:
        for key in value:
            if not re.match(IDENTIFIER, key) or len(key) > 64:
                raise ValueError(f"{key!r} is not a table name (lower case letters, digits "
                                 "and _, starting with a letter)")
        return value

    def default_landing(self) -> str:
        """The landing URI when none is given (``data/<name>/landing``)."""
        return self.landing or f"data/{self.name}/landing"

    def default_lake(self) -> str:
        """The lake URI when none is given (``data/<name>/lake``)."""
        return self.lake or f"data/{self.name}/lake"
