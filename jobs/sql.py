"""SQL text built from Python values: validated identifiers and rendered literals.

The jobs write some Spark SQL as text: MERGE conditions, ``replaceWhere`` predicates,
partition filters in ``F.expr``, the quality step's queries over temporary views and
the names of those views. Every piece of such text that is not a constant of the code
comes from this module:

* names (tables, views, columns) go through :func:`identifier`, which accepts only
  ``[A-Za-z_][A-Za-z0-9_]*`` (ASCII; no quotes, backticks, spaces, dots or lookalike
  letters) and, unless told otherwise, only the names of the lake's catalogue
  (:func:`catalogue`);
* values go through :func:`sql_literal` or :func:`sql_in`, which render ints, dates and
  strings as literals.

A rejected name raises :class:`~jobs.errors.ConfigError` (exit 2): names come from the
code and its configuration, never from landed data, so a bad one is a configuration
error that no retry can fix. ``tests/integration/repo/test_security.py`` checks that no
SQL f-string in ``jobs/`` interpolates anything that did not come through here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from functools import cache

from jobs.errors import ConfigError
from jobs.schemas import (
    CUSTOMER_SNAPSHOTS,
    GOLD_TABLES,
    TOMBSTONES,
    gold_schema,
    quarantine_schema,
    silver_columns,
    tombstone_schema,
)
from jobs.tpch import ORDERS_DELETE, TABLES

__all__ = ["IDENTIFIER_PATTERN", "catalogue", "identifier", "spec_query", "sql_in",
           "sql_literal"]

# ASCII only: re's \w would also accept non-Latin letters that look like Latin ones.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@cache
def catalogue() -> frozenset[str]:
    """Every name the pipeline's SQL text may use: tables, temporary views, columns.

    Built from the definitions the tables are created from (:mod:`jobs.tpch` and
    :mod:`jobs.schemas`), so a new table or column is known as soon as it exists.

    :return: TPC-H tables and columns (``orders_delete`` included), the silver tables'
        SCD2 and lineage columns, the internal silver tables, quarantine and gold tables
        and columns, and the quality step's views ``silver_<table>`` / ``gold_<table>``.
    """
    names = {*TABLES, ORDERS_DELETE.name, TOMBSTONES, CUSTOMER_SNAPSHOTS, *GOLD_TABLES}
    names |= {f"silver_{t}" for t in TABLES} | {f"gold_{t}" for t in GOLD_TABLES}
    for table in (*TABLES.values(), ORDERS_DELETE):
        names.update(silver_columns(table))
    for schema in (quarantine_schema(), tombstone_schema(), *map(gold_schema, GOLD_TABLES)):
        names.update(schema.names)
    return frozenset(names)


def identifier(name: str, *, known: bool = True) -> str:
    """Check a table, view or column name before it goes into SQL text; return it.

    :param name: the name.
    :param known: also require the name to be in :func:`catalogue` (the default);
        ``False`` for the generic Delta helpers, whose tables are whatever their callers
        pass (the names still have to match :data:`IDENTIFIER_PATTERN`).
    :return: ``name`` unchanged.
    :raises ConfigError: for anything that is not a plain identifier, or (``known``) not
        a name of the catalogue.
    """
    if not isinstance(name, str) or IDENTIFIER_PATTERN.fullmatch(name) is None:
        raise ConfigError(
            f"invalid SQL identifier {name!r}: expected ASCII letters, digits and '_', "
            "not starting with a digit"
        )
    if known and name not in catalogue():
        raise ConfigError(f"unknown SQL identifier {name!r}: not a table, view or column "
                          "of the lake")
    return name


def spec_query(text: str, alias: str = "_q") -> str:
    """Wrap SQL a pipeline's spec supplies (a mart, a refresh or a gate query) to run it.

    The text is configuration written by the pipeline's author, checked against the
    declared schemas by ``python -m jobs validate``. It runs as a subquery, so anything but
    a query (``DROP``, ``INSERT``, ``SET``, a second statement) is a syntax error rather
    than executed. The query starts on the second line of the result, for error lines.

    :param text: the query (a trailing ``;`` is allowed).
    :param alias: the subquery's alias (a plain identifier).
    :return: ``SELECT * FROM (<text>) AS <alias>``.
    """
    body = text.strip().rstrip(";").rstrip()
    return f"SELECT * FROM (\n{body}\n) AS {identifier(alias, known=False)}"


def sql_literal(value: int | str | dt.date) -> str:
    """Render one value as a Spark SQL literal.

    :param value: an int, a date or a string (strings are quoted and escaped).
    :return: e.g. ``42``, ``DATE'1998-08-01'`` or ``'O\\'Brien'``.
    :raises TypeError: for any other type (``bool`` and ``datetime`` included, which
        would otherwise pass as an int or a date).
    """
    if isinstance(value, bool) or isinstance(value, dt.datetime):
        raise TypeError(f"unsupported literal {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, str):
        # Spark SQL escapes with backslashes ('a''b' would be two adjacent literals).
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"unsupported literal {value!r}")


def sql_in(values: Sequence[int | str | dt.date]) -> str:
    """Render values as a SQL ``IN`` list of literals (ints, dates or strings).

    :param values: the literals; strings and dates are quoted.
    :return: e.g. ``(DATE'1998-08-01', DATE'1998-09-01')``.
    :raises ValueError: for an empty list (``IN ()`` is not valid SQL).
    """
    if not values:
        raise ValueError("sql_in needs at least one value")
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"
