"""Tests of the command line (``python -m jobs`` and ``spark-submit jobs/main.py``).

Argument and configuration errors must be reported before Spark starts: one line on
stderr, exit 2, no traceback. Two runs start Spark, side by side: a missing drop (exit 1)
and one real ``spark-submit`` ingest.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chispa import assert_df_equality

from jobs.delta_io import latest_version
from jobs.errors import ConfigError
from jobs.main import parse_args

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = REPO / ".venv" / "bin"
DS = "1998-08-01"


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    out["PYTHONPATH"] = str(REPO)
    out["PIPELINE_RUNNER"] = "local"
    out.pop("PIPELINE_FAULT", None)
    out.update(extra)
    return out


def run_jobs(args: list[str], timeout: float, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args], cwd=REPO, env=env(**extra),
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        (["bogus", "--ds", DS], "invalid choice: 'bogus'"),
        (["ingest"], "the following arguments are required: --ds"),
        (["ingest", "--ds", "2024-13-01"], "--ds '2024-13-01' is not a date YYYY-MM-DD"),
        (["ingest", "--ds", "20240101"], "--ds '20240101' is not a date YYYY-MM-DD"),
    ],
    ids=["unknown_step", "missing_ds", "month_13", "compact_date"],
)
def test_bad_arguments_exit_2_with_one_usage_line(args: list[str], detail: str) -> None:
    proc = run_jobs(args, timeout=30)

    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: usage: ")
    assert detail in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_ds_after_tomorrow_is_refused_and_tomorrow_is_accepted() -> None:
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)

    assert parse_args(["ingest", "--ds", tomorrow.isoformat()]).ds == tomorrow
    for late in (tomorrow + dt.timedelta(days=1), dt.date(2999, 12, 31)):
        with pytest.raises(ConfigError, match=rf"--ds '{late}' is after tomorrow \(UTC\)"):
            parse_args(["ingest", "--ds", late.isoformat()])


def test_unknown_runner_exits_2_before_starting_spark(tmp_path: Path) -> None:
    # A Spark home whose spark-submit only leaves a mark: pyspark launches the JVM through
    # it, so the mark exists if the run got as far as starting Spark.
    started = tmp_path / "spark-started"
    spark_submit = tmp_path / "spark-home" / "bin" / "spark-submit"
    spark_submit.parent.mkdir(parents=True)
    spark_submit.write_text(f"#!/bin/sh\ntouch {started}\nexit 1\n", encoding="utf-8")
    spark_submit.chmod(0o755)
    proc = run_jobs(
        ["ingest", "--ds", DS, "--lake", str(tmp_path / "lake"),
         "--landing", str(tmp_path / "landing")],
        timeout=60, PIPELINE_RUNNER="nonsense", SPARK_HOME=str(spark_submit.parents[1]),
    )

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: PIPELINE_RUNNER='nonsense'; expected one of ['emr', 'kubernetes', 'local']"
    ], proc.stderr
    assert not started.exists(), "Spark was started before the runner was checked"
    assert not (tmp_path / "lake").exists()


class Launched:
    """The two runs that start Spark, launched together by the first test that needs one.

    They run side by side, which saves most of a JVM start on the suite's wall time.
    """

    def __init__(self, root: Path) -> None:
        self.missing_landing = root / "missing" / "landing"
        drop = self.missing_landing / f"ds={DS}" / "orders"
        drop.mkdir(parents=True)
        (drop / "part-1.tbl").write_text("1|\n")  # no _SUCCESS
        self.missing_lake = root / "missing" / "lake"

        self.submit_landing = root / "submit" / "landing"
        drop = self.submit_landing / f"ds={DS}"
        (drop / "orders").mkdir(parents=True)
        (drop / "orders" / "part-1.tbl").write_text("1|a|\n2|b|\n")
        (drop / "_SUCCESS").write_text("")
        self.submit_lake = root / "submit" / "lake"

        # Output goes to files: nobody reads a pipe while the other run is awaited.
        self.logs = root / "logs"
        self.logs.mkdir()
        self.missing = self.start("missing", [
            sys.executable, "-m", "jobs", "ingest", "--ds", DS,
            "--lake", str(self.missing_lake), "--landing", str(self.missing_landing),
        ], env())
        # -Xshare:on: the JVM refuses to start unless it can map make setup's class
        # archive; the class loading log says where each class came from.
        self.class_log = self.logs / "classes.txt"
        options = (f"{os.environ.get('SPARK_SUBMIT_OPTS', '')} -Xshare:on "
                   f"-Xlog:class+load=info:file={self.class_log}")
        self.submit = self.start("submit", [
            str(VENV_BIN / "spark-submit"), "jobs/main.py", "ingest", "--ds", DS,
            "--lake", str(self.submit_lake), "--landing", str(self.submit_landing),
        ], env(PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               SPARK_SUBMIT_OPTS=options.strip()))

    def start(self, name: str, args: list[str], environ: dict[str, str]) -> subprocess.Popen[str]:
        with (self.logs / f"{name}.out").open("w") as out, \
                (self.logs / f"{name}.err").open("w") as err:
            return subprocess.Popen(args, cwd=REPO, env=environ, stdout=out, stderr=err,
                                    text=True)

    def wait(self, name: str, timeout: float) -> tuple[int, str]:
        """Wait for one run; return its exit status and its stderr."""
        proc: subprocess.Popen[str] = getattr(self, name)
        code = proc.wait(timeout=timeout)
        return code, (self.logs / f"{name}.err").read_text()

    def stop(self) -> None:
        for proc in (self.missing, self.submit):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    runs = Launched(tmp_path_factory.mktemp("cli"))
    try:
        yield runs
    finally:
        runs.stop()


def test_missing_drop_exits_1_naming_the_drop(launched: Launched) -> None:
    code, stderr = launched.wait("missing", timeout=240)

    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: file:{launched.missing_landing}/ds={DS}: drop is not complete "
        "(no _SUCCESS marker yet)"
    ], stderr
    assert "Traceback" not in stderr
    assert not (launched.missing_lake / "bronze").exists()


def test_spark_submit_ingest_writes_bronze(spark: SparkSession, launched: Launched) -> None:
    code, stderr = launched.wait("submit", timeout=300)

    assert code == 0, stderr[-3000:]
    uri = f"file:{launched.submit_lake}/bronze/orders"
    assert latest_version(spark, uri) == 0
    bronze = spark.read.format("delta").load(uri).select("value", "_ds", "_line_number")
    expected = spark.createDataFrame(
        [("1|a|", dt.date(1998, 8, 1), 1), ("2|b|", dt.date(1998, 8, 1), 2)],
        "value string, _ds date, _line_number bigint",
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)


def test_spark_submit_maps_spark_and_delta_classes_from_the_class_archive(
        launched: Launched) -> None:
    """make setup's class archive serves plain spark-submit (tools/class_archive.py)."""
    code, stderr = launched.wait("submit", timeout=300)

    assert code == 0, stderr[-3000:]
    sources = {}
    for line in launched.class_log.read_text().splitlines():
        name, _, source = line.partition(" source: ")
        sources[name.rsplit(" ", 1)[-1]] = source
    archived = "shared objects file (top)"  # the dynamic archive on top of the JDK's
    for cls in ("org.apache.spark.deploy.SparkSubmit", "org.apache.spark.sql.SparkSession",
                "org.apache.spark.sql.delta.DeltaLog", "io.delta.tables.DeltaTable"):
        assert sources.get(cls) == archived, f"{cls}: {sources.get(cls)}"
    from_archive = sum(source == archived for source in sources.values())
    assert from_archive > 10_000, f"only {from_archive} of {len(sources)} classes archived"
