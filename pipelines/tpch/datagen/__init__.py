"""TPC-H landing-zone generator: tpchgen-cli output split into daily drops, optional chaos.

Run ``python -m pipelines.tpch.datagen --sf 0.01 --days 3 --landing DIR [--chaos]``. The
:func:`pipelines.tpch.datagen.generate.generate` function is not re-exported here, so that
``pipelines.tpch.datagen.generate`` keeps naming the module.
"""

from __future__ import annotations

from pipelines.tpch.datagen.chaos import KINDS, MANIFEST_NAME, ChaosEntry, ChaosPlan, plan_chaos
from pipelines.tpch.datagen.errors import DatagenError
from pipelines.tpch.datagen.generate import (
    DatagenConfig,
    DropSummary,
    LandingSummary,
    build_landing,
    run_tpchgen,
)
from pipelines.tpch.datagen.layout import COLUMNS, PRIMARY_KEYS, TABLES, drop_dates

__all__ = [
    "COLUMNS",
    "KINDS",
    "MANIFEST_NAME",
    "PRIMARY_KEYS",
    "TABLES",
    "ChaosEntry",
    "ChaosPlan",
    "DatagenConfig",
    "DatagenError",
    "DropSummary",
    "LandingSummary",
    "build_landing",
    "drop_dates",
    "plan_chaos",
    "run_tpchgen",
]
