"""Helpers that run under ``spark-submit`` for the benchmark.

    spark-submit bench/probe.py session            # start a session, run one query
    spark-submit bench/probe.py lake OUT.json NAME=LAKE...  # ledger rows, MERGE metrics and
                                                           # files read, per lake
    spark-submit bench/probe.py gold OUT.json NAME=LOCATION...  # the marts' totals, per source
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import MERGED, PARTITIONED

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def session() -> None:
    from pyspark.sql import SparkSession

    start = time.perf_counter()
    spark = SparkSession.builder.getOrCreate()
    spark.sql("SELECT 1").collect()
    print(json.dumps({"session_s": time.perf_counter() - start}))


def _month(file: str) -> str | None:
    found = re.search(r"_order_month=(\d{4}-\d{2}-\d{2})", file)
    return found.group(1) if found else None


def files_read(spark: Any, path: str, version: int, predicate: str | None) -> dict[str, int]:
    """Files a MERGE at ``version`` read: those of the partitions its condition names.

    Delta 4.0 records no count of the files a MERGE scanned, so it is counted here: the
    table's files before the MERGE (``version - 1``), and those in the ``_order_month``
    values of the MERGE's literal predicate (all of them when it has none).
    """
    files = spark.read.format("delta").option("versionAsOf", version - 1).load(path).inputFiles()
    months = set(_DATE.findall(predicate or "")) if "_order_month" in (predicate or "") else None
    read = [f for f in files if months is None or _month(f) in months]
    return {"files_before": len(files), "files_read": len(read)}


def lake(spark: Any, root: str) -> dict[str, Any]:
    from delta.tables import DeltaTable

    ledger = spark.read.format("delta").load(f"{root}/ops/runs").collect()
    runs = [
        {"step": r["step"], "ds": r["ds"].isoformat(), "status": r["status"],
         "seconds": (r["ended_at"] - r["started_at"]).total_seconds() if r["ended_at"] else None}
        for r in ledger
    ]
    # The Delta versions each drop's silver run committed, to find its MERGEs in history.
    silver_versions = [{"ds": r["ds"].isoformat(), "versions": dict(r["delta_versions"] or {})}
                       for r in ledger if r["step"] == "silver" and r["status"] == "succeeded"]
    history = {}
    for name in MERGED:
        rows = DeltaTable.forPath(spark, f"{root}/silver/{name}").history().collect()
        history[name] = [
            {"version": r["version"], "operation": r["operation"],
             "predicate": (r["operationParameters"] or {}).get("predicate"),
             "metrics": dict(r["operationMetrics"] or {})}
            for r in rows
        ]
        if name in PARTITIONED:
            for commit in history[name]:
                if commit["operation"] == "MERGE" and commit["version"] > 1:
                    commit["metrics"] |= files_read(spark, f"{root}/silver/{name}",
                                                    commit["version"], commit["predicate"])
    return {"runs": runs, "history": history, "silver_versions": silver_versions}


def lakes(out: str, sources: list[str]) -> None:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    found = {}
    for source in sources:
        name, root = source.split("=", 1)
        found[name] = lake(spark, root)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(found, f)


def gold(out: str, sources: list[str]) -> None:
    """Totals of both marts for each ``NAME=LOCATION`` (a lake, or a baseline's Parquet)."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.getOrCreate()
    totals = {}
    for source in sources:
        name, location = source.split("=", 1)
        is_lake = Path(location, "_delta_log").exists() or Path(location, "gold").joinpath(
            "revenue_by_nation", "_delta_log").exists()

        def mart(mart: str, location: str = location, is_lake: bool = is_lake) -> Any:
            path = f"{location}/gold/{mart}"
            if is_lake:
                return spark.read.format("delta").load(path)
            return spark.read.parquet(path if Path(path).is_dir() else f"{path}.parquet")

        revenue = mart("revenue_by_nation").agg(
            F.count(F.lit(1)).alias("rows"), F.sum("revenue").alias("revenue"),
            F.sum("order_count").alias("orders")).first()
        summary = mart("daily_line_summary").agg(
            F.count(F.lit(1)).alias("rows"), F.sum("sum_charge").alias("charge"),
            F.sum("count_order").alias("lines")).first()
        assert revenue is not None and summary is not None
        totals[name] = {"revenue_by_nation": [revenue["rows"], str(revenue["revenue"]),
                                              revenue["orders"]],
                        "daily_line_summary": [summary["rows"], str(summary["charge"]),
                                               summary["lines"]]}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(totals, f)


if __name__ == "__main__":
    if sys.argv[1] == "session":
        session()
    elif sys.argv[1] == "gold":
        gold(sys.argv[2], sys.argv[3:])
    else:
        lakes(sys.argv[2], sys.argv[3:])
