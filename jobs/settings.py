"""Runtime settings: one mapping per runtime, chosen by the ``PIPELINE_RUNNER`` switch.

Job code is identical in every runtime; only the Spark configuration below differs.
``local`` is a developer machine or CI (``local[2]``), ``kubernetes`` is a driver pod on
EKS whose master and executor pod templates come from ``spark-submit``, and ``emr`` is an
EMR step whose cluster already provides Delta and EMRFS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jobs.versions import DELTA_VERSION, OPENLINEAGE_VERSION

__all__ = [
    "CLASS_ARCHIVE",
    "DELTA_JARS",
    "DELTA_LOG_TABLE",
    "DELTA_VERSION",
    "JAR_CACHE",
    "OPENLINEAGE_JAR",
    "OPENLINEAGE_VERSION",
    "PROJECT_ROOT",
    "RUNTIMES",
    "SPARK_JARS",
    "Runtime",
    "runtime_name",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Maven coordinates resolved once at set-up (`make setup`, whose jar rules read the same
# jobs/versions.env) into JAR_CACHE; Spark then starts from the cache, offline.
DELTA_JARS = (
    f"io.delta:delta-spark_2.13:{DELTA_VERSION}",
    f"io.delta:delta-storage:{DELTA_VERSION}",
)
# What `make setup` resolves into JAR_CACHE. Every local Spark session loads SPARK_JARS
# (Delta); the OpenLineage listener's jar only when lineage is on (the local runner then
# names it in spark.jars, dags/lakehouse/runners.py): on the classpath it costs about 3 s
# of CPU per Spark start, measured here.
SPARK_JARS = DELTA_JARS
OPENLINEAGE_JAR = f"io.openlineage:openlineage-spark_2.13:{OPENLINEAGE_VERSION}"
JAR_CACHE = Path(os.environ.get("JAR_CACHE", PROJECT_ROOT / ".cache" / "jars"))
# The class data sharing archive of a local spark-submit's classes (tools/class_archive.py,
# written by `make setup`; the spark-submit defaults name it).
CLASS_ARCHIVE = JAR_CACHE.parent / "spark-classes.jsa"

_COMMON: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # Delta: new tables get change data feed where silver needs it (set per table), and
    # optimized writes keep the file count of daily MERGEs small.
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
    "spark.databricks.delta.retentionDurationCheck.enabled": "true",
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}

_S3A: dict[str, str] = {
    # `s3://` and `s3a://` both go through S3A outside EMR; credentials come from the
    # default provider chain (IRSA web identity on EKS, env vars or profiles elsewhere).
    "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    "spark.hadoop.fs.s3a.aws.credentials.provider":
        "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
    "spark.hadoop.fs.s3a.fast.upload": "true",
}

# The DynamoDB table of Delta's S3DynamoDBLogStore (deploy/aws/dynamodb-delta-log-table.json).
DELTA_LOG_TABLE = "tpch_delta_log"
_DELTA_ON_S3: dict[str, str] = {
    # S3 has no put-if-absent that every writer honours, so two writers (a daily step and
    # maintenance, on two clusters) could both commit version N of a table. With this log
    # store a commit is first a conditional write to DynamoDB: exactly one of them wins.
    "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
    "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
    "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName":
        os.environ.get("DELTA_DYNAMODB_TABLE") or DELTA_LOG_TABLE,
    "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region":
        os.environ.get("DELTA_DYNAMODB_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
}


def _from_environment(keys: dict[str, str]) -> dict[str, str]:
    """Return Spark settings whose values come from environment variables that are set.

    :param keys: Spark configuration key by environment variable name.
    :return: one setting per variable with a non-empty value.
    """
    return {key: os.environ[var] for var, key in keys.items() if os.environ.get(var)}


@dataclass(frozen=True)
class Runtime:
    """Spark settings for one runtime.

    :param name: runtime name, the value of ``PIPELINE_RUNNER``.
    :param master: Spark master to use when the job builds its own session, or ``None``
        when ``spark-submit`` sets it.
    :param conf: Spark configuration applied to every session of this runtime.
    :param use_jar_cache: whether Delta's jars come from the project-local cache (the
        images and EMR provide them on the classpath instead).
    """

    name: str
    master: str | None
    conf: dict[str, str] = field(default_factory=dict)
    use_jar_cache: bool = True


RUNTIMES: dict[str, Runtime] = {
    "local": Runtime(
        name="local",
        master="local[2]",
        conf={
            **_COMMON,
            # Two cores and daily drops of thousands of rows: per-query planning, not data,
            # dominates. Adaptive execution re-plans every stage (measured: a daily drop
            # took 55 s with it, 30 s without), and four shuffle partitions keep two cores
            # busy for the initial load without hundreds of tiny tasks.
            "spark.sql.shuffle.partitions": "4",
            "spark.sql.adaptive.enabled": "false",
            "spark.default.parallelism": "4",
            "spark.driver.memory": os.environ.get("SPARK_DRIVER_MEMORY", "4g"),
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.files.maxPartitionBytes": "64m",
            # Delta rebuilds a table's snapshot after every commit with this many tasks
            # (default 50); on two cores, two is several times faster for every MERGE.
            "spark.databricks.delta.snapshotPartitions": "2",
            # VACUUM lists files with a Spark job of this many tasks (default 10000):
            # measured 444 s for maintaining the test lake, 70 s with 4.
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
        },
    ),
    "kubernetes": Runtime(
        name="kubernetes",
        master=None,
        conf={
            **_COMMON,
            **_S3A,
            "spark.sql.shuffle.partitions": "64",
            "spark.decommission.enabled": "true",
            "spark.storage.decommission.enabled": "true",
            "spark.storage.decommission.shuffleBlocks.enabled": "true",
            "spark.storage.decommission.rddBlocks.enabled": "true",
            "spark.dynamicAllocation.shuffleTracking.enabled": "true",
            # Blocks that no live executor can take when a spot node goes away land in S3;
            # the path (ending in "/") is per environment: the job pods' ConfigMap
            # tpch-lakehouse-runtime (k8s/overlays/*) sets SPARK_FALLBACK_STORAGE_PATH.
            "spark.storage.decommission.fallbackStorage.cleanUp": "true",
            **_from_environment(
                {"SPARK_FALLBACK_STORAGE_PATH": "spark.storage.decommission.fallbackStorage.path"}
            ),
            # Executors run as the driver's service account (its IRSA role reaches S3 and
            # DynamoDB; k8s/base/serviceaccounts.yaml) and their pods go when they end.
            "spark.kubernetes.authenticate.driver.serviceAccountName": "spark-driver",
            "spark.kubernetes.executor.deleteOnTermination": "true",
            # Driver and executor metrics to the Airflow chart's StatsD exporter (UDP 9125,
            # allowed by the NetworkPolicy allow-statsd-egress), next to Airflow's own.
            "spark.metrics.conf.*.sink.statsd.class": "org.apache.spark.metrics.sink.StatsdSink",
            "spark.metrics.conf.*.sink.statsd.host": "airflow-statsd.airflow.svc.cluster.local",
            "spark.metrics.conf.*.sink.statsd.port": "9125",
            "spark.metrics.conf.*.sink.statsd.prefix": "tpch_spark",
            **_DELTA_ON_S3,
        },
        use_jar_cache=False,
    ),
    "emr": Runtime(
        name="emr",
        master=None,
        conf={
            **_COMMON,
            "spark.sql.shuffle.partitions": "64",
            **_DELTA_ON_S3,
        },
        use_jar_cache=False,
    ),
}


def runtime_name() -> str:
    """Return the runtime selected by ``PIPELINE_RUNNER`` (default ``local``).

    :return: a key of :data:`RUNTIMES`.
    :raises KeyError: when the variable names an unknown runtime.
    """
    name = os.environ.get("PIPELINE_RUNNER", "local").strip() or "local"
    if name not in RUNTIMES:
        raise KeyError(f"PIPELINE_RUNNER={name!r}; expected one of {sorted(RUNTIMES)}")
    return name
