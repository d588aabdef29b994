# syntax=docker/dockerfile:1
#
# Job image `tpch-lakehouse-job`: Python 3.11, a JRE 17, the project wheel with its pinned
# dependencies (pyspark, delta-spark) in /opt/venv, the jars of Delta, the OpenLineage
# listener and S3A on Spark's classpath, user spark (185). Its entrypoint is the contract's
# job command:
#
#   spark-submit /opt/tpch/jobs/main.py <step> --ds YYYY-MM-DD [--lake URI] [--landing URI]
#
# Build from the repository root with `make images`, which passes every version of
# jobs/versions.env as a build argument (docker/README.md shows the command it runs). The
# version ARGs below have no defaults, so that file stays the only place they are written;
# a build without them stops at the first RUN that needs one, naming it.
# Base images are pinned by tag only: their digests cannot be looked up from the offline
# environment this file was written in; CI resolves and records them (docker/README.md).

# --- jars: Delta Lake, its DynamoDB log store, OpenLineage, S3A and the AWS SDK it needs ---
FROM maven:3.9.9-eclipse-temurin-17 AS jars

ARG DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# One artifact per call, no transitive dependencies (Spark already ships Hadoop's client and
# Scala); --strict-checksums fails the build on a checksum mismatch instead of warning.
# The AWS SDK v2 bundle (about 500 MB) comes first and alone, into its own folder: a change
# of any other version neither downloads it again nor changes the image layer it lands in.
ARG AWS_SDK_VERSION
RUN : "${AWS_SDK_VERSION:?build argument missing: build with make images}" \
    && mvn --batch-mode --quiet --strict-checksums "${DEPENDENCY_PLUGIN}:copy" \
        -Dartifact="software.amazon.awssdk:bundle:${AWS_SDK_VERSION}" -DoutputDirectory=/jars/sdk

# HADOOP_VERSION must be the Hadoop inside pyspark's jars (hadoop-client-api-<version>.jar):
# the venv stage below fails the build otherwise.
ARG DELTA_VERSION
ARG OPENLINEAGE_VERSION
ARG HADOOP_VERSION
RUN : "${DELTA_VERSION:?build argument missing: build with make images}" \
        "${OPENLINEAGE_VERSION:?build argument missing: build with make images}" \
        "${HADOOP_VERSION:?build argument missing: build with make images}"; \
    for artifact in \
        "io.delta:delta-spark_2.13:${DELTA_VERSION}" \
        "io.delta:delta-storage:${DELTA_VERSION}" \
        "io.delta:delta-storage-s3-dynamodb:${DELTA_VERSION}" \
        "io.openlineage:openlineage-spark_2.13:${OPENLINEAGE_VERSION}" \
        "org.apache.hadoop:hadoop-aws:${HADOOP_VERSION}"; \
    do \
        mvn --batch-mode --quiet --strict-checksums "${DEPENDENCY_PLUGIN}:copy" \
            -Dartifact="${artifact}" -DoutputDirectory=/jars/spark || exit 1; \
    done

# --- venv: the project wheel and its pinned dependencies ------------------------------------
FROM python:3.11-slim-bookworm AS venv

# The installed pyspark must be PYSPARK_VERSION (pyproject.toml pins the same release), and
# its Hadoop the one hadoop-aws was fetched for.
ARG PYSPARK_VERSION
ARG HADOOP_VERSION

WORKDIR /src
# README.md is the wheel's long description (pyproject `readme`), so the build needs it.
COPY pyproject.toml README.md ./
COPY jobs/ jobs/
COPY pipelines/ pipelines/

# The `aws` extra brings boto3, which publishes the step metrics to CloudWatch.
# Every dependency ships a wheel for this platform: no compiler is needed here either.
# The log4j2 file keeps spark-submit as quiet as the local runtime (warnings and errors);
# the pyspark wheel has no conf/ folder, hence `install -D`.
RUN : "${PYSPARK_VERSION:?build argument missing: build with make images}" \
        "${HADOOP_VERSION:?build argument missing: build with make images}" \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/tpch_lakehouse-*.whl)[aws]" \
    && /opt/venv/bin/pip check \
    && test "$(/opt/venv/bin/python -c 'import pyspark; print(pyspark.__version__)')" \
        = "${PYSPARK_VERSION}" \
    && test -f "/opt/venv/lib/python3.11/site-packages/pyspark/jars/hadoop-client-api-${HADOOP_VERSION}.jar" \
    && install -D --mode=0644 /opt/venv/lib/python3.11/site-packages/jobs/conf/log4j2.properties \
        /opt/venv/lib/python3.11/site-packages/pyspark/conf/log4j2.properties

# --- final: runtime only (no compilers, no Maven, no build tools) ---------------------------
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The JRE comes from Debian's security-maintained packages; /usr/share/man/man1 must exist
# for its postinst on slim images. JAVA_HOME gets an architecture-neutral path.
# Debian serves only the newest build of a package (bookworm-security replaces
# openjdk-17-jre-headless at every Java security release, and the old version disappears
# from the mirror), so an exact `=version` pin would break every rebuild after the next
# patch; the image is made reproducible by its immutable tag and recorded digest instead.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
    && /usr/lib/jvm/java-17/bin/java -version \
    && groupadd --system --gid 185 spark \
    && useradd --system --uid 185 --gid 185 --home-dir /opt/tpch --no-create-home \
        --shell /usr/sbin/nologin spark

COPY --from=venv /opt/venv /opt/venv
COPY --from=jars /jars/sdk/ /opt/venv/lib/python3.11/site-packages/pyspark/jars/
COPY --from=jars /jars/spark/ /opt/venv/lib/python3.11/site-packages/pyspark/jars/
# The contract's job file; it imports the `jobs` package installed in the venv.
COPY jobs/main.py /opt/tpch/jobs/main.py
# Executor pods: the executor pod template sets `command: [/opt/tpch/bin/spark-executor]`
# (Spark appends the argument `executor`); /opt/decom.sh is Spark's default
# spark.kubernetes.executor.decommissionScript, the preStop hook of executors on spot nodes.
COPY --chmod=0755 docker/spark-executor.sh /opt/tpch/bin/spark-executor
COPY --chmod=0755 docker/spark-decommission.sh /opt/decom.sh

ENV JAVA_HOME=/usr/lib/jvm/java-17 \
    SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark \
    PATH=/opt/venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/venv/bin/python \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIPELINE_RUNNER=kubernetes

USER 185:185
WORKDIR /opt/tpch

# A batch image: each container runs one step and exits, and Kubernetes ignores Docker's
# HEALTHCHECK (the job's liveness is its exit status plus Airflow's execution_timeout).
# checkov:skip=CKV_DOCKER_2: batch job image run by Kubernetes, which ignores HEALTHCHECK; the exit status and Airflow's execution_timeout watch it
ENTRYPOINT ["spark-submit", "/opt/tpch/jobs/main.py"]
