"""The gold tables as Airflow Assets, so downstream DAGs can be scheduled on them.

An asset names what a pipeline publishes, not where the lake happens to live: its URI is
``x-lakehouse://<pipeline>/gold/<table>`` whatever ``LAKE_URI`` is. Airflow keeps an
asset's name and URI unique among active assets, so a URI carrying the lake's location
made the same name with another lake (a new bucket, another environment on one Airflow,
``local`` -> ``emr``) an *inactive* asset, and the task announcing it failed. Where the
data is goes into each asset event's ``extra`` instead (``lake``, ``location``, ``ds``),
next to the run that produced it.

Announcing is a task of its own, ``publish``, after the ``quality`` gate: it runs only
when the gate passed (an asset event only ever announces data that passed its checks),
and whatever happens to Airflow's asset bookkeeping it never fails or retries a task
that writes the lake.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

from lakehouse.config import PipelineConfig

__all__ = ["ASSET_SCHEME", "GOLD_TABLES", "announce_gold", "gold_asset", "gold_assets"]

GOLD_TABLES = ("daily_line_summary", "revenue_by_nation")
# ``x-`` schemes are Airflow's space for URIs it should neither normalise nor interpret.
ASSET_SCHEME = "x-lakehouse"


def gold_asset(pipeline: str, table: str) -> Asset:
    """The asset of one gold table of a pipeline, the same wherever its lake lives.

    :param pipeline: pipeline name (``tpch``).
    :param table: gold table name.
    :return: ``Asset(name="<pipeline>_gold_<table>", uri="x-lakehouse://<pipeline>/gold/<table>")``.
    """
    return Asset(name=f"{pipeline}_gold_{table}", uri=f"{ASSET_SCHEME}://{pipeline}/gold/{table}",
                 group=f"{pipeline}_gold")


def gold_assets(pipeline: str = "tpch") -> list[Asset]:
    """One asset per gold table of the pipeline (the lake is not part of their identity).

    :param pipeline: pipeline name.
    :return: the assets.
    """
    return [gold_asset(pipeline, table) for table in GOLD_TABLES]


def table_location(config: PipelineConfig, table: str) -> str:
    """Where a gold table lives in the configured lake (the lake URI as configured)."""
    return f"{config.lake.rstrip('/')}/gold/{table}"


def announce_gold(config: PipelineConfig, ds: str, outlet_events: Any,
                  pipeline: str = "tpch") -> dict[str, dict[str, str]]:
    """Attach the lake location and run date to each gold asset event of this task.

    :param config: resolved configuration (its lake is where the data is).
    :param ds: the run date the events announce.
    :param outlet_events: the task context's ``outlet_events`` accessor.
    :param pipeline: pipeline name.
    :return: asset name -> the extra attached to its event.
    """
    extras = {}
    for table in GOLD_TABLES:
        asset = gold_asset(pipeline, table)
        extra = {"lake": config.lake, "location": table_location(config, table), "ds": ds}
        outlet_events[asset].extra = extra
        extras[asset.name] = extra
    return extras
