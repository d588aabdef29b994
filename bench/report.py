"""Write docs/benchmarks.md and its PNG plots from one benchmark run's results.

The document holds the latest figures and a fixed notes section on how to read them;
everything in it is regenerated on every run, so nothing written by hand survives one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import PARTITIONED

__all__ = ["NOTES", "write_report"]

STEPS = ("ingest", "silver", "gold", "quality")
# Delta MERGE metrics reported per daily run (summed over the run's commits to the table).
# (Delta 4.0's MERGE reports no count of files scanned; scanTimeMs is the time it took.)
MERGE_METRICS = ("numSourceRows", "numTargetFilesRemoved", "numTargetFilesAdded",
                 "numTargetRowsCopied", "numTargetRowsInserted", "numTargetRowsUpdated",
                 "numTargetRowsDeleted", "numTargetBytesRemoved", "scanTimeMs", "rewriteTimeMs")
# Counted by bench/probe.py: the files of the target before the MERGE, and those it read.
SCAN_METRICS = ("files_before", "files_read")
# How to read the figures: the same for every run, so written here, not by hand.
NOTES = """\
## Notes

- **Reading the figures.** A wall time is one run of one command, `spark-submit` (JVM and
  Spark session start) included; peak memory is the largest resident set of the command's
  whole process tree, each process counted once. Step times are the pipeline's own, from
  its ledger (`ops/runs`); MERGE metrics are from the silver tables' Delta history.
- **The plain-PySpark floor** (`bench/baseline_spark.py`) does the pipeline's work on the
  same `.tbl` files without its guarantees: Spark's CSV reader with the TPC-H schema, the
  same row-level expectations, one row per key, the same two gold marts, written as
  Parquet. No Delta, bronze, quarantine, lineage or ledger. The ratio to it is what the
  guarantees cost.
- **DuckDB** (`bench/baseline_duckdb.py`) does the floor's work in one process: the same
  typing rules and expectations in SQL, Parquet out. The ratio to it is what a distributed
  engine costs on data that fits one machine. All three gold results are compared above.
- **The machine.** The header names it: two cores, shared with other work. Absolute times
  on it vary between runs by up to about two times with that load, so compare ratios
  within one run (pipeline against floor, 365 days against 7 days, Airflow against the
  same command by hand), not absolute times across runs or machines.
- **The scale run** (`python -m bench --scale-sf 10`) is measured on its own and kept in
  `docs/bench/scale.json`; every regeneration includes its latest result.
"""


def _step_seconds(lake: dict[str, Any]) -> dict[str, dict[str, float]]:
    """ds -> step -> seconds of its succeeded run (the last one)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for run in lake["runs"]:
        if run["status"] == "succeeded" and run["seconds"] is not None:
            out[run["ds"]][run["step"]] = run["seconds"]
    return out


def _merge_metrics(lake: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """ds -> table -> MERGE metrics summed over the commits of that ds's silver run."""
    ds_versions = {run["ds"]: run["versions"] for run in lake.get("silver_versions", [])}
    out: dict[str, dict[str, dict[str, int]]] = {}
    for table, history in lake["history"].items():
        previous = -1
        for ds in sorted(ds_versions):
            version = ds_versions[ds].get(table)
            if version is None:
                continue
            sums: dict[str, int] = defaultdict(int)
            for commit in history:
                if previous < commit["version"] <= version and commit["operation"] == "MERGE":
                    for key in (*MERGE_METRICS, *SCAN_METRICS):
                        if key in commit["metrics"]:
                            sums[key] += int(commit["metrics"][key])
            out.setdefault(ds, {})[table] = dict(sums)
            previous = version
    return out


def _plot(path: Path, title: str, labels: list[str], series: dict[str, list[float]],
          ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    bottom = [0.0] * len(labels)
    for name, values in series.items():
        ax.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for i, total in enumerate(bottom):
        ax.annotate(f"{total:.1f}", (i, total), ha="center", va="bottom", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_report(results: dict[str, Any], out: Path) -> None:
    """Regenerate ``out`` (and its plots under ``docs/bench/``) from ``results``."""
    images = out.parent / "bench"
    sf = results["sf"]
    initial = results["initial"]
    pipeline = initial["pipeline all (initial load)"]
    floor = initial["plain PySpark floor"]
    duck = initial["DuckDB"]
    lines = results["initial_lines"]
    session = results["session_start_s"]
    noop = results["noop"]

    _plot(images / f"initial_sf{sf}.png", f"Initial load, SF {sf}: wall time",
          ["pipeline (Delta)", "plain PySpark", "DuckDB"],
          {"wall s": [pipeline["wall_s"], floor["wall_s"], duck["wall_s"]]}, "seconds")
    steps = _step_seconds(results["lake"])
    daily = results["daily"]
    _plot(images / f"daily_sf{sf}.png", f"Daily drops after the SF {sf} initial load",
          [d["ds"] for d in daily],
          {step: [steps.get(d["ds"], {}).get(step, 0.0) for d in daily] for step in STEPS},
          "seconds per step (ledger)")

    merges = _merge_metrics(results["lake"])

    m, v = results["machine"], results["versions"]
    saved = images / f"results_sf{sf}.json"
    source = (f"`python -m bench --render` regenerates it from the saved results, "
              f"`docs/bench/{saved.name}`." if saved.exists()
              else f"the raw results are in `.cache/bench/sf{sf}/results.json`.")
    doc = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench`, SF {sf}) from measurements taken on "
        f"{results['date']}. Re-running it measures again and regenerates this file; "
        + source,
        "",
        f"Machine: {_machine(m)}, {m['os']}. "
        f"Python {v['python']}, PySpark {v['pyspark']}, Delta {v['delta']}, DuckDB "
        f"{v['duckdb']}, {v['java']}.",
        "",
        "## Initial load",
        "",
        f"The initial drop: {lines:,} landed lines. Every figure is one run's wall time "
        "(`spark-submit` included) and the peak resident memory of its whole process tree "
        "(JVM and Python).",
        "",
        "| run | wall | lines/s | peak memory | vs DuckDB | vs floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in (("pipeline: `all` (bronze, silver, gold, quality; Delta)", pipeline),
                     ("plain PySpark floor (`bench/baseline_spark.py`)", floor),
                     ("DuckDB (`bench/baseline_duckdb.py`)", duck)):
        doc.append(f"| {label} | {r['wall_s']:.1f} s | {lines / r['wall_s']:,.0f} | "
                   f"{r['peak_rss_mb']:,.0f} MiB | {r['wall_s'] / duck['wall_s']:.1f} | "
                   f"{r['wall_s'] / floor['wall_s']:.2f} |")
    totals = results["gold_totals"]
    same = len({json.dumps(t, sort_keys=True) for t in totals.values()}) == 1
    doc += [
        "",
        "Same work, same answer: both marts' row counts and totals (revenue and orders per "
        "nation and day; charge and lines per ship date) are "
        + ("**equal** in all three." if same else "**not equal**: "
           + "; ".join(f"{k}: {v}" for k, v in totals.items())),
        "",
        f"![initial load](bench/initial_sf{sf}.png)",
        "",
        "Goals: the pipeline within 1.5 times the floor; below 10 times DuckDB (a first "
        "milestone).",
        "",
        "## No-op re-run",
        "",
        f"`all` for the initial `ds` again: {noop['wall_s']:.1f} s, that is "
        f"{noop['wall_s'] - session:+.1f} s against the median session start of "
        f"{session:.1f} s (`spark-submit` of a one-query script). It ran {noop['jobs']} Spark "
        f"jobs, {noop['data_jobs']} of them not Delta log replay (reads of the ledger). "
        "Goal: at most session start + 3 s and no data jobs.",
        "",
        "## Daily drops",
        "",
        "| ds | lines | wall | " + " | ".join(STEPS) + " |",
        "|---|---:|---:|" + "---:|" * len(STEPS),
    ]
    for d in daily:
        per = steps.get(d["ds"], {})
        doc.append(f"| {d['ds']} | {d['lines']:,} | {d['wall_s']:.1f} s | "
                   + " | ".join(f"{per.get(s, 0.0):.1f} s" for s in STEPS) + " |")
    doc += ["", f"![daily drops](bench/daily_sf{sf}.png)", ""]
    if merges:
        doc += ["MERGE metrics of the silver tables per daily run (summed over its commits):",
                "", "| ds | table | " + " | ".join(MERGE_METRICS) + " |",
                "|---|---|" + "---:|" * len(MERGE_METRICS)]
        for ds, tables in sorted(merges.items()):
            for table, metrics in sorted(tables.items()):
                doc.append(f"| {ds} | {table} | "
                           + " | ".join(str(metrics.get(k, "")) for k in MERGE_METRICS) + " |")
        doc.append("")
    if "history" in results:
        doc += _history(results, images)
    if "airflow" in results:
        doc += _airflow(results["airflow"], session)
    scale = out.parent / "bench" / "scale.json"
    if scale.exists():
        doc += _scale(json.loads(scale.read_text()))
    out.write_text("\n".join(doc) + "\n" + NOTES)


def _history_row(label: str, ds: str, wall: float, lake: dict[str, Any]) -> dict[str, Any]:
    steps = _step_seconds(lake).get(ds, {})
    merges = _merge_metrics(lake).get(ds, {})
    return {"label": label, "wall": wall, "steps": steps, "merges": merges}


def _history(results: dict[str, Any], images: Path) -> list[str]:
    import datetime as dt

    drop = results["history_drop"]
    ds = drop["ds"]
    full_days = (dt.date.fromisoformat(ds) - dt.date(1992, 1, 1)).days
    rows = [_history_row(f"{h['days']} days", ds, h["daily"]["wall_s"], h["lake"])
            for h in results["history"]]
    rows.append(_history_row(f"all ({full_days:,} days)", ds, results["daily"][0]["wall_s"],
                             results["lake"]))
    control = _history_row(f"all ({full_days:,} days), control: no partition predicates", ds,
                           results["control"]["wall_s"], results["control"]["lake"])
    doc = [
        "## Daily cost against history",
        "",
        f"One daily drop, `{ds}`, on lakes whose silver tables hold the last N days of "
        f"orders (`bench/history.py`): {drop['new_orders']:,} new orders with "
        f"{drop['new_lines']:,} line items, {drop['updated_orders']} updates of orders from "
        f"the last seven days and {drop['late_lines']} late line items of such orders. Each "
        "lake is built with `all` on an initial load of those N days; the last row is the "
        "main lake (every order since 1992). Wall is the whole `all` run (`spark-submit` "
        "included); the steps are the ledger's. Files read is what the orders and line-item "
        "MERGEs read against the files their tables held (counted from the snapshot before "
        "each MERGE and its literal partition predicate: Delta 4.0 records no such count).",
        "",
        "| silver history | wall | " + " | ".join(STEPS)
        + " | files read (orders + lineitem) | files rewritten | rows copied |",
        "|---|---:|" + "---:|" * len(STEPS) + "---:|---:|---:|",
    ]
    for row in [*rows, control]:
        merged = [row["merges"].get(t, {}) for t in PARTITIONED]
        read = sum(m.get("files_read", 0) for m in merged)
        before = sum(m.get("files_before", 0) for m in merged)
        rewritten = sum(m.get("numTargetFilesRemoved", 0) for m in merged)
        copied = sum(m.get("numTargetRowsCopied", 0) for m in merged)
        doc.append(f"| {row['label']} | {row['wall']:.1f} s | "
                   + " | ".join(f"{row['steps'].get(s, 0.0):.1f} s" for s in STEPS)
                   + f" | {read} of {before} | {rewritten} | {copied:,} |")
    first, last = rows[0], rows[-2] if len(rows) > 2 else rows[-1]
    doc += [
        "",
        f"{last['label']} against {first['label']}: {last['wall'] / first['wall']:.2f} times "
        "the wall time, silver "
        f"{last['steps'].get('silver', 0) / max(first['steps'].get('silver', 0), 1e-9):.2f} "
        "times. Goal: the 365-day case within 1.2 times the 7-day case, and constant files "
        "rewritten per run.",
        "",
        f"![daily cost against history](bench/history_sf{results['sf']}.png)",
        "",
    ]
    _plot(images / f"history_sf{results['sf']}.png", f"Drop {ds} against silver history",
          [r["label"].split(",")[0].replace(" days)", "d)") for r in rows] + ["control"],
          {step: [r["steps"].get(step, 0.0) for r in [*rows, control]] for step in STEPS},
          "seconds per step (ledger)")
    return doc


def _airflow(found: dict[str, Any], session: float) -> list[str]:
    def sec(value: float | None, sign: str = "") -> str:
        return "" if value is None else f"{value:{sign}.1f} s"

    doc = [
        "## Airflow overhead per task",
        "",
        f"`tpch_daily` for `{found['ds']}` through `dag.test()` (`bench/airflow_overhead.py`, "
        "what `make dag-test` runs) on a lake that has processed that drop, so every Spark "
        "task is a no-op re-run; each against the same `spark-submit` run by hand. "
        "`dag.test()` runs the tasks inside its own process: a deployment's executor also "
        "starts a process and parses the DAG per task, which is not in these figures.",
        "",
        "| task | state | tries | in Airflow (last try) | by hand | overhead |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task in found["tasks"]:
        doc.append(f"| {task['task_id']} | {task['state']} | {task.get('tries', '')} | "
                   f"{sec(task['airflow_s'])} | "
                   f"{sec(task.get('direct_s'))} | {sec(task.get('overhead_s'), '+')} |")
    doc += ["", f"The DAG run took {sec(found['dag_run_s'])} ({sec(found['between_tasks_s'])} "
                f"of it between tasks); the median overhead per Spark task is "
                f"{sec(found['median_overhead_s'], '+')}, against a session start of "
                f"{session:.1f} s.", ""]
    return doc


def _machine(m: dict[str, Any]) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM"


def _scale(found: dict[str, Any]) -> list[str]:
    gib = found["peak_rss_mb"] / 1024
    return [
        f"## Scale: SF {found['sf']}",
        "",
        f"`python -m bench --scale-sf {found['sf']}`, measured on {found['date']}"
        + (f" on {_machine(found['machine'])}" if found.get("machine") else "")
        + "; not part of the default run, which it would take well past 30 minutes. "
        "The initial load of "
        f"{found['lines']:,} lines through `all` "
        + ("completed" if found["returncode"] == 0 else f"failed (exit {found['returncode']})")
        + f" in {found['wall_s']:.0f} s ({found['lines'] / found['wall_s']:,.0f} lines/s), "
        f"peak memory {gib:.1f} GiB (process tree), {found['jobs']:,} Spark jobs; Spark spilled "
        f"{found['spilled_disk_bytes'] / 2**30:.1f} GiB to disk "
        f"({found['spilled_memory_bytes'] / 2**30:.1f} GiB in memory). The lake takes "
        f"{found['lake_bytes'] / 2**30:.1f} GiB; generating the data took "
        f"{found['generate_s']:.0f} s. Code: `{found.get('commit', '?')}`.",
        "",
        *([found["notes"], ""] if found.get("notes") else []),
    ]
