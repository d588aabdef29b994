"""Hypothesis settings shared by the property tests that run the pipeline per example.

CI runs ``PROPERTY_EXAMPLES`` examples (default 4) derandomized: the same examples on
every run. ``PROPERTY_SEED=<int>`` draws other examples from that seed, and
``PROPERTY_SHRINK=0`` reports a failing example as drawn (every shrink step runs the
pipeline again).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings

__all__ = ["EXAMPLES", "SEED", "pipeline_examples"]

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "4"))
SEED = os.environ.get("PROPERTY_SEED")
PHASES = tuple(p for p in Phase if p is not Phase.shrink or
               os.environ.get("PROPERTY_SHRINK", "1") != "0")
F = TypeVar("F", bound=Callable[..., Any])


def pipeline_examples(test: F) -> F:
    """Apply the settings above to a ``@given`` test (put it above ``@given``)."""
    seeded = seed(int(SEED))(test) if SEED else test
    return settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None,
                    database=None, phases=PHASES,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])(seeded)
