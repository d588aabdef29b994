# syntax=docker/dockerfile:1
#
# Airflow image `tpch-lakehouse-airflow`: the official Airflow 3.3 image with the providers
# pinned exactly as in pyproject.toml's `airflow` extra, and the project's DAGs baked in.
# It runs every Airflow component of the official Helm chart (API server, scheduler, DAG
# processor, triggerer, workers); the Spark jobs themselves run in the job image.
#
# Build from the repository root:
#   docker build -f docker/airflow.Dockerfile -t tpch-lakehouse-airflow .
# The base image is pinned by tag only: its digest cannot be looked up from the offline
# environment this file was written in; CI resolves and records it (docker/README.md).
FROM apache/airflow:3.3.2-python3.11

# The official image's `airflow` user (uid 50000, the uid the Helm chart runs as), numeric
# so Kubernetes' runAsNonRoot can verify it. pip installs into that user's environment, as
# the image's documentation prescribes; root is never needed here.
USER 50000

# Constraints: the base image was installed with Airflow's published constraints for
# 3.3.2, which pin the providers released with it. The project pins some providers at other
# releases (tested together in the project venv), so that constraints file cannot be
# passed as-is (pip would report the conflict). Instead, as the docker-stack guide
# recommends, apache-airflow itself is pinned in the same command so pip cannot upgrade or
# downgrade Airflow while resolving the providers, every provider is pinned exactly, and
# `pip check` fails the build on any inconsistent dependency left behind.
# pyspark-client: the apache-spark provider depends on it; pinned to the jobs' Spark
# (PYSPARK_VERSION in jobs/versions.env; tests/integration/repo/test_versions.py compares
# the two).
# openlineage: its macros give the Spark steps their parent run ids (dags/lakehouse/lineage.py).
RUN pip install --no-cache-dir \
        "apache-airflow==3.3.2" \
        "apache-airflow-providers-standard==1.21.0" \
        "apache-airflow-providers-apache-spark==6.3.4" \
        "apache-airflow-providers-cncf-kubernetes==10.25.0" \
        "apache-airflow-providers-amazon==9.39.0" \
        "apache-airflow-providers-slack==9.11.1" \
        "apache-airflow-providers-smtp==3.2.0" \
        "apache-airflow-providers-openlineage==2.20.3" \
        "pyspark-client==4.0.1" \
    && pip check

# DAGs and their helper package `lakehouse` (dags/ is on Airflow's sys.path). They stay
# owned by root: Airflow only reads them. The kubernetes runner reads the Spark driver pod
# template from <project root>/k8s/base/spark/, and the project root of
# /opt/airflow/dags/lakehouse/config.py is /opt/airflow.
COPY dags/ /opt/airflow/dags/
COPY k8s/base/spark/ /opt/airflow/k8s/base/spark/
# The DAG factory builds one DAG per pipeline spec: it reads pipelines/ through the spec
# loader (jobs/spec, pure Python: pydantic and PyYAML, both in Airflow's own environment).
COPY jobs/ /opt/airflow/jobs/
COPY pipelines/ /opt/airflow/pipelines/
ENV PYTHONPATH=/opt/airflow

# No secrets here: connections (Slack, SMTP, AWS) and the settings PIPELINE_RUNNER,
# LAKE_URI and LANDING_URI come from the deployment (Helm values, Airflow Variables or a
# secrets backend). PIPELINE_RUNNER is deliberately not set: the environment wins over the
# Airflow Variable, so setting it here would take the switch away from the deployment.

# The Helm chart probes each component with its own command (scheduler, API server,
# triggerer, workers differ), so one image-wide HEALTHCHECK cannot describe them.
# checkov:skip=CKV_DOCKER_2: one image runs several Airflow components; the official Helm chart defines a liveness probe per component
