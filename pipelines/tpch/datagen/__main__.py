"""Entry point of ``python -m pipelines.tpch.datagen``."""

from __future__ import annotations

from pipelines.tpch.datagen.cli import main

__all__: list[str] = []

raise SystemExit(main())
