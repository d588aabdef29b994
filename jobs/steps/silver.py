"""Step ``silver``: bronze lines of one drop -> typed, validated, deduplicated silver tables.

Per table: parse and type, evaluate expectations, mark exact duplicates and conflicting
versions, write rejected lines to ``quarantine/<table>`` (``replaceWhere _ds = <ds>``), and
MERGE the good rows so that the newest ``_ds`` wins. The order of work inside a run:

1. dimensions (latest version; ``customer`` as SCD2);
2. RF2 tombstones (``silver/_order_tombstones``, newest ``_ds`` kept);
3. orders, skipping versions not newer than their tombstone (when an update changes an
   order's month, its line items move to that month first);
4. the drop's deletions applied to orders and line items (``t._ds <= tombstone ds``); a
   line item newer than the deletion of its order goes back to quarantine as an orphan;
5. line items, plus earlier orphans parked in quarantine whose order may now exist.

Step 1 and steps 2-5 write different tables and read nothing of each other, so they run
side by side (the dimensions first when one of them has a fail-level expectation, whose
failure must stop the run before orders are merged).

Each rule only compares ``_ds`` values, never processing order, so drops processed in any
order, repeated or back-filled converge to the same tables.

Concurrent runs: Delta serialises the commits of one table, not of the pair ``orders`` and
``lineitem``, and steps 2-5 decide from rows they read (an order's month, a tombstone, a
line item's order). Steps 2-5 are therefore a *section*, and so is ``customer``
(its history is rebuilt from the snapshots it reads). Every commit of the run is tagged
with the run (:func:`~jobs.delta_io.commit_tag`); after a section, the run looks for data
changes that other writers committed to the section's tables meanwhile. If there are
any, its decisions may be stale: it repairs the order keys of its drop (one order row,
the newest; line items in their order's month; nothing a tombstone covers; orphans
parked) and runs the section again, up to :data:`PASSES` times, then exits 1 so the
scheduler retries it. A pass that nobody interleaved with is what a serial run does.

Partitioning: ``orders`` and ``lineitem`` are partitioned by ``_order_month`` (the first
day of the order's month). A daily drop touches few months, and every MERGE carries them
as a literal ``t._order_month IN (...)`` predicate, so its cost depends on the size of a
month, not on the length of history. Dimensions are small and unpartitioned.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from jobs.delta_io import (
    commit_tag,
    conflict_name,
    delete_matching,
    ensure_table,
    foreign_changes,
    is_conflict,
    is_delta_table,
    latest_version,
    merge_latest,
    merge_rows,
    replace_where,
    update_matching,
)
from jobs.errors import ConcurrentChangeError, DropNotReadyError, QualityGateError
from jobs.expectations import Expectation, expectations_for
from jobs.ledger import DqResult, Run, last_successes, record_dq, start_run
from jobs.schemas import (
    CDF_TABLES,
    CUSTOMER_SNAPSHOTS,
    TOMBSTONES,
    quarantine_schema,
    silver_columns,
    silver_schema,
    tombstone_schema,
)
from jobs.sql import identifier, sql_in, sql_literal
from jobs.steps.common import StepContext, fingerprint, log, run_parallel
from jobs.tpch import DIMENSIONS, ORDERS_DELETE, TABLES, Table
from jobs.transforms.silver import (
    ORPHAN_REASON,
    parse_lines,
    scd2_changes,
    with_drop_dedup,
    with_expectations,
    with_row_hash,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["PASSES", "prepare", "run"]

# The tables each section reads and writes, and the counters it keeps in the ledger row.
ORDER_SECTION = ("silver/orders", "silver/lineitem", f"silver/{TOMBSTONES}",
                 "quarantine/lineitem")
ORDER_COUNTED = ("orders", "lineitem", ORDERS_DELETE.name)
# The ledger details the order section sets (besides per-table entries), reset per pass.
ORDER_DETAILS = ("order_month_moves", "deleted_rows", "deletes_unknown_key",
                 "orphaned_by_delete", "orphaned_by_repair", "orphans_released",
                 "repaired_months")
CUSTOMER_SECTION = ("silver/customer", f"silver/{CUSTOMER_SNAPSHOTS}")
# Passes of a section before the run gives up to concurrent writers (exit 1, retried).
PASSES = 4
MAX_DELAY = 5.0  # seconds (before the jitter) between passes
LINEAGE = ["_ds", "_source_file", "_line_number"]


def prepare(lines_df: DataFrame, table: Table) -> DataFrame:
    """Parse, validate and deduplicate one table's lines (pure).

    :param lines_df: bronze rows (``value`` and lineage).
    :param table: the TPC-H table.
    :return: typed rows with ``_reasons``, ``_warnings``, ``_failures`` and
        ``_is_duplicate``.
    """
    checks = [e for e in expectations_for(table.name) if not e.needs_order]
    return with_drop_dedup(with_expectations(parse_lines(lines_df, table), checks), table.key)


class _Inconsistent(Exception):
    """Stored rows of the drop's keys break silver's invariants: repair, then run again."""


class _Silver:
    """State of one silver run: the context, the ledger row and the results so far."""

    def __init__(self, ctx: StepContext, run: Run, present: set[str],
                 previously_quarantined: dict[str, int]) -> None:
        self.ctx = ctx
        self.present = present
        self.previously_quarantined = previously_quarantined
        self.spark: SparkSession = ctx.spark
        self.run = run
        self.dq: list[DqResult] = []
        self.touched_months: dict[str, list[str]] = {}
        # Every commit of the run carries this (see :func:`run`).
        self.tag = f"silver {ctx.ds_str} {run.run_id}"

    # -- sections (concurrent writers) -----------------------------------------------
    def versions(self, tables: tuple[str, ...]) -> dict[str, int | None]:
        return {t: latest_version(self.spark, self.ctx.lake.table(*t.split("/")))
                for t in tables}

    def foreign(self, since: dict[str, int | None]) -> dict[str, list[int]]:
        """Data changes other writers committed to the tables since ``since``."""
        found = {t: foreign_changes(self.spark, self.ctx.lake.table(*t.split("/")), v, self.tag)
                 for t, v in since.items()}
        return {t: versions for t, versions in found.items() if versions}

    def forget(self, counted: tuple[str, ...], details: tuple[str, ...]) -> None:
        """Drop what a section's pass recorded (counts, expectation results, details), so
        that the ledger row describes the pass that counts: the last."""
        for kind in ("read", "written", "quarantined", "duplicate"):
            counters: dict[str, int] = getattr(self.run, f"rows_{kind}")
            for name in counted:
                counters.pop(name, None)
        for nested in (self.run.details.get("merge_metrics", {}),
                       self.run.details.get("superseded_by_delete", {}), self.touched_months):
            for name in counted:
                nested.pop(name, None)
        for key in details:
            self.run.details.pop(key, None)
        self.dq = [d for d in self.dq if d.table not in counted]

    def settled(self, name: str, tables: tuple[str, ...], counted: tuple[str, ...],
                work: Callable[[], None], repair: Callable[[], None] | None = None,
                details: tuple[str, ...] = ()) -> None:
        """Run a section until a pass saw no other writer change the section's tables.

        :param name: the section, for the log and the ledger's ``passes`` detail.
        :param tables: the tables (``layer/name``) the section reads and writes.
        :param counted: the tables whose counts the section keeps in the ledger row.
        :param details: the other ledger details the section sets.
        :param work: one pass; it must be idempotent.
        :param repair: run before every pass after the first.
        :raises ConcurrentChangeError: when :data:`PASSES` passes were all interleaved.
        """
        for attempt in range(1, PASSES + 1):
            since = self.versions(tables)
            started = time.monotonic()
            seen: object
            try:
                if attempt > 1:
                    self.forget(counted, details)
                    if repair is not None:
                        repair()
                work()
            except _Inconsistent as exc:
                seen = str(exc)
                started = time.monotonic()  # not another run: no need to wait
            except Exception as exc:
                if not is_conflict(exc):
                    raise
                seen = conflict_name(exc)
            else:
                seen = self.foreign(since)
                if not seen:
                    self.run.details.setdefault("passes", {})[name] = attempt
                    return
            if attempt == PASSES:
                # The last pass may have decided on stale rows: repair once more (whoever
                # changes these keys after it repairs them too), then leave it to a retry.
                if repair is not None:
                    try:
                        repair()
                    except Exception as exc:
                        if not is_conflict(exc):
                            raise
                raise ConcurrentChangeError(
                    f"silver {self.ctx.ds_str}: other runs kept changing {', '.join(tables)} "
                    f"during all {PASSES} passes of its {name} section; run it again")
            # Jittered, so that runs falling over each other spread out. A pass after a
            # repair mostly re-applies what is there, which commits no data change, so the
            # runs need not wait for each other to finish.
            seconds = time.monotonic() - started
            delay = random.uniform(0.5, 1.5) * min(MAX_DELAY, attempt * seconds)
            log.warning("silver %s: %s pass %d/%d interleaved with other writers (%s); "
                        "repairing and running it again in %.1fs", self.ctx.ds_str, name,
                        attempt, PASSES, seen, delay)
            time.sleep(delay)

    def order_section(self) -> None:
        """Steps 2-5: tombstones, orders, deletions, line items."""
        _timed(self.run, "orders", self.orders_and_deletes)
        _timed(self.run, "lineitem", self.lineitem)

    def section_keys(self) -> DataFrame | None:
        """The order keys the order section touches: the drop's orders, deletions and line
        items, and the orphans parked in quarantine (``o_orderkey``)."""
        from pyspark.sql import functions as F

        frames = [df.select("value") for name in ("orders", ORDERS_DELETE.name, "lineitem")
                  if (df := self.bronze(name)) is not None]
        parked = self.parked_orphans()
        if parked is not None:
            frames.append(parked.select("value"))
        if not frames:
            return None
        union = frames[0]
        for frame in frames[1:]:
            union = union.unionByName(frame)
        key = F.expr("try_cast(split(value, '[|]')[0] AS BIGINT)")
        return (union.select(key.alias("o_orderkey")).where(F.col("o_orderkey").isNotNull())
                .distinct().localCheckpoint(eager=True))

    def repair(self) -> None:
        """Make the stored orders and line items of the drop's order keys consistent.

        After a pass other writers interleaved with, a key may hold two order rows (a MERGE
        bounded by the months it looked up before another run moved the order), line items
        in a month their order left, copies of a line item in two months, or rows a
        concurrent deletion did not see. For the drop's keys: the newest order row stays,
        unless a tombstone covers it; per line item the newest row stays, in its order's
        month, unless a tombstone covers it; a line item whose order is gone is parked as
        an orphan. The months concerned are rewritten (one ``replaceWhere`` per table,
        quarantine first, then line items, then orders, as in a serial run), without a
        conflict retry: a conflict makes the pass interleaved, and the next one repairs.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        keys = self.section_keys()
        if keys is None:
            return
        tomb = self.tombstones().select("o_orderkey", F.col("_ds").alias("_tomb_ds"))
        alive = F.col("_tomb_ds").isNull() | (F.col("_tomb_ds") < F.col("_ds"))
        newest = [F.col("_ds").desc(), F.col("_row_hash").desc()]
        orders = (
            self.read_silver("orders").join(keys, "o_orderkey", "left_semi")
            .join(tomb, "o_orderkey", "left")
            .withColumn("_keep", alive & (F.row_number().over(
                Window.partitionBy("o_orderkey").orderBy(*newest)) == 1))
            .localCheckpoint(eager=True)
        )
        live = orders.where("_keep").select(F.col("o_orderkey").alias("l_orderkey"),
                                            F.col("_order_month").alias("_live_month"))
        items = (
            self.read_silver("lineitem")
            .join(keys.withColumnRenamed("o_orderkey", "l_orderkey"), "l_orderkey", "left_semi")
            .join(tomb.withColumnRenamed("o_orderkey", "l_orderkey"), "l_orderkey", "left")
            .join(live, "l_orderkey", "left")
            .withColumn("_valid", alive & (F.row_number().over(
                Window.partitionBy("l_orderkey", "l_linenumber").orderBy(*newest)) == 1))
            .withColumn("_keep", F.col("_valid") & F.col("_live_month").isNotNull())
            .localCheckpoint(eager=True)
        )
        self.run.details["orphaned_by_repair"] = self.park_lines(
            items.where(F.col("_valid") & ~F.col("_keep")).select(*LINEAGE))
        moves = items.where(~F.col("_keep") | (F.col("_order_month") != F.col("_live_month")))
        months = sorted({m for r in moves.select("_order_month", "_live_month").collect()
                         for m in r if m is not None})
        self.rewrite("lineitem", "l_orderkey", keys, months, items.where("_keep").withColumn(
            "_order_month", F.col("_live_month")))
        months = sorted({r[0] for r in orders.where(~F.col("_keep"))
                         .select("_order_month").distinct().collect()})
        self.rewrite("orders", "o_orderkey", keys, months, orders.where("_keep"))

    def rewrite(self, name: str, key: str, keys: DataFrame, months: list[dt.date],
                kept: DataFrame) -> None:
        """Replace the rows of ``keys`` in some months of a table with the ``kept`` ones."""
        from pyspark.sql import functions as F

        if not months:
            return
        predicate = f"_order_month IN {sql_in(months)}"
        stored = self.read_silver(name)
        content = (
            stored.where(F.expr(predicate))
            .join(keys.withColumnRenamed("o_orderkey", key), key, "left_anti")
            .unionByName(kept.where(F.expr(predicate)).select(*stored.columns))
        )
        result = replace_where(self.spark, self.silver_uri(name), content, predicate, attempts=1)
        self.run.wrote(name, result.version)
        self.run.details.setdefault("repaired_months", {})[name] = [m.isoformat() for m in months]
        log.warning("silver %s: repaired %s in %s", self.ctx.ds_str, name,
                    ", ".join(m.isoformat() for m in months))

    # -- edges -----------------------------------------------------------------------
    def bronze(self, name: str) -> DataFrame | None:
        from pyspark.sql import functions as F

        uri = self.ctx.lake.table("bronze", name)
        if name not in self.present or not is_delta_table(self.spark, uri):
            return None  # the table is not in this drop: no changes today
        return (
            self.spark.read.format("delta").load(uri)
            .where(F.col("_ds") == F.lit(self.ctx.ds_str).cast("date"))
            .select("value", "_ds", "_source_file", "_line_number")
        )

    def silver_uri(self, name: str) -> str:
        table = TABLES[name]
        props = {"delta.enableChangeDataFeed": "true"} if name in CDF_TABLES else {}
        uri = self.ctx.lake.table("silver", name)
        ensure_table(self.spark, uri, silver_schema(table), table.partition_by, props)
        return uri

    def read_silver(self, name: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.silver_uri(name))

    def tombstones(self) -> DataFrame:
        uri = self.ctx.lake.table("silver", TOMBSTONES)
        ensure_table(self.spark, uri, tombstone_schema())
        return self.spark.read.format("delta").load(uri)

    def write_quarantine(self, name: str, rejected_df: DataFrame, n: int | None = None) -> int:
        """Replace this drop's quarantine rows of a table; return how many there are.

        :param name: table name.
        :param rejected_df: rejected lines (``value``, lineage, ``_reasons``).
        :param n: their number when already known (saves a pass).
        """
        from pyspark.sql import functions as F

        uri = self.ctx.lake.table("quarantine", name)
        rows = rejected_df.select(
            F.col("value").alias("raw"), "_ds", "_source_file", "_line_number",
            F.array_distinct("_reasons").alias("reasons"),
        )
        if n is None:
            rows = rows.cache()
            n = rows.count()
        # No commit when there is nothing now and nothing from an earlier run of this drop.
        if n or self.previously_quarantined.get(name):
            ensure_table(self.spark, uri, quarantine_schema(), ["_ds"])
            result = replace_where(self.spark, uri, rows, f"_ds = {sql_literal(self.ctx.ds)}")
            self.run.wrote(f"quarantine/{name}", result.version)
        rows.unpersist()
        return n

    # -- accounting ------------------------------------------------------------------
    def account(self, name: str, prepared: DataFrame) -> dict[str, int]:
        """Count lines, duplicates, rejects and expectation outcomes in one pass.

        :return: ``*row`` (lines read), ``*rejected`` (non-duplicate lines with a reason)
            and one count per reason or warning name, over non-duplicate lines.
        :raises QualityGateError: when a fail-level expectation is violated.
        """
        from pyspark.sql import functions as F

        tags = F.concat(
            F.array(F.lit("*row")), "_reasons", "_warnings",
            F.transform("_failures", lambda f: F.concat(F.lit("fail:"), f)),
            F.when(F.size("_reasons") > 0, F.array(F.lit("*rejected"))).otherwise(
                F.array().cast("array<string>")),
        )
        rows = (
            prepared.select(F.col("_is_duplicate").alias("dup"), F.explode(tags).alias("tag"))
            .groupBy("dup", "tag").agg(F.count(F.lit(1)).alias("n")).collect()
        )
        counts: dict[str, int] = {}
        for r in rows:
            if r["tag"] == "*row":
                self.run.count("read", name, r["n"])
                if r["dup"]:
                    self.run.count("duplicate", name, r["n"])
                counts["*row"] = counts.get("*row", 0) + r["n"]
            elif not r["dup"]:
                counts[r["tag"]] = r["n"]
        self.record_expectations(name, [e for e in expectations_for(name) if not e.needs_order],
                                 counts)
        if any(tag.startswith("fail:") for tag in counts):
            first = prepared.where(~F.col("_is_duplicate") & (F.size("_failures") > 0)).select(
                "_source_file", "_line_number", "_failures").first()
            assert first is not None
            raise QualityGateError(
                f"{first['_source_file']} line {first['_line_number']}: fail-level "
                f"expectation {', '.join(first['_failures'])} violated; nothing was merged"
            )
        return counts

    def record_expectations(self, name: str, expectations: list[Expectation],
                            counts: dict[str, int]) -> None:
        self.dq += [DqResult(name, e.name, e.action, int(counts.get(e.name, 0)))
                    for e in expectations]

    # -- tables ----------------------------------------------------------------------
    def load_prepared(self, name: str) -> DataFrame | None:
        from pyspark.sql import functions as F

        lines = self.bronze(name)
        if lines is None:
            return None
        table = ORDERS_DELETE if name == ORDERS_DELETE.name else TABLES[name]
        prepared = prepare(lines, table).cache()
        counts = self.account(name, prepared)
        if not counts.get("*row"):
            prepared.unpersist()
            return None
        if name != "lineitem":
            # Line items are quarantined after the order lookup (orphans, order rules).
            rejected = prepared.where(~F.col("_is_duplicate") & (F.size("_reasons") > 0))
            n = self.write_quarantine(name, rejected, counts.get("*rejected", 0))
            self.run.count("quarantined", name, n)
        return prepared

    def clean(self, prepared: DataFrame, table: Table) -> DataFrame:
        from pyspark.sql import functions as F

        rows = prepared.where(~F.col("_is_duplicate") & (F.size("_reasons") == 0))
        return with_row_hash(rows, table.column_names)

    def latest_dimension(self, name: str) -> None:
        prepared = self.load_prepared(name)
        if prepared is None:
            return
        table = TABLES[name]
        source = self.clean(prepared, table).select(*silver_columns(table))
        result = merge_latest(self.spark, self.silver_uri(name), source, table.key)
        self.note_merge(name, result.version, result.metrics)
        prepared.unpersist()

    def note_merge(self, name: str, version: int | None, metrics: dict[str, int]) -> None:
        self.run.wrote(name, version)
        self.run.count("written", name, metrics.get("num_inserted_rows", 0)
                       + metrics.get("num_updated_rows", 0))
        self.run.details.setdefault("merge_metrics", {})[name] = metrics

    def customer(self) -> None:
        """SCD2: record the drop's snapshot rows, then rebuild history for their keys."""
        prepared = self.load_prepared("customer")
        if prepared is None:
            return
        table = TABLES["customer"]
        incoming = self.clean(prepared, table).select(*silver_columns(table, scd2=False))
        snapshots_uri = self.ctx.lake.table("silver", CUSTOMER_SNAPSHOTS)
        ensure_table(self.spark, snapshots_uri, silver_schema(table, scd2=False))
        result = merge_latest(self.spark, snapshots_uri, incoming, [*table.key, "_ds"])
        self.run.wrote(CUSTOMER_SNAPSHOTS, result.version)
        keys = incoming.select(*table.key)
        existing = self.read_silver("customer").join(keys, list(table.key), "left_semi")
        snapshots = self.spark.read.format("delta").load(snapshots_uri).join(
            keys, list(table.key), "left_semi")
        # Materialised: the MERGE below rewrites the table `existing` is read from.
        changes = scd2_changes(existing, snapshots, table.key).localCheckpoint(eager=True)
        if changes.limit(1).count():
            result = merge_rows(
                self.spark, self.silver_uri("customer"), changes, [*table.key, "valid_from"],
                update_condition="s._action = 'upsert'",
                delete_condition="s._action = 'delete'",
            )
            self.note_merge("customer", result.version, result.metrics)
        prepared.unpersist()

    def orders_and_deletes(self) -> None:
        """RF2 tombstones, then orders, then the drop's deletions (in this order)."""
        deletes = self.order_tombstones()
        self.orders()
        if deletes is not None:
            self.apply_deletes(deletes)

    def order_tombstones(self) -> DataFrame | None:
        """Merge this drop's RF2 deletions into the tombstones; return them (key, _ds)."""
        from pyspark.sql import functions as F

        prepared = self.load_prepared(ORDERS_DELETE.name)
        if prepared is None:
            return None
        source = (
            self.clean(prepared, ORDERS_DELETE)
            .select("o_orderkey", "_ds", "_source_file", "_line_number", "_row_hash")
            .cache()
        )
        self.tombstones()
        result = merge_latest(self.spark, self.ctx.lake.table("silver", TOMBSTONES), source,
                              ["o_orderkey"])
        self.run.wrote(TOMBSTONES, result.version)
        self.run.count("written", ORDERS_DELETE.name, source.count())
        prepared.unpersist()
        return source.select("o_orderkey", F.col("_ds").alias("_tomb_ds"))

    def order_lookup(self, keys_df: DataFrame) -> DataFrame:
        """Stored orders for some keys: key, ``_old_month``, ``_old_ds``, ``_old_hash``."""
        from pyspark.sql import functions as F

        return (
            self.read_silver("orders")
            .select("o_orderkey", F.col("_order_month").alias("_old_month"),
                    F.col("_ds").alias("_old_ds"), F.col("_row_hash").alias("_old_hash"))
            .join(keys_df.select("o_orderkey").distinct(), "o_orderkey", "left_semi")
        )

    def orders(self) -> None:
        from pyspark.sql import functions as F

        prepared = self.load_prepared("orders")
        if prepared is None:
            return
        table = TABLES["orders"]
        clean = self.clean(prepared, table).withColumn(
            "_order_month", F.trunc("o_orderdate", "month"))
        tomb = self.tombstones().select("o_orderkey", F.col("_ds").alias("_tomb_ds"))
        flagged = clean.join(tomb, "o_orderkey", "left").withColumn(
            "_deleted", F.coalesce(F.col("_tomb_ds") >= F.col("_ds"), F.lit(False))).cache()
        # One pass gives both the rows superseded by a deletion and the months of the rest.
        by_month = flagged.groupBy("_deleted", "_order_month").count().collect()
        superseded = sum(r["count"] for r in by_month if r["_deleted"])
        self.run.details.setdefault("superseded_by_delete", {})["orders"] = superseded
        self.run.count("written", "orders", 0)
        source = flagged.where(~F.col("_deleted")).select(*silver_columns(table))
        # Materialised before the MERGE rewrites the table it was read from.
        existing = self.order_lookup(source).localCheckpoint(eager=True)
        stored = existing.agg(F.collect_set("_old_month").alias("months"),
                              F.count(F.lit(1)).alias("rows"),
                              F.count_distinct("o_orderkey").alias("keys")).first()
        assert stored is not None
        if stored["rows"] != stored["keys"]:
            # Only a run killed while repairing after concurrent runs leaves that.
            raise _Inconsistent("silver/orders holds two rows of an order of the drop")
        months = sorted({r["_order_month"] for r in by_month if not r["_deleted"]}
                        | set(stored["months"]))
        if months:
            self.touched_months["orders"] = [m.isoformat() for m in months]
            # Line items move first: after a crash between the two writes the re-run still
            # sees the order's old month and completes the move (moving nothing twice).
            # The other way round, it would see the new month and leave them behind.
            self.cascade_month_moves(source, existing)
            result = merge_latest(self.spark, self.silver_uri("orders"), source, table.key,
                                  f"t._order_month IN {sql_in(months)}")
            self.note_merge("orders", result.version, result.metrics)
        flagged.unpersist()
        prepared.unpersist()

    def cascade_month_moves(self, source: DataFrame, existing: DataFrame) -> None:
        """Move line items with their order when an applied update changed its month."""
        from pyspark.sql import functions as F

        moved = (
            source.join(existing, "o_orderkey")
            .where((F.col("_order_month") != F.col("_old_month"))
                   & ((F.col("_ds") > F.col("_old_ds"))
                      | ((F.col("_ds") == F.col("_old_ds"))
                         & (F.col("_row_hash") != F.col("_old_hash")))))
            .select(F.col("o_orderkey").alias("l_orderkey"),
                    F.col("_order_month").alias("_new_month"), "_old_month")
            .cache()
        )
        old_months = sorted({r[0] for r in moved.select("_old_month").distinct().collect()})
        if old_months:
            result = update_matching(
                self.spark, self.silver_uri("lineitem"), moved,
                f"t.l_orderkey = s.l_orderkey AND t._order_month IN {sql_in(old_months)}",
                {"_order_month": "s._new_month"},
            )
            self.run.wrote("lineitem", result.version)
            self.run.details["order_month_moves"] = moved.count()
        moved.unpersist()

    def apply_deletes(self, deletes: DataFrame) -> None:
        """Remove the versions of orders and line items that the drop's deletions cover.

        A line item newer than the deletion survives it, but when its order goes it has no
        order left: it is parked as an orphan, exactly as if the deletion had come first,
        so the result does not depend on the order in which the drops are processed.
        """
        from pyspark.sql import functions as F

        # Per deletion: the stored order's month and whether the orders DELETE below removes
        # it (it is not newer). Materialised: that DELETE rewrites the table read here.
        looked_up = deletes.join(self.order_lookup(deletes), "o_orderkey", "left").select(
            "o_orderkey", "_tomb_ds", "_old_month",
            (F.col("_old_ds") <= F.col("_tomb_ds")).alias("_gone"),
        ).localCheckpoint(eager=True)
        stats = looked_up.groupBy("_old_month", "_gone").count().collect()
        months = sorted(r["_old_month"] for r in stats if r["_old_month"] is not None)
        self.run.details["deletes_unknown_key"] = sum(
            r["count"] for r in stats if r["_old_month"] is None)
        if not months:
            return
        if any(r["_gone"] for r in stats):
            self.run.details["orphaned_by_delete"] = self.park_orphaned_by_delete(
                looked_up, months)
        predicate = f"t._order_month IN {sql_in(months)}"
        # Line items first: a re-run after a crash between the two DELETEs finds the order
        # (and its month) still there. The other way round it would find no order and
        # leave its line items in silver for good.
        for name, key, condition in (
            ("lineitem", "l_orderkey", "t._ds <= s._tomb_ds OR s._gone"),
            ("orders", "o_orderkey", "t._ds <= s._tomb_ds"),
        ):
            result = delete_matching(
                self.spark, self.silver_uri(name), looked_up,
                f"t.{identifier(key)} = s.o_orderkey AND {predicate}", condition)
            self.run.wrote(name, result.version)
            self.run.details.setdefault("deleted_rows", {})[name] = result.metrics.get(
                "num_deleted_rows", 0)

    def park_orphaned_by_delete(self, gone: DataFrame, months: list[dt.date]) -> int:
        """Park stored line items newer than the deletion of their order as orphans.

        Their raw lines come from bronze; they are written to ``quarantine/lineitem``
        under their own ``_ds`` before the DELETE removes them from silver (a crash in
        between leaves a line in both places for a moment, never in neither), and every
        later run retries them like any orphan.

        :param gone: the drop's deletions: ``o_orderkey``, ``_tomb_ds`` and ``_gone`` (the
            stored order is not newer than its deletion).
        :param months: the ``_order_month`` values of those orders.
        :return: the line items newly parked.
        """
        from pyspark.sql import functions as F

        orphaned = (
            self.read_silver("lineitem").where(F.expr(f"_order_month IN {sql_in(months)}"))
            .join(gone.where("_gone").select(F.col("o_orderkey").alias("l_orderkey"),
                                             "_tomb_ds"), "l_orderkey")
            .where(F.col("_ds") > F.col("_tomb_ds"))
            .select(*LINEAGE)
        )
        return self.park_lines(orphaned)

    def park_lines(self, orphaned: DataFrame) -> int:
        """Park line items (their lineage: ``_ds``, ``_source_file``, ``_line_number``) in
        ``quarantine/lineitem`` as orphans, with their raw lines from bronze.

        :return: the line items newly parked.
        """
        from pyspark.sql import functions as F

        ds_list = sorted({r[0] for r in orphaned.select("_ds").distinct().collect()})
        if not ds_list:
            return 0
        bronze = self.spark.read.format("delta").load(
            self.ctx.lake.table("bronze", "lineitem")).where(F.col("_ds").isin(ds_list))
        rows = orphaned.join(bronze, LINEAGE).select(
            F.col("value").alias("raw"), *LINEAGE, F.array(F.lit(ORPHAN_REASON)).alias("reasons"))
        uri = self.ctx.lake.table("quarantine", "lineitem")
        ensure_table(self.spark, uri, quarantine_schema(), ["_ds"])
        result = merge_rows(self.spark, uri, rows, LINEAGE,
                            partition_predicate=f"t._ds IN {sql_in(ds_list)}")
        self.run.wrote("quarantine/lineitem", result.version)
        return result.metrics.get("num_inserted_rows", 0)

    def parked_orphans(self) -> DataFrame | None:
        """Line items parked in quarantine as orphans by other drops."""
        from pyspark.sql import functions as F

        uri = self.ctx.lake.table("quarantine", "lineitem")
        if not is_delta_table(self.spark, uri):
            return None
        parked = (
            self.spark.read.format("delta").load(uri)
            .where(F.array_contains("reasons", ORPHAN_REASON)
                   & (F.col("_ds") != F.lit(self.ctx.ds_str).cast("date")))
            .select(F.col("raw").alias("value"), "_ds", "_source_file", "_line_number")
        )
        return parked

    def lineitem(self) -> None:
        """Line items: order lookup first, so order rules and orphans are decided per line.

        Order-dependent rules (``l_shipdate_after_orderdate``) run before duplicate and
        conflict detection, so an invalid copy of a good line is quarantined for its rule
        and the good line stays. Orphans parked by earlier drops are re-tried with this
        drop's lines; each keeps its own ``_ds`` and lineage.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        table = TABLES["lineitem"]
        early = [e for e in expectations_for("lineitem") if not e.needs_order]
        order_checks = [
            Expectation(e.name, f"_o_orderdate IS NULL OR ({e.condition})", e.action)
            for e in expectations_for("lineitem") if e.needs_order
        ]
        parts = []
        lines = self.bronze("lineitem")
        if lines is not None:
            parts.append(with_expectations(parse_lines(lines, table), early)
                         .withColumn("_parked", F.lit(False)))
        parked_lines = self.parked_orphans()
        if parked_lines is not None:
            parts.append(with_expectations(parse_lines(parked_lines, table), early)
                         .withColumn("_parked", F.lit(True)))
        if not parts:
            return
        union = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        orders = self.read_silver("orders").select(
            F.col("o_orderkey").alias("l_orderkey"), F.col("o_orderdate").alias("_o_orderdate"),
            "_order_month")
        tomb = self.tombstones().select(F.col("o_orderkey").alias("l_orderkey"),
                                        F.col("_ds").alias("_tomb_ds"))
        looked_up = with_expectations(
            union.join(orders, "l_orderkey", "left").join(tomb, "l_orderkey", "left"),
            order_checks,
        )
        # Duplicates and conflicts are decided within one drop: partition by key and _ds.
        staged = with_drop_dedup(looked_up, [*table.key, "_ds"])
        clean = ~F.col("_is_duplicate") & (F.size("_reasons") == 0)
        deleted = F.coalesce(F.col("_tomb_ds") >= F.col("_ds"), F.lit(False))
        orphan = clean & F.col("_o_orderdate").isNull() & ~deleted
        staged = (
            staged.withColumn("_deleted", clean & deleted)
            .withColumn("_reasons", F.when(orphan, F.array(F.lit(ORPHAN_REASON)))
                        .otherwise(F.col("_reasons")))
            .withColumn("_applicable", clean & ~deleted & F.col("_o_orderdate").isNotNull())
        )
        # Rank only among applicable lines: an invalid copy must never outrank them.
        newest = Window.partitionBy(*table.key).orderBy(
            F.col("_applicable").desc(), F.col("_ds").desc())
        # Eagerly materialised: the writes below change the quarantine table this plan
        # reads, and Spark would otherwise re-read it (without the released orphans).
        staged = staged.withColumn(
            "_rank", F.when(F.col("_applicable"), F.row_number().over(newest))
        ).localCheckpoint(eager=True)
        own = staged.where(~F.col("_parked"))
        counts = self.account("lineitem", own) if lines is not None else {}
        rejected = own.where(~F.col("_is_duplicate") & (F.size("_reasons") > 0))
        n_q = self.write_quarantine("lineitem", rejected, counts.get("*rejected", 0))
        self.run.count("quarantined", "lineitem", n_q)
        self.record_expectations("lineitem", list(order_checks), counts)
        self.run.details.setdefault("superseded_by_delete", {})["lineitem"] = (
            own.where(F.col("_deleted")).count())
        source = (
            staged.where(F.col("_rank") == 1)
            .withColumn("_row_hash", F.xxhash64(*[F.col(c) for c in table.column_names]))
            .select(*silver_columns(table))
        )
        months = sorted({r[0] for r in source.select("_order_month").distinct().collect()})
        if months:
            self.touched_months["lineitem"] = [m.isoformat() for m in months]
            result = merge_latest(self.spark, self.silver_uri("lineitem"), source, table.key,
                                  f"t._order_month IN {sql_in(months)}")
            self.note_merge("lineitem", result.version, result.metrics)
        # Only now do resolved orphans leave quarantine (applied, superseded, deleted, or
        # kept under their own drop with a new reason): a crash in between leaves a line
        # in both places for a moment, never in neither.
        self.update_parked(staged)

    def update_parked(self, staged: DataFrame) -> None:
        from pyspark.sql import functions as F

        resolved = staged.where(
            F.col("_parked") & ~F.col("_is_duplicate")
            & ~F.array_contains("_reasons", ORPHAN_REASON)
        ).select(
            "_ds", "_source_file", "_line_number",
            F.when(F.size("_reasons") > 0, F.col("_reasons")).alias("_new_reasons"),
        ).cache()
        ds_list = sorted({r[0] for r in resolved.select("_ds").distinct().collect()})
        if ds_list:
            uri = self.ctx.lake.table("quarantine", "lineitem")
            result = merge_rows(
                self.spark, uri, resolved, ["_ds", "_source_file", "_line_number"],
                update_condition="s._new_reasons IS NOT NULL",
                delete_condition="s._new_reasons IS NULL",
                partition_predicate=f"t._ds IN {sql_in(ds_list)}",
                insert=False,
            )
            self.run.wrote("quarantine/lineitem", result.version)
            self.run.details["orphans_released"] = result.metrics.get("num_deleted_rows", 0)
        resolved.unpersist()


def _quarantined_before(ctx: StepContext, present: set[str]) -> dict[str, int]:
    """Tables of this drop that hold quarantine rows from an earlier run of it."""
    from pyspark.sql import functions as F

    def has_rows(uri: str) -> bool:
        return bool(ctx.spark.read.format("delta").load(uri)
                    .where(F.col("_ds") == F.lit(ctx.ds_str).cast("date")).limit(1).count())

    uris = {name: ctx.lake.table("quarantine", name) for name in sorted(present)}
    # One small query per existing table; they are independent, so they run side by side.
    found = run_parallel({
        name: partial(has_rows, uri) for name, uri in uris.items()
        if is_delta_table(ctx.spark, uri)
    })
    return {name: 1 for name, hit in found.items() if hit}


def _timed(run_: Run, name: str, work: Callable[[], object]) -> None:
    """Run one part of the step and record its duration in the ledger's details."""
    start = time.monotonic()
    work()
    seconds = round(time.monotonic() - start, 2)
    run_.details.setdefault("seconds", {})[name] = seconds
    log.info("silver %s: %s took %.1fs", run_.ds, name, seconds)


def _dimension_gate(present: set[str]) -> bool:
    """Whether a fail-level expectation of a dimension in the drop could stop the run.

    Such a failure must stop the step before orders and line items are merged, so the
    dimensions then go first; without one, they run beside the orders.
    """
    return any(e.action == "fail" for name in DIMENSIONS if name in present
               for e in expectations_for(name))


def run(ctx: StepContext) -> bool:
    """Process the run date's bronze lines into silver and quarantine.

    :param ctx: step context.
    :return: ``False`` when there was nothing to do (input unchanged since the last
        successful run), ``True`` otherwise.
    :raises DropNotReadyError: when the drop has not been ingested.
    """
    found = last_successes(ctx.spark, ctx.lake, {"ingest": ctx.ds, "silver": ctx.ds})
    ingest, previous = found["ingest"], found["silver"]
    if ingest is None:
        raise DropNotReadyError(f"silver {ctx.ds}: the drop has not been ingested yet")
    fp = fingerprint({"ingest": ingest["input_fingerprint"]})
    if previous and previous["input_fingerprint"] == fp and not ctx.force:
        log.info("silver %s: input unchanged since run %s, nothing to do", ctx.ds,
                 previous["run_id"])
        return False
    run_ = start_run(ctx.spark, ctx.lake, "silver", ctx.ds, fp)
    present = set(json.loads(ingest["details"] or "{}").get("files", {}))
    # Any earlier run of this drop (even a killed one) may have left quarantine rows.
    work = _Silver(ctx, run_, present, _quarantined_before(ctx, present))
    customer = partial(work.settled, "customer", CUSTOMER_SECTION, ("customer",),
                       work.customer)
    dimensions = {
        name: customer if name == "customer" else partial(work.latest_dimension, name)
        for name in DIMENSIONS
    }
    groups = {
        "dimensions": partial(_timed, run_, "dimensions", partial(run_parallel, dimensions)),
        "orders": partial(work.settled, "orders", ORDER_SECTION, ORDER_COUNTED,
                          work.order_section, work.repair, ORDER_DETAILS),
    }
    with commit_tag(ctx.spark, work.tag):
        try:
            if _dimension_gate(present):
                for group in groups.values():
                    group()
            else:
                # Dimensions and orders write different tables and read nothing of each
                # other: they run side by side, which keeps both cores busy on small drops.
                run_parallel(groups)
        except QualityGateError as exc:
            record_dq(run_, work.dq)
            run_.write("failed", str(exc))
            raise
        record_dq(run_, work.dq)
        run_.details["touched_months"] = work.touched_months
        run_.write("succeeded")
    log.info("silver %s: written %s quarantined %s duplicates %s", ctx.ds, run_.rows_written,
             run_.rows_quarantined, run_.rows_duplicate)
    return True
