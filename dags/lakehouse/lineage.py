"""OpenLineage for the Spark steps, the same under every runner.

The Spark side is the OpenLineage Spark listener (``io.openlineage:openlineage-spark``,
in the local jar cache, the job image and the EMR artifacts). Each runner adds
:func:`lineage_conf` to its ``spark-submit`` line, so every Spark event names the Airflow
task run that started it as its parent (and the DAG run as its root). The parent and
root ids come from the OpenLineage provider's macro functions (:data:`LINEAGE_MACROS`,
the DAGs' ``user_defined_macros``), rendered per task try: they are the ids the
provider's own Airflow events carry, so the Spark jobs hang under the task in
any OpenLineage backend. The providers inject this only for some operators (not for
KubernetesPodOperator); doing it here covers all three runners alike.

Lineage is on when a transport is configured (environment, then Airflow Variable):

* ``OPENLINEAGE_URL`` (and optionally ``OPENLINEAGE_ENDPOINT``, default
  ``api/v1/lineage``): the HTTP transport, e.g. Marquez;
* ``OPENLINEAGE_FILE``: the file transport, one JSON event per line (tests, debugging).

``OPENLINEAGE_NAMESPACE`` (default ``tpch-lakehouse``) names the Spark jobs' namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lakehouse.config import setting

__all__ = ["LINEAGE_MACROS", "LISTENER", "lineage_conf"]

LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"
_PROVIDER_MACROS = (
    "lineage_job_namespace",
    "lineage_job_name",
    "lineage_run_id",
    "lineage_root_job_namespace",
    "lineage_root_job_name",
    "lineage_root_run_id",
)


def _provider_macro(name: str) -> Callable[..., str]:
    def call(*args: Any) -> str:
        # Imported when a task renders, not when the DAG is parsed.
        from airflow.providers.openlineage.plugins import macros

        return str(getattr(macros, name)(*args))

    call.__name__ = name
    return call


# The provider registers its macros (``macros.OpenLineageProviderPlugin.*``) only while
# its own Airflow events are enabled; the ids do not depend on that, so the DAGs get the
# same functions as user-defined macros and Spark lineage works either way.
LINEAGE_MACROS: dict[str, Callable[..., str]] = {
    name: _provider_macro(name) for name in _PROVIDER_MACROS
}


def _macro(name: str, *args: str) -> str:
    return "{{ " + f"{name}({', '.join(args)})" + " }}"


def _transport() -> dict[str, str]:
    url = setting("OPENLINEAGE_URL", "")
    if url:
        return {
            "spark.openlineage.transport.type": "http",
            "spark.openlineage.transport.url": url,
            "spark.openlineage.transport.endpoint": setting("OPENLINEAGE_ENDPOINT",
                                                            "api/v1/lineage"),
        }
    location = setting("OPENLINEAGE_FILE", "")
    if location:
        return {
            "spark.openlineage.transport.type": "file",
            "spark.openlineage.transport.location": location,
        }
    return {}


def lineage_conf() -> dict[str, str]:
    """Spark configuration that turns lineage on, templated per task try.

    :return: ``--conf`` pairs (empty when no transport is configured).
    """
    transport = _transport()
    if not transport:
        return {}
    return {
        "spark.extraListeners": LISTENER,
        "spark.openlineage.namespace": setting("OPENLINEAGE_NAMESPACE", "tpch-lakehouse"),
        "spark.openlineage.parentJobNamespace": _macro("lineage_job_namespace"),
        "spark.openlineage.parentJobName": _macro("lineage_job_name", "task_instance"),
        "spark.openlineage.parentRunId": _macro("lineage_run_id", "task_instance"),
        "spark.openlineage.rootParentJobNamespace": _macro("lineage_root_job_namespace",
                                                           "task_instance"),
        "spark.openlineage.rootParentJobName": _macro("lineage_root_job_name",
                                                      "task_instance"),
        "spark.openlineage.rootParentRunId": _macro("lineage_root_run_id", "task_instance"),
        **transport,
    }
