"""Lake and landing locations: every local spelling names the same folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.errors import ConfigError
from jobs.lake import normalize_uri


@pytest.mark.parametrize("spelling", ["{p}", "{p}/", "file://{p}", "file:{p}", "file:{p}/"])
def test_local_spellings_name_one_folder(tmp_path: Path, spelling: str) -> None:
    assert normalize_uri(spelling.format(p=tmp_path)) == f"file:{tmp_path}"


def test_a_relative_path_is_below_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_uri("data/lake") == f"file:{tmp_path}/data/lake"


def test_object_store_uris_are_kept_without_a_trailing_slash() -> None:
    assert normalize_uri("s3a://bucket/lake/") == "s3a://bucket/lake"
    assert normalize_uri("s3://bucket/lake") == "s3://bucket/lake"


@pytest.mark.parametrize("uri", ["", "  ", "hdfs://nn/lake", "gs://bucket/lake"])
def test_an_empty_or_unsupported_uri_is_a_configuration_error(uri: str) -> None:
    with pytest.raises(ConfigError):
        normalize_uri(uri)
