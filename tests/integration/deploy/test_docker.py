"""The container images, checked without a Docker engine (none runs in CI).

Both Dockerfiles go through hadolint (one run) and checkov (one run over ``docker/``), with
every suppression on an explicit allow-list. Then the Dockerfiles are parsed and compared
with the project they package: the job image's entrypoint with the DAG's job command, its
jar and Spark versions with ``jobs.settings`` and pyspark's own jars, the Airflow image's
pins with ``pyproject.toml``, the build context with what the Dockerfiles copy. The two
executor scripts of the job image run for real against the venv's Spark.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
JOB = DOCKER / "job.Dockerfile"
AIRFLOW = DOCKER / "airflow.Dockerfile"
EXECUTOR_SCRIPT = DOCKER / "spark-executor.sh"
DECOMMISSION_SCRIPT = DOCKER / "spark-decommission.sh"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Every suppression, with why it is acceptable (the Dockerfiles carry the same reason).
HADOLINT_IGNORES = {
    ("job.Dockerfile", "DL3008"): "Debian keeps only the newest openjdk-17 security build; "
                                  "an exact pin breaks the next rebuild",
}
CHECKOV_SKIPS = {
    ("job.Dockerfile", "CKV_DOCKER_2"): "batch image; Kubernetes ignores HEALTHCHECK",
    ("airflow.Dockerfile", "CKV_DOCKER_2"): "several Airflow components; the Helm chart "
                                            "probes each",
}
COMPILERS = ("gcc", "g++", "cc ", "clang", "build-essential", "make ", "cmake", "gfortran",
             "rustc", "cargo", "libc6-dev", "python3-dev")


@dataclass
class Stage:
    """One build stage: its base image, name and instructions ``(KEYWORD, value)``."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        """Values of every instruction with this keyword, in order."""
        return [value for key, value in self.instructions if key == keyword]

    def args(self) -> dict[str, str]:
        """``ARG`` values of this stage: the default, or for an ``ARG`` without one the value
        ``make images`` passes from ``jobs/versions.env``."""
        from jobs.versions import read_versions

        passed = read_versions()
        declared = [arg.split("=", 1) for arg in self.values("ARG")]
        return {d[0]: d[1] if len(d) == 2 else passed[d[0]]
                for d in declared if len(d) == 2 or d[0] in passed}

    def env(self) -> dict[str, str]:
        """``ENV`` settings of this stage (``key=value`` form)."""
        pairs = [item.split("=", 1) for value in self.values("ENV") for item in shlex.split(value)]
        return {key: value for key, value in pairs}

    def copies(self) -> list[tuple[list[str], list[str], str]]:
        """``COPY`` instructions as ``(flags, sources, destination)``."""
        result = []
        for value in self.values("COPY"):
            words = value.split()
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            result.append((flags, paths[:-1], paths[-1]))
        return result

    def expand(self, text: str) -> str:
        """Substitute this stage's ``ARG`` defaults for ``${NAME}``."""
        args = self.args()
        return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), text)


def parse_dockerfile(path: Path) -> list[Stage]:
    """Split a Dockerfile into stages of logical instructions.

    Continuation lines are joined and comment lines dropped, as Docker's parser does.
    """
    stages: list[Stage] = []
    logical = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, value = logical.partition(" ")
        logical = ""
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            stages[-1].instructions.append((keyword, value))
    return stages


def pins(requirements: list[str]) -> dict[str, str]:
    """``{name: version}`` of the ``name==version`` requirements."""
    found = (re.fullmatch(r"([A-Za-z0-9._-]+)==([^;\s]+)", r.strip()) for r in requirements)
    return {m[1].lower(): m[2] for m in found if m}


def pyspark_home() -> Path:
    """The installed pyspark package (the Spark home of the project venv)."""
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None and spec.submodule_search_locations, "pyspark is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def jar_version(jars: Path, artifact: str) -> str:
    """Version of ``<artifact>-<version>.jar`` among pyspark's jars."""
    found = [p.name for p in jars.glob(f"{artifact}-*.jar")]
    assert len(found) == 1, f"expected one {artifact} jar in {jars}, found {found}"
    return found[0][len(artifact) + 1:-len(".jar")]


def fetched_artifacts(stage: Stage) -> set[str]:
    """Maven coordinates a stage fetches: ``-Dartifact=`` values and ``for artifact`` lists."""
    text = stage.expand(" ".join(stage.values("RUN")))
    fetched: set[str] = set()
    loop = re.search(r"for artifact in (.*?);\s*do", text)
    if loop:
        fetched |= set(shlex.split(loop[1]))
    for value in re.findall(r"-Dartifact=(\S+)", text):
        (coordinate,) = shlex.split(value)
        if coordinate != "${artifact}":
            fetched.add(coordinate)
    return fetched


@pytest.fixture(scope="module")
def job() -> list[Stage]:
    """The job image's stages."""
    return parse_dockerfile(JOB)


@pytest.fixture(scope="module")
def airflow_image() -> list[Stage]:
    """The Airflow image's stages."""
    return parse_dockerfile(AIRFLOW)


@pytest.fixture(scope="module")
def checkov_report(checkov: Path) -> dict[str, Any]:
    """One checkov run over ``docker/``: every Dockerfile in it, JSON report.

    Not ``--quiet``: that drops the passed and skipped checks, which show which files
    were scanned and which suppressions checkov honoured.
    """
    result = subprocess.run(
        [str(checkov), "-d", str(DOCKER), "--framework", "dockerfile", "--skip-download",
         "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["check_type"] == "dockerfile"
    return report


@pytest.fixture(scope="module")
def dag_job_command(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DAG's job command for the ``kubernetes`` runner, from its configuration.

    Imported in a child process with a throw-away ``AIRFLOW_HOME``: Airflow reads its
    configuration once per process, and this test module must not fix it for others.
    """
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'dags')!r})\n"
        "from lakehouse.config import RUNNERS, PipelineConfig\n"
        "from tests.support.runner_commands import job_command\n"
        "config = PipelineConfig(runner='kubernetes', lake='s3a://l', landing='s3a://d')\n"
        "print(json.dumps({'command': job_command('ingest', config),\n"
        "                  'application': RUNNERS['kubernetes'].application}))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow-home"))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


# --- linters -----------------------------------------------------------------------------


def test_hadolint_finds_nothing_and_every_ignore_is_needed(hadolint: Path) -> None:
    result = subprocess.run([str(hadolint), "-f", "json", str(JOB), str(AIRFLOW)],
                            capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout or "null") == [], result.stdout + result.stderr
    assert result.returncode == 0
    # Without their pragmas the files must raise exactly the allow-listed rules: no stale
    # ignore, and proof that hadolint really checks these files.
    for path in (JOB, AIRFLOW):
        stripped = re.sub(r"(?m)^# hadolint ignore=.*$", "#", path.read_text(encoding="utf-8"))
        if stripped == path.read_text(encoding="utf-8"):
            continue  # no pragma in this file: the run above already covers it
        bare = subprocess.run([str(hadolint), "-f", "json", "-"], input=stripped,
                              capture_output=True, text=True, timeout=120)
        raised = {(path.name, finding["code"]) for finding in json.loads(bare.stdout)}
        assert raised == {key for key in HADOLINT_IGNORES if key[0] == path.name}


@pytest.mark.parametrize("path", [JOB, AIRFLOW], ids=lambda p: p.name)
def test_every_hadolint_ignore_is_allowed_and_justified_above(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"# hadolint ignore=(.+)$", line.strip())
        if not match:
            continue
        for code in match[1].split(","):
            assert (path.name, code.strip()) in HADOLINT_IGNORES, f"{path.name}:{number + 1}"
        above = lines[number - 1].strip()
        assert above.startswith("#") and "hadolint" not in above and len(above) > 30, (
            f"{path.name}:{number + 1}: no justification comment on the line above"
        )


def test_checkov_scans_both_dockerfiles_and_fails_nothing(checkov_report: dict[str, Any]) -> None:
    summary, results = checkov_report["summary"], checkov_report["results"]
    assert results["failed_checks"] == []
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    scanned = {Path(check["file_path"]).name
               for check in results["passed_checks"] + results["skipped_checks"]}
    assert scanned == {JOB.name, AIRFLOW.name}
    assert summary["passed"] >= 50, summary


def test_checkov_skips_exactly_the_allowed_checks_with_reasons(
    checkov_report: dict[str, Any],
) -> None:
    skipped = {(Path(c["file_path"]).name, c["check_id"]): c["check_result"]["suppress_comment"]
               for c in checkov_report["results"]["skipped_checks"]}
    assert set(skipped) == set(CHECKOV_SKIPS)
    for key, reason in skipped.items():
        assert len(reason.strip()) > 40, f"{key}: the skip needs a real reason, got {reason!r}"


# --- job image -----------------------------------------------------------------------------


def test_job_image_final_stage_runs_as_spark_185(job: list[Stage]) -> None:
    final = job[-1]
    assert final.values("USER") == ["185:185"]  # numeric: runAsNonRoot can verify it
    run = " ".join(final.values("RUN"))
    assert "groupadd --system --gid 185 spark" in run
    assert re.search(r"useradd --system --uid 185 --gid 185 .*spark$", run)


def test_job_image_final_stage_installs_only_the_jre(job: list[Stage]) -> None:
    final = job[-1]
    run = " ".join(final.values("RUN"))
    installs = re.findall(r"apt-get install ([^&;]+)", run)
    assert len(installs) == 1
    words = installs[0].split()
    assert "--no-install-recommends" in words  # recommends could pull in a toolchain
    assert [w for w in words if not w.startswith("-")] == ["openjdk-17-jre-headless"]
    text = " ".join(value for _, value in final.instructions) + " "
    assert not [c for c in COMPILERS if c in text]
    assert "pip install" not in text and "mvn " not in text


def test_job_image_entrypoint_is_the_dag_job_command(
    job: list[Stage], dag_job_command: dict[str, Any],
) -> None:
    final = job[-1]
    entrypoint = json.loads(final.values("ENTRYPOINT")[-1])
    application = dag_job_command["application"]
    assert entrypoint == ["spark-submit", application]
    assert dag_job_command["command"][:2] == entrypoint
    copied = {dest: sources for flags, sources, dest in final.copies() if not flags}
    assert copied[application] == ["jobs/main.py"]


def test_job_image_fetches_the_jars_of_the_settings(job: list[Stage]) -> None:
    from jobs.settings import (
        DELTA_VERSION,
        OPENLINEAGE_JAR,
        OPENLINEAGE_VERSION,
        RUNTIMES,
        SPARK_JARS,
    )

    jars = next(stage for stage in job if stage.name == "jars")
    assert jars.args()["DELTA_VERSION"] == DELTA_VERSION
    assert jars.args()["OPENLINEAGE_VERSION"] == OPENLINEAGE_VERSION
    fetched = fetched_artifacts(jars)
    # Every jar of the local classpath (Delta, the OpenLineage listener) is in the image.
    assert {*SPARK_JARS, OPENLINEAGE_JAR} <= fetched
    # The kubernetes runtime commits through the DynamoDB log store: its jar must be there.
    log_store = RUNTIMES["kubernetes"].conf["spark.delta.logStore.s3a.impl"]
    assert log_store == "io.delta.storage.S3DynamoDBLogStore"
    assert f"io.delta:delta-storage-s3-dynamodb:{DELTA_VERSION}" in fetched
    assert {c.split(":")[1] for c in fetched} == {
        "delta-spark_2.13", "delta-storage", "delta-storage-s3-dynamodb",
        "openlineage-spark_2.13", "hadoop-aws", "bundle",
    }


def test_job_image_spark_versions_match_pyspark(job: list[Stage]) -> None:
    stages = {stage.name: stage for stage in job}
    pinned = pins(PYPROJECT["project"]["dependencies"])
    assert stages["venv"].args()["PYSPARK_VERSION"] == pinned["pyspark"]
    spark_jars = pyspark_home() / "jars"
    hadoop = jar_version(spark_jars, "hadoop-client-api")
    assert stages["jars"].args()["HADOOP_VERSION"] == hadoop
    assert stages["venv"].args()["HADOOP_VERSION"] == hadoop
    scala = jar_version(spark_jars, "scala-library").rsplit(".", 1)[0]
    artifacts = [coordinate.split(":")[1] for coordinate in fetched_artifacts(stages["jars"])]
    suffixes = {m[1] for a in artifacts if (m := re.search(r"_(\d+\.\d+)$", a))}
    assert suffixes == {scala}  # every Scala artifact is built for pyspark's Scala


def test_job_image_environment_puts_the_venv_spark_first(job: list[Stage]) -> None:
    venv, final = job[1], job[-1]
    # The venv's interpreter links to the base image's Python: same image in both stages.
    assert venv.name == "venv" and venv.base == final.base == "python:3.11-slim-bookworm"
    env = final.env()
    assert env["PIPELINE_RUNNER"] == "kubernetes"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == "/opt/venv/bin/python"
    assert env["SPARK_HOME"] == "/opt/venv/lib/python3.11/site-packages/pyspark"
    copies = {(tuple(flags), tuple(sources)): dest for flags, sources, dest in final.copies()}
    assert copies[("--from=venv",), ("/opt/venv",)] == "/opt/venv"
    assert copies[("--from=jars",), ("/jars/sdk/",)] == env["SPARK_HOME"] + "/jars/"
    assert copies[("--from=jars",), ("/jars/spark/",)] == env["SPARK_HOME"] + "/jars/"
    assert "java -version" in " ".join(final.values("RUN"))
    assert env["JAVA_HOME"] == "/usr/lib/jvm/java-17"


def test_job_image_installs_the_executor_scripts_where_spark_looks(job: list[Stage]) -> None:
    copies = {sources[0]: (flags, dest) for flags, sources, dest in job[-1].copies()}
    assert copies["docker/spark-executor.sh"] == (["--chmod=0755"], "/opt/tpch/bin/spark-executor")
    assert copies["docker/spark-decommission.sh"] == (["--chmod=0755"], "/opt/decom.sh")
    # /opt/decom.sh is the default of spark.kubernetes.executor.decommissionScript.
    kubernetes_jar = next((pyspark_home() / "jars").glob("spark-kubernetes_*.jar"))
    with zipfile.ZipFile(kubernetes_jar) as jar:
        config = jar.read("org/apache/spark/deploy/k8s/Config$.class")
    assert b"/opt/decom.sh" in config


def test_job_image_venv_provides_every_module_the_jobs_import() -> None:
    """The image gets the wheel's dependencies and the extras it names (no dev tools)."""
    from packaging.requirements import Requirement

    modules = set()
    for path in (ROOT / "jobs").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "jobs"}
    assert "pyspark" in third_party and "delta" in third_party
    closure: set[str] = set()
    dockerfile = (ROOT / "docker" / "job.Dockerfile").read_text(encoding="utf-8")
    extras = re.findall(r"tpch_lakehouse-\*\.whl\)\[([a-z,]+)\]", dockerfile)
    assert extras == ["aws"], "the job image installs the wheel with its `aws` extra"
    wanted = [*PYPROJECT["project"]["dependencies"],
              *(r for extra in extras[0].split(",")
                for r in PYPROJECT["project"]["optional-dependencies"][extra])]
    pending = [Requirement(r).name for r in wanted]
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in closure:
            continue
        closure.add(name)
        for raw in metadata.requires(name) or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    providers = metadata.packages_distributions()
    missing = {m: providers.get(m, []) for m in sorted(third_party)
               if not {d.lower().replace("_", "-") for d in providers.get(m, [])} & closure}
    assert not missing, (
        f"jobs/ imports {sorted(missing)} (from {missing}), which pyproject.toml's "
        "[project] dependencies do not bring: the job image would not have them"
    )


# --- Airflow image -------------------------------------------------------------------------


def test_airflow_image_base_is_the_pinned_airflow(airflow_image: list[Stage]) -> None:
    (stage,) = airflow_image
    airflow_pins = pins(PYPROJECT["project"]["optional-dependencies"]["airflow"])
    python = re.search(r">=(3\.\d+)", PYPROJECT["project"]["requires-python"])
    assert python
    assert stage.base == f"apache/airflow:{airflow_pins['apache-airflow']}-python{python[1]}"
    assert stage.values("USER") == ["50000"]
    # The environment wins over the Airflow Variable: the image must leave the switch alone.
    assert "PIPELINE_RUNNER" not in stage.env()


def test_airflow_image_pins_equal_pyproject(airflow_image: list[Stage]) -> None:
    (stage,) = airflow_image
    installs = [shlex.split(v) for v in stage.values("RUN") if v.startswith("pip install")]
    assert len(installs) == 1 and "--no-cache-dir" in installs[0]
    words = installs[0][: installs[0].index("&&")] if "&&" in installs[0] else installs[0]
    requirements = [w for w in words[2:] if not w.startswith("-")]
    assert all("==" in r for r in requirements), requirements
    expected = pins(PYPROJECT["project"]["optional-dependencies"]["airflow"])
    expected["pyspark-client"] = pins(PYPROJECT["project"]["dependencies"])["pyspark-client"]
    assert pins(requirements) == expected
    assert "pip check" in stage.values("RUN")[0]


def test_airflow_image_bakes_dags_and_pod_templates_under_project_root(
    airflow_image: list[Stage],
) -> None:
    (stage,) = airflow_image
    copies = {tuple(sources): dest for flags, sources, dest in stage.copies() if not flags}
    dags_dest = Path(copies[("dags/",)])
    assert dags_dest == Path("/opt/airflow/dags")
    # lakehouse.config.PROJECT_ROOT is two levels above dags/lakehouse/config.py.
    assert (ROOT / "dags" / "lakehouse" / "config.py").is_file()
    project_root = (dags_dest / "lakehouse" / "config.py").parents[2]
    assert Path(copies[("k8s/base/spark/",)]) == project_root / "k8s" / "base" / "spark"
    assert (ROOT / "k8s" / "base" / "spark" / "driver-pod-template.yaml").is_file()


def test_images_bake_no_secrets() -> None:
    stages = [stage for path in (JOB, AIRFLOW) for stage in parse_dockerfile(path)]
    names = [key for stage in stages for key in stage.env()]
    names += [arg.split("=", 1)[0] for stage in stages for arg in stage.values("ARG")]
    assert "PIPELINE_RUNNER" in names and "DELTA_VERSION" in names
    secret = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|ACCESS_KEY|_KEY$", re.IGNORECASE)
    assert not [name for name in names if secret.search(name)]


# --- build context -------------------------------------------------------------------------


def dockerignore_excludes(relative: str) -> bool:
    """Whether ``.dockerignore`` keeps a path out of the build context (Docker's rules).

    Patterns are Go ``filepath.Match`` globs plus ``**``; a pattern also matches every
    path below a matching directory; the last matching pattern wins; ``!`` re-admits.
    """
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = os.path.normpath(pattern.lstrip("!").strip("/"))
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, re.escape(token))
        parts = relative.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_admits_everything_the_dockerfiles_copy() -> None:
    sources = [source for path in (JOB, AIRFLOW) for stage in parse_dockerfile(path)
               for flags, paths, _ in stage.copies() if not any(f.startswith("--from")
                                                                for f in flags)
               for source in paths]
    assert "jobs/main.py" in sources and "dags/" in sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"{source} is copied into an image but does not exist"
        files = [path] if path.is_file() else [
            p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, f"{source} is empty"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not dockerignore_excludes(relative), f"{relative} is not in the context"


@pytest.mark.parametrize("relative", [
    ".venv/bin/python", ".cache/jars/delta-spark_2.13-4.0.1.jar", "data/lake/silver/x.parquet",
    ".airflow/simple_auth_manager_passwords.json.generated", ".airflow/airflow.cfg",
    "tests/integration/deploy/test_docker.py", ".git/HEAD", "spark-warehouse/t/part-0.parquet",
    "jobs/__pycache__/main.cpython-311.pyc", "tpch_lakehouse.egg-info/PKG-INFO",
    "tools/airflow_local.py", "k8s/overlays/prod/kustomization.yaml",
])
def test_dockerignore_keeps_local_state_out(relative: str) -> None:
    assert dockerignore_excludes(relative)


# --- executor scripts ----------------------------------------------------------------------


EXECUTOR_ENV = {
    "SPARK_EXECUTOR_MEMORY": "512m",
    "SPARK_EXECUTOR_ID": "7",
    "SPARK_EXECUTOR_CORES": "1",
    "SPARK_APPLICATION_ID": "spark-0123",
    "SPARK_EXECUTOR_POD_IP": "127.0.0.1",
    "SPARK_RESOURCE_PROFILE_ID": "0",
    "SPARK_EXECUTOR_POD_NAME": "tpch-ingest-exec-7",
}


def test_spark_executor_builds_the_command_line_spark_expects(tmp_path: Path) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    java.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "JAVA_HOME": str(tmp_path / "jdk"), "SPARK_HOME": "/spark",
           "SPARK_CONF_DIR": "/opt/spark/conf", "SPARK_CLASSPATH": "/extra/*",
           "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@driver:7078",
           "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078", "SPARK_JAVA_OPT_1": "-Da=b c",
           "SPARK_JAVA_OPT_2": "-Dlast=1", **EXECUTOR_ENV}
    result = subprocess.run(["bash", str(EXECUTOR_SCRIPT), "executor"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "-Dspark.driver.port=7078", "-Da=b c", "-Dlast=1", "-Xms512m", "-Xmx512m",
        "-cp", "/opt/spark/conf:/extra/*:/spark/jars/*",
        "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
        "--driver-url", "spark://CoarseGrainedScheduler@driver:7078", "--executor-id", "7",
        "--cores", "1", "--app-id", "spark-0123", "--hostname", "127.0.0.1",
        "--resourceProfileId", "0", "--podName", "tpch-ingest-exec-7",
    ]
    usage = subprocess.run(["bash", str(EXECUTOR_SCRIPT)], env=env, capture_output=True,
                           text=True, timeout=30)
    assert usage.returncode == 2 and "usage: spark-executor executor" in usage.stderr


def test_spark_executor_starts_spark_kubernetes_executor_backend(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java, "Java 17 is needed (README: `make setup` prerequisites)"
    java_home = os.environ.get("JAVA_HOME") or str(Path(java).resolve().parents[1])
    # Our own log layout proves the SPARK_JAVA_OPT_0 option reached the JVM.
    log4j = tmp_path / "log4j2.properties"
    log4j.write_text("rootLogger.level = info\nrootLogger.appenderRef.o.ref = o\n"
                     "appender.o.type = Console\nappender.o.name = o\n"
                     "appender.o.layout.type = PatternLayout\n"
                     "appender.o.layout.pattern = PROBE %c{1}: %m%n%ex\n", encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: the driver is not there
    env = {"PATH": "/usr/bin:/bin", "JAVA_HOME": java_home, "SPARK_HOME": str(pyspark_home()),
           "SPARK_CONF_DIR": str(tmp_path), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_DRIVER_URL": f"spark://CoarseGrainedScheduler@127.0.0.1:{port}",
           "SPARK_JAVA_OPT_0": f"-Dlog4j2.configurationFile=file:{log4j}", **EXECUTOR_ENV}
    result = subprocess.run(["bash", str(EXECUTOR_SCRIPT), "executor"], env=env,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0  # nothing to connect to
    assert "Could not find or load main class" not in output
    assert "PROBE KubernetesExecutorBackend: Started daemon with process name" in output
    assert f"Failed to connect to /127.0.0.1:{port}" in output, output[-3000:]


def test_spark_decommission_signals_the_executor_and_waits_for_it(tmp_path: Path) -> None:
    marker = tmp_path / "decommissioned"
    # The executor migrates its blocks until it is released, and only the hook's own wait
    # releases it: the `sleep` first on the hook's PATH sends SIGUSR1 before it sleeps. A
    # hook that returned without waiting would leave the marker at "migrating".
    executor = subprocess.Popen(
        [sys.executable, "-c",
         "import pathlib, signal, sys\n"
         f"marker = pathlib.Path({str(marker)!r})\n"
         "def on_pwr(signum, frame):\n"
         "    marker.write_text('migrating')\n"
         "def on_usr1(signum, frame):\n"
         "    if marker.exists():\n"
         "        marker.write_text('done')\n"
         "        sys.exit(0)\n"
         "signal.signal(signal.SIGPWR, on_pwr)\n"
         "signal.signal(signal.SIGUSR1, on_usr1)\n"
         "print('ready', flush=True)\n"
         "while True:\n"
         "    signal.pause()\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert executor.stdout is not None and executor.stdout.readline().strip() == "ready"
        sleep = shutil.which("sleep")
        assert sleep, "the hook needs sleep"
        (tmp_path / "bin").mkdir()
        (tmp_path / "bin" / "sleep").write_text(
            f'#!/bin/sh\nkill -s USR1 {executor.pid}\nexec {sleep} "$@"\n', encoding="utf-8")
        (tmp_path / "bin" / "sleep").chmod(0o755)
        # Reap the process as soon as it exits, as the container runtime would for PID 1.
        reaper = threading.Thread(target=executor.wait, daemon=True)
        reaper.start()
        result = subprocess.run(
            ["bash", str(DECOMMISSION_SCRIPT), str(executor.pid)],
            env={**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert marker.read_text() == "done"  # the hook returned only after the executor left
        assert f"executor (pid {executor.pid}) exited" in result.stdout
        reaper.join(timeout=5)
        assert executor.returncode == 0
    finally:
        if executor.poll() is None:
            executor.kill()
            executor.wait()
