"""The run summary printed by ``make demo``: rows per layer, quarantine, quality."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.delta_io import is_delta_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.catalog import Catalog
    from jobs.lake import Lake

__all__ = ["layer_counts", "quarantine_by_reason", "render_summary"]


def layer_counts(spark: SparkSession, lake: Lake,
                 catalog: Catalog) -> dict[str, dict[str, int]]:
    """Row counts per layer and table (an SCD2 table: all its versions)."""
    layers = {"bronze": catalog.bronze_tables, "silver": tuple(catalog.tables),
              "quarantine": catalog.bronze_tables, "gold": tuple(catalog.marts)}
    out: dict[str, dict[str, int]] = {}
    for layer, names in layers.items():
        for name in names:
            uri = lake.table(layer, name)
            if is_delta_table(spark, uri):
                out.setdefault(layer, {})[name] = spark.read.format("delta").load(uri).count()
    return out


def quarantine_by_reason(spark: SparkSession, lake: Lake,
                         catalog: Catalog) -> list[tuple[str, str, int]]:
    """``(table, reason, rows)`` over every quarantine table, most frequent first."""
    from pyspark.sql import functions as F

    rows: list[tuple[str, str, int]] = []
    for name in catalog.bronze_tables:
        uri = lake.table("quarantine", name)
        if not is_delta_table(spark, uri):
            continue
        for r in (spark.read.format("delta").load(uri)
                  .select(F.explode("reasons").alias("reason")).groupBy("reason").count()
                  .collect()):
            rows.append((name, r["reason"], int(r["count"])))
    return sorted(rows, key=lambda t: (-t[2], t[0], t[1]))


def render_summary(spark: SparkSession, lake: Lake, catalog: Catalog) -> str:
    """Render the summary of one pipeline's lake as text."""
    from pyspark.sql import functions as F

    lines = [f"Pipeline: {catalog.name}", f"Lake: {lake.root}", "", "Rows per layer:"]
    counts = layer_counts(spark, lake, catalog)
    for layer, tables in counts.items():
        cells = ", ".join(f"{t}={n:,}" for t, n in tables.items())
        lines.append(f"  {layer:<10} {cells}")
    lines += ["", "Quarantined rows by reason:"]
    reasons = quarantine_by_reason(spark, lake, catalog)
    lines += [f"  {t:<14} {reason:<34} {n:>6}" for t, reason, n in reasons] or ["  (none)"]
    dq_uri = lake.table("ops", "dq_results")
    lines += ["", "Quality results (all runs):"]
    if is_delta_table(spark, dq_uri):
        results = (
            spark.read.format("delta").load(dq_uri)
            .groupBy("action", "outcome").agg(F.count(F.lit(1)).alias("n"))
            .orderBy("action", "outcome").collect()
        )
        lines += [f"  {r['action']:<5} {r['outcome']:<8} {r['n']:>5}" for r in results]
        failed = (
            spark.read.format("delta").load(dq_uri)
            .where(F.col("outcome").isin("failed", "dropped", "warned"))
            .groupBy("table", "expectation", "outcome").agg(F.sum("failed_rows").alias("rows"))
            .orderBy("table", "expectation").collect()
        )
        lines += [f"    {r['table']:<20} {r['expectation']:<34} {r['outcome']:<8} {r['rows']:>6}"
                  for r in failed]
    runs_uri = lake.table("ops", "runs")
    if is_delta_table(spark, runs_uri):
        lines += ["", "Step runs:"]
        for r in (spark.read.format("delta").load(runs_uri)
                  .groupBy("step", "status").agg(F.count(F.lit(1)).alias("n"))
                  .orderBy("step", "status").collect()):
            lines.append(f"  {r['step']:<9} {r['status']:<12} {r['n']:>4}")
    lines += ["", "Tables: " + ", ".join(f"{lake.root}/{layer}/" for layer in counts)]
    return "\n".join(lines)
