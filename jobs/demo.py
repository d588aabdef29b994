"""``python -m jobs.demo``: print the summary of a lake after ``make demo``.

``make demo`` runs each pipeline's daily DAG through Airflow for every drop (see
``tools/airflow_local.py``) and then calls this module once per pipeline, which reads its
lake with one local Spark session and prints rows per layer, quarantined rows by reason,
quality results, the processed days and where the tables and HTML run reports are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.catalog import DEFAULT_PIPELINE
from jobs.errors import PipelineError
from jobs.logs import configure_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m jobs.demo")
    parser.add_argument("--pipeline", default=DEFAULT_PIPELINE)
    parser.add_argument("--lake", default=None)
    args = parser.parse_args(argv)
    configure_logging()

    from jobs.catalog import load_catalog
    from jobs.lake import Lake, list_files, resolve_locations
    from jobs.spark import get_session
    from jobs.summary import render_summary

    try:
        catalog = load_catalog(args.pipeline)
        assert catalog.pipeline is not None
        lake_uri, _ = resolve_locations(args.lake, None, (catalog.pipeline.default_lake(),
                                                          catalog.pipeline.default_landing()))
        spark = get_session(f"{args.pipeline}-demo-summary")
        lake = Lake(lake_uri)
        print()
        print(render_summary(spark, lake, catalog))
        reports = [f.uri for f in list_files(spark, lake.reports) if f.uri.endswith(".html")]
        print()
        print("HTML run reports (open in a browser):")
        print("\n".join(f"  {uri}" for uri in reports) or "  (none)")
        return 0
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
