"""The gold tables as Airflow Assets, so downstream DAGs can be scheduled on them.

The assets are outlets of the ``quality`` task, not of ``gold``: gold is published when
the gate passes (a failed gate restores it), so an asset event only ever announces data
that passed its checks.
"""

from __future__ import annotations

from airflow.sdk import Asset

from lakehouse.config import PipelineConfig

__all__ = ["GOLD_TABLES", "asset_uri", "gold_assets"]

GOLD_TABLES = ("daily_line_summary", "revenue_by_nation")


def asset_uri(location: str) -> str:
    """Asset URI of a table location: ``file://`` for paths, ``s3://`` for ``s3a://``."""
    if location.startswith("s3a://"):
        return "s3://" + location[len("s3a://"):]
    if "://" not in location:
        return f"file://{location}"
    return location


def gold_assets(config: PipelineConfig) -> list[Asset]:
    """One asset per gold table, named ``tpch_gold_<table>``.

    :param config: resolved configuration (the lake URI is part of each asset's URI).
    :return: the assets.
    """
    return [
        Asset(name=f"tpch_gold_{table}", uri=asset_uri(f"{config.lake}/gold/{table}"),
              group="tpch_gold")
        for table in GOLD_TABLES
    ]
