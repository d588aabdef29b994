"""``make bench``: the pipeline's speed beside a plain-PySpark floor and DuckDB."""
