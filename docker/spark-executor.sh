#!/bin/bash
# Start a Spark executor in the job image (Spark on Kubernetes).
#
# Spark's Kubernetes backend creates executor pods from the job image, appends the single
# argument `executor` and describes the executor in environment variables (SPARK_DRIVER_URL,
# SPARK_EXECUTOR_ID, SPARK_JAVA_OPT_0.., ...). Official Spark images handle that in their
# entrypoint; this image's entrypoint is the job command, so the executor pod template sets
# `command: [/opt/tpch/bin/spark-executor]`. The JVM replaces this shell (exec), so it is the
# container's PID 1 and receives Kubernetes' signals (and /opt/decom.sh's SIGPWR) directly.
set -euo pipefail

if [[ "${1:-}" != "executor" ]]; then
    echo "usage: spark-executor executor (run by Spark's Kubernetes backend, not by hand)" >&2
    exit 2
fi

# Spark passes the executor's JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order.
java_opts=()
index=0
while var="SPARK_JAVA_OPT_${index}" && [[ -v "${var}" ]]; do
    java_opts+=("${!var}")
    index=$((index + 1))
done

# Spark's conf dir first (Spark mounts the application's conf there), then any extra
# classpath Spark passes (spark.executor.extraClassPath), then Spark's and Delta's jars.
classpath="${SPARK_CONF_DIR:-${SPARK_HOME}/conf}"
if [[ -n "${SPARK_CLASSPATH:-}" ]]; then
    classpath+=":${SPARK_CLASSPATH}"
fi
classpath+=":${SPARK_HOME}/jars/*"

exec "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
    -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
    -cp "${classpath}" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "${SPARK_DRIVER_URL}" \
    --executor-id "${SPARK_EXECUTOR_ID}" \
    --cores "${SPARK_EXECUTOR_CORES}" \
    --app-id "${SPARK_APPLICATION_ID}" \
    --hostname "${SPARK_EXECUTOR_POD_IP}" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
    --podName "${SPARK_EXECUTOR_POD_NAME}"
