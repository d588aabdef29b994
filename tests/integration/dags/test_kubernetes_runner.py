"""The ``kubernetes`` runner's pods, rendered offline exactly as the worker would build them.

Every step task of both DAGs is parsed with ``PIPELINE_RUNNER=kubernetes``, its templates
rendered for one run, and its pod built with the provider's own
``build_pod_request_obj(dry_run=True)`` (no cluster needed). The pods are serialized with
the Kubernetes client's ``sanitize_for_serialization`` and validated in strict mode
against the official schemas of Kubernetes 1.30 and 1.37.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_helpers import DAGS

DS = "1998-08-02"
LAKE = "s3a://tpch-lake/tpch"
LANDING = "s3a://tpch-landing/drops"
K8S_VERSIONS = ("1.30.0", "1.37.0")


class _TI:
    def __init__(self, dag_id: str, task_id: str) -> None:
        self.dag_id, self.task_id = dag_id, task_id
        self.map_index = -1
        self.try_number = 2

    def xcom_pull(self, task_ids: str) -> str:
        raise AssertionError("pod steps pull no XCom")


def _context(dag: Any, task: Any) -> dict[str, Any]:
    return {
        "ds": DS,
        "ds_nodash": DS.replace("-", ""),
        "logical_date": dt.datetime.fromisoformat(DS).replace(tzinfo=dt.UTC),
        "run_id": f"scheduled__{DS}T00:00:00+00:00",
        "dag": dag,
        "task": task,
        "ti": _TI(dag.dag_id, task.task_id),
        "params": {},
    }


def _bag(runner: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("PIPELINE_RUNNER", runner)
    monkeypatch.setenv("LAKE_URI", LAKE)
    monkeypatch.setenv("LANDING_URI", LANDING)
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def pods() -> dict[str, dict[str, Any]]:
    """``{task: serialized pod}`` for every pod task of both TPC-H DAGs, plus the operators."""
    from kubernetes.client import ApiClient
    from lakehouse.pod import PodStep

    with pytest.MonkeyPatch.context() as monkeypatch:
        bag = _bag("kubernetes", monkeypatch)
        built: dict[str, dict[str, Any]] = {}
        for dag in bag.dags.values():
            if not dag.dag_id.startswith("tpch_"):
                continue
            for task in dag.tasks:
                if not isinstance(task, PodStep):
                    continue
                context = _context(dag, task)
                task.render_template_fields(context)
                pod = task.build_pod_request_obj(context, dry_run=True)
                built[task.task_id] = {
                    "pod": ApiClient().sanitize_for_serialization(pod),
                    "task": task,
                    "selector": task._build_find_pod_label_selector(context),
                }
    return built


@pytest.fixture(scope="module")
def local_commands() -> dict[str, list[str]]:
    """The local runner's rendered command line of every TPC-H step, for comparison."""
    from tests.support.runner_commands import rendered_command

    with pytest.MonkeyPatch.context() as monkeypatch:
        bag = _bag("local", monkeypatch)
        lines = {}
        for dag in bag.dags.values():
            if not dag.dag_id.startswith("tpch_"):
                continue
            for task in dag.tasks:
                if hasattr(task, "application"):
                    task.render_template_fields(_context(dag, task))
                    lines[task.task_id] = rendered_command(task)
    return lines


def test_every_step_of_both_dags_runs_in_a_pod(pods: dict[str, dict[str, Any]]) -> None:
    assert sorted(pods) == ["gold", "ingest", "maintain", "quality", "report", "silver"]


def test_rendered_pods_validate_strictly_against_kubernetes_schemas(
        pods: dict[str, dict[str, Any]], kubernetes_validate: Path,
        tmp_path: Path) -> None:
    files = []
    for task_id, item in sorted(pods.items()):
        path = tmp_path / f"{task_id}.json"
        path.write_text(json.dumps(item["pod"]), encoding="utf-8")
        files.append(str(path))
    for version in K8S_VERSIONS:
        result = subprocess.run(
            [str(kubernetes_validate), "--strict", "--kubernetes-version", version, *files],
            capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"k8s {version}:\n{result.stdout}{result.stderr}"
        assert result.stdout.count("INFO") == len(files), result.stdout


def test_pod_command_line_equals_the_local_runners(
        pods: dict[str, dict[str, Any]], local_commands: dict[str, list[str]]) -> None:
    for task_id, item in pods.items():
        container = item["pod"]["spec"]["containers"][0]
        line = [*container["command"], *container["args"]]
        local = local_commands[task_id]
        job_file = next(i for i, arg in enumerate(line) if arg.endswith("jobs/main.py"))
        local_file = next(i for i, arg in enumerate(local) if arg.endswith("jobs/main.py"))
        assert line[0] == local[0] == "spark-submit"
        assert line[job_file] == "/opt/tpch/jobs/main.py"
        assert line[job_file + 1:] == local[local_file + 1:]
        assert line[job_file + 1:] == [task_id, "--ds", DS, "--pipeline", "tpch", "--lake", LAKE,
                                       "--landing", LANDING]


def test_pods_run_non_root_read_only_without_capabilities(
        pods: dict[str, dict[str, Any]]) -> None:
    for task_id, item in pods.items():
        spec = item["pod"]["spec"]
        assert spec["restartPolicy"] == "Never", task_id
        assert spec["serviceAccountName"] == "spark-driver"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        (container,) = spec["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "Spark needs a writable /tmp"
        assert volumes[mounts["/opt/spark/pod-templates"]]["configMap"]["name"] == \
            "spark-pod-templates"
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], "Guaranteed QoS for drivers"


def test_drivers_run_on_on_demand_nodes(pods: dict[str, dict[str, Any]]) -> None:
    for item in pods.values():
        spec = item["pod"]["spec"]
        terms = spec["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        wanted = {(e["key"], tuple(e["values"])) for t in terms for e in t["matchExpressions"]}
        assert wanted == {("eks.amazonaws.com/capacityType", ("ON_DEMAND",)),
                          ("karpenter.sh/capacity-type", ("on-demand",))}
        assert not any(t.get("key") == "spot" for t in spec.get("tolerations") or [])


def test_large_steps_put_executors_on_spot_small_steps_stay_in_the_pod(
        pods: dict[str, dict[str, Any]]) -> None:
    for task_id, item in pods.items():
        container = item["pod"]["spec"]["containers"][0]
        args = container["args"]
        master = args[args.index("--master") + 1]
        conf = dict(a.split("=", 1) for a in args[1::] if "=" in a and a.startswith("spark."))
        if task_id in {"ingest", "silver", "gold"}:
            assert master == "k8s://https://kubernetes.default.svc:443"
            assert args[args.index("--deploy-mode") + 1] == "client"
            assert conf["spark.kubernetes.executor.podTemplateFile"] == \
                "/opt/spark/pod-templates/executor.yaml"
            assert conf["spark.kubernetes.container.image"] == container["image"]
            assert conf["spark.kubernetes.namespace"] == item["pod"]["metadata"]["namespace"]
            # $(VAR) in arguments is expanded by Kubernetes only for variables the
            # container defines: the driver's own IP and pod name, from the downward API.
            env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                   for e in container["env"]}
            assert conf["spark.driver.host"] == "$(SPARK_DRIVER_POD_IP)"
            assert env["SPARK_DRIVER_POD_IP"] == "status.podIP"
            assert conf["spark.kubernetes.driver.pod.name"] == "$(SPARK_DRIVER_POD_NAME)"
            assert env["SPARK_DRIVER_POD_NAME"] == "metadata.name"
        else:
            assert master == "local[*]", task_id
            assert "--deploy-mode" not in args


def test_retry_reattaches_to_the_running_pod_instead_of_starting_a_second_writer(
        pods: dict[str, dict[str, Any]]) -> None:
    for task_id, item in pods.items():
        task, labels = item["task"], item["pod"]["metadata"]["labels"]
        assert task.durable is True and task.reattach_on_restart is True
        assert task.on_finish_action.value == "delete_pod"
        assert task.get_logs is True
        # The pod carries its task identity; the selector a retry searches with omits the
        # try number, so try 2 finds try 1's pod if it still runs.
        assert labels["task_id"] == task_id and labels["try_number"] == "2"
        selector = item["selector"]
        assert f"task_id={task_id}" in selector and "run_id=" in selector
        assert "try_number" not in selector


def test_pods_hand_the_openlineage_parent_to_spark_when_lineage_is_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG
    from lakehouse.config import PipelineConfig
    from lakehouse.runners import step_operator

    monkeypatch.setenv("OPENLINEAGE_URL", "http://marquez.lineage:5000")
    config = PipelineConfig(runner="kubernetes", lake=LAKE, landing=LANDING)
    with DAG(dag_id="lineage_on", schedule=None):
        task = step_operator("silver", config)
    args = task.arguments[:task.arguments.index("/opt/tpch/jobs/main.py")]
    conf = dict(a.split("=", 1) for a in args if a.startswith("spark."))
    assert conf["spark.extraListeners"] == "io.openlineage.spark.agent.OpenLineageSparkListener"
    assert conf["spark.openlineage.transport.url"] == "http://marquez.lineage:5000"
    # Rendered per task try by the OpenLineage provider's macro functions, the DAGs'
    # user-defined macros (the e2e run checks the rendered ids reach Spark's events).
    assert conf["spark.openlineage.parentRunId"] == "{{ lineage_run_id(task_instance) }}"
    monkeypatch.delenv("OPENLINEAGE_URL")
    with DAG(dag_id="lineage_off", schedule=None):
        quiet = step_operator("silver", config)
    assert not [a for a in quiet.arguments if "openlineage" in a]
