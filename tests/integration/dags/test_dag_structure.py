"""The DAGs as Airflow sees them: import, graph, retries by cause, runners, alerts."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_helpers import DAGS, ROOT, import_errors_in_a_fresh_process

STEP_TASKS = ("ingest", "silver", "gold", "quality")


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dags_import_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"tpch_daily", "tpch_maintenance", "flights_daily",
                                   "flights_maintenance"}


def test_parsing_dags_imports_neither_pyspark_nor_boto3() -> None:
    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "assert bag.import_errors == {}, bag.import_errors\n"
        "print(sorted(bag.dag_ids))\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('pyspark', 'boto3', 'botocore')])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(DAGS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip().splitlines()
    assert out[-2] == ("['flights_daily', 'flights_maintenance', 'tpch_daily', "
                       "'tpch_maintenance']")
    assert out[-1] == "[]"


def test_daily_task_graph(dagbag: Any) -> None:
    dag = dagbag.dags["tpch_daily"]
    graph = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
    assert graph == {
        "wait_for_drop": ["ingest"],
        "ingest": ["silver"],
        "silver": ["gold"],
        "gold": ["quality"],
        "quality": ["publish", "report"],
        "publish": ["notify"],
        "report": ["notify"],
        "notify": [],
    }
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 0 * * *"
    assert str(dag.start_date.tzinfo) == "UTC"
    assert dag.doc_md and "tpch_daily" not in dag.doc_md.splitlines()[0]


def test_writers_share_one_pool_across_dags(dagbag: Any) -> None:
    daily = dagbag.dags["tpch_daily"]
    maintenance = dagbag.dags["tpch_maintenance"]
    writers = [daily.get_task(t) for t in STEP_TASKS] + [maintenance.get_task("maintain")]
    assert {t.pool for t in writers} == {"lake_writer"}
    assert daily.get_task("wait_for_drop").pool == "default_pool"
    assert maintenance.max_active_runs == 1
    assert maintenance.timetable.expression == "0 3 * * 0"


def test_retry_settings_of_every_step(dagbag: Any) -> None:
    dag = dagbag.dags["tpch_daily"]
    for task_id in STEP_TASKS:
        task = dag.get_task(task_id)
        assert task.retries == 3
        assert task.retry_delay == dt.timedelta(minutes=2)
        assert task.retry_exponential_backoff == 2.0
        assert task.max_retry_delay == dt.timedelta(minutes=30)
        assert task.execution_timeout >= dt.timedelta(hours=2)
        assert task.retry_policy is not None
        assert task.on_failure_callback and task.on_retry_callback
    sensor = dag.get_task("wait_for_drop")
    assert sensor.mode == "reschedule"
    assert sensor.timeout == dt.timedelta(hours=24).total_seconds()
    assert sensor.filepath.endswith("/ds={{ ds }}/_SUCCESS")


@pytest.mark.parametrize(
    ("step", "code", "expected"),
    [
        ("silver", 1, "retry"),
        ("silver", -9, "retry"),
        ("silver", None, "retry"),
        ("ingest", 2, "fail"),
        ("ingest", 3, "fail"),
        ("quality", 3, "fail"),
        ("gold", 2, "fail"),
    ],
)
def test_exit_code_decides_retry_or_fail(dagbag: Any, step: str, code: int | None,
                                         expected: str) -> None:
    from airflow.sdk.definitions.retry_policy import RetryAction
    from lakehouse.failures import failure_for

    task = dagbag.dags["tpch_daily"].get_task(step)
    error = failure_for(step, code, "error: something")
    decision = task.retry_policy.evaluate(error, try_number=1, max_tries=4)
    if expected == "fail":
        assert decision.action == RetryAction.FAIL
        assert f"exit {code}" in decision.reason
    else:
        assert decision.action == RetryAction.DEFAULT
    assert "error: something" in str(error)


def test_exit_3_names_its_cause() -> None:
    from lakehouse.failures import QualityGateFailed, UnusableInput, failure_for

    assert isinstance(failure_for("quality", 3), QualityGateFailed)
    assert isinstance(failure_for("ingest", 3), UnusableInput)
    assert "quality gate failed" in str(failure_for("quality", 3))
    assert "configuration error" in str(failure_for("silver", 2))


def test_gold_tables_are_assets_published_after_the_gate(dagbag: Any) -> None:
    dag = dagbag.dags["tpch_daily"]
    outlets = dag.get_task("publish").outlets
    assert sorted((a.name, a.uri, a.group) for a in outlets) == [
        ("tpch_gold_daily_line_summary", "x-lakehouse://tpch/gold/daily_line_summary",
         "tpch_gold"),
        ("tpch_gold_revenue_by_nation", "x-lakehouse://tpch/gold/revenue_by_nation",
         "tpch_gold")]
    assert dag.get_task("publish").upstream_task_ids == {"quality"}
    # No task that writes the lake carries an asset: bookkeeping cannot fail one.
    assert [t.task_id for t in dag.tasks if t.outlets] == ["publish"]


def test_gold_assets_are_the_same_wherever_the_lake_lives() -> None:
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS / 'pipeline_dags.py')!r})\n"
        "assert bag.import_errors == {}, bag.import_errors\n"
        "task = bag.dags['tpch_daily'].get_task('publish')\n"
        "print(sorted((a.name, a.uri) for a in task.outlets))\n"
    )
    seen = set()
    for env in ({"LAKE_URI": "/srv/lake-a"}, {"LAKE_URI": "/mnt/other/lake-b"},
                {"LAKE_URI": "s3a://bucket-c/lake", "PIPELINE_RUNNER": "kubernetes"},
                {"LAKE_URI": "s3://bucket-d/lake", "PIPELINE_RUNNER": "emr",
                 "EMR_ARTIFACTS_URI": "s3://bucket-d/artifacts"}):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(DAGS), **env}, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        seen.add(out.stdout.strip().splitlines()[-1])
    assert len(seen) == 1


def _render(task: Any, ds: str) -> None:
    class TI:
        def xcom_pull(self, task_ids: str) -> str:
            return "j-CLUSTER"

    task.render_template_fields({"ds": ds, "ti": TI(), "params": {}})


@pytest.mark.parametrize("runner", ["local", "kubernetes", "emr", "emr-serverless"])
@pytest.mark.parametrize("step", [*STEP_TASKS, "report", "maintain"])
def test_every_runner_runs_the_contract_command_line(runner: str, step: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG
    from lakehouse.config import PipelineConfig
    from lakehouse.runners import step_operator

    from tests.support.runner_commands import job_command, rendered_command

    if runner == "emr-serverless":  # a mode of the emr runner
        runner = "emr"
        monkeypatch.setenv("EMR_MODE", "serverless")
        monkeypatch.setenv("EMR_SERVERLESS_APPLICATION_ID", "00fabcdefgh12345")
        monkeypatch.setenv("EMR_SERVERLESS_EXECUTION_ROLE_ARN",
                           "arn:aws:iam::123456789012:role/tpch-emr-serverless-job")
    config = PipelineConfig(runner=runner, lake="s3a://lake/tpch", landing="s3a://landing")
    with DAG(dag_id=f"render_{runner}_{step}", schedule=None) as dag:
        step_operator(step, config)
    # The task whose success is the step's (EMR on a cluster: the one that watches it).
    task = dag.get_task(step)
    _render(task, "1998-08-02")
    line = rendered_command(task)
    expected = job_command(step, config, "1998-08-02")
    assert line[0] == "spark-submit"
    # Runner options (--master, --conf, --name, --deploy-mode) sit between the program
    # and the job file; from the job file on, every runner runs the same arguments.
    assert line[-len(expected) + 1:] == expected[1:]
    assert expected[2:] == [step, "--ds", "1998-08-02", "--pipeline", "tpch",
                            "--lake", "s3a://lake/tpch",
                            "--landing", "s3a://landing"]


def test_local_runner_submits_to_the_spark_default_connection() -> None:
    from airflow.sdk import DAG
    from lakehouse.config import PipelineConfig
    from lakehouse.runners import step_operator

    from tests.support.runner_commands import rendered_command

    config = PipelineConfig(runner="local", lake="/lake", landing="/landing")
    with DAG(dag_id="render_master", schedule=None):
        task = step_operator("silver", config)
    _render(task, "1998-08-02")
    line = rendered_command(task)
    assert line[line.index("--master") + 1] == "local[2]"
    assert line[line.index("--name") + 1] == "tpch-silver-1998-08-02"
    assert Path(line[-10]).name == "main.py" and line[-9] == "silver"


def test_emr_runner_brackets_the_steps_with_a_transient_cluster() -> None:
    env = {**os.environ, "PIPELINE_RUNNER": "emr", "PYTHONPATH": str(DAGS)}
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "assert bag.import_errors == {}, bag.import_errors\n"
        "dag = bag.dags['tpch_daily']\n"
        "t = dag.get_task('terminate_emr_cluster')\n"
        "print(t.is_teardown, sorted(t.upstream_task_ids))\n"
        "print(sorted(dag.get_task('create_emr_cluster').downstream_task_ids))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip().splitlines()
    assert out[-2] == "True ['create_emr_cluster', 'notify', 'report']"
    assert out[-1] == "['submit_ingest', 'terminate_emr_cluster']"


def test_unknown_runner_is_an_import_error_naming_it() -> None:
    count, errors = import_errors_in_a_fresh_process(PIPELINE_RUNNER="yarn")
    # One DAG file declares every pipeline's DAGs: one import error, naming the runner.
    assert count == 1 and "yarn" in errors and "is not one of emr, kubernetes, local" in errors


def test_report_location_matches_the_job() -> None:
    from lakehouse.config import PipelineConfig, report_uri

    from jobs.lake import Lake
    from jobs.report.render import report_name

    config = PipelineConfig(runner="local", lake="/tmp/lake", landing="/tmp/landing")
    assert report_uri(config, "1998-08-02") == (
        f"{Lake('/tmp/lake').reports}/{report_name(dt.date(1998, 8, 2), 'tpch')}"
    )


def test_alert_message_names_dag_task_ds_try_cause_and_log() -> None:
    from lakehouse.alerts import alert_message
    from lakehouse.failures import failure_for

    class TI:
        dag_id, task_id, try_number, max_tries = "tpch_daily", "quality", 1, 3
        log_url = "http://127.0.0.1:8080/dags/tpch_daily/runs/r/tasks/quality?try_number=1"

    fields = alert_message("failure", {"ti": TI(), "ds": "1998-08-02",
                                       "exception": failure_for("quality", 3)})
    assert fields["text"] == (
        "[FAILED] dag=tpch_daily task=quality ds=1998-08-02 try=1 of 4: QualityGateFailed: "
        "quality: quality gate failed (gold restored to its last good version), not retried "
        f"(exit 3). | log: {TI.log_url}"
    )
    deadline = alert_message("deadline_missed", {
        "dag_run": {"dag_id": "tpch_daily", "dag_run_id": "scheduled__1998-08-02",
                    "logical_date": "1998-08-02T00:00:00Z"},
        "deadline": {"deadline_time": "1998-08-03T06:00:00Z"},
    })
    assert deadline["text"].startswith("[DEADLINE MISSED] dag=tpch_daily task=(whole run) "
                                       "ds=1998-08-02")
    assert "scheduled__1998-08-02" in deadline["text"]
