"""TPC-H landing-zone generator: tpchgen-cli output split into daily drops, optional chaos.

Run ``python -m jobs.datagen --sf 0.01 --days 3 --landing DIR [--chaos]``. The
:func:`jobs.datagen.generate.generate` function is not re-exported here, so that
``jobs.datagen.generate`` keeps naming the module.
"""

from __future__ import annotations

from jobs.datagen.chaos import KINDS, MANIFEST_NAME, ChaosEntry, ChaosPlan, plan_chaos
from jobs.datagen.errors import DatagenError
from jobs.datagen.generate import (
    DatagenConfig,
    DropSummary,
    LandingSummary,
    build_landing,
    run_tpchgen,
)
from jobs.datagen.layout import COLUMNS, PRIMARY_KEYS, TABLES, drop_dates

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
