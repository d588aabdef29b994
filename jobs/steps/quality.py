"""Step ``quality``: dataset-level expectations and the publish gate for gold.

Checks are declarative: a table, a name, an action and a SQL query that counts
violations over the views of silver (each source under its own name, an SCD2 source's
history as ``<name>_history``) and gold (each mart under its own name). The engine derives
the checks every spec gets (:func:`checks`: a source's key is unique, an SCD2 history has
one current and contiguous versions, a child has its parent), and the spec's ``gate``
adds its own. The placeholder ``{touched:<table>}`` in a query stands for the partitions
the run date's silver run touched in that table's family; it is rendered as a list of
literals, so Delta prunes the other partitions before it reads a file. Results go to
``ops/dq_results``.

A failed check is only judged on tables nobody else is writing. When silver data changed
after the latest gold run read it (its ``watermarks``: another drop's run is writing, or
stopped half-way, and gold has not caught up), a failed dataset check proves nothing about
this drop: the step exits 1 without touching gold, and the retry judges again (the
quarantine ratio, which depends on this drop's silver run alone, is always judged).

When a ``fail`` check finds violations, gold is restored to the versions the last passing
gate validated (each passing run records them; before any has passed, the marts' empty
first versions) with Delta ``RESTORE``; the gold runs whose commits that undoes are marked
``rolled_back`` so the next gold run recomputes what they wrote, and the step exits 3.
(Not to the versions before the latest gold run: a killed gold try may have committed one
mart before the retry looked.)
Published gold therefore only ever holds data that passed the gate (restore, rather than
stage-then-publish: readers see the restored version as one atomic commit).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from jobs.catalog import Catalog
from jobs.delta_io import (
    commit_info,
    latest_version,
    local_frame,
    with_conflict_retry,
)
from jobs.errors import ConcurrentChangeError, ConfigError, QualityGateError
from jobs.ledger import DqResult, last_success, last_successes, record_dq, start_run
from jobs.sql import identifier, spec_query, sql_in
from jobs.steps.common import StepContext, fingerprint, log, run_parallel
from jobs.steps.gold import register_silver_views

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DatasetCheck", "checks", "max_quarantine_ratio", "run", "touched"]

# ``{touched:<table>}``: the touched partitions of that table's family, as literals.
TOUCHED = re.compile(r"\{touched:([a-z][a-z0-9_]*)\}")


@dataclass(frozen=True)
class DatasetCheck:
    """A dataset-level expectation.

    :param table: the table it is about.
    :param name: expectation name.
    :param action: ``warn`` or ``fail``.
    :param sql: query returning one row with one column: the number of violations; it may
        use ``{touched:<table>}`` for the partitions the drop touched.
    """

    table: str
    name: str
    action: Literal["warn", "fail"]
    sql: str

    def query(self, catalog: Catalog, touched: Mapping[str, Sequence[Any]]) -> str:
        """Return the query with every ``{touched:<table>}`` rendered as a literal list.

        :param catalog: the pipeline (a table's family and partition type).
        :param touched: family root -> the partition values the drop touched.
        :return: SQL ready to run; a family the drop did not touch matches nothing.
        """
        def render(found: re.Match[str]) -> str:
            table = catalog.table(found[1])
            root = table.parent or table.name
            values = sorted(touched.get(root, ()))
            if values:
                return sql_in(values)
            return f"(CAST(NULL AS {table.partition_type.upper()}))"

        return TOUCHED.sub(render, self.sql)


def checks(catalog: Catalog) -> list[DatasetCheck]:
    """Every dataset check of a pipeline: the engine's, then the spec's gate checks.

    * ``<table>_key_unique`` (fail): one silver row per key (per key and ``valid_from``
      for SCD2), within the touched partitions of a partitioned table;
    * ``<table>_one_current_version`` and ``<table>_versions_contiguous`` (fail), for an
      SCD2 source;
    * ``<child>_has_parent`` (fail): every child row has its parent, in the same partition.
    """
    out: list[DatasetCheck] = []
    for name, table in catalog.tables.items():
        view = identifier(f"{name}_history" if table.history == "scd2" else name)
        key = [*table.key, "valid_from"] if table.history == "scd2" else list(table.key)
        keys = ", ".join(identifier(k) for k in key)
        part = identifier(table.partition_by[0]) if table.partition_by else ""
        touched = f"{{touched:{identifier(name)}}}"
        where = f"WHERE {part} IN {touched}" if part else ""
        out.append(DatasetCheck(
            name, f"{name}_key_unique", "fail",
            f"SELECT count(*) FROM (SELECT {keys} FROM {view} {where} "
            f"GROUP BY {keys} HAVING count(*) > 1)"))
        if table.history == "scd2":
            bare = ", ".join(identifier(k) for k in table.key)
            out.append(DatasetCheck(
                name, f"{name}_one_current_version", "fail",
                f"SELECT count(*) FROM (SELECT {bare} FROM {view} GROUP BY {bare} "
                "HAVING sum(CASE WHEN is_current THEN 1 ELSE 0 END) <> 1)"))
            out.append(DatasetCheck(
                name, f"{name}_versions_contiguous", "fail",
                "SELECT count(*) FROM (SELECT valid_to, is_current, lead(valid_from) OVER "
                f"(PARTITION BY {bare} ORDER BY valid_from) AS next_from FROM {view}) "
                "WHERE NOT (valid_to <=> next_from) OR is_current <> (valid_to IS NULL)"))
        if table.parent is not None:
            parent = catalog.tables[table.parent]
            on = " AND ".join(f"c.{identifier(c)} = p.{identifier(p)}"
                              for c, p in table.parent_key)
            where_c = f"WHERE c.{part} IN {touched}" if part else ""
            if part:
                on += f" AND c.{part} = p.{part}"
            out.append(DatasetCheck(
                name, f"{name}_has_parent", "fail",
                f"SELECT count(*) FROM {identifier(name)} c LEFT ANTI JOIN "
                f"(SELECT * FROM {identifier(parent.name)} {where}) p ON {on} {where_c}"))
    assert catalog.pipeline is not None
    out += [DatasetCheck(c.table, c.name, c.action, c.sql) for c in catalog.pipeline.gate.checks]
    return out


def touched(catalog: Catalog, silver_run: Any) -> dict[str, list[Any]]:
    """The partitions a silver run touched, per family root, typed from the ledger."""
    if silver_run is None:
        return {}
    recorded = json.loads(silver_run["details"] or "{}").get("touched_partitions", {})
    out: dict[str, set[Any]] = {}
    for name, values in recorded.items():
        table = catalog.tables.get(name)
        if table is None:
            continue
        root = table.parent or table.name
        kind = table.partition_type
        typed = {dt.date.fromisoformat(v) if kind == "date" else
                 int(v) if kind in ("int", "bigint") else v for v in values}
        out.setdefault(root, set()).update(typed)
    return {root: sorted(values) for root, values in out.items()}


def max_quarantine_ratio(default: float = 0.5) -> float:
    """The share of a drop's lines that may be quarantined before the gate fails.

    The spec's ``gate.max_quarantine_ratio`` (``default``), unless the environment sets
    ``DQ_MAX_QUARANTINE_RATIO`` for a deployment: a drop mostly rejected means the source
    is broken, and publishing what is left would mislead.

    :raises ConfigError: for a value that is not a number in [0, 1].
    """
    raw = os.environ.get("DQ_MAX_QUARANTINE_RATIO", str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"DQ_MAX_QUARANTINE_RATIO={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"DQ_MAX_QUARANTINE_RATIO={raw!r} must be between 0 and 1")
    return value


def _register_views(ctx: StepContext) -> tuple[list[str], dict[str, int]]:
    """Register the views the checks use: silver's (see the gold step) and every mart.

    Gold is read at the version found now, so the run can record what it validated.

    :return: the names of the missing tables, and the gold versions the views read.
    """
    spark = ctx.spark
    missing = register_silver_views(spark, ctx)
    gold: dict[str, int] = {}
    for name in ctx.catalog.marts:
        uri = ctx.lake.table("gold", name)
        version = latest_version(spark, uri)
        if version is None:
            missing.append(name)
            continue
        gold[name] = version
        (spark.read.format("delta").option("versionAsOf", version).load(uri)
         .createOrReplaceTempView(identifier(name)))
    return missing, gold


def _restore_target(ctx: StepContext, passed: Any, gold_runs: list[Any]) -> dict[str, int]:
    """The gold versions a failed gate restores: the last ones a passing gate validated.

    Those are recorded by each passing run (``gold_versions``). Before any gate has
    passed, nothing in gold is validated: every mart goes back to its empty version 0
    (:func:`~jobs.delta_io.ensure_table`). A lake whose last passing run predates the
    record falls back to the state before the first gold run after it (``pre_versions``).

    Not the state before the latest gold run: a killed gold try may have committed a
    mart before the retry that then recorded its own ``pre_versions``.
    """
    if passed is not None:
        validated = json.loads(passed["details"] or "{}").get("gold_versions")
        if validated is not None:
            return {name: int(v) for name, v in validated.items()}
        later = [r for r in gold_runs if r["started_at"] > passed["ended_at"]]
        if not later:
            return {}
        pre = json.loads(later[0]["details"])["pre_versions"]
        return {name: int(v) for name, v in pre.items() if v is not None}
    return {name: 0 for name in ctx.catalog.marts
            if latest_version(ctx.spark, ctx.lake.table("gold", name)) is not None}


def _restore_gold(ctx: StepContext) -> list[str]:
    """Restore gold to what the last passing gate validated; return what was done.

    Every gold run whose commits that undoes is marked ``rolled_back``, so the next gold
    run recomputes what they had written.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    spark = ctx.spark
    passed = last_success(spark, ctx.lake, "quality")
    gold_runs = (
        spark.read.format("delta").load(ctx.lake.table("ops", "runs"))
        .where((F.col("step") == "gold") & (F.col("status") == "succeeded"))
        .orderBy("started_at").collect()
    )
    target = _restore_target(ctx, passed, gold_runs)
    done = []
    for name, version in sorted(target.items()):
        uri = ctx.lake.table("gold", name)
        if latest_version(spark, uri) != version:
            with_conflict_retry(
                partial(DeltaTable.forPath(spark, uri).restoreToVersion, version),
                f"restore {uri}", uri=uri)
            done.append(f"{name} -> v{version}")
    undone = [r["run_id"] for r in gold_runs
              if any(name in target and int(v) > target[name]
                     for name, v in (r["delta_versions"] or {}).items())]
    if undone:
        _mark_rolled_back(spark, ctx, undone)
    return done


def _mark_rolled_back(spark: SparkSession, ctx: StepContext, run_ids: list[str]) -> None:
    from delta.tables import DeltaTable
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("run_id", T.StringType(), False)])
    ids = local_frame(spark, [(r,) for r in run_ids], schema)
    with_conflict_retry(
        lambda: DeltaTable.forPath(spark, ctx.lake.table("ops", "runs")).alias("t")
        .merge(ids.alias("s"), "t.run_id = s.run_id")
        .whenMatchedUpdate(set={"status": "'rolled_back'"}).execute(),
        "mark gold runs rolled back",
        uri=ctx.lake.table("ops", "runs"),
    )


# Commits that change no row: a check's verdict cannot depend on them.
_NO_DATA_CHANGE = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES"})
_MERGE_CHANGES = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")


def _silver_moved_since(ctx: StepContext, gold_run: Any) -> list[str]:
    """Silver commits that changed data after the latest gold run read silver.

    :param gold_run: the latest successful gold run (its ``watermarks``: the silver
        versions it computed from), or ``None``.
    :return: ``silver/<table> v<version> (<operation>)`` of the first such commit per
        table; empty when gold is up to date with silver.
    """
    if gold_run is None:
        return []
    marks = json.loads(gold_run["details"] or "{}").get("watermarks", {})
    moved = []
    for name in sorted(ctx.catalog.tables):
        uri = ctx.lake.table("silver", name)
        now = latest_version(ctx.spark, uri)
        if now is None:
            continue
        for version in range(int(marks.get(name, -1)) + 1, now + 1):
            info = commit_info(ctx.spark, uri, version) or {}
            operation = info.get("operation", "unknown")
            metrics = info.get("operationMetrics") or {}
            # A MERGE that matched nothing new (a forced re-run of the same drop) changes
            # no row either.
            unchanged_merge = operation == "MERGE" and not any(
                int(metrics.get(k, 1)) for k in _MERGE_CHANGES)
            if operation not in _NO_DATA_CHANGE and not unchanged_merge:
                moved.append(f"silver/{name} v{version} ({operation})")
                break
    return moved


def run(ctx: StepContext) -> bool:
    """Evaluate the dataset checks for the run date and gate gold.

    :param ctx: step context.
    :return: ``False`` when nothing changed since the last passing evaluation.
    :raises QualityGateError: when a fail-level check fails (after restoring gold).
    """
    spark = ctx.spark
    catalog = ctx.catalog
    assert catalog.pipeline is not None
    threshold = max_quarantine_ratio(catalog.pipeline.gate.max_quarantine_ratio)
    # Three ledger look-ups, one read.
    found = last_successes(spark, ctx.lake, {"silver": ctx.ds, "gold": None, "quality": ctx.ds})
    silver_run, gold_run, previous = found["silver"], found["gold"], found["quality"]
    # The inputs are this drop's silver run and the published gold: when neither ran
    # again, the verdict cannot change (OPTIMIZE/VACUUM commits do not count).
    fp = fingerprint({"silver_run": silver_run and silver_run["run_id"],
                      "gold_run": gold_run and gold_run["run_id"], "threshold": threshold})
    if previous and previous["input_fingerprint"] == fp and not ctx.force:
        log.info("quality %s: nothing changed since run %s", ctx.ds, previous["run_id"])
        return False
    run_ = start_run(spark, ctx.lake, "quality", ctx.ds, fp)
    parts = touched(catalog, silver_run)
    missing, gold_versions = _register_views(ctx)

    def evaluate(check: DatasetCheck) -> DqResult:
        row = spark.sql(spec_query(check.query(catalog, parts), "_check")).first()
        return DqResult(check.table, check.name, check.action, int(row[0] if row else 0))

    # Checks over missing tables are skipped: nothing to check yet.
    absent = [re.compile(rf"\b{re.escape(n)}(_history)?\b") for n in missing]
    runnable = [c for c in checks(catalog)
                if not any(pattern.search(c.sql) for pattern in absent)]
    results = list(run_parallel({c.name: partial(evaluate, c) for c in runnable}).values())
    read = 0
    if silver_run is not None:
        read = sum((silver_run["rows_read"] or {}).values())
        quarantined = sum((silver_run["rows_quarantined"] or {}).values())
        over = quarantined > threshold * read
        results.append(DqResult("*", "quarantine_ratio", "fail", quarantined if over else 0))
    results.append(DqResult("*", "drop_not_empty", "warn", 0 if read else 1))
    record_dq(run_, results)
    failed = [r for r in results if r.outcome == "failed"]
    names = ", ".join(f"{r.expectation} ({r.failed_rows})" for r in failed)
    if failed and all(r.expectation != "quarantine_ratio" for r in failed):
        moved = _silver_moved_since(ctx, gold_run)
        if moved:
            message = (f"quality {ctx.ds}: {names} failed while silver changed after the "
                       f"latest gold run read it ({', '.join(moved)}): another run is "
                       "writing; not judged, gold left as it is, retry")
            run_.write("failed", message)
            raise ConcurrentChangeError(message)
    if failed:
        restored = _restore_gold(ctx)
        message = (f"quality gate failed for ds={ctx.ds}: {names}; gold restored: "
                   f"{', '.join(restored) or 'unchanged'}")
        run_.write("failed", message)
        raise QualityGateError(message)
    # What this verdict validated: a later failed gate restores gold to it.
    run_.details["gold_versions"] = gold_versions
    run_.write("succeeded")
    log.info("quality %s: %d checks passed (%d warnings)", ctx.ds, len(results),
             sum(r.outcome == "warned" for r in results))
    return True
