"""TPC-H table layout and landing-zone naming shared by the generator and the chaos injector.

Kept independent of the Spark-side table definitions so that data generation runs with the
standard library alone (no Spark, no project imports).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

__all__ = [
    "COLUMNS",
    "DIMENSION_TABLES",
    "MAX_ORDER_DATE",
    "MIN_ORDER_DATE",
    "PRIMARY_KEYS",
    "SUCCESS_MARKER",
    "TABLES",
    "atomic_write_bytes",
    "col",
    "drop_dates",
    "ds_dir_name",
    "join_fields",
    "key_of",
    "split_fields",
]

#: Every table tpchgen-cli writes, in the order it is loaded (parents before children).
TABLES: tuple[str, ...] = (
    "region",
    "nation",
    "supplier",
    "customer",
    "part",
    "partsupp",
    "orders",
    "lineitem",
)

#: Tables delivered only in full in the initial load (drop 0).
DIMENSION_TABLES: tuple[str, ...] = TABLES[:6]


def _names(spec: str) -> tuple[str, ...]:
    return tuple(spec.split())


COLUMNS: dict[str, tuple[str, ...]] = {
    "region": _names("r_regionkey r_name r_comment"),
    "nation": _names("n_nationkey n_name n_regionkey n_comment"),
    "supplier": _names("s_suppkey s_name s_address s_nationkey s_phone s_acctbal s_comment"),
    "customer": _names(
        "c_custkey c_name c_address c_nationkey c_phone c_acctbal c_mktsegment c_comment"
    ),
    "part": _names(
        "p_partkey p_name p_mfgr p_brand p_type p_size p_container p_retailprice p_comment"
    ),
    "partsupp": _names("ps_partkey ps_suppkey ps_availqty ps_supplycost ps_comment"),
    "orders": _names(
        "o_orderkey o_custkey o_orderstatus o_totalprice o_orderdate o_orderpriority "
        "o_clerk o_shippriority o_comment"
    ),
    "lineitem": _names(
        "l_orderkey l_partkey l_suppkey l_linenumber l_quantity l_extendedprice l_discount "
        "l_tax l_returnflag l_linestatus l_shipdate l_commitdate l_receiptdate "
        "l_shipinstruct l_shipmode l_comment"
    ),
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "region": ("r_regionkey",),
    "nation": ("n_nationkey",),
    "supplier": ("s_suppkey",),
    "customer": ("c_custkey",),
    "part": ("p_partkey",),
    "partsupp": ("ps_partkey", "ps_suppkey"),
    "orders": ("o_orderkey",),
    "lineitem": ("l_orderkey", "l_linenumber"),
    "orders_delete": ("o_orderkey",),
}

#: Last (and first) o_orderdate that TPC-H dbgen/tpchgen ever produces.
MAX_ORDER_DATE = date(1998, 8, 2)
MIN_ORDER_DATE = date(1992, 1, 1)

SUCCESS_MARKER = "_SUCCESS"


def col(table: str, name: str) -> int:
    """Position of a column in a TPC-H table's ``.tbl`` line.

    :param table: TPC-H table name.
    :param name: column name.
    :return: 0-based field index.
    """
    return COLUMNS[table].index(name)


def ds_dir_name(day: date) -> str:
    """Name of the landing folder of the drop for one day.

    :param day: the drop's date.
    :return: ``ds=YYYY-MM-DD``.
    """
    return f"ds={day.isoformat()}"


def drop_dates(days: int, history_days: int = 0) -> list[date]:
    """Dates of all drops: the initial load first, then one daily drop per order date.

    :param days: number of trailing order dates delivered as daily drops.
    :param history_days: extra order dates before those, also delivered as daily drops.
    :return: ``[D0, D1, ..., DN]`` with ``N = days + history_days``, ``DN = 1998-08-02`` and
        ``D0 = D1 - 1 day`` (the initial load).
    """
    n = days + history_days
    first = MAX_ORDER_DATE - timedelta(days=n - 1)
    return [first - timedelta(days=1)] + [first + timedelta(days=i) for i in range(n)]


def split_fields(line: bytes) -> list[bytes]:
    """Split one ``.tbl`` line into its fields.

    :param line: a line as read from the file, with or without its newline.
    :return: the fields, without the empty string after the trailing ``|``.
    """
    fields = line.rstrip(b"\n").split(b"|")
    if fields and fields[-1] == b"":
        fields.pop()
    return fields


def join_fields(fields: Sequence[bytes]) -> bytes:
    """Format fields as one ``.tbl`` line (trailing ``|`` and newline, like tpchgen).

    :param fields: field values.
    :return: the line.
    """
    return b"|".join(fields) + b"|\n"


def key_of(table: str, fields: Sequence[bytes]) -> list[int] | None:
    """Primary key carried by a line, if every key field is a valid integer.

    :param table: TPC-H table name (or ``orders_delete``).
    :param fields: the line's fields.
    :return: the key values, or ``None`` when a key field is missing or not an integer.
    """
    columns = COLUMNS.get(table, ("o_orderkey",))
    out: list[int] = []
    for name in PRIMARY_KEYS[table]:
        idx = columns.index(name)
        if idx >= len(fields):
            return None
        raw = fields[idx]
        if not raw.isdigit():
            return None
        out.append(int(raw))
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a whole file so that readers only ever see it complete.

    The bytes go to a hidden temporary name in the same folder (which Spark and ``*.tbl``
    globs skip) and are then renamed over the target, an atomic step on POSIX filesystems.

    :param path: final file path; its folder is created when missing.
    :param data: file content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.inprogress")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
