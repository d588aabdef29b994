"""Declarative row-level expectations per silver table.

Each expectation is a name, a SQL boolean condition that a good row satisfies, and an
action:

* ``warn`` keeps the row and counts it in ``ops/dq_results``;
* ``drop`` sends the line to quarantine with the expectation's name as its reason;
* ``fail`` stops the silver step with exit code 3 before anything is merged.

A condition that evaluates to NULL counts as failed. Conditions that mention
``_o_orderdate`` (the order date of a line item's order) are evaluated after the order
lookup. Dataset-level checks (uniqueness, SCD2 integrity, reconciliation) live in
:mod:`jobs.steps.quality`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EXPECTATIONS", "Action", "Expectation", "expectations_for"]

Action = Literal["warn", "drop", "fail"]

_SEGMENTS = "('AUTOMOBILE','BUILDING','FURNITURE','HOUSEHOLD','MACHINERY')"
_PRIORITIES = "('1-URGENT','2-HIGH','3-MEDIUM','4-NOT SPECIFIED','5-LOW')"


@dataclass(frozen=True)
class Expectation:
    """A row-level rule.

    :param name: reason code written to quarantine and ``ops/dq_results``.
    :param condition: SQL condition over the typed row; true means the row is good.
    :param action: ``warn``, ``drop`` or ``fail``.
    """

    name: str
    condition: str
    action: Action = "drop"

    @property
    def needs_order(self) -> bool:
        """Whether the condition needs the line item's order date (``_o_orderdate``)."""
        return "_o_orderdate" in self.condition


EXPECTATIONS: dict[str, tuple[Expectation, ...]] = {
    "region": (
        Expectation("r_regionkey_in_range", "r_regionkey BETWEEN 0 AND 4"),
        Expectation("r_name_present", "length(r_name) > 0"),
    ),
    "nation": (
        Expectation("n_nationkey_in_range", "n_nationkey BETWEEN 0 AND 24"),
        Expectation("n_regionkey_in_range", "n_regionkey BETWEEN 0 AND 4"),
        Expectation("n_name_present", "length(n_name) > 0"),
    ),
    "supplier": (
        Expectation("s_suppkey_positive", "s_suppkey > 0"),
        Expectation("s_nationkey_in_range", "s_nationkey BETWEEN 0 AND 24"),
        Expectation("s_acctbal_in_range", "s_acctbal BETWEEN -999.99 AND 9999.99", "warn"),
    ),
    "customer": (
        Expectation("c_custkey_positive", "c_custkey > 0"),
        Expectation("c_nationkey_in_range", "c_nationkey BETWEEN 0 AND 24"),
        Expectation("c_mktsegment_valid", f"c_mktsegment IN {_SEGMENTS}"),
        Expectation("c_acctbal_in_range", "c_acctbal BETWEEN -999.99 AND 9999.99", "warn"),
    ),
    "part": (
        Expectation("p_partkey_positive", "p_partkey > 0"),
        Expectation("p_retailprice_positive", "p_retailprice > 0"),
        Expectation("p_size_positive", "p_size > 0"),
    ),
    "partsupp": (
        Expectation("ps_keys_positive", "ps_partkey > 0 AND ps_suppkey > 0"),
        Expectation("ps_availqty_nonnegative", "ps_availqty >= 0"),
        Expectation("ps_supplycost_positive", "ps_supplycost > 0"),
    ),
    "orders": (
        Expectation("o_orderkey_positive", "o_orderkey > 0"),
        Expectation("o_custkey_positive", "o_custkey > 0"),
        Expectation("o_orderstatus_valid", "o_orderstatus IN ('O','F','P')"),
        Expectation("o_totalprice_nonnegative", "o_totalprice >= 0"),
        Expectation("o_orderpriority_valid", f"o_orderpriority IN {_PRIORITIES}", "warn"),
    ),
    "lineitem": (
        Expectation("l_linenumber_positive", "l_linenumber > 0"),
        Expectation("l_quantity_positive", "l_quantity > 0"),
        Expectation("l_extendedprice_positive", "l_extendedprice > 0"),
        Expectation("l_discount_in_range", "l_discount BETWEEN 0.00 AND 0.10"),
        Expectation("l_tax_in_range", "l_tax BETWEEN 0.00 AND 0.08"),
        Expectation("l_returnflag_valid", "l_returnflag IN ('R','A','N')"),
        Expectation("l_linestatus_valid", "l_linestatus IN ('O','F')"),
        Expectation("l_receiptdate_after_shipdate", "l_receiptdate > l_shipdate"),
        Expectation(
            "l_shipmode_valid",
            "l_shipmode IN ('REG AIR','AIR','RAIL','SHIP','TRUCK','MAIL','FOB')",
            "warn",
        ),
        Expectation("l_shipdate_after_orderdate", "l_shipdate > _o_orderdate"),
    ),
    "orders_delete": (Expectation("o_orderkey_positive", "o_orderkey > 0"),),
}


def expectations_for(table: str) -> tuple[Expectation, ...]:
    """Return the row-level expectations of a table.

    :param table: TPC-H table name or ``orders_delete``.
    :return: its expectations, possibly empty.
    """
    return EXPECTATIONS.get(table, ())
