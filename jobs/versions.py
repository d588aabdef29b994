"""The pinned JVM-side versions, read from ``jobs/versions.env``.

That file is the one place Delta, Spark, OpenLineage, Hadoop and AWS SDK versions are
written: the Makefile includes it, ``make images`` passes it to the job image's build,
and Python reads it here. It ships inside the ``jobs`` package (package data), so the
same values are found in the editable install, in the job image and in the wheel EMR
loads from ``--py-files`` (a zip, hence :mod:`importlib.resources` and not a path).
"""

from __future__ import annotations

import re
from importlib import resources

__all__ = [
    "AWS_SDK_VERSION",
    "DELTA_VERSION",
    "HADOOP_VERSION",
    "OPENLINEAGE_VERSION",
    "PYSPARK_VERSION",
    "VERSIONS_FILE",
    "parse_versions",
    "read_versions",
]

VERSIONS_FILE = "versions.env"
# What make, sh and Python all read the same way: no quotes, spaces or expansions.
_LINE = re.compile(r"([A-Z][A-Z0-9_]*)=([0-9A-Za-z][0-9A-Za-z.+-]*)")


def parse_versions(text: str, source: str = VERSIONS_FILE) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; blank lines and ``#`` comment lines are skipped.

    :param text: the file's content.
    :param source: the file's name, for error messages.
    :return: value by key, in file order.
    :raises ValueError: for a line that is not ``KEY=VALUE`` or a key given twice, naming
        the file and line.
    """
    versions: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"{source}:{number}: expected KEY=VALUE, got {raw!r}")
        key, value = match.groups()
        if key in versions:
            raise ValueError(f"{source}:{number}: {key} is already set")
        versions[key] = value
    return versions


def read_versions() -> dict[str, str]:
    """Return every version of ``jobs/versions.env`` by key.

    :return: value by key, e.g. ``{"DELTA_VERSION": "4.0.1", ...}``.
    """
    text = resources.files("jobs").joinpath(VERSIONS_FILE).read_text(encoding="utf-8")
    return parse_versions(text, f"jobs/{VERSIONS_FILE}")


_VERSIONS = read_versions()
DELTA_VERSION = _VERSIONS["DELTA_VERSION"]
PYSPARK_VERSION = _VERSIONS["PYSPARK_VERSION"]
OPENLINEAGE_VERSION = _VERSIONS["OPENLINEAGE_VERSION"]
HADOOP_VERSION = _VERSIONS["HADOOP_VERSION"]
AWS_SDK_VERSION = _VERSIONS["AWS_SDK_VERSION"]
