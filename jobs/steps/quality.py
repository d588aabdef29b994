"""Step ``quality``: dataset-level expectations and the publish gate for gold.

Checks are declarative: a table, a name, an action and a SQL query that counts
violations over the views ``silver_<table>`` and ``gold_<table>``. The placeholder
``{months}`` in a query stands for the order months the run date's silver run touched; it
is rendered as a list of literals, so Delta prunes the other partitions before it reads a
file. Results go to ``ops/dq_results``.

A failed check is only judged on tables nobody else is writing. When silver data changed
after the latest gold run read it (its ``watermarks``: another drop's run is writing, or
stopped half-way, and gold has not caught up), a failed dataset check proves nothing about
this drop: the step exits 1 without touching gold, and the retry judges again (the
quarantine ratio, which depends on this drop's silver run alone, is always judged).

When a ``fail`` check finds violations, gold is restored to the versions the last passing
gate validated (each passing run records them; before any has passed, the marts' empty
first versions) with Delta ``RESTORE``; the gold runs whose commits that undoes are marked
``rolled_back`` so the next gold run recomputes their dates, and the step exits 3. (Not
to the versions before the latest gold run: a killed gold try may have committed one
mart before the retry looked.)
Published gold therefore only ever holds data that passed the gate (restore, rather than
stage-then-publish: readers see the restored version as one atomic commit).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from jobs.delta_io import (
    commit_info,
    latest_version,
    local_frame,
    with_conflict_retry,
)
from jobs.errors import ConcurrentChangeError, ConfigError, QualityGateError
from jobs.expectations import Action
from jobs.ledger import DqResult, last_success, last_successes, record_dq, start_run
from jobs.schemas import CDF_TABLES, GOLD_TABLES
from jobs.sql import identifier, sql_in
from jobs.steps.common import StepContext, fingerprint, log, run_parallel
from jobs.tpch import TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["CHECKS", "MONTHS", "DatasetCheck", "max_quarantine_ratio", "run"]

# Placeholder for the touched order months in a check's query (see DatasetCheck.query).
MONTHS = "{months}"
# Stands for "no month": no partition holds it, so a check over no months finds nothing.
_NO_MONTH = dt.date(1, 1, 1)


@dataclass(frozen=True)
class DatasetCheck:
    """A dataset-level expectation.

    :param table: the table it is about.
    :param name: expectation name.
    :param action: ``warn`` or ``fail``.
    :param sql: query returning one row with one column: the number of violations; it may
        use :data:`MONTHS` for the touched order months.
    """

    table: str
    name: str
    action: Action
    sql: str

    def query(self, months: Sequence[dt.date]) -> str:
        """Return the query with :data:`MONTHS` rendered as a literal ``IN`` list.

        :param months: the order months the run date's silver run touched (may be empty).
        :return: SQL ready to run.
        """
        return self.sql.replace(MONTHS, sql_in(sorted(months) or [_NO_MONTH]))


def _key_unique(name: str) -> DatasetCheck:
    table = TABLES[name]
    where = f"WHERE _order_month IN {MONTHS}" if table.partition_by else ""
    key = [*table.key, "valid_from"] if name == "customer" else list(table.key)
    keys = ", ".join(identifier(k) for k in key)
    view = identifier(f"silver_{name}")
    return DatasetCheck(
        name, f"{name}_key_unique", "fail",
        f"SELECT count(*) FROM (SELECT {keys} FROM {view} {where} "
        f"GROUP BY {keys} HAVING count(*) > 1)",
    )


CHECKS: tuple[DatasetCheck, ...] = (
    *(_key_unique(n) for n in TABLES),
    DatasetCheck(
        "customer", "customer_one_current_version", "fail",
        "SELECT count(*) FROM (SELECT c_custkey FROM silver_customer GROUP BY c_custkey "
        "HAVING sum(CASE WHEN is_current THEN 1 ELSE 0 END) <> 1)",
    ),
    DatasetCheck(
        "customer", "customer_versions_contiguous", "fail",
        "SELECT count(*) FROM (SELECT valid_to, is_current, lead(valid_from) OVER "
        "(PARTITION BY c_custkey ORDER BY valid_from) AS next_from FROM silver_customer) "
        "WHERE NOT (valid_to <=> next_from) OR is_current <> (valid_to IS NULL)",
    ),
    DatasetCheck(
        "lineitem", "lineitem_has_order", "fail",
        # The join matches months, so only the orders of those months can match.
        "SELECT count(*) FROM silver_lineitem l LEFT ANTI JOIN "
        f"(SELECT * FROM silver_orders WHERE _order_month IN {MONTHS}) o "
        "ON l.l_orderkey = o.o_orderkey AND l._order_month = o._order_month "
        f"WHERE l._order_month IN {MONTHS}",
    ),
    DatasetCheck(
        "daily_line_summary", "daily_line_summary_reconciles", "fail",
        "WITH dates AS (SELECT DISTINCT l_shipdate AS d FROM silver_lineitem "
        f"  WHERE _order_month IN {MONTHS}), "
        "fresh AS (SELECT l_shipdate AS ship_date, l_returnflag, l_linestatus, "
        "  sum(l_extendedprice * (1 - l_discount)) AS disc, count(*) AS n FROM silver_lineitem "
        "  WHERE l_shipdate IN (SELECT d FROM dates) GROUP BY 1, 2, 3), "
        "pub AS (SELECT ship_date, l_returnflag, l_linestatus, sum_disc_price AS disc, "
        "  count_order AS n FROM gold_daily_line_summary WHERE ship_date IN (SELECT d FROM dates)) "
        "SELECT count(*) FROM fresh FULL OUTER JOIN pub "
        "USING (ship_date, l_returnflag, l_linestatus) "
        "WHERE NOT (fresh.disc <=> pub.disc) OR NOT (fresh.n <=> pub.n)",
    ),
)


def max_quarantine_ratio() -> float:
    """The share of a drop's lines that may be quarantined before the gate fails.

    Read from ``DQ_MAX_QUARANTINE_RATIO`` (default 0.5): a drop mostly rejected means
    the source is broken, and publishing what is left would mislead.

    :raises ConfigError: for a value that is not a number in [0, 1].
    """
    raw = os.environ.get("DQ_MAX_QUARANTINE_RATIO", "0.5")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"DQ_MAX_QUARANTINE_RATIO={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"DQ_MAX_QUARANTINE_RATIO={raw!r} must be between 0 and 1")
    return value


def _register_views(ctx: StepContext) -> tuple[list[str], dict[str, int]]:
    """Register the views the checks use.

    Gold is read at the version found now, so the run can record what it validated.

    :return: the names of the missing tables, and the gold versions the views read.
    """
    spark = ctx.spark
    missing = []
    gold: dict[str, int] = {}
    for layer, names in (("silver", TABLES), ("gold", GOLD_TABLES)):
        for name in names:
            uri = ctx.lake.table(layer, name)
            view = identifier(f"{layer}_{name}")
            version = latest_version(spark, uri)
            if version is None:
                missing.append(view)
                continue
            reader = spark.read.format("delta")
            if layer == "gold":
                reader = reader.option("versionAsOf", version)
                gold[name] = version
            reader.load(uri).createOrReplaceTempView(view)
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
    return {name: 0 for name in GOLD_TABLES
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
    for name in sorted(CDF_TABLES):
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
    threshold = max_quarantine_ratio()
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
    months: set[dt.date] = set()
    if silver_run is not None:
        touched = json.loads(silver_run["details"]).get("touched_months", {})
        months = {dt.date.fromisoformat(m) for ms in touched.values() for m in ms}
    missing, gold_versions = _register_views(ctx)

    def evaluate(check: DatasetCheck) -> DqResult:
        row = spark.sql(check.query(sorted(months))).first()
        return DqResult(check.table, check.name, check.action, int(row[0] if row else 0))

    # Checks over missing tables are skipped: nothing to check yet.
    runnable = [c for c in CHECKS if not any(view in c.sql for view in missing)]
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
