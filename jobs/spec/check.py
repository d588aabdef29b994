"""Whole-spec checks: what the field types alone cannot tell.

:func:`check_structure` needs no Spark: names and folders, columns that exist, parents,
partitions, marts, refresh, gate and schedule. :func:`check_sql` needs a SparkSession and
only analyses: every table becomes an empty temporary view with its silver schema, and
each piece of SQL in the spec is resolved against them (``DataFrame.schema``), which runs
no job. Both return every problem found, each naming its file, line, field and cause;
Spark's cause is the first line of its error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.errors import SpecProblem
from jobs.spec.document import FieldPath, SpecDocument, dotted
from jobs.spec.model import Expectation, Pipeline, Source, is_decimal
from jobs.spec.schema import LINEAGE_COLUMNS, SCD2_COLUMNS, partition_of, root_of
from jobs.sql_text import plain_identifier, spec_query

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

__all__ = [
    "CHANGES_VIEW",
    "SCHEDULE_PRESETS",
    "TOUCHED",
    "check_sql",
    "check_structure",
    "gate_sql_for_analysis",
    "mart_order",
]

SCHEDULE_PRESETS = ("@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@once", "None")
# The view a refresh query reads: the table's changed rows, before and after images.
CHANGES_VIEW = "changes"
# A gate check's placeholder for the partitions a run touched: {touched:<table>}.
TOUCHED = re.compile(r"\{touched:([^{}]*)\}")
_PLACEHOLDER = re.compile(r"\{([a-z_]+):([^{}]*)\}")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#LW-]+$")
_SPARK_POSITION = re.compile(r"line (\d+)(,? pos(?:ition)? \d+)")
# Types a sequence column may have: ordered, and equal only when the values are equal.
SEQUENCE_TYPES = ("bigint", "int", "smallint", "date", "timestamp")


def check_structure(doc: SpecDocument) -> list[SpecProblem]:
    """Every problem of a spec that needs no SQL analysis, sorted by line.

    :param doc: a spec as :func:`jobs.spec.load.read_spec` returns it.
    :return: the problems (empty: the spec is consistent).
    """
    p = doc.pipeline
    problems = [
        *_check_name(doc),
        *_check_schedule(doc),
        *_check_table_names(doc),
        *_check_folders(doc),
    ]
    for name, source in p.sources.items():
        problems += _check_source(doc, name, source)
    problems += _check_parents(doc)
    problems += _check_engine_shapes(doc)
    problems += _check_marts(doc)
    problems += _check_gate(doc)
    return sorted(problems)


def _check_name(doc: SpecDocument) -> Iterator[SpecProblem]:
    if doc.pipeline.name != doc.name:
        yield doc.problem(("name",), f"{doc.pipeline.name!r} differs from its folder "
                          f"{doc.name!r}: the name must be the folder's")


def _check_schedule(doc: SpecDocument) -> Iterator[SpecProblem]:
    schedule = doc.pipeline.schedule.strip()
    if schedule in SCHEDULE_PRESETS:
        return
    fields = schedule.split()
    if schedule.startswith("@") or len(fields) != 5 or not all(
            _CRON_FIELD.match(f) for f in fields):
        yield doc.problem(("schedule",), f"{doc.pipeline.schedule!r} is neither a cron "
                          "expression (5 fields: minute hour day month weekday) nor one of "
                          f"{', '.join(SCHEDULE_PRESETS)}")


def _check_table_names(doc: SpecDocument) -> Iterator[SpecProblem]:
    p = doc.pipeline
    reserved = {CHANGES_VIEW: "the view refresh queries read"}
    for name, source in p.sources.items():
        if source.history == "scd2":
            reserved[f"{name}_history"] = f"the history view of scd2 source {name}"
    for name in p.sources:
        if name in reserved:
            yield doc.problem(("sources", name), f"table name {name!r} is taken by "
                              f"{reserved[name]}")
    for name in p.marts:
        if name in p.sources:
            yield doc.problem(("marts", name), f"mart {name!r} has the name of source {name}")
        elif name in reserved or name.removesuffix("_history") in p.sources:
            taken = reserved.get(name, f"the history view of source "
                                 f"{name.removesuffix('_history')}")
            yield doc.problem(("marts", name), f"mart name {name!r} is taken by {taken}")


def _check_folders(doc: SpecDocument) -> Iterator[SpecProblem]:
    """Each landing folder (a source's, a delete feed's) belongs to one table."""
    owners: dict[str, str] = {}
    entries: list[tuple[FieldPath, str, str]] = []
    for name, source in doc.pipeline.sources.items():
        path: FieldPath = ("sources", name, "folder") if source.folder else ("sources", name)
        entries.append((path, source.folder or name, f"source {name}"))
    for name, source in doc.pipeline.sources.items():
        if source.deletes is not None:
            entries.append((("sources", name, "deletes", "folder"), source.deletes.folder,
                            f"the delete feed of {name}"))
    for path, folder, owner in entries:
        if folder in owners:
            yield doc.problem(path, f"folder {folder!r} is already the folder of "
                              f"{owners[folder]}")
        else:
            owners[folder] = owner


def _columns_problems(doc: SpecDocument, base: FieldPath, columns: Mapping[str, str],
                      names: tuple[str, ...] | list[str], what: str,
                      allowed: tuple[str, ...] = ()) -> Iterator[SpecProblem]:
    for i, column in enumerate(names):
        if column not in columns and column not in allowed:
            yield doc.problem((*base, i), f"{what} column {column!r} is not a column "
                              f"(columns: {', '.join(columns)})")


def _check_source(doc: SpecDocument, name: str, source: Source) -> Iterator[SpecProblem]:
    base: FieldPath = ("sources", name)
    columns = {c.name: c.type for c in source.columns}
    seen: dict[str, int] = {}
    for i, column in enumerate(source.columns):
        if column.name in seen:
            yield doc.problem((*base, "columns", i, "name"), f"duplicate column "
                              f"{column.name!r} (also columns.{seen[column.name]})")
        else:
            seen[column.name] = i
        if source.history == "scd2" and column.name in dict(SCD2_COLUMNS):
            yield doc.problem((*base, "columns", i, "name"), f"column {column.name!r} is "
                              "an SCD2 column the engine adds (history: scd2)")
    yield from _columns_problems(doc, (*base, "key"), columns, source.key, "key")
    if len(set(source.key)) != len(source.key):
        yield doc.problem((*base, "key"), "a key column is listed twice")
    yield from _check_sequence(doc, name, source)
    if source.track is not None:
        yield from _columns_problems(doc, (*base, "track"), columns, source.track, "track")
    yield from _check_partition(doc, name, source)
    if source.deletes is not None and source.deletes.columns is not None:
        delete_columns = {c.name: c.type for c in source.deletes.columns}
        missing = [k for k in source.key if k not in delete_columns]
        if missing:
            yield doc.problem((*base, "deletes", "columns"), "a delete line must hold every "
                              f"key column; missing: {', '.join(missing)}")
        for i, column in enumerate(source.deletes.columns):
            if column.name in columns and column.type != columns[column.name]:
                yield doc.problem((*base, "deletes", "columns", i, "type"),
                                  f"{column.name} is {column.type} here but "
                                  f"{columns[column.name]} in the table")
    yield from _check_expectation_names(doc, (*base, "expectations"), source.expectations)
    if source.deletes is not None:
        yield from _check_expectation_names(doc, (*base, "deletes", "expectations"),
                                            source.deletes.expectations)


def _check_sequence(doc: SpecDocument, name: str, source: Source) -> Iterator[SpecProblem]:
    """A sequence column exists, is never NULL and has an ordered type (where it may be
    used at all is :func:`_check_engine_shapes`'s)."""
    path: FieldPath = ("sources", name, "sequence")
    sequence = source.sequence
    if sequence == "_ds":
        return
    declared = {c.name: c for c in source.columns}
    column = declared.get(sequence)
    if column is None:
        yield doc.problem(path, f"sequence column {sequence!r} is neither _ds nor a column "
                          f"(columns: {', '.join(declared)})")
        return
    if column.type not in SEQUENCE_TYPES and is_decimal(column.type) is None:
        yield doc.problem(path, f"sequence column {sequence!r} is {column.type}; a sequence "
                          f"is {', '.join(SEQUENCE_TYPES)} or decimal(p,s)")
    if column.nullable:
        yield doc.problem(path, f"sequence column {sequence!r} must be declared nullable: "
                          "false (a version without a sequence value cannot be ordered)")


def _check_expectation_names(doc: SpecDocument, base: FieldPath,
                             expectations: tuple[Expectation, ...]) -> Iterator[SpecProblem]:
    first: dict[str, int] = {}
    for i, expectation in enumerate(expectations):
        if expectation.name in first:
            yield doc.problem((*base, i, "name"), f"duplicate expectation "
                              f"{expectation.name!r} (also {dotted(base)}."
                              f"{first[expectation.name]})")
        else:
            first[expectation.name] = i


def _check_partition(doc: SpecDocument, name: str, source: Source) -> Iterator[SpecProblem]:
    base: FieldPath = ("sources", name, "partition")
    partition = source.partition
    if partition is not None and partition.column in dict(LINEAGE_COLUMNS):
        yield doc.problem((*base, "column"), f"{partition.column!r} is a lineage column "
                          "the engine writes")
    if source.parent is None:
        if partition is not None and partition.expression is None:
            yield doc.problem(base, "a table without a parent needs an expression for its "
                              "partition (only a child takes its parent's)")
        return
    if partition is None:
        return
    if partition.expression is not None:
        yield doc.problem((*base, "expression"), "a child table lives in its parent's "
                          "partition: remove the expression")
    inherited = partition_of(doc.pipeline, name)
    root = root_of(doc.pipeline, name)
    if root is None:
        return
    if inherited is None or root == name:
        yield doc.problem(base, f"parent {root} has no partition to share")
    elif partition.column != inherited.column or partition.type != inherited.type:
        yield doc.problem(base, f"a child's partition is its parent's: {inherited.column} "
                          f"({inherited.type}) of {root}")


def _check_parents(doc: SpecDocument) -> Iterator[SpecProblem]:
    sources = doc.pipeline.sources
    for name, source in sources.items():
        parent = source.parent
        if parent is None:
            continue
        base: FieldPath = ("sources", name, "parent")
        if parent.table not in sources:
            yield doc.problem((*base, "table"), f"parent {parent.table!r} is not a source "
                              f"(sources: {', '.join(sources)})")
            continue
        cycle = _parent_cycle(doc.pipeline, name)
        if cycle:
            yield doc.problem((*base, "table"), f"parents form a cycle: {' -> '.join(cycle)}")
            continue
        columns = {c.name: c.type for c in source.columns}
        parent_source = sources[parent.table]
        parent_columns = {c.name: c.type for c in parent_source.columns}
        for child_column, parent_column in parent.key.items():
            if child_column not in columns:
                yield doc.problem((*base, "key", child_column), f"{child_column!r} is not a "
                                  f"column of {name}")
            elif (parent_column in parent_columns
                  and columns[child_column] != parent_columns[parent_column]):
                yield doc.problem((*base, "key", child_column),
                                  f"{child_column} is {columns[child_column]} but "
                                  f"{parent.table}.{parent_column} is "
                                  f"{parent_columns[parent_column]}")
        mapped = list(parent.key.values())
        if sorted(mapped) != sorted(parent_source.key):
            yield doc.problem((*base, "key"), f"maps to {', '.join(mapped) or 'nothing'}; a "
                              f"parent key must map to exactly the key of {parent.table}: "
                              f"{', '.join(parent_source.key)}")


def _check_engine_shapes(doc: SpecDocument) -> Iterator[SpecProblem]:
    """The table shapes the engine writes: a relation is one level deep, an SCD2 table
    stands alone, and only a plain ``latest`` table orders versions by a sequence column.

    A parent with children is written with them as one section that settles against
    concurrent writers (see ``docs/design/concurrent-silver.md``); that section holds one
    parent and its direct children. An SCD2 history is rebuilt per key from every snapshot
    observed, which has no notion of a partition, a delete feed or a parent. An SCD2
    version is valid from its drop's date, and a family's tombstones, partition moves and
    children compare drops' dates, so those tables order versions by ``_ds``.
    """
    p = doc.pipeline
    for name, source in p.sources.items():
        if root_of(p, name) is None:
            continue  # a missing parent or a cycle: reported by the relation checks
        base: FieldPath = ("sources", name)
        parent_name = source.parent.table if source.parent is not None else ""
        parent = p.sources.get(parent_name)
        if parent is not None and parent.parent is not None:
            yield doc.problem((*base, "parent", "table"), f"parent {parent_name} is itself "
                              "a child: a relation is one level deep (make "
                              f"{name}'s parent the root table, {parent_name}'s parent)")
        if source.history == "scd2":
            for field, present in (("partition", source.partition is not None),
                                   ("deletes", source.deletes is not None),
                                   ("parent", source.parent is not None)):
                if present:
                    yield doc.problem((*base, field), f"an scd2 table has no {field}: its "
                                      "history is rebuilt from every snapshot of a key")
            if any(s.parent is not None and s.parent.table == name
                   for s in p.sources.values()):
                yield doc.problem((*base, "history"), "an scd2 table cannot be a parent")
        if source.sequence != "_ds":
            why = _ordered_by_drop(p, name)
            if why:
                yield doc.problem((*base, "sequence"), f"{source.sequence!r}: {why}; a "
                                  "sequence column is for a history: latest table without "
                                  "partition, deletes, parent or children")


def _ordered_by_drop(pipeline: Pipeline, name: str) -> str:
    """Why a table's versions must be ordered by ``_ds`` (empty: a column may order them)."""
    source = pipeline.sources[name]
    if source.history == "scd2":
        return ("an scd2 table orders versions by the drop's date, _ds (a version is valid "
                "from its drop's date)")
    if source.parent is not None:
        return ("a child table orders versions by the drop's date, _ds (it is written in "
                f"one section with its parent {source.parent.table}, which compares drops' "
                "dates)")
    has = [what for what, present in (
        ("a partition", source.partition is not None),
        ("a delete feed", source.deletes is not None),
        ("children", any(s.parent is not None and s.parent.table == name
                         for s in pipeline.sources.values()))) if present]
    if has:
        listed = " and ".join([", ".join(has[:-1]), has[-1]] if len(has) > 1 else has)
        return (f"a table with {listed} orders versions by the drop's date, _ds "
                "(its deletions, partition moves and children compare drops' dates)")
    return ""


def _parent_cycle(pipeline: Pipeline, start: str) -> list[str]:
    """The cycle through ``start`` (``[a, b, a]``), or ``[]``."""
    chain = [start]
    name = start
    while (parent := pipeline.sources[name].parent) is not None:
        if parent.table not in pipeline.sources:
            return []
        if parent.table == start:
            return [*chain, start]
        if parent.table in chain:
            return []
        chain.append(parent.table)
        name = parent.table
    return []


def _check_marts(doc: SpecDocument) -> Iterator[SpecProblem]:
    sources = doc.pipeline.sources
    for name, mart in doc.pipeline.marts.items():
        base: FieldPath = ("marts", name)
        sql = doc.sql_path(mart.sql)
        try:
            sql.resolve().relative_to(doc.directory.resolve())
        except ValueError:
            yield doc.problem((*base, "sql"), f"{mart.sql!r} is outside the pipeline folder")
        else:
            if not sql.is_file():
                yield doc.problem((*base, "sql"), f"file {mart.sql} not found in "
                                  f"{doc.display}/")
        if len(set(mart.grain)) != len(mart.grain):
            yield doc.problem((*base, "grain"), "a grain column is listed twice")
        if mart.refresh is None:
            continue
        if mart.refresh.column not in mart.grain:
            yield doc.problem((*base, "refresh", "column"), f"{mart.refresh.column!r} is not "
                              f"a grain column (grain: {', '.join(mart.grain)})")
        for table in mart.refresh.when:
            if table not in sources:
                yield doc.problem((*base, "refresh", "when", table), f"{table!r} is not a "
                                  f"source (sources: {', '.join(sources)})")


def _check_gate(doc: SpecDocument) -> Iterator[SpecProblem]:
    p = doc.pipeline
    names: dict[str, int] = {}
    for i, check in enumerate(p.gate.checks):
        base: FieldPath = ("gate", "checks", i)
        if check.name in names:
            yield doc.problem((*base, "name"), f"duplicate check {check.name!r} (also "
                              f"gate.checks.{names[check.name]})")
        else:
            names[check.name] = i
        if check.table not in p.sources and check.table not in p.marts:
            yield doc.problem((*base, "table"), f"{check.table!r} is neither a source nor a "
                              f"mart (tables: {', '.join([*p.sources, *p.marts])})")
        for found in _PLACEHOLDER.finditer(check.sql):
            kind, table = found[1], found[2]
            if kind != "touched":
                yield doc.problem((*base, "sql"), f"unknown placeholder {found[0]!r}; the "
                                  "one placeholder is {touched:<table>}")
            elif table not in p.sources:
                yield doc.problem((*base, "sql"), f"{found[0]}: {table!r} is not a source")
            elif partition_of(p, table) is None:
                yield doc.problem((*base, "sql"), f"{found[0]}: source {table} has no "
                                  "partition")


# ---------------------------------------------------------------------------------------
# SQL analysis
# ---------------------------------------------------------------------------------------

def check_sql(doc: SpecDocument, spark: SparkSession) -> list[SpecProblem]:
    """Every SQL problem of a spec: expressions, expectations, marts, refresh and gate.

    Runs in a new session of ``spark`` (its own temporary views and SQL settings), so
    the caller's views are untouched; nothing is read or written.

    :param doc: a spec as :func:`jobs.spec.load.read_spec` returns it.
    :param spark: any session; only its analyser is used.
    :return: the problems, sorted by file and line.
    """
    session = spark.newSession()
    p = doc.pipeline
    problems: list[SpecProblem] = []
    with _quiet_analysis_errors():
        for name in p.sources:
            if p.sources[name].parent is None or root_of(p, name) is not None:
                problems += _check_source_sql(doc, session, name)
        _register_silver(session, p)
        marts, mart_problems = _check_mart_sql(doc, session)
        problems += mart_problems
        for name, mart in p.marts.items():
            if mart.refresh is not None:
                problems += _check_refresh_sql(doc, session, name, marts.get(name))
        problems += _check_gate_sql(doc, session, marts)
    return sorted(problems)


# pyspark logs every analysis error it raises, with the JVM stack trace, on these loggers;
# here an analysis error is an expected answer, reported as one line.
_PYSPARK_ERROR_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


@contextmanager
def _quiet_analysis_errors() -> Iterator[None]:
    from pyspark.logger import PySparkLogger

    # PySpark's own logger class: it logs analysis errors with extra keywords that a plain
    # logging.Logger of the same name would reject (a TypeError instead of the error).
    loggers = [PySparkLogger.getLogger(name) for name in _PYSPARK_ERROR_LOGGERS]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def _spark_cause(exc: Exception, line_shift: int = 0) -> tuple[str, int]:
    """The first line of Spark's message, and the line it names (0: none)."""
    text = str(exc).strip()
    first = text.splitlines()[0].strip().rstrip(";") if text else type(exc).__name__
    found = _SPARK_POSITION.search(first)
    if not found:
        return first, 0
    line = max(int(found[1]) - line_shift, 1)
    return first[:found.start()] + f"line {line}{found[2]}" + first[found.end():], line


def _analysis_errors() -> tuple[type[Exception], ...]:
    from pyspark.errors import PySparkException

    return (PySparkException,)


def _empty(session: SparkSession, struct: StructType) -> DataFrame:
    """An empty DataFrame of ``struct``; a repeated column name (reported by
    :func:`check_structure`) keeps its first field, so SQL is still checked once."""
    from pyspark.sql import types as T

    fields: dict[str, T.StructField] = {}
    for f in struct.fields:
        fields.setdefault(f.name, f)
    return session.createDataFrame([], T.StructType(list(fields.values())))


def _expression_type(df: DataFrame, expression: str) -> DataType:
    from pyspark.sql import functions as F

    return df.select(F.expr(expression).alias("_value")).schema["_value"].dataType


def _row_struct(p: Pipeline, name: str) -> StructType:
    """What a row expectation reads: the columns, the drop's lineage and, for a child,
    ``parent`` (a struct of the parent's columns)."""
    from pyspark.sql import types as T

    from jobs.spec.schema import lineage_fields, source_struct

    source = p.sources[name]
    fields = [*source_struct(source).fields,
              *(f for f in lineage_fields() if f.name != "_row_hash")]
    parent = source.parent
    if parent is not None and parent.table in p.sources:
        fields.append(T.StructField("parent", source_struct(p.sources[parent.table]), True))
    return T.StructType(fields)


def _check_source_sql(doc: SpecDocument, session: SparkSession,
                      name: str) -> Iterator[SpecProblem]:
    from jobs.spec.schema import source_struct, spark_type

    errors = _analysis_errors()
    source = doc.pipeline.sources[name]
    base: FieldPath = ("sources", name)
    partition = source.partition
    if partition is not None and partition.expression is not None and source.parent is None:
        path: FieldPath = (*base, "partition", "expression")
        try:
            derived = _expression_type(_empty(session, source_struct(source)),
                                       partition.expression)
        except errors as exc:
            yield doc.problem(path, _spark_cause(exc)[0])
        else:
            if derived != spark_type(partition.type):
                yield doc.problem(path, f"returns {derived.simpleString()}, not the partition "
                                  f"type {partition.type}")
    rows = _empty(session, _row_struct(doc.pipeline, name))
    yield from _check_expectations(doc, (*base, "expectations"), rows, source.expectations)
    if source.deletes is not None and source.deletes.expectations:
        deletes = _empty(session, _delete_struct(source))
        yield from _check_expectations(doc, (*base, "deletes", "expectations"), deletes,
                                       source.deletes.expectations)


def _delete_struct(source: Source) -> StructType:
    """What a delete feed's expectation reads: the delete line's columns and lineage."""
    from pyspark.sql import types as T

    from jobs.spec.schema import lineage_fields, spark_type

    if source.deletes is not None and source.deletes.columns is not None:
        declared = [(c.name, c.type) for c in source.deletes.columns]
    else:
        types = {c.name: c.type for c in source.columns}
        declared = [(k, types[k]) for k in source.key if k in types]
    return T.StructType([*(T.StructField(n, spark_type(t), True) for n, t in declared),
                         *(f for f in lineage_fields() if f.name != "_row_hash")])


def _check_expectations(doc: SpecDocument, base: FieldPath, rows: DataFrame,
                        expectations: tuple[Expectation, ...]) -> Iterator[SpecProblem]:
    """Row expectations: a boolean over one row; drop scope: a boolean aggregate."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    errors = _analysis_errors()
    for i, expectation in enumerate(expectations):
        path: FieldPath = (*base, i, "check")
        found: DataType | None
        try:
            found = _expression_type(rows, expectation.check)
        except errors as exc:
            if expectation.scope == "row":
                yield doc.problem(path, _spark_cause(exc)[0])
                continue
            found = None
        if expectation.scope == "row":
            try:
                rows.select("*", F.expr(expectation.check))
            except errors:
                yield doc.problem(path, "is an aggregate: a row expectation is a condition on "
                                  "one row (aggregates need scope: drop)")
                continue
        else:
            try:
                found = rows.agg(F.expr(expectation.check).alias("_value")).schema[
                    "_value"].dataType
            except errors as exc:
                cause = _spark_cause(exc)[0] if found is None else (
                    "is not an aggregate: a drop-scope expectation is one condition over "
                    "the drop's rows, e.g. count(*) > 0")
                yield doc.problem(path, cause)
                continue
        if found is not None and not isinstance(found, T.BooleanType):
            yield doc.problem(path, f"returns {found.simpleString()}, not boolean")


def _register_silver(session: SparkSession, p: Pipeline) -> None:
    """Each source as its silver view; an scd2 source also as ``<name>_history``."""
    from pyspark.sql import functions as F

    from jobs.spec.schema import silver_struct

    for name, source in p.sources.items():
        df = _empty(session, silver_struct(p, name))
        if source.history == "scd2":
            df.createOrReplaceTempView(plain_identifier(f"{name}_history"))
            df.where(F.col("is_current")).createOrReplaceTempView(plain_identifier(name))
        else:
            df.createOrReplaceTempView(plain_identifier(name))


def mart_order(pipeline: Pipeline, texts: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Marts in an order where each comes after the marts its SQL reads.

    :param pipeline: the spec.
    :param texts: each mart's SQL text (a missing one reads nothing).
    :return: ``(ordered, in_cycle)``: the marts in dependency order, and those whose SQL
        reads marts in a cycle.
    """
    reads = {
        name: {other for other in pipeline.marts if other != name and re.search(
            rf"(?<![\w.]){re.escape(other)}(?!\w)", texts.get(name, ""), re.IGNORECASE)}
        for name in pipeline.marts
    }
    ordered: list[str] = []
    pending = dict(reads)
    while pending:
        ready = [name for name, needs in pending.items() if needs <= set(ordered)]
        if not ready:
            break
        for name in ready:
            ordered.append(name)
            del pending[name]
    return ordered, list(pending)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _check_mart_sql(doc: SpecDocument,
                    session: SparkSession) -> tuple[dict[str, StructType], list[SpecProblem]]:
    """Resolve each mart's SQL in dependency order; register its output as a view.

    A mart whose SQL fails is not registered, and the marts that read it are skipped:
    their problems would only repeat the first one.
    """
    p = doc.pipeline
    errors = _analysis_errors()
    texts = {name: text for name, mart in p.marts.items()
             if (text := _read_text(doc.sql_path(mart.sql))) is not None}
    ordered, cyclic = mart_order(p, texts)
    problems = [doc.problem(("marts", name, "sql"), "its SQL reads marts that read it back "
                            f"(marts in the cycle: {', '.join(cyclic)})") for name in cyclic]
    schemas: dict[str, StructType] = {}
    failed = set(cyclic) | (set(p.marts) - set(texts))
    for name in ordered:
        mart = p.marts[name]
        text = texts.get(name)
        if text is None or any(re.search(rf"(?<![\w.]){re.escape(other)}(?!\w)", text,
                                         re.IGNORECASE) for other in failed):
            failed.add(name)
            continue
        # Wrapped as a subquery, so that a statement other than a query (DROP, INSERT,
        # SET, ...) is a syntax error instead of being executed.
        try:
            schema = session.sql(spec_query(text, "_mart")).schema
        except errors as exc:
            cause, line = _spark_cause(exc, line_shift=1)
            problems.append(doc.file_problem(mart.sql, ("marts", name, "sql"), cause, line))
            failed.add(name)
            continue
        names = [f.name for f in schema.fields]
        for i, column in enumerate(mart.grain):
            if column not in names:
                problems.append(doc.problem(
                    ("marts", name, "grain", i), f"grain column {column!r} is not a column "
                    f"of {mart.sql} (columns: {', '.join(names)})"))
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            problems.append(doc.file_problem(mart.sql, ("marts", name, "sql"),
                                             f"column names repeat: {', '.join(doubled)}"))
        schemas[name] = schema
        _empty(session, schema).createOrReplaceTempView(plain_identifier(name))
    return schemas, problems


def _check_refresh_sql(doc: SpecDocument, session: SparkSession, name: str,
                       output: StructType | None) -> Iterator[SpecProblem]:
    from pyspark.sql import types as T

    from jobs.spec.schema import silver_struct

    p = doc.pipeline
    refresh = p.marts[name].refresh
    assert refresh is not None
    errors = _analysis_errors()
    wanted = None
    if (output is not None and refresh.column in output.fieldNames()
            and refresh.column in p.marts[name].grain):
        wanted = output[refresh.column].dataType
    for table, query in refresh.when.items():
        if query.strip().lower() == "all" or table not in p.sources:
            continue
        path: FieldPath = ("marts", name, "refresh", "when", table)
        changes = T.StructType([*silver_struct(p, table).fields,
                                T.StructField("_change_type", T.StringType(), False)])
        _empty(session, changes).createOrReplaceTempView(CHANGES_VIEW)
        try:
            schema = session.sql(spec_query(query)).schema
        except errors as exc:
            yield doc.problem(path, _spark_cause(exc, line_shift=1)[0])
            continue
        if len(schema.fields) != 1:
            yield doc.problem(path, f"returns {len(schema.fields)} columns; a refresh query "
                              f"returns one, the {refresh.column} values to recompute")
        elif wanted is not None and schema.fields[0].dataType != wanted:
            yield doc.problem(path, f"returns {schema.fields[0].dataType.simpleString()}, not "
                              f"{wanted.simpleString()} (the type of {refresh.column})")
    session.catalog.dropTempView(CHANGES_VIEW)


def gate_sql_for_analysis(pipeline: Pipeline, sql: str) -> str:
    """A gate check's SQL with each ``{touched:<table>}`` replaced by a one-value literal
    list of that table's partition type, for analysis only."""
    literals = {"date": "DATE'2000-01-01'", "int": "0", "bigint": "0L", "string": "''"}

    def literal(found: re.Match[str]) -> str:
        partition = partition_of(pipeline, found[1]) if found[1] in pipeline.sources else None
        return f"({literals[partition.type]})" if partition is not None else "(NULL)"

    return TOUCHED.sub(literal, sql)


def _check_gate_sql(doc: SpecDocument, session: SparkSession,
                    marts: Mapping[str, StructType]) -> Iterator[SpecProblem]:
    from pyspark.sql import types as T

    errors = _analysis_errors()
    p = doc.pipeline
    for i, check in enumerate(p.gate.checks):
        path: FieldPath = ("gate", "checks", i, "sql")
        touched = [found[1] for found in TOUCHED.finditer(check.sql)]
        if (check.table in p.marts and check.table not in marts) or any(
                table not in p.sources or partition_of(p, table) is None for table in touched):
            # Already reported: a mart that does not resolve, a placeholder without a
            # partition to stand for.
            continue
        text = gate_sql_for_analysis(p, check.sql)
        try:
            schema = session.sql(spec_query(text, "_check")).schema
        except errors as exc:
            yield doc.problem(path, _spark_cause(exc, line_shift=1)[0])
            continue
        if len(schema.fields) != 1 or not isinstance(schema.fields[0].dataType,
                                                     T.NumericType):
            got = ", ".join(f.dataType.simpleString() for f in schema.fields)
            yield doc.problem(path, f"returns ({got}); a gate check returns one number, the "
                              "count of violations")
