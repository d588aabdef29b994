"""Every pipeline in ``pipelines/`` as two Airflow DAGs, ``<name>_daily`` and
``<name>_maintenance`` (``tpch_daily`` and ``tpch_maintenance`` for TPC-H).

Adding a pipeline is adding its spec folder: this file declares the DAGs of whatever specs
are there. An invalid spec is this file's import error, naming every problem
(``python -m jobs validate`` finds them first).
"""

from __future__ import annotations

from lakehouse.factory import pipeline_dags

from jobs.spec.load import list_pipelines

globals().update(pipeline_dags(list_pipelines()))
