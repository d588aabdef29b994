"""``docs/deploy.md`` checked against the files it quotes, links and names.

The page embeds the IAM policies as JSON: a ```json block whose nearest non-blank line above
names a file under ``deploy/aws/`` must equal that file (compared as parsed JSON), and every
policy under ``deploy/aws/iam/`` (the trust policies in ``trust/`` excepted) must be embedded
that way. Every relative link must reach an existing file, and every ``#anchor`` a heading
of its page. Settings, secret names and step metrics the page names must be the ones the
code, the Helm values and ``jobs/metrics.py`` really use, so the page cannot drift into
describing features that do not exist. Pure text processing: well under a second.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from jobs.metrics import StepMetrics
from tests.support.tpch import TPCH

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
IAM = ROOT / "deploy" / "aws" / "iam"
HELM_VALUES = ROOT / "k8s" / "helm" / "airflow-values.yaml"

_FENCE = re.compile(r"^\s*```(\S*)\s*$")
_QUOTED_FILE = re.compile(r"deploy/aws/[\w./-]+?\.json")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# Settings the DAGs, the jobs and the manifests read (environment or Airflow Variable).
_SETTING = re.compile(
    r"\b(?:(?:EMR|K8S|DELTA_DYNAMODB|PIPELINE|OPENLINEAGE|STATSD|SPARK_FALLBACK)_[A-Z0-9_]*"
    r"[A-Z0-9]|LAKE_URI|LANDING_URI)\b"
)
_SECRET = re.compile(r"create secret generic (\S+)")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, text, first line and the line that introduces it."""

    lang: str
    text: str
    line: int
    intro: str


@dataclass(frozen=True)
class Page:
    """A Markdown file split into fenced blocks and the prose lines around them."""

    blocks: tuple[Block, ...]
    prose: tuple[tuple[int, str], ...]


@cache
def page(path: Path) -> Page:
    """Parse ``path`` once: fenced blocks (with their introducing line) and prose lines."""
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    fence: tuple[str, int, str] | None = None
    body: list[str] = []
    last_text = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence, body = (match.group(1), number, last_text), []
        elif fence is not None and match and not match.group(1):
            blocks.append(Block(fence[0], "\n".join(body), fence[1], fence[2]))
            fence, last_text = None, ""
        elif fence is not None:
            body.append(line)
        else:
            prose.append((number, line))
            if line.strip():
                last_text = line
    assert fence is None, f"{path}: the code block opened on line {fence[1]} is never closed"
    return Page(tuple(blocks), tuple(prose))


def quoted_files() -> dict[str, list[Block]]:
    """JSON blocks by the ``deploy/aws/...json`` file their introducing line names."""
    found: dict[str, list[Block]] = {}
    for block in page(DOC).blocks:
        names = set(_QUOTED_FILE.findall(block.intro))
        if block.lang != "json" or not names:
            continue
        assert len(names) == 1, (
            f"docs/deploy.md line {block.line}: the line above the JSON names "
            f"{sorted(names)}; name exactly one file"
        )
        found.setdefault(names.pop(), []).append(block)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get ``-1``, ``-2``...)."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in page(path).prose:
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def test_every_json_block_parses() -> None:
    """Every ```json block on the page is valid JSON (policies, trust pattern)."""
    json_blocks = [b for b in page(DOC).blocks if b.lang == "json"]
    assert json_blocks, "docs/deploy.md has no ```json block"
    for block in json_blocks:
        try:
            json.loads(block.text)
        except json.JSONDecodeError as exc:
            pytest.fail(f"docs/deploy.md line {block.line}: invalid JSON: {exc}")


def test_embedded_json_equals_the_file_it_names() -> None:
    """A JSON block introduced by a line naming ``deploy/aws/<file>.json`` is that file."""
    found = quoted_files()
    assert found, "no JSON block is introduced by a line naming a deploy/aws/*.json file"
    for name, blocks in found.items():
        path = ROOT / name
        assert path.is_file(), f"docs/deploy.md quotes {name}, which does not exist"
        expected = json.loads(path.read_text(encoding="utf-8"))
        for block in blocks:
            assert json.loads(block.text) == expected, (
                f"docs/deploy.md line {block.line}: the JSON differs from {name}; "
                "copy the file again"
            )


def test_every_iam_policy_is_embedded() -> None:
    """Each policy under deploy/aws/iam (trust policies excepted) is on the page as JSON."""
    policies = {p.relative_to(ROOT).as_posix() for p in IAM.glob("*.json")}
    assert len(policies) >= 4, f"expected the project's IAM policies in {IAM}"
    missing = policies - set(quoted_files())
    assert not missing, (
        f"not embedded in docs/deploy.md (a ```json block right after a line naming the "
        f"file): {sorted(missing)}"
    )


def test_relative_links_reach_existing_files_and_headings() -> None:
    """Relative links point at files that exist; ``#anchors`` at headings that exist."""
    own = anchors(DOC)
    broken = []
    for number, line in page(DOC).prose:
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path_part, _, fragment = target.partition("#")
            path = (DOC.parent / path_part).resolve() if path_part else DOC
            if not path.exists():
                broken.append(f"line {number}: {target} (no such file)")
            elif fragment and path.suffix == ".md" and fragment not in (
                own if path == DOC else anchors(path)
            ):
                broken.append(f"line {number}: {target} (no such heading)")
    assert not broken, "broken links in docs/deploy.md:\n" + "\n".join(broken)


@cache
def project_text() -> str:
    """The code and manifests that read settings: DAGs, jobs, k8s, docker."""
    files = [
        *ROOT.glob("dags/**/*.py"),
        *ROOT.glob("jobs/**/*.py"),
        *ROOT.glob("k8s/**/*.yaml"),
        *(ROOT / "docker").iterdir(),
    ]
    return "\n".join(f.read_text(encoding="utf-8") for f in files if f.is_file())


def test_settings_named_on_the_page_are_read_by_the_project() -> None:
    """Every setting the page names occurs in the DAGs, jobs or manifests (none invented)."""
    named = set(_SETTING.findall(DOC.read_text(encoding="utf-8")))
    assert {"PIPELINE_RUNNER", "EMR_MODE", "K8S_EXECUTOR_STEPS"} <= named
    unknown = sorted(name for name in named if name not in project_text())
    assert not unknown, f"docs/deploy.md names settings nothing reads: {unknown}"


def test_secret_names_are_the_ones_the_helm_values_expect() -> None:
    """The ``kubectl create secret`` commands create exactly the Secrets the values name."""
    values = yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))
    expected = {
        values["data"]["metadataSecretName"],
        values["fernetKeySecretName"],
        values["apiSecretKeySecretName"],
        values["jwtSecretName"],
        values["pgbouncer"]["configSecretName"],
        values["pgbouncer"]["metricsExporterSidecar"]["statsSecretName"],
    }
    created = {name for block in page(DOC).blocks for name in _SECRET.findall(block.text)}
    assert created == expected


def _points(step: str, counters: dict[str, tuple[str, ...]],
            status: str = "succeeded") -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    run = StepMetrics(
        step=step, ds=moment.date(), status=status, started_at=moment, ended_at=moment,
        rows={kind: dict.fromkeys(tables, 1) for kind, tables in counters.items()},
    )
    return [(p.name, p.dimensions) for p in run.points()]


def test_metrics_on_the_page_are_the_ones_jobs_metrics_sends() -> None:
    """Metric names and the per-run data-point count follow from ``jobs/metrics.py``.

    Counters per step as the steps record them (``run_.count``): ingest reads and writes
    every bronze table; silver reads, writes, quarantines and finds duplicates in each;
    gold writes its two marts; quality and maintain count no rows.
    """
    text = DOC.read_text(encoding="utf-8")
    bronze = TPCH.bronze_tables
    daily = {
        "ingest": {"read": bronze, "written": bronze},
        "silver": {k: bronze for k in ("read", "written", "quarantined", "duplicate")},
        "gold": {"written": ("daily_line_summary", "revenue_by_nation")},
        "quality": {},
    }
    per_run = [point for step, counters in daily.items() for point in _points(step, counters)]
    assert f"**{len(per_run)} data points" in text, (
        f"a daily run sends at most {len(per_run)} data points; the cost note says otherwise"
    )
    names = {name for name, _ in per_run} | {name for name, _ in _points("quality", {}, "failed")}
    for name in names:
        assert f"`{name}`" in text, f"metric {name} is not described in docs/deploy.md"
    observability = text[text.index("## 7. Observability"):]
    described = set(re.findall(r"`((?:Step|Rows)[A-Z][A-Za-z]*)`", observability))
    assert described <= names, f"metrics jobs/metrics.py never sends: {described - names}"
