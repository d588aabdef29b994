"""Fault injection for crash tests: ``PIPELINE_FAULT=<point>`` kills the process there.

The variable names one point (e.g. ``before_silver`` or ``after_merge:orders``); when the
job reaches it, the process SIGKILLs itself, exactly like an OOM kill or a lost node.
``PIPELINE_FAULT=<point>:exit1`` exits with status 1 instead (a transient failure).
Unset in production, the check costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["maybe_fail"]


def maybe_fail(point: str) -> None:
    """Kill or fail the process if ``PIPELINE_FAULT`` names this point.

    :param point: the name of the point being passed.
    """
    wanted = os.environ.get("PIPELINE_FAULT")
    if not wanted:
        return
    if wanted == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"{point}:exit1":
        raise RuntimeError(f"injected transient failure at {point}")
