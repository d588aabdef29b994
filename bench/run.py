"""``make bench``: measure the pipeline beside its baselines and write docs/benchmarks.md.

    python -m bench [--quick] [--sf SF] [--days N] [--work DIR] [--out FILE]

One invocation generates the data with the project's generator and measures, on this
machine, in this order:

1. Spark session start (``spark-submit`` of a one-query script, median of three).
2. The initial load: ``spark-submit jobs/main.py all`` on a fresh lake (wall time, rows per
   second, peak memory of the whole process tree), beside the plain-PySpark floor and
   DuckDB doing the same work on the same ``.tbl`` files.
3. A no-op re-run of the initial ``ds``: wall time beyond session start, and the Spark
   jobs it ran (from its event log).
4. The daily drops after it, one ``all`` each: wall time, time per step (from the ledger)
   and the MERGE metrics of the silver tables (from their Delta history).

Every run is a subprocess with the environment of a developer's ``spark-submit``; the
document, its tables and its PNG plots are regenerated from the results (also kept as
JSON next to them).
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

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


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
            rss = 0
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
            time.sleep(0.1)
        wall = time.perf_counter() - start
    result = Measured(name, wall, peak / 2**20, proc.returncode, str(log))
    print(f"bench: {name}: {wall:.1f} s, peak {result.peak_rss_mb:.0f} MiB", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited {proc.returncode}; see {log}")
    return result


def spark_submit(*args: str) -> list[str]:
    return [str(BIN / "spark-submit"), *args]


def job(step: str, ds: str, lake: Path, landing: Path, *conf: str) -> list[str]:
    return spark_submit(*conf, str(ROOT / "jobs" / "main.py"), step, "--ds", ds,
                        "--lake", str(lake), "--landing", str(landing))


def spark_jobs(event_dir: Path) -> dict[str, int]:
    """Spark jobs in an event log: all, and those that are not Delta's log replay.

    Delta describes the jobs that rebuild a table's state from its log as ``Delta: ...``;
    every other job reads or writes table data (the ledger's included).
    """
    total = data = 0
    for events in event_dir.rglob("events_*"):
        for line in events.open(encoding="utf-8"):
            event = json.loads(line)
            if event.get("Event") != "SparkListenerJobStart":
                continue
            total += 1
            props = event.get("Properties") or {}
            if not str(props.get("spark.job.description") or "").startswith("Delta:"):
                data += 1
    return {"jobs": total, "data_jobs": data}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="SF 0.1, for iteration")
    parser.add_argument("--sf", default=None, help="scale factor (default 1, --quick 0.1)")
    parser.add_argument("--days", type=int, default=3, help="daily drops after the initial load")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    sf = args.sf or ("0.1" if args.quick else "1")
    work: Path = args.work / f"sf{sf}"
    landing = work / "landing"
    # spark-submit finds Spark through the venv's python on PATH.
    env = {"PIPELINE_RUNNER": "local", "PIPELINE_METRICS": "off", "PYTHONPATH": str(ROOT),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.environ.update(env)

    results: dict[str, Any] = {"sf": sf, "date": time.strftime("%Y-%m-%d"),
                               "machine": machine(), "versions": versions()}
    drops = generate(landing, sf, args.days)
    initial, daily = drops[0], drops[1:]
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
    noop = measure("no-op re-run", job("all", initial, lake, landing,
                                       "--conf", "spark.eventLog.enabled=true",
                                       "--conf", f"spark.eventLog.dir={events}",
                                       "--conf", "spark.eventLog.compress=false"),
                   work / "logs" / "noop.log")
    results["noop"] = asdict(noop) | spark_jobs(events)

    results["daily"] = []
    for ds in daily:
        m = measure(f"daily {ds}", job("all", ds, lake, landing), work / "logs" / f"daily-{ds}.log")
        results["daily"].append({"ds": ds, "lines": landed_lines(landing, ds)} | asdict(m))
    dump = work / "lake.json"
    measure("lake probe", spark_submit(probe, "lake", str(lake), str(dump)),
            work / "logs" / "probe.log")
    results["lake"] = json.loads(dump.read_text())

    from bench.report import write_report

    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    write_report(results, args.out)
    print(f"bench: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
