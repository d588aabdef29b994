"""``make setup``: record the classes a local ``spark-submit`` loads in a CDS archive.

A cold local ``spark-submit`` of one step loads about 30,000 classes from Spark's and
Delta's jars before it does any work. JDK 17 can keep them, parsed and verified, in a
class data sharing (AppCDS) archive that every later JVM maps instead. The spark-submit
defaults written by :func:`jobs.spark.write_spark_conf` name the archive
(:data:`jobs.settings.CLASS_ARCHIVE`), and this script writes it: it generates a tiny
TPC-H sample (SF 0.001: an initial load and one daily drop), runs the pipeline's steps
over it in one ``spark-submit`` with ``-XX:ArchiveClassesAtExit``, and moves the archive
into place only when the run succeeded. Every later JVM is spared parsing and verifying
those classes: a few seconds of CPU per start, which matters for the many short
``spark-submit`` runs of the tests and of a DAG run on small drops.

A JVM ignores an archive it cannot use (the JDK or a jar changed: re-run set-up): it
prints one ``[cds]`` warning and loads the classes from the jars as before.

``python -m tools.class_archive`` writes the archive; ``spark-submit
tools/class_archive.py LANDING LAKE`` is the workload it records.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ATTEMPTS = 3
FAILURE_LOG = ROOT / ".cache" / "class-archive-failure.log"
if str(ROOT) not in sys.path:  # run as a spark-submit application file
    sys.path.insert(0, str(ROOT))


def workload(landing: Path, lake: Path) -> int:
    """Run every step the suite and a developer run: the initial load, a daily drop,
    ``maintain`` and ``report``, in one Spark application.

    :return: the first non-zero exit status, or 0.
    """
    from jobs.main import main

    dates = sorted(d.name.removeprefix("ds=") for d in landing.glob("ds=*"))
    runs = [["all", "--ds", ds] for ds in dates]
    runs += [["maintain", "--ds", dates[-1]], ["report", "--ds", dates[-1]]]
    for run in runs:
        code = main([*run, "--lake", lake.as_uri(), "--landing", landing.as_uri()])
        if code:
            return code
    return 0


def write_archive() -> Path:
    """Generate the sample, run :func:`workload` under ``spark-submit`` and keep the
    classes it loaded.

    :return: the archive written.
    :raises SystemExit: when the workload failed (no archive is written then).
    """
    from jobs.settings import CLASS_ARCHIVE
    from jobs.spark import driver_java_options

    CLASS_ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="class-archive-") as tmp:
        work = Path(tmp)
        landing, lake, archive = work / "landing", work / "lake", work / "spark.jsa"
        subprocess.run([sys.executable, "-m", "pipelines.tpch.datagen", "--sf", "0.001",
                        "--days", "1", "--landing", str(landing)], check=True,
                       stdout=subprocess.DEVNULL)
        spark_submit = Path(sys.executable).with_name("spark-submit")
        # The quick JIT only makes the recording run shorter; the archive holds classes,
        # not compiled code, and serves any JIT or collector. C1 alone reserves 48 MB of
        # code cache, which this workload (every step, like a spark-submit of `all`)
        # fills: "Out of space in CodeCache for method handle intrinsic" is a
        # VirtualMachineError that fails the job (exit 50). So the code cache gets the
        # tiered default's 240 MB, as the suite's short-lived spark-submits do
        # (tools/run_tests.py).
        options = (f"{driver_java_options(archive=False)} -XX:ArchiveClassesAtExit={archive}"
                   " -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
                   " -Xlog:cds=off -Xlog:cds+dynamic=error")
        env = {**os.environ, "PIPELINE_METRICS": "off", "PIPELINE_RUNNER": "local",
               "PYTHONPATH": str(ROOT),
               "PATH": f"{spark_submit.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        for name in ("SPARK_SUBMIT_OPTS", "PIPELINE_FAULT", "LAKE_URI", "LANDING_URI"):
            env.pop(name, None)
        # A failed recording run is logged in full and retried on a fresh lake: the
        # archive only makes later JVMs start faster, so set-up should not stop for it.
        for attempt in range(1, ATTEMPTS + 1):
            shutil.rmtree(lake, ignore_errors=True)
            archive.unlink(missing_ok=True)
            result = subprocess.run(
                [str(spark_submit), "--conf", f"spark.driver.extraJavaOptions={options}",
                 str(Path(__file__).resolve()), str(landing), str(lake)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if result.returncode == 0 and archive.is_file():
                break
            FAILURE_LOG.write_text(result.stdout)
            sys.stdout.write(result.stdout[-4000:])
            print(f"class archive: recording run {attempt} of {ATTEMPTS} failed "
                  f"(exit {result.returncode}); its whole output: {FAILURE_LOG}", flush=True)
        else:
            raise SystemExit("class archive: every recording run failed; no archive written")
        shutil.move(str(archive), CLASS_ARCHIVE)
    return CLASS_ARCHIVE


if __name__ == "__main__":
    if len(sys.argv) == 3:
        sys.exit(workload(Path(sys.argv[1]), Path(sys.argv[2])))
    print(f"wrote {write_archive()}")
