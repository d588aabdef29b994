"""The property tests' lake: drops run in-process, and tables read keyed like the model
(:mod:`tests.support.model`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.lake import Lake
from jobs.steps import gold, ingest, silver
from jobs.steps.common import StepContext, run_parallel
from tests.support.lake import lake_of
from tests.support.model import BASE_DS, BASE_FILES, Key, Row, land
from tests.support.tpch import TOMBSTONES, table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["READ", "actual_tables", "build_base", "difference", "process"]


def process(spark: SparkSession, lake: Lake, landing: Path, ds: dt.date, force: bool,
            steps: tuple[Any, ...] = (ingest, silver, gold)) -> None:
    """Run ``ingest``, ``silver`` and ``gold`` for one drop on the shared session."""
    ctx = StepContext(spark, lake, "file:" + str(landing), ds, force)
    for step in steps:
        step.run(ctx)


# -- the lake, read for comparison -----------------------------------------------------------

LINEAGE = ("_ds", "_source_file", "_line_number")


def _columns(name: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    return (*table(name).column_names, *extra, *LINEAGE)


# layer/table -> (key columns, value columns) as the model keys and orders them.
READ: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "silver/orders": (("o_orderkey",), (*_columns("orders"), "_order_month")),
    "silver/lineitem": (("l_orderkey", "l_linenumber"), (*_columns("lineitem"), "_order_month")),
    "silver/customer": (("c_custkey", "valid_from"),
                        _columns("customer", ("valid_from", "valid_to", "is_current"))),
    "silver/_customer_snapshots": (("c_custkey", "_ds"), _columns("customer")),
    f"silver/{TOMBSTONES}": (("o_orderkey",), ("o_orderkey", *LINEAGE)),
    **{f"quarantine/{n}": (LINEAGE, ("raw", "reasons"))
       for n in ("customer", "orders", "lineitem")},
    "gold/daily_line_summary": (("ship_date", "l_returnflag", "l_linestatus"),
                                ("sum_qty", "sum_base_price", "sum_disc_price", "sum_charge",
                                 "sum_discount", "count_order")),
    "gold/revenue_by_nation": (("order_date", "n_name"), ("revenue", "order_count")),
}


def actual_tables(spark: SparkSession, lake: Lake) -> dict[str, dict[Key, Row]]:
    """The lake's tables keyed like the model (a missing table reads as empty)."""
    from jobs.delta_io import is_delta_table

    def read(name: str) -> dict[Key, Row]:
        key, value = READ[name]
        uri = lake.table(*name.split("/"))
        if not is_delta_table(spark, uri):
            return {}
        rows = spark.read.format("delta").load(uri).select(*key, *value).collect()
        out = {tuple(r[:len(key)]): tuple(r[len(key):]) for r in rows}
        assert len(out) == len(rows), f"{name}: duplicate keys"
        if name.startswith("quarantine/"):
            out = {k: (raw, tuple(reasons)) for k, (raw, reasons) in out.items()}
        return out

    return run_parallel({name: (lambda n=name: read(n)) for name in READ})


def difference(name: str, actual: dict[str, dict[Key, Row]],
               expected: dict[str, dict[Key, Row]]) -> str:
    """Where the lake and the model disagree on one table, key by key."""
    lake, model = actual[name], expected[name]
    lines = [f"{name}: the lake differs from the model"]
    for key in sorted(lake.keys() | model.keys(), key=repr):
        if lake.get(key) != model.get(key):
            lines.append(f"  {key}: lake {lake.get(key)} != model {model.get(key)}")
    return "\n".join(lines)


def build_base(spark: SparkSession, root: Path) -> tuple[Path, Path]:
    """The base drop processed under ``root``: ``(landing, lake)`` folders to copy."""
    land(root / "landing", BASE_DS, BASE_FILES)
    process(spark, lake_of(root / "lake"), root / "landing", BASE_DS, force=False)
    return root / "landing", root / "lake"
