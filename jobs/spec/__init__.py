"""Pipeline specs: ``pipelines/<name>/pipeline.yaml`` and its SQL, read and checked.

:mod:`jobs.spec.model` holds the fields, :mod:`jobs.spec.load` finds and reads specs,
:mod:`jobs.spec.check` checks a whole spec (its SQL with a SparkSession),
:mod:`jobs.spec.schema` turns declared columns into Spark schemas and
:mod:`jobs.spec.new` drafts a spec from sample files. Nothing imported here starts Spark.
"""

from __future__ import annotations

from jobs.spec.load import list_pipelines, load_pipeline, pipeline_dir, read_mart_sql, read_spec

__all__ = ["list_pipelines", "load_pipeline", "pipeline_dir", "read_mart_sql", "read_spec"]
