"""The pipeline's steps, one module each; ``all`` runs :data:`ALL` in order."""

from __future__ import annotations

__all__ = ["ALL", "NAMES"]

NAMES = ("ingest", "silver", "gold", "quality", "maintain", "report")
ALL = ("ingest", "silver", "gold", "quality")
