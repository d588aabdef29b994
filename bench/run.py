"""``make bench``: measure the pipeline beside its baselines and write docs/benchmarks.md.

    python -m bench [--quick] [--sf SF] [--days N] [--history 7,30,90,365] [--work DIR]
                    [--out FILE]
    python -m bench --scale-sf 10     # only the scale run, kept in docs/bench/scale.json

One invocation generates the data with the project's generator and measures, on this
machine, in this order:

1. Spark session start (``spark-submit`` of a one-query script, median of three).
2. The initial load: ``spark-submit jobs/main.py all`` on a fresh lake (wall time, rows per
   second, peak memory of the whole process tree), beside the plain-PySpark floor and
   DuckDB doing the same work on the same ``.tbl`` files.
3. A no-op re-run of the initial ``ds``: wall time beyond session start, and the Spark
   jobs it ran (from its event log).
4. The daily drops after it, one ``all`` each: wall time, time per step (from the ledger)
   and the MERGE metrics of the silver tables (from their Delta history). The first one
   carries updates of recent orders and late line items (``bench/history.py``).
5. The control: that first drop again, on a copy of the lake from before it, with the
   MERGEs' literal partition predicates turned off.
6. Daily cost against history: the same first drop on lakes whose silver holds only the
   last 7, 30, 90 and 365 days of orders (each built with ``all`` on such an initial load).
7. Airflow's overhead per task: ``tpch_daily`` through ``dag.test()`` against the same
   ``spark-submit`` runs by hand (``bench/airflow_overhead.py``).

Every run is a subprocess with the environment of a developer's ``spark-submit``; the
document, its tables and its PNG plots are regenerated from the results (also kept as
JSON next to them). The SF 10 scale run takes over an hour on two cores, so it is a
separate invocation whose result the document keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import history
from jobs.delta_io import PARTITION_PREDICATES_CONF

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# History lengths (days) for the daily-cost comparison; the main lake holds all of it.
HISTORY_DAYS = (7, 30, 90, 365)


@dataclass
class Measured:
    """One measured subprocess."""

    name: str
    wall_s: float
    peak_rss_mb: float
    returncode: int
    log: str


def measure(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd``; sample the resident memory of its whole process tree every 0.1 s.

    (:func:`_tree_rss`: JVM, Python and anything else they start, each counted once.)

    :raises RuntimeError: when the command fails (its log names the cause).
    """
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        start = time.perf_counter()
        proc = psutil.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc))
            time.sleep(0.1)
        wall = time.perf_counter() - start
    result = Measured(name, wall, peak / 2**20, proc.returncode, str(log))
    print(f"bench: {name}: {wall:.1f} s, peak {result.peak_rss_mb:.0f} MiB", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited {proc.returncode}; see {log}")
    return result


def _tree_rss(root: Any) -> int:
    """Resident memory of a process tree, each process once.

    The JVM starts helpers (Hadoop runs ``chmod`` and ``readlink`` for the local file
    system, hundreds per run): between its fork and its exec such a child shows its
    parent's whole resident set, which would count the JVM twice. A child with its
    parent's command line is such a moment, and is skipped.
    """
    import psutil

    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            parent = p.parent()
            if p.pid != root.pid and parent is not None and p.cmdline() == parent.cmdline():
                continue
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return int(total)


def spark_submit(*args: str) -> list[str]:
    return [str(BIN / "spark-submit"), *args]


def job(step: str, ds: str, lake: Path, landing: Path, *conf: str) -> list[str]:
    return spark_submit(*conf, str(ROOT / "jobs" / "main.py"), step, "--ds", ds,
                        "--lake", str(lake), "--landing", str(landing))


def spark_jobs(event_dir: Path) -> dict[str, int]:
    """Spark jobs in an event log: all, and those that are not Delta's log replay; and spill.

    Delta describes the jobs that rebuild a table's state from its log as ``Delta: ...``;
    every other job reads or writes table data (the ledger's included).
    """
    total = data = spilled_disk = spilled_memory = 0
    for events in event_dir.rglob("events_*"):
        for line in events.open(encoding="utf-8"):
            event = json.loads(line)
            if event.get("Event") == "SparkListenerTaskEnd":
                task = event.get("Task Metrics") or {}
                spilled_disk += int(task.get("Disk Bytes Spilled") or 0)
                spilled_memory += int(task.get("Memory Bytes Spilled") or 0)
            if event.get("Event") != "SparkListenerJobStart":
                continue
            total += 1
            props = event.get("Properties") or {}
            if not str(props.get("spark.job.description") or "").startswith("Delta:"):
                data += 1
    return {"jobs": total, "data_jobs": data, "spilled_disk_bytes": spilled_disk,
            "spilled_memory_bytes": spilled_memory}


def landed_lines(landing: Path, ds: str) -> int:
    return sum(sum(1 for _ in f.open("rb")) for f in (landing / f"ds={ds}").rglob("*.tbl"))


def generate(landing: Path, sf: str, days: int) -> list[str]:
    marker = landing / f".bench-sf{sf}-days{days}"
    if not marker.exists():
        shutil.rmtree(landing, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "jobs.datagen", "--sf", sf, "--days", str(days),
                        "--landing", str(landing)], cwd=ROOT, check=True)
        marker.touch()
    return sorted(p.name[3:] for p in landing.iterdir() if p.name.startswith("ds="))


def versions() -> dict[str, str]:
    import duckdb
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    delta = next((p.name for p in (ROOT / ".cache" / "jars").glob("delta-spark_*.jar")), "?")
    return {"python": platform.python_version(), "pyspark": pyspark.__version__,
            "delta": delta.removesuffix(".jar").split("-")[-1], "duckdb": duckdb.__version__,
            "java": java.splitlines()[0] if java else "?"}


def machine() -> dict[str, Any]:
    import psutil

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "os": platform.platform()}


def scale(sf: str, work_root: Path, out: Path) -> int:
    """The initial load at a large scale factor: does it complete, how long, how much memory."""
    work = work_root / f"sf{sf}"
    landing = work / "landing"
    os.environ.update(_env())
    started = time.perf_counter()
    initial = generate(landing, sf, 1)[0]
    generated = time.perf_counter() - started
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    events = work / "events"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    m = measure(f"pipeline all (initial load, SF {sf})",
                job("all", initial, lake, landing, *_event_log(events)),
                work / "logs" / "initial.log")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    result = {"sf": sf, "date": time.strftime("%Y-%m-%d"), "lines": landed_lines(landing, initial),
              "commit": commit,
              "generate_s": generated, "lake_bytes": _size(lake), **spark_jobs(events),
              "machine": machine(), "versions": versions()} | asdict(m)
    path = out.parent / "bench" / "scale.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"bench: wrote {path}")
    shutil.rmtree(lake, ignore_errors=True)
    return 0


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _event_log(folder: Path) -> list[str]:
    return ["--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={folder}",
            "--conf", "spark.eventLog.compress=false"]


def _env() -> dict[str, str]:
    # spark-submit finds Spark through the venv's python on PATH.
    return {"PIPELINE_RUNNER": "local", "PIPELINE_METRICS": "off", "PYTHONPATH": str(ROOT),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    if args.scale_sf:
        return scale(args.scale_sf, args.work, args.out)
    sf = args.sf or ("0.1" if args.quick else "1")
    work: Path = args.work / f"sf{sf}"
    os.environ.update(_env())

    results: dict[str, Any] = {"sf": sf, "date": time.strftime("%Y-%m-%d"),
                               "machine": machine(), "versions": versions()}
    drops = generate(work / "landing", sf, args.days)
    initial, daily = drops[0], drops[1:]
    history_days = [int(n) for n in args.history.split(",") if n.strip()]
    landings = history.prepare(work / "landing", work / "landings", initial, daily[0],
                               history_days)
    landing = landings[history.FULL]
    results["history_drop"] = history.drop_summary(work / "landings")
    results["initial_lines"] = landed_lines(landing, initial)

    probe = str(ROOT / "bench" / "probe.py")
    sessions = [measure(f"session start {i + 1}", spark_submit(probe, "session"),
                        work / "logs" / "session.log") for i in range(3)]
    session_s = statistics.median(m.wall_s for m in sessions)
    results["session_start_s"] = session_s

    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    pipeline = measure("pipeline all (initial load)", job("all", initial, lake, landing),
                       work / "logs" / "initial.log")
    out = work / "baselines"
    shutil.rmtree(out, ignore_errors=True)
    floor = measure("plain PySpark floor", spark_submit(
        str(ROOT / "bench" / "baseline_spark.py"), "--landing", str(landing), "--ds", initial,
        "--out", str(out / "spark")), work / "logs" / "baseline_spark.log")
    duck = measure("DuckDB", [sys.executable, str(ROOT / "bench" / "baseline_duckdb.py"),
                              "--landing", str(landing), "--ds", initial,
                              "--out", str(out / "duckdb")], work / "logs" / "baseline_duckdb.log")
    results["initial"] = {m.name: asdict(m) for m in (pipeline, floor, duck)}
    # The same work: both marts' totals must agree across the three (checked in the report).
    totals = work / "gold-totals.json"
    measure("gold totals", spark_submit(probe, "gold", str(totals), f"pipeline={lake}",
                                        f"plain PySpark={out / 'spark'}",
                                        f"DuckDB={out / 'duckdb'}"), work / "logs" / "gold.log")
    results["gold_totals"] = json.loads(totals.read_text())

    events = work / "events-noop"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    noop = measure("no-op re-run", job("all", initial, lake, landing, *_event_log(events)),
                   work / "logs" / "noop.log")
    results["noop"] = asdict(noop) | spark_jobs(events)

    # The control: the first daily drop on a copy of this lake, MERGEs without the literal
    # partition predicates.
    control = work / "lake-control"
    shutil.rmtree(control, ignore_errors=True)
    shutil.copytree(lake, control)
    results["daily"] = []
    for ds in daily:
        m = measure(f"daily {ds}", job("all", ds, lake, landing), work / "logs" / f"daily-{ds}.log")
        results["daily"].append({"ds": ds, "lines": landed_lines(landing, ds)} | asdict(m))
    results["control"] = asdict(measure(
        f"control: daily {daily[0]} without partition predicates",
        job("all", daily[0], control, landing, "--conf", f"{PARTITION_PREDICATES_CONF}=false"),
        work / "logs" / "control.log"))

    # Daily cost against history: the same drop on lakes holding N days.
    results["history"] = []
    lakes = {"main": lake, "control": control}
    for n in history_days:
        label = str(n)
        small = work / "history" / f"lake-{label}"
        shutil.rmtree(small, ignore_errors=True)
        build = measure(f"history {label} days: initial load", job(
            "all", initial, small, landings[label]), work / "logs" / f"history-{label}-init.log")
        run = measure(f"history {label} days: daily {daily[0]}", job(
            "all", daily[0], small, landings[label]), work / "logs" / f"history-{label}.log")
        results["history"].append({"days": n, "initial_lines": landed_lines(landings[label],
                                                                             initial),
                                   "build": asdict(build), "daily": asdict(run)})
        lakes[label] = small

    from bench import airflow_overhead

    results["airflow"] = airflow_overhead.measure(lake, landing, daily[-1], work / "airflow")

    dump = work / "lakes.json"
    measure("lake probe", spark_submit(probe, "lake", str(dump),
                                       *(f"{k}={v}" for k, v in lakes.items())),
            work / "logs" / "probe.log")
    found = json.loads(dump.read_text())
    results["lake"] = found.pop("main")
    results["control"]["lake"] = found.pop("control")
    for entry in results["history"]:
        entry["lake"] = found[str(entry["days"])]

    from bench.report import write_report

    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_report(results, args.out)
    print(f"bench: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
