"""Entry point of ``python -m jobs.datagen``."""

from __future__ import annotations

from jobs.datagen.cli import main

__all__: list[str] = []

raise SystemExit(main())
