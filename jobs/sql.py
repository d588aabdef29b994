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
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path

from jobs.errors import ConfigError
from jobs.sql_text import IDENTIFIER_PATTERN, plain_identifier, spec_query

__all__ = ["IDENTIFIER_PATTERN", "catalogue", "identifier", "spec_query", "sql_in",
           "sql_literal"]



def catalogue() -> frozenset[str]:
    """Every name the pipelines' SQL text may use: tables, temporary views, columns.

    Built from the specs of every pipeline in the pipelines folder (``PIPELINES_DIR`` or
    the repository's, see :func:`jobs.spec.load.pipelines_root`; through
    :mod:`jobs.catalog`) and the engine's own tables, so a new table or column is known as
    soon as a spec declares it. Built once per pipelines folder: a process that points
    ``PIPELINES_DIR`` elsewhere gets that folder's names.

    :return: each pipeline's sources, delete feeds and marts with their columns, grain and
        refresh columns, the silver tables' SCD2, lineage and partition columns, the
        internal silver tables (tombstones, snapshots), ``<scd2 source>_history`` views,
        and quarantine's columns.
    """
    from jobs.spec.load import pipelines_root

    return _catalogue(pipelines_root())


@cache
def _catalogue(root: Path) -> frozenset[str]:
    from jobs.catalog import Catalog, snapshots_table, tombstones_table
    from jobs.schemas import SCD2_COLUMNS, quarantine_schema, silver_columns, tombstone_schema
    from jobs.spec.load import list_pipelines, load_pipeline

    names: set[str] = {*SCD2_COLUMNS, *quarantine_schema().names, "changes", "_change_type"}
    for pipeline in list_pipelines():
        catalog = Catalog.from_pipeline(load_pipeline(pipeline))
        for table in (*catalog.tables.values(), *catalog.delete_feeds.values()):
            names.add(table.name)
            names.update(silver_columns(table))
            if table.deletes:
                names.add(tombstones_table(table.name))
                names.update(tombstone_schema(table).names)
            if table.history == "scd2":
                names |= {snapshots_table(table.name), f"{table.name}_history"}
        for mart_name, mart in catalog.marts.items():
            names.add(mart_name)
            names.update(mart.grain)
            if mart.refresh is not None:
                names.add(mart.refresh.column)
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
    plain_identifier(name)
    if known and name not in catalogue():
        raise ConfigError(f"unknown SQL identifier {name!r}: not a table, view or column "
                          "of the lake")
    return name


def sql_literal(value: int | str | dt.date | dt.datetime | float | Decimal) -> str:
    """Render one value as a Spark SQL literal.

    :param value: an int, a float, a decimal, a date, a timestamp (naive, in the session's
        time zone, as Spark returns them) or a string (quoted and escaped).
    :return: e.g. ``42``, ``DATE'1998-08-01'``, ``TIMESTAMP'2013-01-01 05:00:00'`` or
        ``'O\\'Brien'``.
    :raises TypeError: for any other type (``bool`` included, which would otherwise pass
        as an int).
    """
    if isinstance(value, bool):
        raise TypeError(f"unsupported literal {value!r}")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise TypeError(f"unsupported literal {value!r}: an aware timestamp")
        return f"TIMESTAMP'{value.isoformat(sep=' ')}'"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"unsupported literal {value!r}")
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, Decimal):
        return f"{value}BD"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, str):
        # Spark SQL escapes with backslashes ('a''b' would be two adjacent literals).
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"unsupported literal {value!r}")


def sql_in(values: Sequence[int | str | dt.date | dt.datetime | float | Decimal]) -> str:
    """Render values as a SQL ``IN`` list of literals (ints, dates or strings).

    :param values: the literals; strings and dates are quoted.
    :return: e.g. ``(DATE'1998-08-01', DATE'1998-09-01')``.
    :raises ValueError: for an empty list (``IN ()`` is not valid SQL).
    """
    if not values:
        raise ValueError("sql_in needs at least one value")
    return "(" + ", ".join(sql_literal(v) for v in values) + ")"
