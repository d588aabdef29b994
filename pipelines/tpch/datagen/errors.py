"""Errors raised by the TPC-H landing-zone generator."""

from __future__ import annotations

__all__ = ["DatagenError"]


class DatagenError(Exception):
    """Generation failed for a reason worth a one-line message (exit status 1), e.g. tpchgen-cli
    is missing or failed, or the generated data is too small to inject every chaos kind."""
