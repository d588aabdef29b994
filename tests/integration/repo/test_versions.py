"""Each version is written once; every copy that cannot read its source agrees with it.

The sources: ``jobs/versions.env`` for the JVM side (Delta, Spark, OpenLineage, Hadoop,
the AWS SDK bundle), read by the Makefile, by ``jobs/versions.py`` and, through
``make images``, by the job image's build; ``pyproject.toml``'s ``[project] version`` for
the project (image tags, the wheel's name). The pip pins, manifests, Helm values, the DAGs'
defaults and the docs cannot read either file, so they are compared with them here, and a
mismatch is reported as ``file:line``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from jobs.settings import OPENLINEAGE_JAR, SPARK_JARS
from jobs.versions import parse_versions, read_versions

ROOT = Path(__file__).resolve().parents[3]
VERSIONS_FILE = "jobs/versions.env"
VERSIONS = read_versions()
PYPROJECT_TEXT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
PROJECT_VERSION = tomllib.loads(PYPROJECT_TEXT)["project"]["version"]
SOURCES = {**VERSIONS, "PROJECT_VERSION": PROJECT_VERSION}
SOURCE_OF = {**dict.fromkeys(VERSIONS, VERSIONS_FILE), "PROJECT_VERSION": "pyproject.toml"}

_V = r"\d+\.\d+\.\d+"
# Where a version is written outside its source, one regex per form; each named group is
# the key of the version it must equal. An image tag may also carry the commit
# (`<version>-<sha>`, docker/README.md).
COPIES = [
    rf"delta-spark_2\.13-(?P<DELTA_VERSION>{_V})\.jar",
    rf"delta-storage-(?P<DELTA_VERSION>{_V})\.jar",
    rf"io\.delta:[\w.-]+:(?P<DELTA_VERSION>{_V})",
    rf"delta-spark==(?P<DELTA_VERSION>{_V})",
    rf"pyspark(?:-client)?==(?P<PYSPARK_VERSION>{_V})",
    rf"\bSpark\s+(?P<PYSPARK_VERSION>{_V})\s+and\s+Delta\s+(?P<DELTA_VERSION>{_V})",
    rf"openlineage-spark_2\.13-(?P<OPENLINEAGE_VERSION>{_V})\.jar",
    rf"io\.openlineage:openlineage-spark_2\.13:(?P<OPENLINEAGE_VERSION>{_V})",
    rf"hadoop-aws:(?P<HADOOP_VERSION>{_V})",
    rf"hadoop-client-api-(?P<HADOOP_VERSION>{_V})\.jar",
    rf"awssdk:bundle:(?P<AWS_SDK_VERSION>{_V})",
    rf"tpch-lakehouse-(?:job|airflow):(?P<PROJECT_VERSION>{_V})(?:-[0-9a-f]{{12}})?\b",
    rf"tpch_lakehouse-(?P<PROJECT_VERSION>{_V})-py3",
    rf"tpch-lakehouse-artifacts/tpch-lakehouse/(?P<PROJECT_VERSION>{_V})",
]
# Not compared: the sources themselves, this file (its own examples), and the benchmark
# records, which state what a past run used (bench/ writes them from the installed
# packages, not from these files).
NOT_COPIES = {VERSIONS_FILE, "tests/integration/repo/test_versions.py", "docs/benchmarks.md"}
NOT_COPIES_UNDER = ("docs/bench/",)


def occurrences(text: str) -> Iterator[tuple[int, str, str]]:
    """Every version written in ``text`` in one of the :data:`COPIES` forms.

    :param text: a file's content.
    :return: ``(line number, key, version)`` per occurrence.
    """
    for pattern in COPIES:
        for match in re.finditer(pattern, text):
            for key, value in match.groupdict().items():
                line = text.count("\n", 0, match.start(key)) + 1
                yield line, key, value


def mismatches(files: Iterable[tuple[str, str]], sources: dict[str, str]) -> list[str]:
    """Describe every copy that differs from its source, as ``file:line``.

    :param files: ``(path, content)`` of the files to check.
    :param sources: version by key.
    :return: one message per mismatch.
    """
    return [
        f"{path}:{line}: {key} is {value}, but {SOURCE_OF.get(key, 'its source')} says "
        f"{sources[key]}"
        for path, text in files
        for line, key, value in occurrences(text)
        if value != sources[key]
    ]


def repository_files() -> list[tuple[str, str]]:
    """The repository's text files (tracked and new, not ignored) except :data:`NOT_COPIES`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    files = []
    for name in sorted(set(listed) - {""} - NOT_COPIES):
        path = ROOT / name
        if name.startswith(NOT_COPIES_UNDER) or not path.is_file():
            continue
        try:
            files.append((name, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # binary: no version is written in it
    return files


def line_of(path: str, needle: str) -> str:
    """``path:line`` of the first line containing ``needle``, for failure messages."""
    for number, line in enumerate((ROOT / path).read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return f"{path}:{number}"
    return f"{path}: {needle!r} not found"


def make(*args: str) -> str:
    """Run make in the repository root (no recipe runs with ``-n``/``-s`` targets used here)."""
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def allowed_tags(version: str) -> re.Pattern[str]:
    """The image tags of one project version: ``<version>`` or ``<version>-<commit>``."""
    return re.compile(rf"{re.escape(version)}(?:-[0-9a-f]{{12}})?")


# --- the source ----------------------------------------------------------------------------


def test_versions_file_holds_the_jvm_versions_as_plain_key_value_lines() -> None:
    assert set(VERSIONS) == {"DELTA_VERSION", "PYSPARK_VERSION", "OPENLINEAGE_VERSION",
                             "HADOOP_VERSION", "AWS_SDK_VERSION"}
    assert all(re.fullmatch(_V, value) for value in VERSIONS.values()), VERSIONS


def test_parse_versions_skips_comments_and_blank_lines() -> None:
    text = "# Delta\n\nDELTA_VERSION=4.0.1\n  # indented comment\nHADOOP_VERSION=3.4.1\n"
    assert parse_versions(text) == {"DELTA_VERSION": "4.0.1", "HADOOP_VERSION": "3.4.1"}


@pytest.mark.parametrize(("text", "message"), [
    ("A=1.0.0\nDELTA_VERSION = 4.0.1\n", "v.env:2: expected KEY=VALUE"),
    ('A=1.0.0\nDELTA_VERSION="4.0.1"\n', "v.env:2: expected KEY=VALUE"),
    ("export DELTA_VERSION=4.0.1\n", "v.env:1: expected KEY=VALUE"),
    ("DELTA_VERSION=$(X)\n", "v.env:1: expected KEY=VALUE"),
    ("DELTA_VERSION=4.0.1\n\nDELTA_VERSION=4.0.2\n", "v.env:3: DELTA_VERSION is already set"),
])
def test_parse_versions_rejects_what_make_and_python_would_read_differently(
    text: str, message: str,
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_versions(text, "v.env")


# --- readers of the source -----------------------------------------------------------------


def test_make_and_the_jobs_read_the_same_versions() -> None:
    args = make("-s", "image-build-args").split()
    assert args[::2] == ["--build-arg"] * len(VERSIONS)
    assert dict(arg.split("=", 1) for arg in args[1::2]) == VERSIONS


def test_make_setup_resolves_exactly_the_jars_the_sessions_load(tmp_path: Path) -> None:
    """``make`` has a rule for each jar file name the jobs expect in the cache."""
    expected = [*SPARK_JARS, OPENLINEAGE_JAR]
    names = [f"{artifact}-{version}.jar"
             for artifact, version in (c.split(":")[1:] for c in expected)]
    dry_run = make("-n", f"JARS={tmp_path}", *(str(tmp_path / name) for name in names))
    resolved = re.findall(r"-Dartifact=(\S+)", dry_run)
    assert resolved == expected
    assert f"delta-spark_2.13:{VERSIONS['DELTA_VERSION']}" in expected[0]


def test_make_images_passes_the_versions_and_tags_with_the_project_version() -> None:
    dry_run = make("-n", "images")
    job, airflow = (line for line in dry_run.replace("\\\n", " ").splitlines() if line)
    assert "-f docker/job.Dockerfile" in job and "-f docker/airflow.Dockerfile" in airflow
    for key, value in VERSIONS.items():
        assert f"--build-arg {key}={value}" in job
    assert f"-t tpch-lakehouse-job:{PROJECT_VERSION} " in job
    assert re.search(rf"-t tpch-lakehouse-job:{re.escape(PROJECT_VERSION)}-[0-9a-f]{{12}} ", job)
    assert f"-t tpch-lakehouse-airflow:{PROJECT_VERSION} " in airflow


def test_job_dockerfile_takes_every_version_as_a_build_arg_without_default() -> None:
    text = (ROOT / "docker" / "job.Dockerfile").read_text(encoding="utf-8")
    declared = re.findall(r"(?m)^ARG (\w+)(=\S*)?$", text)
    versions = {name: default for name, default in declared if name in VERSIONS}
    assert set(versions) == set(VERSIONS), "every --build-arg of make images is used"
    with_default = [line_of("docker/job.Dockerfile", f"ARG {name}=")
                    for name, default in versions.items() if default]
    assert not with_default, f"a second copy of a version: {with_default}"
    for name in VERSIONS:
        assert f'"${{{name}:?' in text, f"a build without {name} must stop, naming it"


def test_pip_pins_are_the_releases_of_the_jars() -> None:
    """pyspark, pyspark-client and delta-spark are the Python halves of the jars' releases."""
    expected = {"pyspark": VERSIONS["PYSPARK_VERSION"],
                "pyspark-client": VERSIONS["PYSPARK_VERSION"],
                "delta-spark": VERSIONS["DELTA_VERSION"]}
    dependencies = tomllib.loads(PYPROJECT_TEXT)["project"]["dependencies"]
    pinned = dict(d.split("==", 1) for d in dependencies if d.split("==")[0] in expected)
    wrong = [f"{line_of('pyproject.toml', f'{name}==')}: {name}=={pinned.get(name)}, "
             f"expected {version}" for name, version in expected.items()
             if pinned.get(name) != version]
    assert not wrong, wrong
    airflow = (ROOT / "docker" / "airflow.Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r'"pyspark-client==([^"]+)"', airflow) == [VERSIONS["PYSPARK_VERSION"]]


def test_the_venv_runs_the_pinned_releases() -> None:
    """What is installed is what the sources say (a stale venv fails here, not later)."""
    assert metadata.version("pyspark") == VERSIONS["PYSPARK_VERSION"]
    assert metadata.version("delta-spark") == VERSIONS["DELTA_VERSION"]
    assert metadata.version("tpch-lakehouse") == PROJECT_VERSION
    pyspark_jars = Path(str(metadata.distribution("pyspark").locate_file("pyspark/jars")))
    hadoop = {p.name for p in pyspark_jars.glob("hadoop-client-api-*.jar")}
    assert hadoop == {f"hadoop-client-api-{VERSIONS['HADOOP_VERSION']}.jar"}


# --- copies that cannot read it ------------------------------------------------------------


def test_prod_images_are_the_project_version() -> None:
    tag = allowed_tags(PROJECT_VERSION)
    prod = yaml.safe_load((ROOT / "k8s/overlays/prod/kustomization.yaml").read_text())
    (job,) = [i for i in prod["images"] if i["name"] == "tpch-lakehouse-job"]
    assert tag.fullmatch(str(job["newTag"])), line_of("k8s/overlays/prod/kustomization.yaml",
                                                      "newTag:")
    helm = yaml.safe_load((ROOT / "k8s/helm/airflow-values-prod.yaml").read_text())
    assert tag.fullmatch(str(helm["images"]["airflow"]["tag"])), line_of(
        "k8s/helm/airflow-values-prod.yaml", "tag:")
    for template in ("driver-pod-template.yaml", "executor-pod-template.yaml"):
        pod = yaml.safe_load((ROOT / "k8s/base/spark" / template).read_text())
        (container,) = pod["spec"]["containers"]
        name, _, image_tag = container["image"].partition(":")
        assert name == "tpch-lakehouse-job"
        assert tag.fullmatch(image_tag), line_of(f"k8s/base/spark/{template}", "image:")


def test_dev_images_are_one_release_candidate_after_the_project_version() -> None:
    dev = yaml.safe_load((ROOT / "k8s/overlays/dev/kustomization.yaml").read_text())
    (job,) = [i for i in dev["images"] if i["name"] == "tpch-lakehouse-job"]
    helm = yaml.safe_load((ROOT / "k8s/helm/airflow-values-dev.yaml").read_text())
    assert str(job["newTag"]) == str(helm["images"]["airflow"]["tag"])
    candidate = re.fullmatch(rf"({_V})-rc\.\d+", str(job["newTag"]))
    assert candidate, line_of("k8s/overlays/dev/kustomization.yaml", "newTag:")
    assert Version(str(job["newTag"])) > Version(PROJECT_VERSION), (
        f"{line_of('k8s/overlays/dev/kustomization.yaml', 'newTag:')}: dev runs "
        f"{job['newTag']}, not newer than the released {PROJECT_VERSION}"
    )


def test_dag_default_image_and_artifacts_are_the_project_version() -> None:
    """The Airflow image has the DAGs without the project: their one copy is compared."""
    path = ROOT / "dags" / "lakehouse" / "config.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == ["PROJECT_VERSION"]]
    assert isinstance(value, ast.Constant)
    assert value.value == PROJECT_VERSION, f"dags/lakehouse/config.py:{value.lineno}"


def test_every_written_copy_agrees_with_its_source() -> None:
    files = repository_files()
    checked = [(path, key) for path, text in files for _, key, _ in occurrences(text)]
    assert {path for path, _ in checked} >= {"pyproject.toml", "docker/airflow.Dockerfile",
                                             "k8s/base/spark/driver-pod-template.yaml"}
    assert mismatches(files, SOURCES) == []


def test_a_copy_that_disagrees_is_reported_with_file_and_line() -> None:
    files = [
        ("docs/x.md", "intro\nfetch io.delta:delta-storage:4.0.0 here\n"),
        ("k8s/y.yaml", "image: tpch-lakehouse-job:0.0.9\n"
                       "image: tpch-lakehouse-job:1.2.3-0123456789ab\n"),
        ("z.md", "tested with Spark 4.0.1 and\nDelta 4.0.2, fine with pyspark==4.0.1\n"),
    ]
    sources = {**SOURCES, "DELTA_VERSION": "4.0.1", "PYSPARK_VERSION": "4.0.1",
               "PROJECT_VERSION": "1.2.3"}
    assert mismatches(files, sources) == [
        "docs/x.md:2: DELTA_VERSION is 4.0.0, but jobs/versions.env says 4.0.1",
        "k8s/y.yaml:1: PROJECT_VERSION is 0.0.9, but pyproject.toml says 1.2.3",
        "z.md:2: DELTA_VERSION is 4.0.2, but jobs/versions.env says 4.0.1",
    ]
