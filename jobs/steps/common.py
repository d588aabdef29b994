"""What every step receives: the session, the lake, the landing zone and the run date."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from jobs.catalog import Catalog, load_catalog
from jobs.lake import Lake

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["StepContext", "fingerprint", "log", "run_parallel"]

log = logging.getLogger("jobs")


@dataclass(frozen=True)
class StepContext:
    """Inputs of one step run.

    :param spark: active session.
    :param lake: lake locations.
    :param landing: landing zone root URI.
    :param ds: the run date (from ``--ds``, never from the clock).
    :param force: reprocess even when the input is unchanged.
    :param catalog: the pipeline's tables (default: the default pipeline's spec).
    """

    spark: SparkSession
    lake: Lake
    landing: str
    ds: dt.date
    force: bool = False
    catalog: Catalog = field(default_factory=load_catalog)

    @property
    def ds_str(self) -> str:
        """The run date as ``YYYY-MM-DD``."""
        return self.ds.isoformat()


def fingerprint(payload: Any) -> str:
    """Return a stable SHA-256 fingerprint of a JSON-serialisable value."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


T = TypeVar("T")


def run_parallel(tasks: Mapping[str, Callable[[], T]], workers: int = 4) -> dict[str, T]:
    """Run independent pieces of work (e.g. writes to different tables) concurrently.

    Small tables are dominated by per-commit driver overhead, not by CPU, so running
    their jobs side by side from threads shortens a step; Spark schedules the jobs of
    all threads on the same executors. The first exception is re-raised after every
    task has finished.

    :param tasks: name -> zero-argument callable.
    :param workers: threads to use.
    :return: name -> result.
    """
    if len(tasks) <= 1 or workers <= 1:
        return {name: fn() for name, fn in tasks.items()}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="step") as pool:
        futures = {name: pool.submit(fn) for name, fn in tasks.items()}
        results: dict[str, T] = {}
        error: BaseException | None = None
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except BaseException as exc:
                error = error or exc
    if error is not None:
        raise error
    return results
