"""Pure bronze -> silver transforms: parse and type, validate, deduplicate, SCD2.

Every function here takes and returns DataFrames; none reads or writes a table. The
columns a transform adds are named in its docstring.

Reason codes written to quarantine:

* ``invalid_utf8`` - the line is not valid UTF-8;
* ``wrong_field_count`` - not exactly the table's fields plus the trailing ``|``;
* ``null_key:<col>`` - a key field is empty or a NULL-like token;
* ``not_an_integer:<col>``, ``bad_decimal:<col>``, ``bad_date:<col>`` - a field does not
  parse as its TPC-H type;
* the name of a ``drop`` expectation (:mod:`jobs.expectations`) the row violates;
* ``conflicting_versions_in_drop`` - the drop holds two different versions of the key;
* ``orphan_lineitem`` - no order with the line item's key exists (yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobs.expectations import Expectation

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from jobs.tpch import Table

__all__ = [
    "CONFLICT_REASON",
    "LINEAGE_COLUMNS",
    "NULL_TOKENS",
    "ORPHAN_REASON",
    "parse_lines",
    "scd2_changes",
    "with_drop_dedup",
    "with_expectations",
    "with_row_hash",
]

NULL_TOKENS = ("", "NULL", "null", "Null", "None", "NONE", "N/A", "n/a", "NA", "\\N", "nil")
CONFLICT_REASON = "conflicting_versions_in_drop"
ORPHAN_REASON = "orphan_lineitem"
LINEAGE_COLUMNS = ("_ds", "_source_file", "_line_number")

_INT_RE = r"^-?[0-9]{1,18}$"
_DECIMAL_RE = r"^-?[0-9]{1,13}(\.[0-9]{1,2})?$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _typed_field(raw: Column, name: str, typ: str, is_key: bool) -> tuple[Column, Column]:
    """Return ``(typed value, reason or NULL)`` for one raw field."""
    from pyspark.sql import functions as F

    reason: Column
    if typ in ("bigint", "int"):
        typed = F.when(raw.rlike(_INT_RE), raw.try_cast(typ))
        reason = F.when(typed.isNull(), F.lit(f"not_an_integer:{name}"))
    elif typ.startswith("decimal"):
        typed = F.when(raw.rlike(_DECIMAL_RE), raw.try_cast(typ))
        reason = F.when(typed.isNull(), F.lit(f"bad_decimal:{name}"))
    elif typ == "date":
        parsed = F.try_to_timestamp(raw, F.lit("yyyy-MM-dd")).cast("date")
        typed = F.when(raw.rlike(_DATE_RE), parsed)
        reason = F.when(typed.isNull(), F.lit(f"bad_date:{name}"))
    else:
        typed = raw
        reason = F.lit(None).cast("string")
    if is_key:
        reason = F.when(F.trim(raw).isin(*NULL_TOKENS), F.lit(f"null_key:{name}")).otherwise(reason)
    return typed, reason


def parse_lines(lines_df: DataFrame, table: Table) -> DataFrame:
    """Split raw dbgen lines into typed TPC-H columns and collect parse errors.

    A line is ``f1|f2|...|fn|``: exactly the table's fields and one trailing ``|``. Field
    checks run only on lines of the right shape, so a short line gets one clear reason
    instead of a reason per field.

    :param lines_df: ``value`` (raw line) plus the lineage columns ``_ds``,
        ``_source_file``, ``_line_number``.
    :param table: the TPC-H table the lines belong to.
    :return: the TPC-H columns (NULL where unparseable), the lineage columns, ``value``
        and ``_reasons`` (``ARRAY<STRING>``, empty for a clean line).
    """
    from pyspark.sql import functions as F

    n = len(table.columns)
    fields = F.split(F.col("value"), r"\|", -1)
    staged = lines_df.select(
        "value", *LINEAGE_COLUMNS,
        F.expr("is_valid_utf8(value)").alias("_utf8"),
        fields.alias("_f"),
    ).withColumn(
        "_shape", (F.size("_f") == n + 1) & (F.element_at("_f", -1) == F.lit("")) & F.col("_utf8")
    )
    typed_cols = []
    reasons = [
        F.when(~F.col("_utf8"), F.lit("invalid_utf8")),
        F.when(F.col("_utf8") & ~F.col("_shape"), F.lit("wrong_field_count")),
    ]
    for i, col in enumerate(table.columns):
        raw = F.col("_f").getItem(i)
        typed, reason = _typed_field(raw, col.name, col.type, col.name in table.key)
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


def with_drop_dedup(df: DataFrame, key: Sequence[str]) -> DataFrame:
    """Mark exact duplicate lines and conflicting versions of a key within one drop.

    Lines are grouped by key and ordered by their text, then by file and line: a line
    equal to the previous one is a duplicate (the first copy is kept). When the clean,
    non-duplicate lines of one key still differ, none of them can be trusted to be "the"
    version for that day, so all get ``conflicting_versions_in_drop``.

    :param df: parsed lines with ``value``, ``_reasons`` and the key columns.
    :param key: primary-key columns.
    :return: ``df`` with ``_is_duplicate`` (BOOLEAN) and ``_reasons`` extended.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ordered = Window.partitionBy(*key).orderBy("value", "_source_file", "_line_number")
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    dup = F.coalesce(F.lag("value").over(ordered) == F.col("value"), F.lit(False))
    out = df.withColumn("_is_duplicate", dup)
    candidate = (F.size("_reasons") == 0) & ~F.col("_is_duplicate")
    vmin = F.min(F.when(candidate, F.col("value"))).over(whole)
    vmax = F.max(F.when(candidate, F.col("value"))).over(whole)
    conflict = candidate & (vmin != vmax)
    return out.withColumn(
        "_reasons",
        F.when(conflict, F.concat("_reasons", F.array(F.lit(CONFLICT_REASON)))).otherwise(
            F.col("_reasons")
        ),
    )


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
) -> DataFrame:
    """Compute the SCD2 row changes that bring stored history in line with the snapshots.

    History is rebuilt per key from every snapshot row ever observed for it (the caller
    keeps them in ``silver/_customer_snapshots``), not from the stored versions alone: a
    customer who changes and changes back (A on d1, B on d2, A on d3) has three versions
    even when d2 arrives last, and only the observed snapshots remember d3's A.

    Rules, which make the result independent of the order drops are processed in:

    * a snapshot row at ``_ds`` is a candidate version valid from ``_ds``; one with the
      same ``valid_from`` as a stored version replaces it (a re-delivery of that day);
    * versions of a key are ordered by ``valid_from``; a version whose content
      (``_row_hash``) equals the previous version is not a change and is dropped, so the
      earliest of a run of identical versions is kept;
    * ``valid_to`` is the next version's ``valid_from`` (NULL for the newest), and
      ``is_current`` is ``valid_to IS NULL``.

    :param existing_df: the stored versions of the keys in ``incoming_df`` (silver columns:
        TPC-H columns, ``valid_from``, ``valid_to``, ``is_current``, lineage, ``_row_hash``).
    :param snapshots_df: every observed snapshot row of those keys (this drop's included),
        one per key and ``_ds``, with ``_ds`` and ``_row_hash``.
    :param key: business key columns.
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
    desired = (
        candidates.withColumn("_pick", F.row_number().over(by_start))
        .where(F.col("_pick") == 1)
        .withColumn("_prev_hash", F.lag("_row_hash").over(ordered))
        .where(F.col("_prev_hash").isNull() | (F.col("_prev_hash") != F.col("_row_hash")))
        .withColumn("valid_to", F.lead("valid_from").over(ordered))
        .withColumn("is_current", F.col("valid_to").isNull())
        .drop("_pick", "_prev_hash", "_prio")
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
