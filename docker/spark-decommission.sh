#!/bin/bash
# Decommission the Spark executor of this container: the preStop hook Spark adds to executor
# pods when spark.decommission.enabled (spark.kubernetes.executor.decommissionScript, whose
# default path /opt/decom.sh this file is installed at).
#
# SIGPWR asks the executor to stop taking tasks and migrate its shuffle and cached blocks
# (spark.storage.decommission.*); the hook then waits for it to exit, so Kubernetes does
# not kill it halfway. The pod's terminationGracePeriodSeconds bounds the wait.
#
# Usage: decom.sh [PID]   PID of the executor JVM, default 1 (spark-executor execs the JVM).
set -uo pipefail

pid="${1:-1}"
echo "decommissioning the executor (pid ${pid})"
if ! kill -s PWR "${pid}"; then
    echo "no executor process ${pid} to decommission" >&2
    exit 0
fi
while kill -0 "${pid}" 2>/dev/null; do
    sleep 1
done
echo "executor (pid ${pid}) exited"
