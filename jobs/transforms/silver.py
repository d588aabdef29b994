"""Pure bronze -> silver transforms: parse and type, validate, deduplicate, SCD2.

Every function here takes and returns DataFrames; none reads or writes a table. The
columns a transform adds are named in its docstring.

Reason codes written to quarantine:

* ``invalid_utf8`` - the line is not valid UTF-8;
* ``wrong_field_count`` - a text line without exactly the table's fields (plus the
  trailing separator where the format has one);
* ``unbalanced_quotes`` - a quoted field that is never closed;
* ``invalid_json`` / ``not_a_json_object`` - a JSON line that does not parse, or is not
  an object;
* ``null_key:<col>`` - a key field that is missing, empty or a NULL-like token;
* ``null_value:<col>`` - a NULL (a ``null_values`` token or a missing JSON key) in a
  column declared ``nullable: false``;
* ``not_an_integer:<col>``, ``bad_decimal:<col>``, ``not_a_number:<col>``,
  ``bad_boolean:<col>``, ``bad_date:<col>``, ``bad_timestamp:<col>`` - a field that does
  not parse as its declared type;
* the name of a ``drop`` expectation the row violates;
* ``conflicting_versions_in_drop`` - the drop holds two different versions of the key
  (with a ``sequence`` column: two with the key's highest sequence value);
* ``orphan_<table>`` - a child row whose parent does not exist (yet).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobs.catalog import LINEAGE_COLUMNS, Expectation
from jobs.spec.model import is_decimal

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from jobs.catalog import Table
    from jobs.spec.model import FileFormat

__all__ = [
    "CONFLICT_REASON",
    "LINEAGE_COLUMNS",
    "NULL_TOKENS",
    "is_drop_version",
    "parse_lines",
    "scd2_changes",
    "with_drop_dedup",
    "with_expectations",
    "with_row_hash",
]

# A key spelled like a NULL is never a key, whatever the format calls NULL.
NULL_TOKENS = ("", "NULL", "null", "Null", "None", "NONE", "N/A", "n/a", "NA", "\\N", "nil")
CONFLICT_REASON = "conflicting_versions_in_drop"

_INT_RE = r"^-?[0-9]{1,18}$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DOUBLE_RE = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_INTEGER_TYPES = ("bigint", "int", "smallint")


def _decimal_re(precision: int, scale: int) -> str:
    whole = precision - scale
    fraction = rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
    return rf"^-?[0-9]{{1,{max(whole, 1)}}}{fraction}$"


def _typed(raw: Column, name: str, typ: str, fmt: FileFormat) -> tuple[Column, Column]:
    """``(typed value or NULL, reason or NULL)`` of one non-NULL raw field."""
    from pyspark.sql import functions as F

    reason: Column
    if typ in _INTEGER_TYPES:
        typed = F.when(raw.rlike(_INT_RE), raw.try_cast(typ))
        reason = F.when(typed.isNull(), F.lit(f"not_an_integer:{name}"))
    elif (dec := is_decimal(typ)) is not None:
        typed = F.when(raw.rlike(_decimal_re(*dec)), raw.try_cast(typ))
        reason = F.when(typed.isNull(), F.lit(f"bad_decimal:{name}"))
    elif typ == "double":
        typed = F.when(raw.rlike(_DOUBLE_RE), raw.try_cast("double"))
        reason = F.when(typed.isNull(), F.lit(f"not_a_number:{name}"))
    elif typ == "boolean":
        lowered = F.lower(raw)
        typed = F.when(lowered == "true", F.lit(True)).when(lowered == "false", F.lit(False))
        reason = F.when(typed.isNull(), F.lit(f"bad_boolean:{name}"))
    elif typ == "date":
        parsed = F.try_to_timestamp(raw, F.lit(fmt.date_format)).cast("date")
        typed = (F.when(raw.rlike(_DATE_RE), parsed) if fmt.date_format == "yyyy-MM-dd"
                 else parsed)
        reason = F.when(typed.isNull(), F.lit(f"bad_date:{name}"))
    elif typ == "timestamp":
        typed = F.try_to_timestamp(raw, F.lit(fmt.timestamp_format))
        reason = F.when(typed.isNull(), F.lit(f"bad_timestamp:{name}"))
    else:
        typed = raw
        reason = F.lit(None).cast("string")
    return typed, reason


def _field(raw: Column, name: str, typ: str, is_key: bool, nullable: bool,
           fmt: FileFormat) -> tuple[Column, Column]:
    """``(typed value, reason or NULL)`` for one raw field (NULL: absent).

    A key is never NULL nor spelled like one; a nullable column reads the format's
    ``null_values`` as NULL; a column declared ``nullable: false`` rejects them.
    """
    from pyspark.sql import functions as F

    tokens = list(fmt.null_values)
    is_token = raw.isNull() | (raw.isin(*tokens) if tokens else F.lit(False))
    typed, reason = _typed(raw, name, typ, fmt)
    if is_key:
        null_like = raw.isNull() | F.trim(raw).isin(*NULL_TOKENS, *tokens)
        return typed, F.when(null_like, F.lit(f"null_key:{name}")).otherwise(reason)
    if nullable:
        return F.when(~is_token, typed), F.when(~is_token, reason)
    return typed, F.when(is_token, F.lit(f"null_value:{name}")).otherwise(reason)


def _text_fields(fmt: FileFormat, width: int) -> tuple[Column, Column, Column]:
    """Split a text line: ``(fields array, line has the right shape, shape reason)``."""
    from pyspark.sql import functions as F

    expected = width + (1 if fmt.trailing_separator else 0)
    sep = re.escape(fmt.separator)
    utf8 = F.expr("is_valid_utf8(value)")
    if fmt.quote is None:
        fields = F.split(F.col("value"), sep, -1)
        count = F.size(fields)
        stray = F.lit(False)
    else:
        q = re.escape(fmt.quote)
        # Quoted sections (a doubled quote inside is an escaped quote) hide separators.
        bare = F.regexp_replace(F.col("value"), f"{q}([^{q}]|{q}{q})*{q}", "")
        count = F.size(F.split(bare, sep, -1))
        stray = F.instr(bare, fmt.quote) > 0
        names = ", ".join(f"f{i} string" for i in range(expected + 1))
        options = {"sep": fmt.separator, "quote": fmt.quote, "escape": fmt.quote,
                   "nullValue": "\u0001", "mode": "PERMISSIVE"}
        parsed = F.from_csv(F.col("value"), names, options)
        # from_csv reads an empty field as NULL: the count says it is there, so it is "".
        fields = F.array(*[F.when(F.lit(i) < count, F.coalesce(parsed[f"f{i}"], F.lit("")))
                           for i in range(expected)])
    shape = utf8 & ~stray & (count == expected)
    if fmt.trailing_separator:
        shape = shape & (F.element_at(fields, expected) == F.lit(""))
    reason = (F.when(~utf8, F.lit("invalid_utf8"))
              .when(stray, F.lit("unbalanced_quotes"))
              .when(~shape, F.lit("wrong_field_count")))
    return fields, shape, reason


def _json_fields(table: Table) -> tuple[Column, Column, Column]:
    """Read a JSON line's fields by name: ``(fields array, is an object, reason)``."""
    from pyspark.sql import functions as F

    utf8 = F.expr("is_valid_utf8(value)")
    variant = F.expr("try_parse_json(value)")
    is_object = F.coalesce(F.expr("schema_of_variant(try_parse_json(value))").startswith(
        "OBJECT"), F.lit(False))
    # Each field by its name in the file (a JSON path, not SQL text).
    fields = F.array(*[
        F.try_variant_get(variant, '$["' + (c.source or c.name).replace('"', '\\"') + '"]',
                          "string")
        for c in table.columns
    ])
    shape = utf8 & is_object
    reason = (F.when(~utf8, F.lit("invalid_utf8"))
              .when(variant.isNull(), F.lit("invalid_json"))
              .when(~is_object, F.lit("not_a_json_object")))
    return fields, shape, reason


def parse_lines(lines_df: DataFrame, table: Table) -> DataFrame:
    """Split raw lines into the table's typed columns and collect parse errors.

    Text formats (``delimited``, ``csv``) read fields by position, with exactly the
    table's fields per line (and one trailing separator where the format has one); JSON
    lines (and Parquet records, which bronze keeps as JSON) read them by name. Field checks
    run only on lines of the right shape, so a malformed line gets one clear reason
    instead of a reason per field. A header line (``header: true``) is not data and is
    left out.

    :param lines_df: ``value`` (raw line) plus the lineage columns ``_ds``,
        ``_source_file``, ``_line_number``.
    :param table: the table the lines belong to.
    :return: the table's columns (NULL where unparseable), the lineage columns, ``value``
        and ``_reasons`` (``ARRAY<STRING>``, empty for a clean line).
    """
    from pyspark.sql import functions as F

    fmt = table.file_format
    assert fmt is not None, f"table {table.name} has no file format"
    if fmt.header:
        lines_df = lines_df.where(F.col("_line_number") > 1)
    if fmt.type in ("jsonl", "parquet"):
        fields, shape, shape_reason = _json_fields(table)
    else:
        fields, shape, shape_reason = _text_fields(fmt, len(table.columns))
    staged = lines_df.select("value", *LINEAGE_COLUMNS, fields.alias("_f"),
                             shape.alias("_shape"), shape_reason.alias("_shape_reason"))
    typed_cols = []
    reasons = [F.col("_shape_reason")]
    for i, col in enumerate(table.columns):
        raw = F.col("_f").getItem(i)
        typed, reason = _field(raw, col.name, col.type, col.name in table.key, col.nullable,
                               fmt)
        typed_cols.append(F.when(F.col("_shape"), typed).alias(col.name))
        reasons.append(F.when(F.col("_shape"), reason))
    return staged.select(
        *typed_cols,
        *LINEAGE_COLUMNS,
        "value",
        F.filter(F.array(*reasons), lambda r: r.isNotNull()).alias("_reasons"),
    )


def with_expectations(df: DataFrame, expectations: Sequence[Expectation]) -> DataFrame:
    """Evaluate row-level expectations on rows that parsed cleanly.

    A NULL condition counts as a failure. ``drop`` and ``fail`` names are appended to
    ``_reasons``; ``warn`` names go to ``_warnings`` and the row is kept.

    :param df: output of :func:`parse_lines` (or later), with ``_reasons``.
    :param expectations: the expectations to evaluate now.
    :return: ``df`` with ``_reasons`` extended and ``_warnings`` (``ARRAY<STRING>``) and
        ``_failures`` (``ARRAY<STRING>``) set.
    """
    from pyspark.sql import functions as F

    # Decided once, before this call adds reasons: a row that fails a drop rule is still
    # evaluated (and counted) for its warn rules.
    clean = F.col("_clean_before")

    def failing(kind: str) -> Column:
        checks = [
            F.when(clean & ~F.coalesce(F.expr(e.condition), F.lit(False)), F.lit(e.name))
            for e in expectations if e.action == kind
        ]
        if not checks:
            return F.array().cast("array<string>")
        return F.filter(F.array(*checks), lambda r: r.isNotNull())

    existing = [c for c in ("_warnings", "_failures") if c in df.columns]
    out = (
        df.withColumn("_clean_before", F.size("_reasons") == 0)
        .withColumn("_new_drop", failing("drop"))
        .withColumn("_new_fail", failing("fail"))
        .withColumn("_new_warn", failing("warn"))
    )
    out = out.withColumn("_reasons", F.concat("_reasons", "_new_drop", "_new_fail"))
    warn = F.col("_new_warn")
    fail = F.col("_new_fail")
    if "_warnings" in existing:
        warn = F.concat("_warnings", warn)
    if "_failures" in existing:
        fail = F.concat("_failures", fail)
    return out.withColumn("_warnings", warn).withColumn("_failures", fail).drop(
        "_new_drop", "_new_fail", "_new_warn", "_clean_before"
    )


def with_drop_dedup(df: DataFrame, key: Sequence[str],
                    sequence: Sequence[str] = ()) -> DataFrame:
    """Mark exact duplicate lines, superseded lines and conflicting versions of a key
    within one drop.

    Lines are grouped by key and ordered by their text, then by file and line: a line
    equal to the previous one is a duplicate (the first copy is kept). With ``sequence``
    columns, a clean line whose sequence is lower than the highest of its key's clean
    lines is *superseded*: a valid older version, not the drop's. When the remaining
    clean, non-duplicate lines of one key still differ, none of them can be trusted to be
    "the" version for that day, so all get ``conflicting_versions_in_drop``.

    :param df: parsed lines with ``value``, ``_reasons`` and the key columns.
    :param key: primary-key columns.
    :param sequence: the columns that order versions within one drop (every line of a
        drop has the same ``_ds``); none: any two different versions conflict.
    :return: ``df`` with ``_is_duplicate`` (BOOLEAN), with ``sequence`` also
        ``_is_superseded`` (BOOLEAN), and ``_reasons`` extended.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ordered = Window.partitionBy(*key).orderBy("value", "_source_file", "_line_number")
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    dup = F.coalesce(F.lag("value").over(ordered) == F.col("value"), F.lit(False))
    out = df.withColumn("_is_duplicate", dup)
    candidate = (F.size("_reasons") == 0) & ~F.col("_is_duplicate")
    if sequence:
        rank = F.struct(*[F.col(c) for c in sequence])
        newest = F.max(F.when(candidate, rank)).over(whole)
        out = out.withColumn("_is_superseded", candidate & (rank < newest))
        candidate = candidate & ~F.col("_is_superseded")
    vmin = F.min(F.when(candidate, F.col("value"))).over(whole)
    vmax = F.max(F.when(candidate, F.col("value"))).over(whole)
    conflict = candidate & (vmin != vmax)
    return out.withColumn(
        "_reasons",
        F.when(conflict, F.concat("_reasons", F.array(F.lit(CONFLICT_REASON)))).otherwise(
            F.col("_reasons")
        ),
    )


def is_drop_version(df: DataFrame) -> Column:
    """The lines of :func:`with_drop_dedup`'s output that are the drop's version of their
    key: clean, not a duplicate, not superseded.

    :param df: output of :func:`with_drop_dedup`.
    :return: a boolean column.
    """
    from pyspark.sql import functions as F

    clean = ~F.col("_is_duplicate") & (F.size("_reasons") == 0)
    return clean & ~F.col("_is_superseded") if "_is_superseded" in df.columns else clean


def with_row_hash(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """Add ``_row_hash``: a 64-bit hash of the TPC-H columns, used to detect changes.

    :param df: typed rows.
    :param columns: the TPC-H columns that define the row's content.
    :return: ``df`` with ``_row_hash`` (BIGINT).
    """
    from pyspark.sql import functions as F

    return df.withColumn("_row_hash", F.xxhash64(*[F.col(c) for c in columns]))


def scd2_changes(
    existing_df: DataFrame,
    snapshots_df: DataFrame,
    key: Sequence[str],
    track: Sequence[str] | None = None,
) -> DataFrame:
    """Compute the SCD2 row changes that bring stored history in line with the snapshots.

    History is rebuilt per key from every snapshot row ever observed for it (the caller
    keeps them in ``silver/_<table>_snapshots``), not from the stored versions alone: a
    customer who changes and changes back (A on d1, B on d2, A on d3) has three versions
    even when d2 arrives last, and only the observed snapshots remember d3's A.

    Rules, which make the result independent of the order drops are processed in:

    * a snapshot row at ``_ds`` is a candidate version valid from ``_ds``; one with the
      same ``valid_from`` as a stored version replaces it (a re-delivery of that day);
    * versions of a key are ordered by ``valid_from``; a version whose tracked columns
      equal the previous version's is not a change: a run of such versions is one
      version, valid from the run's first snapshot. Its content is that first snapshot's
      when every column is tracked (they are all equal), and the run's newest snapshot's
      when some are not (an untracked column is corrected in place, as SCD type 1);
    * ``valid_to`` is the next version's ``valid_from`` (NULL for the newest), and
      ``is_current`` is ``valid_to IS NULL``.

    :param existing_df: the stored versions of the keys in ``incoming_df`` (silver columns:
        TPC-H columns, ``valid_from``, ``valid_to``, ``is_current``, lineage, ``_row_hash``).
    :param snapshots_df: every observed snapshot row of those keys (this drop's included),
        one per key and ``_ds``, with ``_ds`` and ``_row_hash``.
    :param key: business key columns.
    :param track: the columns whose change makes a new version (``None``: all of them,
        as compared by ``_row_hash``).
    :return: rows to apply, keyed by ``key`` + ``valid_from``, with ``_action``
        (``upsert`` or ``delete``); versions that are already stored unchanged are omitted.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = [c for c in existing_df.columns if c not in ("valid_to", "is_current")]
    incoming = snapshots_df.withColumn("valid_from", F.col("_ds")).select(*cols)
    candidates = (
        existing_df.select(*cols).withColumn("_prio", F.lit(1))
        .unionByName(incoming.withColumn("_prio", F.lit(0)))
    )
    by_start = Window.partitionBy(*key, "valid_from").orderBy("_prio")
    ordered = Window.partitionBy(*key).orderBy("valid_from")
    value_cols = [c for c in cols if c not in (*key, "valid_from") and not c.startswith("_")]
    partial_track = track is not None and set(track) != set(value_cols)
    tracked = F.xxhash64(*[F.col(c) for c in track]) if partial_track and track else (
        F.col("_row_hash"))
    picked = (
        candidates.withColumn("_pick", F.row_number().over(by_start))
        .where(F.col("_pick") == 1)
        .withColumn("_t", tracked)
        .withColumn("_prev_t", F.lag("_t").over(ordered))
        .withColumn("_start", F.col("_prev_t").isNull() | (F.col("_prev_t") != F.col("_t")))
        .withColumn("_run", F.sum(F.col("_start").cast("int")).over(
            ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    )
    in_run = Window.partitionBy(*key, "_run")
    # Which snapshot of a run gives the version its content (see the rules above).
    content_order = F.col("valid_from").desc() if partial_track else F.col("valid_from")
    desired = (
        picked.withColumn("_run_from", F.min("valid_from").over(in_run))
        .withColumn("_n", F.row_number().over(in_run.orderBy(content_order)))
        .where(F.col("_n") == 1)
        .withColumn("valid_from", F.col("_run_from"))
        .withColumn("valid_to", F.lead("valid_from").over(ordered))
        .withColumn("is_current", F.col("valid_to").isNull())
        .drop("_pick", "_prio", "_t", "_prev_t", "_start", "_run", "_run_from", "_n")
    )
    join_keys = [*key, "valid_from"]
    old = existing_df.select(
        *join_keys,
        F.col("_row_hash").alias("_old_hash"),
        F.col("valid_to").alias("_old_to"),
        F.col("_ds").alias("_old_ds"),
    )
    compared = desired.join(old, join_keys, "full_outer")
    upserts = compared.where(
        F.col("_row_hash").isNotNull()
        & (
            F.col("_old_hash").isNull()
            | (F.col("_old_hash") != F.col("_row_hash"))
            | ~F.col("_old_to").eqNullSafe(F.col("valid_to"))
            | (F.col("_old_ds") != F.col("_ds"))
        )
    ).withColumn("_action", F.lit("upsert"))
    deletes = compared.where(F.col("_row_hash").isNull()).withColumn("_action", F.lit("delete"))
    out_cols = [*existing_df.columns, "_action"]
    return upserts.select(*out_cols).unionByName(deletes.select(*out_cols))
