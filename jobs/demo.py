"""``python -m jobs.demo``: print the summary of a lake after ``make demo``.

``make demo`` runs the DAG ``tpch_daily`` through Airflow for every drop (see
``tools/airflow_local.py``) and then calls this module, which reads the lake with one
local Spark session and prints rows per layer, quarantined rows by reason, quality
results, the processed days and where the tables and HTML run reports are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jobs.errors import PipelineError
from jobs.logs import configure_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m jobs.demo")
    parser.add_argument("--lake", default=None)
    args = parser.parse_args(argv)
    configure_logging()

    from jobs.lake import Lake, list_files, resolve_locations
    from jobs.spark import get_session
    from jobs.summary import render_summary

    try:
        lake_uri, _ = resolve_locations(args.lake, None)
        spark = get_session("tpch-demo-summary")
        lake = Lake(lake_uri)
        print()
        print(render_summary(spark, lake))
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
