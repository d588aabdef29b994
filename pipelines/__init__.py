"""Pipeline specs: one folder per pipeline, its ``pipeline.yaml`` and SQL, plus any generator."""
