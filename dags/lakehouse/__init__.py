"""Shared declarations of the project's DAGs: configuration, runners, alerts, assets.

Nothing here touches Spark, Delta or AWS at import time: the DAG processor parses these
modules often, and the jobs themselves only ever run behind the contract's command line.
"""

from __future__ import annotations
