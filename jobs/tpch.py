"""TPC-H table definitions: column names and types, primary keys, partitioning.

Types follow the TPC-H specification: identifiers BIGINT (INT for the small integer
columns), money and quantities DECIMAL(15,2), dates DATE, flags and text STRING.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DIMENSIONS",
    "MONEY",
    "ORDERS_DELETE",
    "TABLES",
    "TABLE_NAMES",
    "Column",
    "Table",
    "table",
]

MONEY = "decimal(15,2)"


@dataclass(frozen=True)
class Column:
    """One TPC-H column.

    :param name: TPC-H column name.
    :param type: Spark SQL type name (``bigint``, ``int``, ``decimal(15,2)``, ``date``,
        ``string``).
    """

    name: str
    type: str


@dataclass(frozen=True)
class Table:
    """One TPC-H table.

    :param name: TPC-H table name (also the landing folder and the silver table name).
    :param columns: columns in file order.
    :param key: primary-key column names.
    :param partition_by: silver partition columns (lineage columns, derived in silver).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        """Names of the TPC-H columns in file order."""
        return [c.name for c in self.columns]

    @property
    def non_key_columns(self) -> list[str]:
        """Names of the TPC-H columns that are not part of the primary key."""
        return [c.name for c in self.columns if c.name not in self.key]


def _cols(spec: str) -> tuple[Column, ...]:
    types = {"m": MONEY, "b": "bigint", "i": "int", "d": "date"}
    out = []
    for item in spec.split():
        name, _, typ = item.partition(":")
        out.append(Column(name, types.get(typ, "string")))
    return tuple(out)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("region", _cols("r_regionkey:b r_name r_comment"), ("r_regionkey",)),
        Table(
            "nation",
            _cols("n_nationkey:b n_name n_regionkey:b n_comment"),
            ("n_nationkey",),
        ),
        Table(
            "supplier",
            _cols("s_suppkey:b s_name s_address s_nationkey:b s_phone s_acctbal:m s_comment"),
            ("s_suppkey",),
        ),
        Table(
            "customer",
            _cols(
                "c_custkey:b c_name c_address c_nationkey:b c_phone c_acctbal:m "
                "c_mktsegment c_comment"
            ),
            ("c_custkey",),
        ),
        Table(
            "part",
            _cols(
                "p_partkey:b p_name p_mfgr p_brand p_type p_size:i p_container "
                "p_retailprice:m p_comment"
            ),
            ("p_partkey",),
        ),
        Table(
            "partsupp",
            _cols("ps_partkey:b ps_suppkey:b ps_availqty:i ps_supplycost:m ps_comment"),
            ("ps_partkey", "ps_suppkey"),
        ),
        Table(
            "orders",
            _cols(
                "o_orderkey:b o_custkey:b o_orderstatus o_totalprice:m o_orderdate:d "
                "o_orderpriority o_clerk o_shippriority:i o_comment"
            ),
            ("o_orderkey",),
            partition_by=("_order_month",),
        ),
        Table(
            "lineitem",
            _cols(
                "l_orderkey:b l_partkey:b l_suppkey:b l_linenumber:i l_quantity:m "
                "l_extendedprice:m l_discount:m l_tax:m l_returnflag l_linestatus "
                "l_shipdate:d l_commitdate:d l_receiptdate:d l_shipinstruct l_shipmode "
                "l_comment"
            ),
            ("l_orderkey", "l_linenumber"),
            partition_by=("_order_month",),
        ),
    )
}

# RF2 deletions: one o_orderkey per line.
ORDERS_DELETE = Table("orders_delete", _cols("o_orderkey:b"), ("o_orderkey",))

TABLE_NAMES: tuple[str, ...] = tuple(TABLES)
# Loaded as snapshots and kept at their latest version (customer: SCD2 history).
DIMENSIONS: tuple[str, ...] = ("region", "nation", "supplier", "customer", "part", "partsupp")


def table(name: str) -> Table:
    """Return the definition of a TPC-H table (or of ``orders_delete``).

    :param name: table name.
    :return: its :class:`Table`.
    :raises ValueError: for a name that is not a known table.
    """
    if name == ORDERS_DELETE.name:
        return ORDERS_DELETE
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown TPC-H table {name!r}; expected one of {TABLE_NAMES}") from None
