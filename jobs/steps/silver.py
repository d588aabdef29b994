"""Step ``silver``: bronze lines of one drop -> typed, validated, deduplicated silver tables.

Per table: parse and type, evaluate expectations, mark exact duplicates and conflicting
versions, write rejected lines to ``quarantine/<table>`` (``replaceWhere _ds = <ds>``), and
MERGE the good rows so that the newest ``_ds`` wins. What a table is comes from the
pipeline's spec (:mod:`jobs.catalog`):

* a ``latest`` table with no relations is MERGEd on its key; with a ``sequence`` column,
  versions are ordered by ``(sequence, _ds)`` instead
  (:attr:`~jobs.catalog.Table.version_order`): within a drop the highest sequence is the
  key's version and the lower ones are counted as superseded (ledger detail
  ``superseded_in_drop``);
* an ``scd2`` table records the drop's snapshot rows, then rebuilds the history of their
  keys from every snapshot observed (:func:`~jobs.transforms.silver.scd2_changes`);
* a *family* - a table with a partition, a delete feed or children - is written as one
  section, in this order:

  1. its deletions into ``silver/_<table>_tombstones`` (newest ``_ds`` kept);
  2. its rows, skipping versions not newer than their tombstone (when an update moves a
     row to another partition, its children move first);
  3. the drop's deletions applied to the table and its children (``t._ds <= tombstone
     ds``); a child newer than the deletion of its parent goes back to quarantine as an
     orphan;
  4. each child table, plus earlier orphans parked in quarantine whose parent may now
     exist. A child lives in its parent's partition.

The plain tables and each family write different tables and read nothing of each other,
so they run side by side (the plain tables first when one of them has a fail-level
expectation, whose failure must stop the run before a family is merged).

Each rule only compares ``_ds`` values (and a plain table's sequence column), never
processing order, so drops processed in any order, repeated or back-filled converge to the
same tables.

Concurrent runs: Delta serialises the commits of one table, not of a parent and its
children, and a family decides from rows it reads (a row's partition, a tombstone, a
child's parent). A family is therefore a *section*, and so is an SCD2 table (its history is
rebuilt from the snapshots it reads). Every commit of the run is tagged with the run
(:func:`~jobs.delta_io.commit_tag`); after a section, the run looks for data changes that
other writers committed to the section's tables meanwhile. If there are any, its decisions
may be stale: it repairs the family keys of its drop (one parent row, the newest; children
in their parent's partition; nothing a tombstone covers; orphans parked) and runs the
section again, up to :data:`PASSES` times, then exits 1 so the scheduler retries it. A
pass that nobody interleaved with is what a serial run does.

Partitioning: a family's rows carry the partition its spec derives (e.g. the order's
month). A daily drop touches few partitions, and every MERGE carries them as a literal
``t.<partition> IN (...)`` predicate, so its cost depends on the size of a partition, not
on the length of history. Tables without a partition are small and read whole.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial, reduce
from typing import TYPE_CHECKING, Any

from jobs.catalog import (
    Catalog,
    Expectation,
    Table,
    orphan_reason,
    snapshots_table,
    tombstones_table,
)
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
from jobs.ledger import DqResult, Run, last_successes, record_dq, start_run
from jobs.schemas import quarantine_schema, silver_columns, silver_schema, tombstone_schema
from jobs.sql import identifier, sql_in, sql_literal
from jobs.steps.common import StepContext, fingerprint, log, run_parallel
from jobs.transforms.silver import (
    is_drop_version,
    parse_lines,
    scd2_changes,
    with_drop_dedup,
    with_expectations,
    with_row_hash,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["PASSES", "prepare", "run"]

# The ledger details a family section sets (besides per-table entries), reset per pass.
FAMILY_DETAILS = ("partition_moves", "deleted_rows", "deletes_unknown_key",
                  "orphaned_by_delete", "orphaned_by_repair", "orphans_released",
                  "repaired_partitions")
# Passes of a section before the run gives up to concurrent writers (exit 1, retried).
PASSES = 4
MAX_DELAY = 5.0  # seconds (before the jitter) between passes
LINEAGE = ["_ds", "_source_file", "_line_number"]
# A child's view of its parent, for the lookup: the parent's columns in one struct.
PARENT = "parent"


def prepare(lines_df: DataFrame, table: Table) -> DataFrame:
    """Parse, validate and deduplicate one table's lines (pure).

    :param lines_df: bronze rows (``value`` and lineage).
    :param table: the table (its format, columns, key and expectations).
    :return: typed rows with ``_reasons``, ``_warnings``, ``_failures`` and
        ``_is_duplicate`` (and ``_is_superseded`` for a table with a sequence column).
    """
    checks = [e for e in table.expectations if e.scope == "row" and not e.needs_parent]
    # Every line of one drop has the same _ds: within it, only a sequence column orders.
    within_drop = [c for c in table.version_order if c != "_ds"]
    return with_drop_dedup(with_expectations(parse_lines(lines_df, table), checks), table.key,
                           within_drop)


def _matched(pairs: list[tuple[str, str]], parts: list[Any], part: str | None) -> str:
    """A MERGE's ``ON``: ``t.a = s.b AND ...``, bounded to some partitions of the target
    (``part``: the partition column, ``None`` for an unpartitioned family)."""
    on = " AND ".join(f"t.{identifier(a)} = s.{identifier(b)}" for a, b in pairs)
    if part is None:
        return on
    return f"{on} AND t.{identifier(part)} IN {sql_in(parts)}"


@dataclass(frozen=True)
class _Family:
    """A table written as a section with its deletions and children.

    :param table: the family's table (the parent).
    :param children: its child tables.
    :param feed: its delete feed, if any.
    """

    table: Table
    children: tuple[Table, ...]
    feed: Table | None

    @classmethod
    def of(cls, catalog: Catalog, name: str) -> _Family:
        table = catalog.tables[name]
        children = tuple(catalog.tables[c] for c in table.children)
        feed = catalog.delete_feeds[table.deletes] if table.deletes else None
        return cls(table, children, feed)

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def key(self) -> list[str]:
        return list(self.table.key)

    @property
    def part(self) -> str | None:
        """The partition column the family's rows carry, if any."""
        return self.table.partition_by[0] if self.table.partition_by else None

    @property
    def tombstones(self) -> str | None:
        return tombstones_table(self.name) if self.feed is not None else None

    @property
    def section(self) -> tuple[str, ...]:
        """The tables (``layer/name``) the section reads and writes."""
        tables = [f"silver/{self.name}", *(f"silver/{c.name}" for c in self.children)]
        if self.tombstones:
            tables.append(f"silver/{self.tombstones}")
        return (*tables, *(f"quarantine/{c.name}" for c in self.children))

    @property
    def counted(self) -> tuple[str, ...]:
        """The tables whose counts the section keeps in the ledger row."""
        return (self.name, *(c.name for c in self.children),
                *((self.feed.name,) if self.feed else ()))

    @staticmethod
    def mapping(child: Table) -> list[tuple[str, str]]:
        """``(child column, parent key column)`` pairs of a child."""
        return list(child.parent_key)

    def as_child_keys(self, keys: DataFrame, child: Table) -> DataFrame:
        """Parent keys renamed to the child's columns that hold them."""
        from pyspark.sql import functions as F

        return keys.select(*[F.col(p).alias(c) for c, p in self.mapping(child)])

    def in_parts(self, parts: list[Any]) -> str | None:
        """Literal predicate on the target ``t`` bounding a MERGE to some partitions
        (``None`` for an unpartitioned family)."""
        if self.part is None:
            return None
        return f"t.{identifier(self.part)} IN {sql_in(parts)}"


class _Inconsistent(Exception):
    """Stored rows of the drop's keys break silver's invariants: repair, then run again."""


class _Silver:
    """State of one silver run: the context, the ledger row and the results so far."""

    def __init__(self, ctx: StepContext, run: Run, present: set[str],
                 previously_quarantined: dict[str, int]) -> None:
        self.ctx = ctx
        self.catalog = ctx.catalog
        self.present = present
        self.previously_quarantined = previously_quarantined
        self.spark: SparkSession = ctx.spark
        self.run = run
        self.dq: list[DqResult] = []
        self.touched: dict[str, list[str]] = {}
        self.header_lines: dict[str, int] = {}
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
                       self.run.details.get("superseded_by_delete", {}),
                       self.run.details.get("superseded_in_drop", {}), self.touched):
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

    def family_section(self, family: _Family) -> None:
        """Steps 1-4: tombstones, the table, deletions, children."""
        _timed(self.run, family.name, partial(self.upserts_and_deletes, family))
        for child in family.children:
            _timed(self.run, child.name, partial(self.child, family, child))

    def section_keys(self, family: _Family) -> DataFrame | None:
        """The family keys the section touches: the drop's rows, deletions and children,
        and the children parked in quarantine as orphans (the parent's key columns)."""
        from pyspark.sql import functions as F

        frames = []
        sources: list[tuple[Table, DataFrame | None, list[tuple[str, str]]]] = [
            (family.table, self.bronze(family.name), [(k, k) for k in family.key])]
        if family.feed is not None:
            sources.append((family.feed, self.bronze(family.feed.name),
                            [(k, k) for k in family.key]))
        for child in family.children:
            mapping = family.mapping(child)
            sources.append((child, self.bronze(child.name), mapping))
            sources.append((child, self.parked_orphans(child), mapping))
        for table, lines, mapping in sources:
            if lines is None:
                continue
            parsed = parse_lines(lines, table)
            frames.append(parsed.select(*[F.col(c).alias(p) for c, p in mapping]))
        if not frames:
            return None
        union = reduce(lambda a, b: a.unionByName(b), frames)
        return (union.where(reduce(lambda a, b: a & b,
                                   [F.col(k).isNotNull() for k in family.key]))
                .distinct().localCheckpoint(eager=True))

    def repair(self, family: _Family) -> None:
        """Make the stored rows of the drop's family keys consistent.

        After a pass other writers interleaved with, a key may hold two rows (a MERGE
        bounded by the partitions it looked up before another run moved the row), children
        in a partition their parent left, copies of a child in two partitions, or rows a
        concurrent deletion did not see. For the drop's keys: the newest parent row stays,
        unless a tombstone covers it; per child row the newest stays, in its parent's
        partition, unless a tombstone covers it; a child whose parent is gone is parked as
        an orphan. The partitions concerned are rewritten (one ``replaceWhere`` per table,
        quarantine first, then children, then the parent, as in a serial run), without a
        conflict retry: a conflict makes the pass interleaved, and the next one repairs.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        keys = self.section_keys(family)
        if keys is None:
            return
        part = family.part
        tomb = self.tombstone_ds(family)
        alive = F.col("_tomb_ds").isNull() | (F.col("_tomb_ds") < F.col("_ds"))
        newest = [F.col("_ds").desc(), F.col("_row_hash").desc()]
        parents = (
            self.read_silver(family.name).join(keys, family.key, "left_semi")
            .join(tomb, family.key, "left")
            .withColumn("_keep", alive & (F.row_number().over(
                Window.partitionBy(*family.key).orderBy(*newest)) == 1))
            .localCheckpoint(eager=True)
        )
        for child in family.children:
            mapping = family.mapping(child)
            child_cols = [c for c, _ in mapping]
            live = parents.where("_keep").select(
                *[F.col(p).alias(c) for c, p in mapping],
                (F.col(part) if part else F.lit(True)).alias("_live_part"))
            items = (
                self.read_silver(child.name)
                .join(family.as_child_keys(keys, child), child_cols, "left_semi")
                .join(tomb.select(*[F.col(p).alias(c) for c, p in mapping], "_tomb_ds"),
                      child_cols, "left")
                .join(live, child_cols, "left")
                .withColumn("_valid", alive & (F.row_number().over(
                    Window.partitionBy(*child.key).orderBy(*newest)) == 1))
                .withColumn("_keep", F.col("_valid") & F.col("_live_part").isNotNull())
                .localCheckpoint(eager=True)
            )
            self.run.details["orphaned_by_repair"] = self.run.details.get(
                "orphaned_by_repair", 0) + self.park_lines(
                child, items.where(F.col("_valid") & ~F.col("_keep")).select(*LINEAGE))
            if part is None:
                moves = items.where(~F.col("_keep"))
                parts = [] if moves.limit(1).count() == 0 else [None]
            else:
                moves = items.where(~F.col("_keep") | (F.col(part) != F.col("_live_part")))
                parts = sorted({m for r in moves.select(part, "_live_part").collect()
                                for m in r if m is not None})
            kept = items.where("_keep")
            if part is not None:
                kept = kept.withColumn(part, F.col("_live_part"))
            self.rewrite(family, child.name, family.as_child_keys(keys, child), child_cols,
                         parts, kept)
        if part is None:
            stale = parents.where(~F.col("_keep"))
            parts = [] if stale.limit(1).count() == 0 else [None]
        else:
            parts = sorted({r[0] for r in parents.where(~F.col("_keep"))
                            .select(part).distinct().collect()})
        self.rewrite(family, family.name, keys, family.key, parts, parents.where("_keep"))

    def rewrite(self, family: _Family, name: str, keys: DataFrame, key: list[str],
                parts: list[Any], kept: DataFrame) -> None:
        """Replace the rows of ``keys`` in some partitions of a table with the ``kept``
        ones (``[None]``: the whole table, when the family has no partition)."""
        from pyspark.sql import functions as F

        if not parts:
            return
        predicate = "true" if family.part is None else (
            f"{identifier(family.part)} IN {sql_in(parts)}")
        stored = self.read_silver(name)
        content = (
            stored.where(F.expr(predicate))
            .join(keys, key, "left_anti")
            .unionByName(kept.where(F.expr(predicate)).select(*stored.columns))
        )
        result = replace_where(self.spark, self.silver_uri(name), content, predicate, attempts=1)
        self.run.wrote(name, result.version)
        self.run.details.setdefault("repaired_partitions", {})[name] = [
            str(p) for p in parts if p is not None] or ["all"]
        log.warning("silver %s: repaired %s in %s", self.ctx.ds_str, name,
                    ", ".join(str(p) for p in parts))

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
        table = self.catalog.tables[name]
        props = ({"delta.enableChangeDataFeed": "true"} if name in self.catalog.cdf_tables
                 else {})
        uri = self.ctx.lake.table("silver", name)
        ensure_table(self.spark, uri, silver_schema(table), table.partition_by, props)
        return uri

    def read_silver(self, name: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.silver_uri(name))

    def tombstone_ds(self, family: _Family) -> DataFrame:
        """The family's tombstones as ``key`` + ``_tomb_ds`` (empty without a feed)."""
        from pyspark.sql import functions as F

        if family.tombstones is None:
            schema = tombstone_schema(family.table)
            empty = self.spark.createDataFrame([], schema)
            return empty.select(*family.key, F.col("_ds").alias("_tomb_ds"))
        uri = self.ctx.lake.table("silver", family.tombstones)
        ensure_table(self.spark, uri, tombstone_schema(family.table))
        return self.spark.read.format("delta").load(uri).select(
            *family.key, F.col("_ds").alias("_tomb_ds"))

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
        """Count lines, duplicates, rejects, superseded lines and expectation outcomes in
        one pass.

        Every line read is a duplicate, a reject (quarantined), superseded within the drop
        (a valid line with a lower sequence value than its key's version in the drop,
        ledger detail ``superseded_in_drop``) or the drop's version of its key.

        :return: ``*row`` (lines read), ``*rejected`` (non-duplicate lines with a reason),
            ``*superseded`` and one count per reason or warning name, over non-duplicate
            lines.
        :raises QualityGateError: when a fail-level expectation is violated.
        """
        from pyspark.sql import functions as F

        nothing = F.array().cast("array<string>")
        tags = F.concat(
            F.array(F.lit("*row")), "_reasons", "_warnings",
            F.transform("_failures", lambda f: F.concat(F.lit("fail:"), f)),
            F.when(F.size("_reasons") > 0, F.array(F.lit("*rejected"))).otherwise(nothing),
            *([F.when(F.col("_is_superseded"), F.array(F.lit("*superseded"))).otherwise(
                nothing)] if "_is_superseded" in prepared.columns else []),
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
        if "_is_superseded" in prepared.columns:
            self.run.details.setdefault("superseded_in_drop", {})[name] = counts.get(
                "*superseded", 0)
        self.record_expectations(name, [e for e in self.catalog.expectations(name)
                                         if e.scope == "row" and not e.needs_parent], counts)
        if any(tag.startswith("fail:") for tag in counts):
            first = prepared.where(~F.col("_is_duplicate") & (F.size("_failures") > 0)).select(
                "_source_file", "_line_number", "_failures").first()
            assert first is not None
            raise QualityGateError(
                f"{first['_source_file']} line {first['_line_number']}: fail-level "
                f"expectation {', '.join(first['_failures'])} violated; nothing was merged"
            )
        return counts

    def drop_expectations(self, name: str, rows: DataFrame | None) -> None:
        """Evaluate a table's drop-scope expectations over the rows the drop gives it.

        Each is an aggregate over the drop's clean rows of the table (none when the table
        is not in the drop): true passes; false or NULL counts one violation. A ``fail``
        one stops the run before anything is merged, like a fail-level row rule.

        :param name: the table.
        :param rows: its clean rows from this drop, or ``None``.
        :raises QualityGateError: when a fail-level drop expectation is violated.
        """
        from pyspark.sql import functions as F

        checks = [e for e in self.catalog.expectations(name) if e.scope == "drop"]
        if not checks:
            return
        if rows is None:
            rows = self.spark.createDataFrame([], silver_schema(self.catalog.table(name)))
        verdict = rows.agg(*[F.coalesce(F.expr(e.condition), F.lit(False)).alias(e.name)
                             for e in checks]).first()
        assert verdict is not None
        failed = {e.name: 0 if verdict[e.name] else 1 for e in checks}
        self.record_expectations(name, checks, failed)
        broken = [e.name for e in checks if e.action == "fail" and failed[e.name]]
        if broken:
            raise QualityGateError(f"silver {self.ctx.ds_str}: drop expectation "
                                   f"{', '.join(broken)} of {name} violated; nothing was "
                                   "merged")

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
        table = self.catalog.table(name)
        prepared = prepare(lines, table).cache()
        counts = self.account(name, prepared)
        self.drop_expectations(name, prepared.where(
            ~F.col("_is_duplicate") & (F.size("_reasons") == 0)))
        if not counts.get("*row"):
            prepared.unpersist()
            return None
        if table.parent is None:
            # Children are quarantined after the parent lookup (orphans, parent rules).
            rejected = prepared.where(~F.col("_is_duplicate") & (F.size("_reasons") > 0))
            n = self.write_quarantine(name, rejected, counts.get("*rejected", 0))
            self.run.count("quarantined", name, n)
        return prepared

    def clean(self, prepared: DataFrame, table: Table) -> DataFrame:
        return with_row_hash(prepared.where(is_drop_version(prepared)), table.column_names)

    def latest(self, name: str) -> None:
        prepared = self.load_prepared(name)
        if prepared is None:
            return
        table = self.catalog.tables[name]
        source = self.clean(prepared, table).select(*silver_columns(table))
        result = merge_latest(self.spark, self.silver_uri(name), source, table.key,
                              order=table.version_order)
        self.note_merge(name, result.version, result.metrics)
        prepared.unpersist()

    def note_merge(self, name: str, version: int | None, metrics: dict[str, int]) -> None:
        self.run.wrote(name, version)
        self.run.count("written", name, metrics.get("num_inserted_rows", 0)
                       + metrics.get("num_updated_rows", 0))
        self.run.details.setdefault("merge_metrics", {})[name] = metrics

    def scd2(self, name: str) -> None:
        """SCD2: record the drop's snapshot rows, then rebuild history for their keys."""
        prepared = self.load_prepared(name)
        if prepared is None:
            return
        table = self.catalog.tables[name]
        incoming = self.clean(prepared, table).select(*silver_columns(table, scd2=False))
        snapshots_uri = self.ctx.lake.table("silver", snapshots_table(name))
        ensure_table(self.spark, snapshots_uri, silver_schema(table, scd2=False))
        result = merge_latest(self.spark, snapshots_uri, incoming, [*table.key, "_ds"])
        self.run.wrote(snapshots_table(name), result.version)
        keys = incoming.select(*table.key)
        existing = self.read_silver(name).join(keys, list(table.key), "left_semi")
        snapshots = self.spark.read.format("delta").load(snapshots_uri).join(
            keys, list(table.key), "left_semi")
        # Materialised: the MERGE below rewrites the table `existing` is read from.
        changes = scd2_changes(existing, snapshots, table.key, table.track).localCheckpoint(
            eager=True)
        if changes.limit(1).count():
            result = merge_rows(
                self.spark, self.silver_uri(name), changes, [*table.key, "valid_from"],
                update_condition="s._action = 'upsert'",
                delete_condition="s._action = 'delete'",
            )
            self.note_merge(name, result.version, result.metrics)
        prepared.unpersist()

    def upserts_and_deletes(self, family: _Family) -> None:
        """Tombstones, then the family's rows, then the drop's deletions (in this order)."""
        deletes = self.merge_tombstones(family)
        self.upserts(family)
        if deletes is not None:
            self.apply_deletes(family, deletes)

    def merge_tombstones(self, family: _Family) -> DataFrame | None:
        """Merge this drop's deletions into the tombstones; return them (key, _tomb_ds)."""
        from pyspark.sql import functions as F

        if family.feed is None or family.tombstones is None:
            return None
        prepared = self.load_prepared(family.feed.name)
        if prepared is None:
            return None
        source = (
            self.clean(prepared, family.feed)
            .select(*family.key, "_ds", "_source_file", "_line_number", "_row_hash")
            .cache()
        )
        uri = self.ctx.lake.table("silver", family.tombstones)
        ensure_table(self.spark, uri, tombstone_schema(family.table))
        result = merge_latest(self.spark, uri, source, family.key)
        self.run.wrote(family.tombstones, result.version)
        self.run.count("written", family.feed.name, source.count())
        prepared.unpersist()
        return source.select(*family.key, F.col("_ds").alias("_tomb_ds"))

    def lookup(self, family: _Family, keys_df: DataFrame) -> DataFrame:
        """Stored rows for some keys: key, ``_old_part``, ``_old_ds``, ``_old_hash``."""
        from pyspark.sql import functions as F

        part = F.col(family.part) if family.part else F.lit(None).cast("date")
        return (
            self.read_silver(family.name)
            .select(*family.key, part.alias("_old_part"),
                    F.col("_ds").alias("_old_ds"), F.col("_row_hash").alias("_old_hash"))
            .join(keys_df.select(*family.key).distinct(), family.key, "left_semi")
        )

    def upserts(self, family: _Family) -> None:
        from pyspark.sql import functions as F

        prepared = self.load_prepared(family.name)
        if prepared is None:
            return
        table = family.table
        clean = self.clean(prepared, table)
        if family.part is not None:
            assert table.partition_expr is not None
            clean = clean.withColumn(family.part, F.expr(table.partition_expr).cast(
                table.partition_type))
        flagged = clean.join(self.tombstone_ds(family), family.key, "left").withColumn(
            "_deleted", F.coalesce(F.col("_tomb_ds") >= F.col("_ds"), F.lit(False))).cache()
        # One pass gives both the rows superseded by a deletion and the partitions of the rest.
        part = F.col(family.part) if family.part else F.lit(None).cast("date")
        by_part = flagged.groupBy("_deleted", part.alias("_part")).count().collect()
        superseded = sum(r["count"] for r in by_part if r["_deleted"])
        self.run.details.setdefault("superseded_by_delete", {})[family.name] = superseded
        self.run.count("written", family.name, 0)
        source = flagged.where(~F.col("_deleted")).select(*silver_columns(table))
        # Materialised before the MERGE rewrites the table it was read from.
        existing = self.lookup(family, source).localCheckpoint(eager=True)
        stored = existing.agg(F.collect_set("_old_part").alias("parts"),
                              F.count(F.lit(1)).alias("rows"),
                              F.count_distinct(*family.key).alias("keys")).first()
        assert stored is not None
        if stored["rows"] != stored["keys"]:
            # Only a run killed while repairing after concurrent runs leaves that.
            raise _Inconsistent(f"silver/{family.name} holds two rows of a key of the drop")
        if family.part is None:
            if not any(not r["_deleted"] for r in by_part):
                flagged.unpersist()
                prepared.unpersist()
                return
            result = merge_latest(self.spark, self.silver_uri(family.name), source,
                                  table.key)
            self.note_merge(family.name, result.version, result.metrics)
        else:
            parts = sorted({r["_part"] for r in by_part if not r["_deleted"]}
                           | set(stored["parts"]))
            if parts:
                self.touched[family.name] = [str(p) for p in parts]
                # Children move first: after a crash between the two writes the re-run
                # still sees the parent's old partition and completes the move (moving
                # nothing twice). The other way round, it would see the new partition and
                # leave them behind.
                self.cascade_moves(family, source, existing)
                result = merge_latest(self.spark, self.silver_uri(family.name), source,
                                      table.key, family.in_parts(parts))
                self.note_merge(family.name, result.version, result.metrics)
        flagged.unpersist()
        prepared.unpersist()

    def cascade_moves(self, family: _Family, source: DataFrame, existing: DataFrame) -> None:
        """Move children with their parent when an applied update changed its partition."""
        from pyspark.sql import functions as F

        if not family.children or family.part is None:
            return
        part = family.part
        moved = (
            source.join(existing, family.key)
            .where((F.col(part) != F.col("_old_part"))
                   & ((F.col("_ds") > F.col("_old_ds"))
                      | ((F.col("_ds") == F.col("_old_ds"))
                         & (F.col("_row_hash") != F.col("_old_hash")))))
            .select(*family.key, F.col(part).alias("_new_part"), "_old_part")
            .cache()
        )
        old_parts = sorted({r[0] for r in moved.select("_old_part").distinct().collect()})
        if old_parts:
            for child in family.children:
                result = update_matching(
                    self.spark, self.silver_uri(child.name), moved,
                    _matched(family.mapping(child), old_parts, family.part),
                    {part: "s._new_part"},
                )
                self.run.wrote(child.name, result.version)
            self.run.details["partition_moves"] = moved.count()
        moved.unpersist()

    def apply_deletes(self, family: _Family, deletes: DataFrame) -> None:
        """Remove the versions of the family's rows and children the drop's deletions cover.

        A child newer than the deletion survives it, but when its parent goes it has no
        parent left: it is parked as an orphan, exactly as if the deletion had come first,
        so the result does not depend on the order in which the drops are processed.
        """
        from pyspark.sql import functions as F

        # Per deletion: the stored row's partition and whether the DELETE below removes it
        # (it is not newer). Materialised: that DELETE rewrites the table read here.
        looked_up = deletes.join(self.lookup(family, deletes), family.key, "left").select(
            *family.key, "_tomb_ds", "_old_part", F.col("_old_ds").isNotNull().alias("_known"),
            (F.col("_old_ds") <= F.col("_tomb_ds")).alias("_gone"),
        ).localCheckpoint(eager=True)
        stats = looked_up.groupBy("_old_part", "_known", "_gone").count().collect()
        self.run.details["deletes_unknown_key"] = sum(
            r["count"] for r in stats if not r["_known"])
        if not any(r["_known"] for r in stats):
            return
        parts = sorted({r["_old_part"] for r in stats if r["_known"]},
                       key=lambda p: (p is None, p))
        if any(r["_gone"] for r in stats) and family.children:
            self.run.details["orphaned_by_delete"] = self.park_orphaned_by_delete(
                family, looked_up, parts)
        # Children first: a re-run after a crash between the DELETEs finds the parent (and
        # its partition) still there. The other way round it would find no parent and leave
        # its children in silver for good.
        targets = [(c.name, family.mapping(c), "t._ds <= s._tomb_ds OR s._gone")
                   for c in family.children]
        targets.append((family.name, [(k, k) for k in family.key], "t._ds <= s._tomb_ds"))
        for name, pairs, condition in targets:
            result = delete_matching(
                self.spark, self.silver_uri(name), looked_up,
                _matched(pairs, parts, family.part), condition)
            self.run.wrote(name, result.version)
            self.run.details.setdefault("deleted_rows", {})[name] = result.metrics.get(
                "num_deleted_rows", 0)

    def park_orphaned_by_delete(self, family: _Family, gone: DataFrame,
                                parts: list[Any]) -> int:
        """Park stored children newer than the deletion of their parent as orphans.

        Their raw lines come from bronze; they are written to ``quarantine/<child>`` under
        their own ``_ds`` before the DELETE removes them from silver (a crash in between
        leaves a line in both places for a moment, never in neither), and every later run
        retries them like any orphan.

        :param gone: the drop's deletions: the key, ``_tomb_ds`` and ``_gone`` (the stored
            row is not newer than its deletion).
        :param parts: the partitions of those rows.
        :return: the children newly parked.
        """
        from pyspark.sql import functions as F

        total = 0
        for child in family.children:
            mapping = family.mapping(child)
            stored = self.read_silver(child.name)
            if family.part is not None:
                stored = stored.where(F.col(family.part).isin(parts))
            orphaned = (
                stored.join(gone.where("_gone").select(*[F.col(p).alias(c) for c, p in mapping],
                                                       "_tomb_ds"), [c for c, _ in mapping])
                .where(F.col("_ds") > F.col("_tomb_ds"))
                .select(*LINEAGE)
            )
            total += self.park_lines(child, orphaned)
        return total

    def park_lines(self, child: Table, orphaned: DataFrame) -> int:
        """Park child rows (their lineage: ``_ds``, ``_source_file``, ``_line_number``) in
        ``quarantine/<child>`` as orphans, with their raw lines from bronze.

        :return: the rows newly parked.
        """
        from pyspark.sql import functions as F

        ds_list = sorted({r[0] for r in orphaned.select("_ds").distinct().collect()})
        if not ds_list:
            return 0
        bronze = self.spark.read.format("delta").load(
            self.ctx.lake.table("bronze", child.name)).where(F.col("_ds").isin(ds_list))
        rows = orphaned.join(bronze, LINEAGE).select(
            F.col("value").alias("raw"), *LINEAGE,
            F.array(F.lit(orphan_reason(child.name))).alias("reasons"))
        uri = self.ctx.lake.table("quarantine", child.name)
        ensure_table(self.spark, uri, quarantine_schema(), ["_ds"])
        result = merge_rows(self.spark, uri, rows, LINEAGE,
                            partition_predicate=f"t._ds IN {sql_in(ds_list)}")
        self.run.wrote(f"quarantine/{child.name}", result.version)
        return result.metrics.get("num_inserted_rows", 0)

    def parked_orphans(self, child: Table) -> DataFrame | None:
        """Child rows parked in quarantine as orphans by other drops."""
        from pyspark.sql import functions as F

        uri = self.ctx.lake.table("quarantine", child.name)
        if not is_delta_table(self.spark, uri):
            return None
        parked = (
            self.spark.read.format("delta").load(uri)
            .where(F.array_contains("reasons", orphan_reason(child.name))
                   & (F.col("_ds") != F.lit(self.ctx.ds_str).cast("date")))
            .select(F.col("raw").alias("value"), "_ds", "_source_file", "_line_number")
        )
        return parked

    def child(self, family: _Family, child: Table) -> None:
        """A child table: parent lookup first, so parent rules and orphans are decided per
        row.

        Parent-dependent rules (conditions on ``parent.<column>``) run before duplicate
        and conflict detection, so an invalid copy of a good row is quarantined for its
        rule and the good row stays. Orphans parked by earlier drops are re-tried with this
        drop's rows; each keeps its own ``_ds`` and lineage.
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        mapping = family.mapping(child)
        child_cols = [c for c, _ in mapping]
        early = [e for e in child.expectations if e.scope == "row" and not e.needs_parent]
        parent_checks = [
            Expectation(e.name, f"{PARENT} IS NULL OR ({e.condition})", e.action)
            for e in child.expectations if e.scope == "row" and e.needs_parent
        ]
        parts = []
        lines = self.bronze(child.name)
        if lines is not None:
            parts.append(with_expectations(parse_lines(lines, child), early)
                         .withColumn("_parked", F.lit(False)))
        parked_lines = self.parked_orphans(child)
        if parked_lines is not None:
            parts.append(with_expectations(parse_lines(parked_lines, child), early)
                         .withColumn("_parked", F.lit(True)))
        if not parts:
            return
        union = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        stored = self.read_silver(family.name)
        parent_cols = family.table.column_names
        parents = stored.select(
            *[F.col(p).alias(c) for c, p in mapping],
            F.struct(*[F.col(c) for c in parent_cols]).alias(PARENT),
            *([F.col(family.part)] if family.part else []))
        tomb = self.tombstone_ds(family).select(*[F.col(p).alias(c) for c, p in mapping],
                                                "_tomb_ds")
        looked_up = with_expectations(
            union.join(parents, child_cols, "left").join(tomb, child_cols, "left"),
            parent_checks,
        )
        # Duplicates and conflicts are decided within one drop: partition by key and _ds.
        staged = with_drop_dedup(looked_up, [*child.key, "_ds"])
        clean = ~F.col("_is_duplicate") & (F.size("_reasons") == 0)
        deleted = F.coalesce(F.col("_tomb_ds") >= F.col("_ds"), F.lit(False))
        has_parent = F.col(PARENT).isNotNull()
        orphan = clean & ~has_parent & ~deleted
        staged = (
            staged.withColumn("_deleted", clean & deleted)
            .withColumn("_reasons", F.when(orphan, F.array(F.lit(orphan_reason(child.name))))
                        .otherwise(F.col("_reasons")))
            .withColumn("_applicable", clean & ~deleted & has_parent)
        )
        # Rank only among applicable rows: an invalid copy must never outrank them.
        newest = Window.partitionBy(*child.key).orderBy(
            F.col("_applicable").desc(), F.col("_ds").desc())
        # Eagerly materialised: the writes below change the quarantine table this plan
        # reads, and Spark would otherwise re-read it (without the released orphans).
        staged = staged.withColumn(
            "_rank", F.when(F.col("_applicable"), F.row_number().over(newest))
        ).localCheckpoint(eager=True)
        own = staged.where(~F.col("_parked"))
        counts = self.account(child.name, own) if lines is not None else {}
        if lines is not None:
            self.drop_expectations(child.name, own.where(
                ~F.col("_is_duplicate") & (F.size("_reasons") == 0)))
        rejected = own.where(~F.col("_is_duplicate") & (F.size("_reasons") > 0))
        n_q = self.write_quarantine(child.name, rejected, counts.get("*rejected", 0))
        self.run.count("quarantined", child.name, n_q)
        self.record_expectations(child.name, list(parent_checks), counts)
        self.run.details.setdefault("superseded_by_delete", {})[child.name] = (
            own.where(F.col("_deleted")).count())
        source = (
            staged.where(F.col("_rank") == 1)
            .withColumn("_row_hash", F.xxhash64(*[F.col(c) for c in child.column_names]))
            .select(*silver_columns(child))
        )
        if family.part is None:
            if source.limit(1).count():
                result = merge_latest(self.spark, self.silver_uri(child.name), source,
                                      child.key)
                self.note_merge(child.name, result.version, result.metrics)
        else:
            found = sorted({r[0] for r in source.select(family.part).distinct().collect()})
            if found:
                self.touched[child.name] = [str(p) for p in found]
                result = merge_latest(self.spark, self.silver_uri(child.name), source,
                                      child.key, family.in_parts(found))
                self.note_merge(child.name, result.version, result.metrics)
        # Only now do resolved orphans leave quarantine (applied, superseded, deleted, or
        # kept under their own drop with a new reason): a crash in between leaves a row
        # in both places for a moment, never in neither.
        self.update_parked(child, staged)

    def update_parked(self, child: Table, staged: DataFrame) -> None:
        from pyspark.sql import functions as F

        resolved = staged.where(
            F.col("_parked") & ~F.col("_is_duplicate")
            & ~F.array_contains("_reasons", orphan_reason(child.name))
        ).select(
            "_ds", "_source_file", "_line_number",
            F.when(F.size("_reasons") > 0, F.col("_reasons")).alias("_new_reasons"),
        ).cache()
        ds_list = sorted({r[0] for r in resolved.select("_ds").distinct().collect()})
        if ds_list:
            uri = self.ctx.lake.table("quarantine", child.name)
            result = merge_rows(
                self.spark, uri, resolved, ["_ds", "_source_file", "_line_number"],
                update_condition="s._new_reasons IS NOT NULL",
                delete_condition="s._new_reasons IS NULL",
                partition_predicate=f"t._ds IN {sql_in(ds_list)}",
                insert=False,
            )
            self.run.wrote(f"quarantine/{child.name}", result.version)
            self.run.details["orphans_released"] = self.run.details.get(
                "orphans_released", 0) + result.metrics.get("num_deleted_rows", 0)
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


def _plain_tables_first(catalog: Catalog, present: set[str]) -> bool:
    """Whether a fail-level expectation of a plain (non-family) table in the drop could
    stop the run.

    Such a failure must stop the step before any family is merged, so the plain tables
    then go first; without one, they run beside the families.
    """
    plain = (*catalog.latest_tables, *catalog.scd2_tables)
    return any(e.action == "fail" for name in plain if name in present
               for e in catalog.expectations(name))


def run(ctx: StepContext) -> bool:
    """Process the run date's bronze lines into silver and quarantine.

    :param ctx: step context.
    :return: ``False`` when there was nothing to do (input unchanged since the last
        successful run), ``True`` otherwise.
    :raises DropNotReadyError: when the drop has not been ingested.
    """
    catalog = ctx.catalog
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
    plain: dict[str, Callable[[], None]] = {
        name: partial(work.latest, name) for name in catalog.latest_tables}
    for name in catalog.scd2_tables:
        plain[name] = partial(work.settled, name, (f"silver/{name}",
                                                   f"silver/{snapshots_table(name)}"),
                              (name,), partial(work.scd2, name))
    groups: dict[str, Callable[[], object]] = {}
    if plain:
        groups["dimensions"] = partial(_timed, run_, "dimensions", partial(run_parallel, plain))
    for name in catalog.families:
        family = _Family.of(catalog, name)
        groups[name] = partial(work.settled, name, family.section, family.counted,
                               partial(work.family_section, family),
                               partial(work.repair, family), FAMILY_DETAILS)
    with commit_tag(ctx.spark, work.tag):
        try:
            # A table the drop did not bring still has its drop expectations judged.
            for name in (*catalog.tables, *catalog.delete_feeds):
                if name not in present:
                    work.drop_expectations(name, None)
            if _plain_tables_first(catalog, present):
                for group in groups.values():
                    group()
            else:
                # Plain tables and families write different tables and read nothing of
                # each other: they run side by side, which keeps both cores busy on small
                # drops.
                run_parallel(groups)
        except QualityGateError as exc:
            record_dq(run_, work.dq)
            run_.write("failed", str(exc))
            raise
        record_dq(run_, work.dq)
        run_.details["touched_partitions"] = work.touched
        run_.write("succeeded")
    log.info("silver %s: written %s quarantined %s duplicates %s", ctx.ds, run_.rows_written,
             run_.rows_quarantined, run_.rows_duplicate)
    return True
