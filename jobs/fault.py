"""Fault injection for crash tests: ``PIPELINE_FAULT=<point>`` kills the process there.

The variable names one point (e.g. ``before_silver`` or ``after_merge:orders``); when the
job reaches it, the process SIGKILLs itself, exactly like an OOM kill or a lost node.

* ``PIPELINE_FAULT=<point>:exit1`` exits with status 1 instead (a transient failure).
* A trailing ``:once`` fires the fault only the first time any process reaches the point:
  the first hit creates the marker file named by ``PIPELINE_FAULT_MARKER`` and later hits
  pass. That models "the first attempt fails, the retry succeeds" across processes, which
  is how orchestration retries are tested.

Unset in production, the check costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

from jobs.errors import ConfigError

__all__ = ["maybe_fail"]


def _first_hit(marker: str | None) -> bool:
    """Atomically claim the marker file; ``True`` only for the first claimant."""
    if not marker:
        raise ConfigError("PIPELINE_FAULT ends in ':once' but PIPELINE_FAULT_MARKER is not set")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def maybe_fail(point: str) -> None:
    """Kill or fail the process if ``PIPELINE_FAULT`` names this point.

    :param point: the name of the point being passed.
    """
    wanted = os.environ.get("PIPELINE_FAULT")
    if not wanted:
        return
    once = wanted.endswith(":once")
    if once:
        wanted = wanted.removesuffix(":once")
    if wanted not in (point, f"{point}:exit1"):
        return
    if once and not _first_hit(os.environ.get("PIPELINE_FAULT_MARKER")):
        return
    if wanted == point:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected transient failure at {point}")
