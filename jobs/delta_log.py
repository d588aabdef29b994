"""Read a small Delta table on the driver, without a Spark job.

The ledger (``ops/runs``) is read at the start of every step to decide whether there is
anything to do. Through Spark that read costs a snapshot job and a scan job, and in a
fresh ``spark-submit`` the first of them also pays the JVM's warm-up: several seconds for
a few kilobytes, and a run with nothing to do would touch data. This module replays the
table's ``_delta_log`` (the newest classic checkpoint plus the JSON commits after it)
through the session's Hadoop file system (same URIs and credentials as Spark: local disk,
``s3a://``) and reads the live Parquet files with PyArrow.

The log is listed through Delta's own ``LogStore``, the one Spark's snapshot uses, from the
checkpoint that ``_last_checkpoint`` names. On S3 that store is the S3DynamoDBLogStore: a
commit is recorded in DynamoDB before it is copied to ``_delta_log/<version>.json``, and
its listing first finishes a commit whose copy is missing (a writer that died between the
two steps). A plain file listing would miss that commit, so a step could redo a run the
ledger already holds. Why this is not the ``deltalake`` package (delta-rs), with the numbers:
``docs/design/delta-log-reader.md``.

It handles the tables it is meant for: protocol reader version 1 or 2 without reader
features, no column mapping, no deletion vectors, no partition columns, classic
single-file checkpoints, at most :data:`MAX_FILES` live files. For anything else (or
without PyArrow) :func:`read_small_table` returns ``None`` and the caller reads through
Spark, which handles every feature.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from jobs.lake import _fs

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["read_small_table"]

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.parquet$")
# Any other checkpoint name (multi-part, v2 with a UUID) means a layout this reader skips.
_OTHER_CHECKPOINT = re.compile(r"^\d{20}\.checkpoint\..+")


# More files than this (a ledger nobody compacts) are read faster by Spark's parallel scan.
MAX_FILES = 64


class _Unsupported(Exception):
    """The table uses something this reader does not handle: read it through Spark."""


def _read_bytes(spark: SparkSession, uri: str) -> bytes:
    fs, path = _fs(spark, uri)
    stream = fs.open(path)
    try:
        # One Py4J round trip; naming a class through the JVM view costs one per package.
        return bytes(stream.readAllBytes())
    finally:
        stream.close()


def _read_parquet(data: bytes) -> Any:
    """One Parquet file's rows as a PyArrow table, read on the calling thread only.

    ``pq.read_table`` goes through Arrow's dataset scanner, whose worker threads can still
    be alive when the interpreter exits: Arrow then aborts the process ("terminate called
    without an active exception", exit 134) after the step has succeeded, seen here on
    no-op runs under Airflow. A single-file reader without threads or pre-buffering
    starts no thread.
    """
    import pyarrow.parquet as pq

    return pq.ParquetFile(io.BytesIO(data), pre_buffer=False).read(use_threads=False)


def _list_log(spark: SparkSession, log: str, start: int) -> list[str]:
    """Names in ``_delta_log`` from ``<start>.`` on, listed by Delta's ``LogStore``.

    Delta's ``listFrom`` is what repairs an S3DynamoDBLogStore commit that is in DynamoDB
    but not yet in the log; it also keeps the names before ``start`` (hundreds on a long
    ledger, one Py4J round trip each) on the JVM's side.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    store = jvm.org.apache.spark.sql.delta.storage.LogStore.apply(spark._jsparkSession)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    listing = store.listFrom(jvm.org.apache.hadoop.fs.Path(f"{log}/{start:020d}."), conf)
    names = []
    while listing.hasNext():
        names.append(str(listing.next().getPath().getName()))
    return names


def _log_names(spark: SparkSession, log: str) -> list[str]:
    """The log's names from its last checkpoint on (from version 0 without a usable hint)."""
    fs, path = _fs(spark, f"{log}/_last_checkpoint")
    if fs.exists(path):
        from py4j.protocol import Py4JJavaError

        try:
            start = int(json.loads(_read_bytes(spark, f"{log}/_last_checkpoint"))["version"])
        except (Py4JJavaError, ValueError, KeyError, TypeError):  # only a hint, as for Delta
            start = 0
        if start > 0:
            names = _list_log(spark, log, start)
            # A hint naming a checkpoint that is not there: replay from the first commit.
            if any(_CHECKPOINT.match(n) and int(n[:20]) == start for n in names):
                return names
    return _list_log(spark, log, 0)


def _replay(spark: SparkSession, log: str, names: list[str]) -> tuple[dict[str, Any], dict[
        str, Any], dict[str, Any]]:
    """The live ``add`` actions, the protocol and the metadata at the newest version."""
    commits = sorted(int(m.group(1)) for n in names if (m := _COMMIT.match(n)))
    if not commits:
        raise _Unsupported("no commit")
    latest = commits[-1]
    checkpoints = [int(m.group(1)) for n in names if (m := _CHECKPOINT.match(n))]
    checkpoints = [v for v in checkpoints if v <= latest]
    if any(_OTHER_CHECKPOINT.match(n) and not _CHECKPOINT.match(n) for n in names):
        raise _Unsupported("multi-part or v2 checkpoint")
    live: dict[str, Any] = {}
    protocol: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    start = 0
    if checkpoints:
        cp = max(checkpoints)
        table = _read_parquet(_read_bytes(spark, f"{log}/{cp:020d}.checkpoint.parquet"))
        for action in table.to_pylist():
            if action.get("add"):
                live[action["add"]["path"]] = action["add"]
            if action.get("protocol"):
                protocol = action["protocol"]
            if action.get("metaData"):
                metadata = action["metaData"]
                config = metadata.get("configuration") or []
                metadata["configuration"] = dict(config) if isinstance(config, list) else config
        start = cp + 1
    needed = list(range(start, latest + 1))
    if set(needed) - set(commits):
        raise _Unsupported("a commit after the checkpoint is missing")
    for version in needed:
        text = _read_bytes(spark, f"{log}/{version:020d}.json").decode("utf-8")
        for line in text.splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
            elif "protocol" in action:
                protocol = action["protocol"]
            elif "metaData" in action:
                metadata = action["metaData"]
    return live, protocol, metadata


def _check_supported(live: dict[str, Any], protocol: dict[str, Any],
                     metadata: dict[str, Any]) -> None:
    if not protocol or int(protocol.get("minReaderVersion") or 0) > 2 or protocol.get(
            "readerFeatures"):
        raise _Unsupported(f"protocol {protocol}")
    config = metadata.get("configuration") or {}
    if config.get("delta.columnMapping.mode", "none") != "none":
        raise _Unsupported("column mapping")
    if metadata.get("partitionColumns"):
        raise _Unsupported("partition columns")
    if any(add.get("deletionVector") for add in live.values()):
        raise _Unsupported("deletion vectors")


def _python_value(value: Any, typ: Any) -> Any:
    """PyArrow's Python value as PySpark's ``Row.asDict(recursive=True)`` gives it."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_map(typ):  # PyArrow gives a MAP as a list of (key, value) pairs
        return {k: _python_value(v, typ.item_type) for k, v in value}
    if pa.types.is_struct(typ):
        return {f.name: _python_value(value.get(f.name), f.type) for f in typ}
    if pa.types.is_list(typ):
        return [_python_value(v, typ.value_type) for v in value]
    if pa.types.is_timestamp(typ):
        # PySpark returns session-local naive datetimes; Parquet holds UTC instants
        # (INT96 comes back naive, in nanoseconds, as a pandas Timestamp; TIMESTAMP_MICROS
        # aware).
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime(warn=False)
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone().replace(tzinfo=None)
    return value


def read_small_table(spark: SparkSession, uri: str) -> list[dict[str, Any]] | None:
    """Every row of a small Delta table, read on the driver without a Spark job.

    :param spark: the session (its Hadoop file system and credentials are used).
    :param uri: the table's URI.
    :return: the rows as dicts (PySpark's Python types), ``[]`` for an empty table, or
        ``None`` when the table uses a feature this reader does not handle (read it
        through Spark then).
    """
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:  # an environment without PyArrow (a dependency): Spark reads it
        return None
    log = f"{uri.rstrip('/')}/_delta_log"
    fs, path = _fs(spark, log)
    if not fs.exists(path):
        return None
    names = _log_names(spark, log)
    try:
        live, protocol, metadata = _replay(spark, log, names)
        _check_supported(live, protocol, metadata)
    except _Unsupported:
        return None
    if len(live) > MAX_FILES:
        return None
    columns = [f["name"] for f in json.loads(metadata["schemaString"])["fields"]]
    rows: list[dict[str, Any]] = []
    for file in sorted(live):
        relative = urllib.parse.unquote(file)
        location = relative if re.match(r"^[a-z][a-z0-9+.-]*:", relative) else \
            f"{uri.rstrip('/')}/{relative}"
        table = _read_parquet(_read_bytes(spark, location))
        types = {f.name: f.type for f in table.schema}
        for row in table.to_pylist():
            rows.append({c: _python_value(row.get(c), types[c]) if c in types else None
                         for c in columns})
    return rows
