"""Lake and landing locations, and file listing through Hadoop's FileSystem API.

Plain paths, ``file://`` and ``s3a://``/``s3://`` URIs are accepted; listing goes through
the JVM's Hadoop FileSystem so every scheme Spark can read is listed the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "DEFAULT_LAKE",
    "DEFAULT_LANDING",
    "Lake",
    "LandedFile",
    "drop_uri",
    "exists",
    "list_files",
    "normalize_uri",
    "resolve_locations",
]

DEFAULT_LAKE = "./data/lake"
DEFAULT_LANDING = "./data/landing"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SUPPORTED = {"file", "s3", "s3a"}


def normalize_uri(uri: str) -> str:
    """Return an absolute URI without a trailing slash.

    :param uri: plain path, ``file://`` or ``file:/`` (Hadoop's spelling, which this
        function returns) or ``s3a://``/``s3://`` URI.
    :return: ``file:/abs/path`` for local paths (Hadoop's own spelling, so Delta sees one
        location per table), the URI itself otherwise.
    :raises ConfigError: for an unsupported scheme or an empty value.
    """
    uri = uri.strip()
    if not uri:
        raise ConfigError("empty lake or landing URI")
    match = _SCHEME.match(uri)
    if match is None:
        # "file:/abs" is a local path too, not a relative folder named "file:".
        local = uri[len("file:"):] if uri.startswith("file:") else uri
        return "file:" + str(Path(local).expanduser().resolve())
    scheme = match.group(1).lower()
    if scheme not in _SUPPORTED:
        raise ConfigError(
            f"unsupported URI scheme {scheme!r} in {uri!r}: use a path, file://, s3:// or s3a://"
        )
    if scheme == "file":
        return "file:" + str(Path(uri[len("file://"):]).resolve())
    return uri.rstrip("/")


@dataclass(frozen=True)
class Lake:
    """Locations of the lake's tables.

    :param root: lake root URI (normalized).
    """

    root: str

    def table(self, layer: str, name: str) -> str:
        """URI of the Delta table ``<root>/<layer>/<name>``."""
        return f"{self.root}/{layer}/{name}"

    @property
    def reports(self) -> str:
        """URI of the folder holding the HTML run reports."""
        return f"{self.root}/reports"


def resolve_locations(lake: str | None, landing: str | None,
                      defaults: tuple[str, str] | None = None) -> tuple[str, str]:
    """Apply the contract's precedence: argument, then environment, then default.

    :param lake: ``--lake`` value or ``None``.
    :param landing: ``--landing`` value or ``None``.
    :param defaults: the pipeline's default ``(lake, landing)`` (its spec's), relative
        paths below the working directory; ``./data/lake`` and ``./data/landing`` when
        not given.
    :return: normalized ``(lake_uri, landing_uri)``.
    """
    default_lake, default_landing = defaults or (DEFAULT_LAKE, DEFAULT_LANDING)
    lake_uri = lake or os.environ.get("LAKE_URI") or default_lake
    landing_uri = landing or os.environ.get("LANDING_URI") or default_landing
    return normalize_uri(lake_uri), normalize_uri(landing_uri)


def drop_uri(landing: str, ds: str) -> str:
    """URI of the landing folder of one drop."""
    return f"{landing}/ds={ds}"


@dataclass(frozen=True)
class LandedFile:
    """A file seen in a drop.

    :param uri: full URI.
    :param relative: path relative to the drop folder (``<table>/<name>``).
    :param size: length in bytes.
    :param mtime: modification time in milliseconds.
    """

    uri: str
    relative: str
    size: int
    mtime: int


def _fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return path.getFileSystem(conf), path


def exists(spark: SparkSession, uri: str) -> bool:
    """Return whether a file or folder exists."""
    fs, path = _fs(spark, uri)
    return bool(fs.exists(path))


def list_files(spark: SparkSession, folder: str) -> list[LandedFile]:
    """List every file below a folder, recursively, sorted by path.

    :param spark: active session (its Hadoop configuration carries credentials).
    :param folder: folder URI.
    :return: the files; empty when the folder does not exist.
    """
    fs, path = _fs(spark, folder)
    if not fs.exists(path):
        return []
    prefix = str(fs.makeQualified(path).toString()).rstrip("/") + "/"
    out = []
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        uri = str(status.getPath().toString())
        rel = uri[len(prefix):] if uri.startswith(prefix) else "/".join(uri.rsplit("/", 2)[-2:])
        out.append(LandedFile(uri, rel, int(status.getLen()), int(status.getModificationTime())))
    return sorted(out, key=lambda f: f.relative)
