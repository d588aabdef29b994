"""``python -m jobs validate`` and ``python -m jobs new-pipeline`` as an operator runs them.

A valid spec exits 0 with one OK line; an invalid one exits 2 with every problem on its
own line of stderr and no traceback. ``new-pipeline`` drafts a spec from a sample of each
format that ``validate`` refuses only for its keys, and accepts once they are set.
``PIPELINES_DIR`` points the commands at specs under ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.specs import NAME, SAMPLE_KEYS, set_keys, write_samples, write_spec

REPO = Path(__file__).resolve().parents[3]


def run_jobs(args: list[str], pipelines: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env["PYTHONPATH"] = str(REPO)
    env["PIPELINE_RUNNER"] = "local"
    env.pop("PIPELINES_DIR", None)
    if pipelines is not None:
        env["PIPELINES_DIR"] = str(pipelines)
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_validate_tpch_exits_0_with_one_ok_line() -> None:
    proc = run_jobs(["validate", "--pipeline", "tpch"])

    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    assert line.startswith("pipelines/tpch/pipeline.yaml: OK: 8 sources, 2 marts, ")
    assert line.endswith(" expectations and gate checks; SQL resolved")


def test_validate_broken_spec_exits_2_with_every_problem_and_no_traceback(
        tmp_path: Path) -> None:
    write_spec(tmp_path, {
        "key: [customer_id]": "key: [customer]",
        'schedule: "@daily"': 'schedule: "daily"',
        "table: sales_by_country": "table: sales",
        'check: "qty > 0"': 'check: "qtty > 0"',
    })

    proc = run_jobs(["validate", "--pipeline", NAME], tmp_path / "pipelines")

    assert proc.returncode == 2
    # The JVM's own start-up notes ("WARNING: Using incubator modules") come first.
    lines = [line for line in proc.stderr.splitlines() if line.startswith(
        ("pipelines/", "error:"))]
    spec = f"pipelines/{NAME}/pipeline.yaml"
    assert lines[0] == (f"{spec}:2: schedule: 'daily' is neither a cron expression (5 "
                        "fields: minute hour day month weekday) nor one of @daily, @hourly, "
                        "@weekly, @monthly, @yearly, @once, None")
    assert lines[1] == (f"{spec}:10: sources.customers.key.0: key column 'customer' is not a "
                        "column (columns: customer_id, country)")
    assert lines[2].startswith(f"{spec}:34: sources.items.expectations.0.check: "
                               "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or "
                               "function parameter with name `qtty` cannot be resolved.")
    assert lines[3] == (f"{spec}:49: gate.checks.0.table: 'sales' is neither a source nor a "
                        "mart (tables: customers, orders, items, sales_by_country)")
    assert lines[4:] == ["error: 4 problem(s) in the spec"]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""


def test_validate_unknown_pipeline_exits_2(tmp_path: Path) -> None:
    write_spec(tmp_path)

    proc = run_jobs(["validate", "--pipeline", "nope"], tmp_path / "pipelines", timeout=60)

    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        f"pipelines/nope/pipeline.yaml: no such pipeline 'nope' (pipelines: {NAME})")


def test_new_pipeline_then_validate_fails_only_on_keys_then_passes(tmp_path: Path) -> None:
    write_samples(tmp_path / "sample")
    pipelines = tmp_path / "pipelines"

    drafted = run_jobs(["new-pipeline", "drafted", "--from-sample", str(tmp_path / "sample")],
                       pipelines, timeout=60)
    assert drafted.returncode == 0, drafted.stderr
    spec = pipelines / "drafted" / "pipeline.yaml"
    assert drafted.stdout.startswith(f"wrote {spec}: set each source's key")

    again = run_jobs(["new-pipeline", "drafted", "--from-sample", str(tmp_path / "sample")],
                     pipelines, timeout=60)
    assert again.returncode == 2
    assert again.stderr.splitlines() == [
        f"error: {spec} exists already: new-pipeline never overwrites a pipeline"]

    refused = run_jobs(["validate", "--pipeline", "drafted"], pipelines, timeout=60)
    assert refused.returncode == 2
    text = spec.read_text(encoding="utf-8")
    key_lines = [n for n, line in enumerate(text.splitlines(), 1) if line == "    key: []"]
    assert refused.stderr.splitlines() == [
        *(f"pipelines/drafted/pipeline.yaml:{line}: sources.{table}.key: needs at least 1 "
          "item(s), has 0" for line, table in zip(key_lines, sorted(SAMPLE_KEYS), strict=True)),
        "error: 4 problem(s) in the spec",
    ]

    set_keys(spec, SAMPLE_KEYS)
    accepted = run_jobs(["validate", "--pipeline", "drafted"], pipelines)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("pipelines/drafted/pipeline.yaml: OK: 4 sources")


def test_new_pipeline_without_a_sample_exits_2_with_usage(tmp_path: Path) -> None:
    proc = run_jobs(["new-pipeline", "drafted"], tmp_path / "pipelines", timeout=60)

    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: usage: jobs new-pipeline NAME --from-sample DIR: the following arguments "
        "are required: --from-sample"]
