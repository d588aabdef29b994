"""Spark session factory: Delta configured, jars from the project-local cache, quiet logs.

``python -m jobs`` builds its own session here. ``spark-submit jobs/main.py`` arrives with
a session already configured by ``spark-submit`` (its conf dir is written once by
:func:`write_spark_conf`), and :func:`get_session` only adds the runtime settings that can
still change at run time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.errors import ConfigError
from jobs.settings import (
    CLASS_ARCHIVE,
    JAR_CACHE,
    PROJECT_ROOT,
    RUNTIMES,
    SPARK_JARS,
    runtime_name,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["cached_jars", "driver_class_path", "driver_java_options", "get_session",
           "log4j_config", "write_spark_conf"]

_CONF_DIR = Path(__file__).resolve().parent / "conf"


def cached_jars(cache: Path = JAR_CACHE) -> list[Path]:
    """Return the Delta jars in the project-local cache.

    :param cache: the jar cache folder (``.cache/jars`` by default).
    :return: one path per coordinate in :data:`jobs.settings.SPARK_JARS`.
    :raises ConfigError: when a jar is missing, i.e. set-up has not run.
    """
    jars = []
    for coordinate in SPARK_JARS:
        _, artifact, version = coordinate.split(":")
        jar = cache / f"{artifact}-{version}.jar"
        if not jar.is_file():
            raise ConfigError(
                f"jar {jar} is missing: run `make setup` once (it resolves "
                f"{coordinate} from Maven Central into {cache})"
            )
        jars.append(jar)
    return jars


def verbose_requested() -> bool:
    """Return whether verbose Spark logs were asked for (``PIPELINE_VERBOSE=1``)."""
    return os.environ.get("PIPELINE_VERBOSE", "").lower() in {"1", "true", "yes"}


def log4j_config(verbose: bool | None = None) -> Path:
    """Return the log4j2 configuration file to use.

    :param verbose: force verbose or quiet; ``None`` reads ``PIPELINE_VERBOSE``.
    :return: path of the properties file.
    """
    if verbose is None:
        verbose = verbose_requested()
    return _CONF_DIR / ("log4j2-verbose.properties" if verbose else "log4j2.properties")


def driver_java_options(archive: bool = True) -> str:
    """Return the local driver's JVM options: quiet logs and, with ``archive``, the class
    data sharing archive of ``make setup`` (:data:`jobs.settings.CLASS_ARCHIVE`).

    A JVM maps the archive only when its class path starts with the one it was recorded
    with (:func:`driver_class_path`); otherwise it warns once and loads from the jars.
    Before the archive exists the option is harmless (the JVM runs without it).
    """
    options = f"-Dlog4j2.configurationFile=file:{log4j_config()} -Dderby.system.home=/tmp"
    if archive:
        options += f" -XX:SharedArchiveFile={CLASS_ARCHIVE}"
    return options


def driver_class_path(spark_home: Path) -> str:
    """Return the local driver's class path: Spark's jars, then Delta's.

    spark-submit puts its conf dir ahead of Spark's jars, and JDK 17 cannot archive
    classes from a class path entry after a non-empty directory; the driver's extra class
    path comes before the conf dir, so naming the jars here lets every class the driver
    loads be archived. (The same jars follow again; the first entry wins.)
    """
    return ":".join([str(spark_home / "jars" / "*"), *(str(j) for j in cached_jars())])


def get_session(app_name: str = "tpch-lakehouse") -> SparkSession:
    """Return the SparkSession for the runtime chosen by ``PIPELINE_RUNNER``.

    Reuses an active session (``spark-submit``, tests); otherwise builds one with the
    runtime's master, Delta's extensions and the jars from the local cache.

    :param app_name: Spark application name.
    :return: a session that can read and write Delta tables.
    :raises ConfigError: for an unknown runtime or a missing jar cache.
    """
    try:
        runtime = RUNTIMES[runtime_name()]
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # The driver binds to loopback on a laptop; this also silences Spark's
    # "hostname resolves to a loopback address" warning.
    if runtime.name == "local":
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if runtime.master and not _launched_by_spark_submit():
        builder = builder.master(runtime.master)
    for key, value in runtime.conf.items():
        builder = builder.config(key, value)
    if runtime.use_jar_cache and not _launched_by_spark_submit():
        builder = builder.config("spark.jars", ",".join(str(j) for j in cached_jars()))
        builder = builder.config("spark.driver.extraJavaOptions", driver_java_options())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("INFO" if verbose_requested() else "WARN")
    _check_delta_on_classpath(spark)
    return spark


# Small drops (a developer's sample, the tests' SF 0.001-0.01 days): per-query compilation,
# not data, dominates. Without whole-stage code generation and with interpreted
# expressions a daily SF 0.001 drop through `all` took 59-61 s instead of 81-82 s here
# (spark-submit, two cores). Large drops keep code generation, which pays off per row.
SMALL_DATA_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
SMALL_DROP_BYTES = 64 * 1024 * 1024


def small_drop_limit() -> int:
    """Bytes below which a drop counts as small (``PIPELINE_SMALL_DROP_BYTES``, 0: never).

    :raises ConfigError: when the variable is not a non-negative integer.
    """
    raw = os.environ.get("PIPELINE_SMALL_DROP_BYTES", "").strip()
    if not raw:
        return SMALL_DROP_BYTES
    if not raw.isdigit():
        raise ConfigError(f"PIPELINE_SMALL_DROP_BYTES={raw!r} is not a number of bytes")
    return int(raw)


def tune_for_drop(spark: SparkSession, landing: str, ds: str) -> int | None:
    """Switch a local session to small-data execution when the run's drop is small.

    Only the ``local`` runtime: clusters run large drops. The settings are runtime SQL
    settings, so the decision is per application (``spark-submit`` runs one step or
    ``all`` for one drop).

    :param spark: the session.
    :param landing: landing URI.
    :param ds: the run's date (its drop may be missing: it then counts as small).
    :return: the drop's size in bytes when the small-data settings were applied.
    """
    from jobs.lake import drop_uri, list_files

    if runtime_name() != "local":
        return None
    drop_bytes = sum(f.size for f in list_files(spark, drop_uri(landing, ds)))
    if drop_bytes >= small_drop_limit():
        return None
    for key, value in SMALL_DATA_CONF.items():
        spark.conf.set(key, value)
    return drop_bytes


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the JVM first and tells the Python driver through this variable.
    return "PYSPARK_GATEWAY_PORT" in os.environ and "PYSPARK_GATEWAY_SECRET" in os.environ


def _check_delta_on_classpath(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass(
            "io.delta.tables.DeltaTable"
        )
    except Exception:
        raise ConfigError(
            "Delta Lake is not on Spark's classpath: run `make setup` (it writes the "
            "spark-submit defaults), or pass --jars with the jars from .cache/jars"
        ) from None


def write_spark_conf(spark_home: Path | None = None) -> Path:
    """Write ``spark-defaults.conf`` and ``spark-env.sh`` for plain ``spark-submit``.

    The pip-installed ``spark-submit`` reads its conf dir inside the pyspark package, so
    writing the Delta settings and cached jars there makes ``spark-submit jobs/main.py``
    work offline without extra flags.

    :param spark_home: Spark home; defaults to the installed pyspark package.
    :return: the conf directory written.
    """
    if spark_home is None:
        import pyspark

        spark_home = Path(pyspark.__file__).resolve().parent
    conf_dir = spark_home / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    runtime = RUNTIMES["local"]
    lines = [
        "# Written by `make setup` (python -m jobs.spark). Do not edit: re-run set-up.",
        f"spark.master {runtime.master}",
        f"spark.jars {','.join(str(j) for j in cached_jars())}",
        f"spark.driver.extraClassPath {driver_class_path(spark_home)}",
        f"spark.driver.extraJavaOptions {driver_java_options()}",
    ]
    lines += [f"{key} {value}" for key, value in runtime.conf.items()]
    (conf_dir / "spark-defaults.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (conf_dir / "spark-env.sh").write_text(
        "# Written by `make setup`: bind the local driver to loopback.\n"
        "export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}\n"
        f"export PYSPARK_PYTHON=${{PYSPARK_PYTHON:-{sys.executable}}}\n"
        f"export PYTHONPATH={PROJECT_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}\n",
        encoding="utf-8",
    )
    return conf_dir


if __name__ == "__main__":
    print(f"wrote {write_spark_conf()}")
