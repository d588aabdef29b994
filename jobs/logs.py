"""Logging set-up shared by every command line of the project."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging() -> None:
    """Log INFO from the pipeline to stderr; silence py4j's and PySpark's chatter.

    PySpark logs every analysis error a second time as a JSON blob, and py4j logs each
    closed connection; the steps report errors themselves.
    """
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "py4j.clientserver", "py4j.java_gateway",
                  "DataFrameQueryContextLogger"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
