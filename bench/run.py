"""``make bench``: measure the pipeline beside its baselines and write docs/benchmarks.md.

    python -m bench [--quick] [--sf SF] [--days N] [--history 7,30,90,365] [--work DIR]
                    [--out FILE]
    python -m bench --scale-sf 10     # only the scale run, kept in docs/bench/scale.json
    python -m bench --render [--sf SF]  # only the document, from the last run's saved results

One invocation generates the data with the project's generator and measures, on this
machine, in this order (the sections of :data:`SECTIONS`, which the progress lines on
standard error count):

1. Generating the data, and the landings of the daily-cost comparison (``bench/history.py``).
2. Spark session start (``spark-submit`` of a one-query script, median of three).
3. The initial load: ``spark-submit jobs/main.py all`` on a fresh lake (wall time, rows per
   second, peak memory of the whole process tree), beside the plain-PySpark floor and
   DuckDB doing the same work on the same ``.tbl`` files.
4. A no-op re-run of the initial ``ds``: wall time beyond session start, and the Spark
   jobs it ran (from its event log).
5. The daily drops after it, one ``all`` each: wall time, time per step (from the ledger)
   and the MERGE metrics of the silver tables (from their Delta history). The first one
   carries updates of recent orders and late line items (``bench/history.py``).
6. The control: that first drop again, on a copy of the lake from before it, with the
   MERGEs' literal partition predicates turned off.
7. Daily cost against history: the same first drop on lakes whose silver holds only the
   last 7, 30, 90 and 365 days of orders (each built with ``all`` on such an initial load).
8. Airflow's overhead per task: ``tpch_daily`` through ``dag.test()`` against the same
   ``spark-submit`` runs by hand (``bench/airflow_overhead.py``).
9. The lakes' ledgers and Delta histories (``bench/probe.py``), then the document.

Every run is a subprocess with the environment of a developer's ``spark-submit``
(:mod:`bench.common`); the document, its tables and its PNG plots are regenerated from the
results, which are also kept as JSON next to the plots (``docs/bench/results_sf<SF>.json``).
The SF 10 scale run takes over an hour on two cores, so it is a separate invocation whose
result the document keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import airflow_overhead, history
from bench.common import (
    ROOT,
    Progress,
    env,
    event_log,
    generate,
    job,
    landed_lines,
    machine,
    size,
    spark_jobs,
    spark_submit,
    versions,
)
from bench.report import write_report
from jobs.delta_io import PARTITION_PREDICATES_CONF

__all__ = ["HISTORY_DAYS", "SCALE_SECTIONS", "SECTIONS", "main", "scale"]

# History lengths (days) for the daily-cost comparison; the main lake holds all of it.
HISTORY_DAYS = (7, 30, 90, 365)
# The sections of one run, in the order they run (the progress lines count them).
SECTIONS = ("generate data", "session start", "initial load", "no-op re-run", "daily drops",
            "control", "daily cost against history", "airflow overhead", "lake probe and report")
SCALE_SECTIONS = ("generate data", "initial load", "write result")


def scale(sf: str, work_root: Path, out: Path, progress: Progress | None = None) -> int:
    """The initial load at a large scale factor: does it complete, how long, how much memory.

    :param sf: the scale factor.
    :param work_root: scratch folder (``<work_root>/sf<sf>``).
    :param out: the benchmark document; the result goes to ``bench/scale.json`` beside it.
    :param progress: prints where the run is (:data:`SCALE_SECTIONS`).
    :return: the exit status.
    """
    progress = progress or Progress(SCALE_SECTIONS)
    work = work_root / f"sf{sf}"
    landing = work / "landing"
    os.environ.update(env())
    progress.section("generate data")
    started = time.perf_counter()
    initial = generate(landing, sf, 1)[0]
    generated = time.perf_counter() - started
    progress.done(f"{generated:.0f} s")
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    events = work / "events"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    progress.section("initial load", 1)
    m = progress.run(f"pipeline all (initial load, SF {sf})",
                     job("all", initial, lake, landing, *event_log(events)),
                     work / "logs" / "initial.log")
    progress.section("write result")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    result = {"sf": sf, "date": time.strftime("%Y-%m-%d"), "lines": landed_lines(landing, initial),
              "commit": commit,
              "generate_s": generated, "lake_bytes": size(lake), **spark_jobs(events),
              "machine": machine(), "versions": versions()} | asdict(m)
    path = out.parent / "bench" / "scale.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    progress.done(f"wrote {path}")
    shutil.rmtree(lake, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring. Progress goes to standard error."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="SF 0.1, for iteration")
    parser.add_argument("--sf", default=None, help="scale factor (default 1, --quick 0.1)")
    parser.add_argument("--days", type=int, default=3, help="daily drops after the initial load")
    parser.add_argument("--history", default=",".join(map(str, HISTORY_DAYS)),
                        help="history lengths in days for the daily-cost comparison")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--scale-sf", default=None,
                        help="only the scale run: the initial load at this SF (e.g. 10), kept "
                        "in docs/bench/scale.json for every later regeneration")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: regenerate the document from the results "
                        "of the last run at this SF (docs/bench/results_sf<SF>.json)")
    args = parser.parse_args(argv)
    if args.scale_sf:
        return scale(args.scale_sf, args.work, args.out)
    sf = args.sf or ("0.1" if args.quick else "1")
    if args.render:
        saved = args.out.parent / "bench" / f"results_sf{sf}.json"
        if not saved.exists():
            parser.error(f"no saved results: {saved}")
        write_report(json.loads(saved.read_text()), args.out)
        print(f"bench: wrote {args.out}", file=sys.stderr)
        return 0
    history_days = [int(n) for n in args.history.split(",") if n.strip()]
    results = measure_all(sf, args.days, history_days, args.work / f"sf{sf}", Progress(SECTIONS))
    saved = args.out.parent / "bench" / f"results_sf{sf}.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(_portable(results), indent=1, default=str) + "\n")
    write_report(results, args.out)
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


def _portable(value: Any) -> Any:
    """``value`` with paths inside the repository made relative to it (for the saved JSON)."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and value.startswith(f"{ROOT}{os.sep}"):
        return value[len(str(ROOT)) + 1:]
    return value


def measure_all(sf: str, days: int, history_days: list[int], work: Path,
                progress: Progress) -> dict[str, Any]:
    """Every measurement of one run (sections :data:`SECTIONS`), in the order they run.

    :param sf: the scale factor.
    :param days: daily drops after the initial load.
    :param history_days: history lengths for the daily-cost comparison.
    :param work: scratch folder for data, lakes and logs (``results.json`` is kept there).
    :param progress: prints where the run is.
    :return: the results :func:`bench.report.write_report` renders.
    """
    os.environ.update(env())
    results: dict[str, Any] = {"sf": sf, "date": time.strftime("%Y-%m-%d"),
                               "machine": machine(), "versions": versions()}
    logs = work / "logs"

    progress.section("generate data")
    drops = generate(work / "landing", sf, days)
    initial, daily = drops[0], drops[1:]
    landings = history.prepare(work / "landing", work / "landings", initial, daily[0],
                               history_days)
    landing = landings[history.FULL]
    results["history_drop"] = history.drop_summary(work / "landings")
    results["initial_lines"] = landed_lines(landing, initial)
    progress.done(f"{len(drops)} drops, {results['initial_lines']:,} lines in the initial load")

    progress.section("session start", 3)
    probe = str(ROOT / "bench" / "probe.py")
    sessions = [progress.run(f"session start {i + 1}", spark_submit(probe, "session"),
                             logs / "session.log") for i in range(3)]
    session_s = statistics.median(m.wall_s for m in sessions)
    results["session_start_s"] = session_s

    progress.section("initial load", 4)
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    pipeline = progress.run("pipeline all (initial load)", job("all", initial, lake, landing),
                            logs / "initial.log")
    out = work / "baselines"
    shutil.rmtree(out, ignore_errors=True)
    floor = progress.run("plain PySpark floor", spark_submit(
        str(ROOT / "bench" / "baseline_spark.py"), "--landing", str(landing), "--ds", initial,
        "--out", str(out / "spark")), logs / "baseline_spark.log")
    duck = progress.run("DuckDB", [sys.executable, str(ROOT / "bench" / "baseline_duckdb.py"),
                                   "--landing", str(landing), "--ds", initial,
                                   "--out", str(out / "duckdb")], logs / "baseline_duckdb.log")
    results["initial"] = {m.name: asdict(m) for m in (pipeline, floor, duck)}
    # The same work: both marts' totals must agree across the three (checked in the report).
    totals = work / "gold-totals.json"
    progress.run("gold totals", spark_submit(probe, "gold", str(totals), f"pipeline={lake}",
                                             f"plain PySpark={out / 'spark'}",
                                             f"DuckDB={out / 'duckdb'}"), logs / "gold.log")
    results["gold_totals"] = json.loads(totals.read_text())

    progress.section("no-op re-run", 1)
    events = work / "events-noop"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    noop = progress.run("no-op re-run", job("all", initial, lake, landing, *event_log(events)),
                        logs / "noop.log")
    results["noop"] = asdict(noop) | spark_jobs(events)

    # The control gets the first daily drop on a copy of the lake from before it.
    control = work / "lake-control"
    shutil.rmtree(control, ignore_errors=True)
    shutil.copytree(lake, control)
    progress.section("daily drops", len(daily))
    results["daily"] = []
    for ds in daily:
        m = progress.run(f"daily {ds}", job("all", ds, lake, landing), logs / f"daily-{ds}.log")
        results["daily"].append({"ds": ds, "lines": landed_lines(landing, ds)} | asdict(m))

    progress.section("control", 1)
    results["control"] = asdict(progress.run(
        f"control: daily {daily[0]} without partition predicates",
        job("all", daily[0], control, landing, "--conf", f"{PARTITION_PREDICATES_CONF}=false"),
        logs / "control.log"))

    # Daily cost against history: the same drop on lakes holding N days.
    progress.section("daily cost against history", 2 * len(history_days))
    results["history"] = []
    lakes = {"main": lake, "control": control}
    for n in history_days:
        label = str(n)
        small = work / "history" / f"lake-{label}"
        shutil.rmtree(small, ignore_errors=True)
        build = progress.run(f"history {label} days: initial load", job(
            "all", initial, small, landings[label]), logs / f"history-{label}-init.log")
        run = progress.run(f"history {label} days: daily {daily[0]}", job(
            "all", daily[0], small, landings[label]), logs / f"history-{label}.log")
        results["history"].append({"days": n, "initial_lines": landed_lines(landings[label],
                                                                             initial),
                                   "build": asdict(build), "daily": asdict(run)})
        lakes[label] = small

    progress.section("airflow overhead")
    results["airflow"] = airflow_overhead.measure(lake, landing, daily[-1], work / "airflow",
                                                  progress)

    progress.section("lake probe and report", 1)
    dump = work / "lakes.json"
    progress.run("lake probe", spark_submit(probe, "lake", str(dump),
                                            *(f"{k}={v}" for k, v in lakes.items())),
                 logs / "probe.log")
    found = json.loads(dump.read_text())
    results["lake"] = found.pop("main")
    results["control"]["lake"] = found.pop("control")
    for entry in results["history"]:
        entry["lake"] = found[str(entry["days"])]
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


if __name__ == "__main__":
    sys.exit(main())
