"""Kubernetes deployment (``k8s/``), checked with the real tools and no cluster.

One ``kustomize build`` per overlay; one ``kubernetes-validate --strict`` run per
Kubernetes version over every rendered document and both Spark pod templates; one checkov
run over all of it. Then the rendered objects are read for what they must mean: least
privilege RBAC, drivers on on-demand and executors on spot nodes, default-deny networking,
quotas per environment, IRSA roles and images per environment. Last, the Helm values of
the official Airflow chart are merged per environment as Helm merges them and validated
against (an excerpt of) the chart's own values schema.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
TEMPLATES = {
    "driver": K8S / "base" / "spark" / "driver-pod-template.yaml",
    "executor": K8S / "base" / "spark" / "executor-pod-template.yaml",
}
HELM = K8S / "helm"
CHART_SCHEMA = Path(__file__).parent / "schemas" / "airflow-chart-values.schema.json"
K8S_VERSIONS = ("1.30.0", "1.37.0")
NAMESPACES = {"airflow", "tpch-jobs"}
PART_OF = {"app.kubernetes.io/part-of": "tpch-lakehouse"}

# Every checkov suppression in k8s/, with why it is acceptable. The manifests carry each as
# a `checkov.io/skipN: CHECK=reason` annotation on the object itself.
CHECKOV_SKIPS = {
    ("tpch-spark-driver", "CKV_K8S_8"): "batch driver: nothing to probe; execution_timeout "
                                        "ends a hung step",
    ("tpch-spark-driver", "CKV_K8S_9"): "batch driver: serves no traffic",
    ("tpch-spark-driver", "CKV_K8S_38"): "the driver calls the API server for its executors",
    ("tpch-spark-driver", "CKV_K8S_40"): "UID 185 is the job image's spark user; non-root "
                                         "is enforced",
    ("tpch-spark-driver", "CKV_K8S_43"): "the KubernetesPodOperator sets the image per "
                                         "environment",
    ("tpch-spark-executor", "CKV_K8S_8"): "Spark executor: the driver replaces lost ones",
    ("tpch-spark-executor", "CKV_K8S_9"): "Spark executor: behind no Service",
    ("tpch-spark-executor", "CKV_K8S_40"): "UID 185 is the job image's spark user; non-root "
                                           "is enforced",
    ("tpch-spark-executor", "CKV_K8S_43"): "Spark sets the executor image to the driver's",
}

ON_DEMAND_TERMS = [
    {"matchExpressions": [{"key": "eks.amazonaws.com/capacityType", "operator": "In",
                           "values": ["ON_DEMAND"]}]},
    {"matchExpressions": [{"key": "karpenter.sh/capacity-type", "operator": "In",
                           "values": ["on-demand"]}]},
]
SPOT_TERMS = [
    {"matchExpressions": [{"key": "eks.amazonaws.com/capacityType", "operator": "In",
                           "values": ["SPOT"]}]},
    {"matchExpressions": [{"key": "karpenter.sh/capacity-type", "operator": "In",
                           "values": ["spot"]}]},
]
SPOT_TOLERATION = {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}

# Least privilege, as (apiGroup, resource, verb) triples per Role.
ROLE_GRANTS = {
    "airflow-pod-launcher": {
        *(("", "pods", v) for v in ("create", "get", "list", "watch", "delete", "patch")),
        *(("", "pods/log", v) for v in ("get", "list")),
        *(("", "events", v) for v in ("get", "list", "watch")),
    },
    "spark-driver": {
        *(("", "pods", v) for v in ("create", "get", "list", "watch", "delete",
                                    "deletecollection", "patch")),
        *(("", r, v) for r in ("services", "configmaps", "persistentvolumeclaims")
           for v in ("create", "get", "list", "watch", "delete", "deletecollection")),
    },
}
ROLE_SUBJECTS = {
    "airflow-pod-launcher": [{"kind": "ServiceAccount", "name": "airflow-worker",
                              "namespace": "airflow"}],
    "spark-driver": [{"kind": "ServiceAccount", "name": "spark-driver",
                      "namespace": "tpch-jobs"}],
}
ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/[\w+=,.@-]+$")
IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/tpch-lakehouse-job:(.+)$")


# --------------------------------------------------------------------------- helpers


def load_all(text: str) -> list[dict[str, Any]]:
    """Parse a multi-document YAML string, dropping empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str,
         namespace: str | None = None) -> dict[str, Any]:
    """The one rendered object of this kind and name (and namespace, when given)."""
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
            and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (``500m``, ``4``, ``32Gi``) as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def skip_annotations(doc: dict[str, Any]) -> dict[str, str]:
    """checkov suppressions on an object: check id -> reason."""
    annotations = doc.get("metadata", {}).get("annotations") or {}
    skips = {}
    for key, value in annotations.items():
        if key.startswith("checkov.io/skip"):
            check, _, reason = value.partition("=")
            skips[check] = reason
    return skips


def helm_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge values files as Helm does: maps merge recursively, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def module_constant(path: Path, name: str) -> str:
    """A module-level string constant, read without importing the module."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError(f"{name} not found in {path}")


def account_of(arn: str) -> str:
    """The AWS account id of an IAM role ARN (asserting the ARN's shape)."""
    match = ROLE_ARN.match(arn)
    assert match, arn
    return match.group(1)


def walk_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key path in a nested mapping."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from walk_keys(value, path)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rendered(kustomize: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``kustomize build`` of every overlay, written to one file per overlay."""
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [str(kustomize), "build", str(K8S / "overlays" / overlay)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 0, f"kustomize build {overlay} failed:\n{result.stderr}"
        files[overlay] = out / f"{overlay}.yaml"
        files[overlay].write_text(result.stdout, encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def docs(rendered: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    """The rendered objects of every overlay."""
    return {name: load_all(path.read_text(encoding="utf-8")) for name, path in rendered.items()}


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    """The two Spark pod templates as shipped in k8s/base/spark/."""
    return {name: yaml.safe_load(path.read_text(encoding="utf-8"))
            for name, path in TEMPLATES.items()}


@pytest.fixture(scope="module")
def checkov_report(checkov: Path, rendered: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over both rendered overlays and both pod templates."""
    scan = tmp_path_factory.mktemp("checkov")
    for path in [*rendered.values(), *TEMPLATES.values()]:
        shutil.copy(path, scan / path.name)
    result = subprocess.run(
        [str(checkov), "-d", str(scan), "--framework", "kubernetes", "--skip-download",
         "--quiet", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.stdout.strip(), f"checkov printed no report:\n{result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["kubernetes"], result.stdout[:2000]
    return {"report": reports[0], "returncode": result.returncode}


@pytest.fixture(scope="module")
def helm_values() -> dict[str, dict[str, Any]]:
    """The chart values of every environment, merged as ``helm -f common -f env`` does."""
    common = yaml.safe_load((HELM / "airflow-values.yaml").read_text(encoding="utf-8"))
    return {
        env: helm_merge(common, yaml.safe_load(
            (HELM / f"airflow-values-{env}.yaml").read_text(encoding="utf-8")))
        for env in OVERLAYS
    }


# --------------------------------------------------------------------------- rendering


def test_both_overlays_render_the_same_objects(docs: dict[str, list[dict[str, Any]]]) -> None:
    expected = {
        ("Namespace", "airflow"), ("Namespace", "tpch-jobs"),
        ("ServiceAccount", "airflow-worker"), ("ServiceAccount", "spark-driver"),
        ("ServiceAccount", "default"),
        ("Role", "airflow-pod-launcher"), ("RoleBinding", "airflow-pod-launcher"),
        ("Role", "spark-driver"), ("RoleBinding", "spark-driver"),
        ("ResourceQuota", "tpch-jobs"), ("LimitRange", "tpch-jobs"),
        ("PodDisruptionBudget", "spark-driver"),
        ("NetworkPolicy", "default-deny-all"), ("NetworkPolicy", "allow-dns-egress"),
        ("NetworkPolicy", "allow-spark-within-app"), ("NetworkPolicy", "allow-https-egress"),
        ("NetworkPolicy", "allow-statsd-egress"), ("NetworkPolicy", "allow-openlineage-egress"),
        ("ConfigMap", "spark-pod-templates"), ("ConfigMap", "tpch-lakehouse-runtime"),
        ("ConfigMap", "tpch-lakehouse-pipeline"),
    }
    for overlay, objects in docs.items():
        kinds = [(d["kind"], d["metadata"]["name"]) for d in objects]
        assert sorted(kinds) == sorted(expected), overlay
        for doc in objects:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] in NAMESPACES, doc["metadata"]
            assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == (
                f"tpch-lakehouse-{overlay}")


def test_pod_template_config_map_ships_the_template_files(
        docs: dict[str, list[dict[str, Any]]], templates: dict[str, dict[str, Any]]) -> None:
    for objects in docs.values():
        data = find(objects, "ConfigMap", "spark-pod-templates", "tpch-jobs")["data"]
        assert set(data) == {"driver.yaml", "executor.yaml"}
        assert yaml.safe_load(data["driver.yaml"]) == templates["driver"]
        assert yaml.safe_load(data["executor.yaml"]) == templates["executor"]


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_validates_strictly(
        version: str, kubernetes_validate: Path, rendered: dict[str, Path],
        docs: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    # A control document with a misspelt field proves the run is strict: it must fail.
    control = tmp_path / "control-unknown-field.yaml"
    control.write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: control\n"
                       "  namespace: tpch-jobs\nautomountServiceAccountTokn: false\n",
                       encoding="utf-8")
    files = [*rendered.values(), *TEMPLATES.values(), control]
    result = subprocess.run(
        [str(kubernetes_validate), "--strict", "-k", version, *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and control.name in errors[0], output
    assert "automountServiceAccountTokn" in errors[0]
    passed = [line for line in output.splitlines()
              if line.startswith("INFO") and " passed for resource " in line]
    expected = sum(len(objects) for objects in docs.values()) + len(TEMPLATES)
    assert len(passed) == expected, output


def test_checkov_finds_nothing_beyond_the_justified_skips(
        checkov_report: dict[str, Any], docs: dict[str, list[dict[str, Any]]],
        templates: dict[str, dict[str, Any]]) -> None:
    report = checkov_report["report"]
    failed = [(c["check_id"], c["resource"], c["file_path"])
              for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert checkov_report["returncode"] == 0
    summary = report["summary"]
    scanned = [*docs["dev"], *docs["prod"], *templates.values()]
    assert summary["resource_count"] == len(scanned)
    assert summary["parsing_errors"] == 0
    # Suppressions live only on the objects, each with a reason, and are exactly the list.
    skips = {(doc["metadata"]["name"], check): reason
             for doc in scanned for check, reason in skip_annotations(doc).items()}
    assert set(skips) == set(CHECKOV_SKIPS)
    assert all(len(reason) > 20 for reason in skips.values()), skips
    assert summary["skipped"] == len(skips)
    assert summary["passed"] > 100


# --------------------------------------------------------------------------- RBAC


def test_rbac_is_namespaced_least_privilege(docs: dict[str, list[dict[str, Any]]]) -> None:
    for objects in docs.values():
        kinds = {d["kind"] for d in objects}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        roles = [d for d in objects if d["kind"] == "Role"]
        assert {r["metadata"]["name"] for r in roles} == set(ROLE_GRANTS)
        for role in roles:
            assert role["metadata"]["namespace"] == "tpch-jobs"
            grants = set()
            for rule in role["rules"]:
                assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
                grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                           for v in rule["verbs"]}
            assert grants == ROLE_GRANTS[role["metadata"]["name"]]
            assert not any("*" in part for grant in grants for part in grant)
            assert not any(r in {"secrets", "pods/exec", "pods/attach"} for _, r, _ in grants)
        for name, subjects in ROLE_SUBJECTS.items():
            binding = find(objects, "RoleBinding", name, "tpch-jobs")
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                          "kind": "Role", "name": name}
            assert binding["subjects"] == subjects


def test_service_accounts_carry_a_different_irsa_role_per_overlay(
        docs: dict[str, list[dict[str, Any]]]) -> None:
    arns: dict[str, dict[str, str]] = {}
    for overlay, objects in docs.items():
        for name, namespace in (("airflow-worker", "airflow"), ("spark-driver", "tpch-jobs")):
            account = find(objects, "ServiceAccount", name, namespace)
            arn = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            account_of(arn)
            assert f"-{overlay}-" in arn
            arns.setdefault(name, {})[overlay] = arn
        assert find(objects, "ServiceAccount", "default", "tpch-jobs")[
            "automountServiceAccountToken"] is False
    for by_overlay in arns.values():
        assert by_overlay["dev"] != by_overlay["prod"]
    accounts = {o: {account_of(a[o]) for a in arns.values()} for o in OVERLAYS}
    assert len(accounts["dev"]) == len(accounts["prod"]) == 1
    assert accounts["dev"] != accounts["prod"]


# --------------------------------------------------------------------------- pods


def test_driver_template_runs_on_demand_and_executor_template_on_spot(
        templates: dict[str, dict[str, Any]]) -> None:
    driver, executor = templates["driver"], templates["executor"]
    affinity = "requiredDuringSchedulingIgnoredDuringExecution"
    assert driver["spec"]["affinity"]["nodeAffinity"][affinity]["nodeSelectorTerms"] == (
        ON_DEMAND_TERMS)
    assert "tolerations" not in driver["spec"]
    assert executor["spec"]["affinity"]["nodeAffinity"][affinity]["nodeSelectorTerms"] == (
        SPOT_TERMS)
    assert executor["spec"]["tolerations"] == [SPOT_TOLERATION]
    assert executor["spec"]["terminationGracePeriodSeconds"] >= 120


def test_pod_templates_follow_the_shared_conventions(
        templates: dict[str, dict[str, Any]]) -> None:
    for component, template in templates.items():
        spec = template["spec"]
        labels = template["metadata"]["labels"]
        assert labels == {"app.kubernetes.io/name": "tpch-lakehouse", **PART_OF,
                          "app.kubernetes.io/component": f"spark-{component}"}
        assert template["metadata"]["namespace"] == "tpch-jobs"
        assert spec["serviceAccountName"] == "spark-driver"
        assert spec["automountServiceAccountToken"] is (component == "driver")
        assert spec["restartPolicy"] == "Never"
        assert spec["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 185, "runAsGroup": 185, "fsGroup": 185,
            "seccompProfile": {"type": "RuntimeDefault"}}
        [container] = spec["containers"]
        assert container["name"] == ("base" if component == "driver"
                                     else "spark-kubernetes-executor")
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "privileged": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}} in spec["volumes"]
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
    driver = templates["driver"]["spec"]
    assert {"name": "pod-templates", "configMap": {"name": "spark-pod-templates"}} in (
        driver["volumes"])
    assert {"name": "pod-templates", "mountPath": "/opt/spark/pod-templates",
            "readOnly": True} in driver["containers"][0]["volumeMounts"]
    assert driver["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "tpch-lakehouse-runtime"}}]
    # The executor template is where the DAG's runner tells Spark to find it.
    assert module_constant(ROOT / "dags" / "lakehouse" / "pod.py", "EXECUTOR_TEMPLATE") == (
        "/opt/spark/pod-templates/executor.yaml")
    assert templates["executor"]["spec"]["containers"][0]["command"] == [
        "/opt/tpch/bin/spark-executor"]


def test_running_drivers_may_not_be_evicted_and_executors_have_no_budget(
        docs: dict[str, list[dict[str, Any]]]) -> None:
    for objects in docs.values():
        budgets = [d for d in objects if d["kind"] == "PodDisruptionBudget"]
        assert len(budgets) == 1
        spec = budgets[0]["spec"]
        assert spec["maxUnavailable"] == 0
        assert spec["selector"] == {"matchLabels": {
            **PART_OF, "app.kubernetes.io/component": "spark-driver"}}


# --------------------------------------------------------------------------- network


def test_job_namespace_denies_by_default_and_allows_only_what_spark_needs(
        docs: dict[str, list[dict[str, Any]]]) -> None:
    driver_port = int(module_constant(ROOT / "dags" / "lakehouse" / "pod.py", "DRIVER_PORT"))
    block_port = int(module_constant(ROOT / "dags" / "lakehouse" / "pod.py",
                                     "BLOCK_MANAGER_PORT"))
    for objects in docs.values():
        policies = {d["metadata"]["name"]: d["spec"] for d in objects
                    if d["kind"] == "NetworkPolicy"}
        assert all(d["metadata"]["namespace"] == "tpch-jobs" for d in objects
                   if d["kind"] == "NetworkPolicy")
        assert policies["default-deny-all"] == {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        dns = policies["allow-dns-egress"]["egress"]
        assert dns == [{
            "to": [{"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
        https = policies["allow-https-egress"]["egress"]
        assert https == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                              "except": ["169.254.169.254/32"]}}],
                          "ports": [{"protocol": "TCP", "port": 443}]}]
        spark = policies["allow-spark-within-app"]
        spark_ports = [{"protocol": "TCP", "port": min(driver_port, block_port),
                        "endPort": max(driver_port, block_port)}]
        assert abs(driver_port - block_port) == 1
        assert spark["ingress"] == [{"from": [{"podSelector": {"matchLabels": PART_OF}}],
                                     "ports": spark_ports}]
        assert spark["egress"] == [{"to": [{"podSelector": {"matchLabels": PART_OF}}],
                                    "ports": spark_ports}]
        statsd = policies["allow-statsd-egress"]["egress"][0]
        assert statsd["to"][0]["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": "airflow"}}
        assert statsd["ports"] == [{"protocol": "UDP", "port": 9125}]
        # Nothing outside the pipeline's own pods may open a connection into the namespace.
        for name, spec in policies.items():
            for rule in spec.get("ingress", []):
                assert rule["from"] == [{"podSelector": {"matchLabels": PART_OF}}], name
            for rule in spec.get("egress", []):
                assert rule.get("ports"), f"{name}: egress without port restriction"


# --------------------------------------------------------------------------- sizing


def test_each_overlay_has_quota_and_limits_prod_larger_than_dev(
        docs: dict[str, list[dict[str, Any]]], templates: dict[str, dict[str, Any]]) -> None:
    quota = {o: find(docs[o], "ResourceQuota", "tpch-jobs", "tpch-jobs")["spec"]["hard"]
             for o in OVERLAYS}
    limits = {o: find(docs[o], "LimitRange", "tpch-jobs", "tpch-jobs")["spec"]["limits"]
              for o in OVERLAYS}
    for key in ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "pods"):
        assert quantity(quota["prod"][key]) > quantity(quota["dev"][key]), key
    for overlay in OVERLAYS:
        [container] = limits[overlay]
        assert container["type"] == "Container"
        for resource in ("cpu", "memory"):
            assert (quantity(container["defaultRequest"][resource])
                    <= quantity(container["default"][resource])
                    <= quantity(container["max"][resource]))
            # Pods built from the templates are admitted by the LimitRange.
            for template in templates.values():
                limit = template["spec"]["containers"][0]["resources"]["limits"][resource]
                assert quantity(limit) <= quantity(container["max"][resource]), overlay


# --------------------------------------------------------------------------- settings


def test_environment_settings_differ_per_overlay_and_reach_spark(
        docs: dict[str, list[dict[str, Any]]]) -> None:
    seen: dict[str, set[str]] = {"image": set(), "fallback": set(), "lake": set()}
    for overlay, objects in docs.items():
        pipeline = find(objects, "ConfigMap", "tpch-lakehouse-pipeline", "airflow")["data"]
        runtime = find(objects, "ConfigMap", "tpch-lakehouse-runtime", "tpch-jobs")["data"]
        image = IMAGE.match(pipeline["K8S_JOB_IMAGE"])
        assert image, pipeline["K8S_JOB_IMAGE"]
        assert image.group(2) not in {"", "latest"}
        arn = find(objects, "ServiceAccount", "spark-driver", "tpch-jobs")["metadata"][
            "annotations"]["eks.amazonaws.com/role-arn"]
        assert image.group(1) == account_of(arn)
        assert pipeline["K8S_NAMESPACE"] == "tpch-jobs"
        for key in ("LAKE_URI", "LANDING_URI"):
            assert pipeline[key].startswith("s3a://") and f"-{overlay}-" in pipeline[key]
        fallback = runtime["SPARK_FALLBACK_STORAGE_PATH"]
        assert fallback.startswith("s3a://") and fallback.endswith("/")
        seen["image"].add(pipeline["K8S_JOB_IMAGE"])
        seen["fallback"].add(fallback)
        seen["lake"].add(pipeline["LAKE_URI"])
        # What the driver pod gets from the ConfigMap becomes Spark's fallback storage path;
        # executors run as the manifests' service account; metrics go where the policy lets.
        probe = subprocess.run(
            [sys.executable, "-c", "import json; from jobs.settings import RUNTIMES; "
             "print(json.dumps(RUNTIMES['kubernetes'].conf))"],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
            env={"SPARK_FALLBACK_STORAGE_PATH": fallback, "PATH": "/usr/bin:/bin"},
        )
        assert probe.returncode == 0, probe.stderr
        conf = json.loads(probe.stdout)
        assert conf["spark.storage.decommission.fallbackStorage.path"] == fallback
        for key in ("spark.decommission.enabled", "spark.storage.decommission.enabled",
                    "spark.storage.decommission.shuffleBlocks.enabled",
                    "spark.storage.decommission.rddBlocks.enabled",
                    "spark.dynamicAllocation.shuffleTracking.enabled"):
            assert conf[key] == "true", key
        assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == "spark-driver"
        statsd = find(objects, "NetworkPolicy", "allow-statsd-egress", "tpch-jobs")
        assert conf["spark.metrics.conf.*.sink.statsd.port"] == str(
            statsd["spec"]["egress"][0]["ports"][0]["port"])
        assert conf["spark.metrics.conf.*.sink.statsd.host"].startswith("airflow-statsd.airflow.")
    assert all(len(values) == len(OVERLAYS) for values in seen.values()), seen


def test_namespaces_enforce_pod_security(docs: dict[str, list[dict[str, Any]]]) -> None:
    for objects in docs.values():
        jobs = find(objects, "Namespace", "tpch-jobs")["metadata"]["labels"]
        assert jobs["pod-security.kubernetes.io/enforce"] == "restricted"
        airflow = find(objects, "Namespace", "airflow")["metadata"]["labels"]
        assert airflow["pod-security.kubernetes.io/enforce"] == "baseline"


# --------------------------------------------------------------------------- Helm values


def test_helm_values_validate_against_the_chart_schema(
        helm_values: dict[str, dict[str, Any]]) -> None:
    schema = json.loads(CHART_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    for env, values in helm_values.items():
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(values)]
        assert errors == [], f"{env}: {errors}"
        # The chart's schema leaves the top level open; a misspelt section would be ignored.
        assert set(values) <= set(schema["properties"]), set(values) - set(schema["properties"])
    # Controls: the schema rejects a misspelt key and a wrong type where the chart does.
    broken = helm_merge(helm_values["prod"], {"pgbouncer": {"enabeld": True}})
    assert not validator.is_valid(broken)
    assert not validator.is_valid(helm_merge(helm_values["prod"], {"scheduler": {"replicas": "2"}}))


def test_helm_values_configure_the_deployment(
        helm_values: dict[str, dict[str, Any]], docs: dict[str, list[dict[str, Any]]]) -> None:
    for env, values in helm_values.items():
        assert values["executor"] == "KubernetesExecutor"
        assert values["multiNamespaceMode"] is False
        assert values["postgresql"] == {"enabled": False}
        assert values["pgbouncer"]["enabled"] is True
        # Secrets only by reference: nothing inline, every secret name set.
        keys = set(walk_keys(values))
        inline = {"fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey",
                  "data.metadataConnection", "data.resultBackendConnection",
                  "apiServer.defaultUser.password"}
        assert not keys & inline, keys & inline
        for name in ("data.metadataSecretName", "fernetKeySecretName",
                     "apiSecretKeySecretName", "jwtSecretName", "pgbouncer.configSecretName",
                     "pgbouncer.metricsExporterSidecar.statsSecretName"):
            node: Any = values
            for part in name.split("."):
                node = node[part]
            assert isinstance(node, str) and node, name
        logging = values["config"]["logging"]
        assert logging["remote_logging"] == "True"
        assert logging["remote_base_log_folder"].startswith(f"s3://tpch-lakehouse-{env}-")
        assert logging["remote_log_conn_id"] == "aws_default"
        assert values["workers"]["serviceAccount"] == {"create": False, "name": "airflow-worker"}
        assert values["dags"] == {"persistence": {"enabled": False},
                                  "gitSync": {"enabled": False}}
        assert values["statsd"]["enabled"] is True
        for component in ("scheduler", "apiServer", "pgbouncer"):
            assert values[component]["podDisruptionBudget"]["enabled"] is True, component
        assert values["env"] == [{"name": "PIPELINE_RUNNER", "value": "kubernetes"}]
        assert yaml.safe_load(values["extraEnvFrom"]) == [
            {"configMapRef": {"name": "tpch-lakehouse-pipeline"}}]
        # Tied to the same environment's manifests: image release and IRSA role.
        objects = docs[env]
        job_image = find(objects, "ConfigMap", "tpch-lakehouse-pipeline", "airflow")[
            "data"]["K8S_JOB_IMAGE"]
        registry, tag = job_image.rsplit(":", 1)
        assert values["images"]["airflow"] == {
            "repository": registry.replace("tpch-lakehouse-job", "tpch-lakehouse-airflow"),
            "tag": tag, "pullPolicy": "IfNotPresent"}
        worker_arn = find(objects, "ServiceAccount", "airflow-worker", "airflow")["metadata"][
            "annotations"]["eks.amazonaws.com/role-arn"]
        for component in ("apiServer", "triggerer"):
            assert values[component]["serviceAccount"]["annotations"] == {
                "eks.amazonaws.com/role-arn": worker_arn}
