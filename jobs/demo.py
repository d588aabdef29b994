"""``python -m jobs.demo``: run ``all`` for every complete drop, then print the summary.

Drops are processed in ``ds`` order in one Spark application (one JVM start). The
orchestration layer runs the same steps per day through Airflow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.errors import PipelineError
from jobs.logs import configure_logging

__all__ = ["complete_drops", "main"]


def complete_drops(spark: object, landing: str) -> list[str]:
    """Return the ``ds`` of every drop with a ``_SUCCESS`` marker, oldest first."""
    from jobs.lake import exists

    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    path = jvm.org.apache.hadoop.fs.Path(landing)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    if not fs.exists(path):
        return []
    names = [str(s.getPath().getName()) for s in fs.listStatus(path) if s.isDirectory()]
    return sorted(
        n[3:] for n in names
        if n.startswith("ds=") and exists(spark, f"{landing}/{n}/_SUCCESS")  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Process every drop and print the summary; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m jobs.demo")
    parser.add_argument("--landing", default=None)
    parser.add_argument("--lake", default=None)
    args = parser.parse_args(argv)
    configure_logging()
    import datetime as dt

    from jobs.lake import Lake, resolve_locations
    from jobs.spark import get_session
    from jobs.steps import gold, ingest, quality, silver
    from jobs.steps.common import StepContext
    from jobs.summary import render_summary

    try:
        lake_uri, landing_uri = resolve_locations(args.lake, args.landing)
        spark = get_session("tpch-demo")
        drops = complete_drops(spark, landing_uri)
        exit_code = 0
        for ds in drops:
            ctx = StepContext(spark, Lake(lake_uri), landing_uri, dt.date.fromisoformat(ds))
            try:
                for step in (ingest.run, silver.run, gold.run, quality.run):
                    step(ctx)
            except PipelineError as exc:
                print(f"ds={ds}: {exc}", file=sys.stderr)
                exit_code = exc.exit_code
        print()
        print(f"Processed drops: {', '.join(drops) or '(none)'}")
        print(render_summary(spark, Lake(lake_uri)))
        return exit_code
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
