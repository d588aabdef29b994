"""The engine's view of a pipeline spec: its tables, how they relate, and their names.

A :class:`~jobs.spec.model.Pipeline` says what the user declared; a :class:`Catalog` is
what the steps need from it, resolved once: every source as a :class:`Table` (columns,
key, partition, parent and children, delete feed, history mode, expectations), the
bronze tables (one per landing folder, delete feeds included), the internal silver
tables the engine keeps (tombstones of a delete feed, observed snapshots of an SCD2
source), and the tables whose change feed gold reads.

Nothing here names a pipeline's table: names come from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from jobs.spec.model import FileFormat, Mart, Pipeline

__all__ = [
    "DEFAULT_PIPELINE",
    "LINEAGE_COLUMNS",
    "Catalog",
    "Column",
    "Expectation",
    "Table",
    "load_catalog",
    "orphan_reason",
    "snapshots_table",
    "tombstones_table",
]

DEFAULT_PIPELINE = "tpch"
# Every silver row carries where it came from.
LINEAGE_COLUMNS = ("_ds", "_source_file", "_line_number")
PARENT = "parent"  # how a child's row expectations name their parent's columns


def tombstones_table(source: str) -> str:
    """The silver table that keeps a source's deletions, newest ``_ds`` per key."""
    return f"_{source}_tombstones"


def snapshots_table(source: str) -> str:
    """The silver table that keeps every observed snapshot row of an SCD2 source."""
    return f"_{source}_snapshots"


def orphan_reason(child: str) -> str:
    """The quarantine reason of a child row whose parent does not exist (yet)."""
    return f"orphan_{child}"


@dataclass(frozen=True)
class Column:
    """One typed column.

    :param name: column name in silver.
    :param type: Spark SQL type name (``bigint``, ``int``, ``decimal(15,2)``, ``date``, ...).
    :param nullable: whether a NULL (a null token in the file) is a valid value.
    :param source: the field's name in the file, when it differs.
    """

    name: str
    type: str
    nullable: bool = True
    source: str | None = None


@dataclass(frozen=True)
class Expectation:
    """A row-level rule.

    :param name: reason code written to quarantine and ``ops/dq_results``.
    :param condition: SQL condition over the typed row; true means the row is good. A
        child's condition may read its parent's columns as ``parent.<column>``.
    :param action: ``warn``, ``drop`` or ``fail``.
    :param scope: ``row`` or ``drop`` (an aggregate over the drop's rows of the table).
    """

    name: str
    condition: str
    action: Literal["warn", "drop", "fail"] = "drop"
    scope: Literal["row", "drop"] = "row"

    @property
    def needs_parent(self) -> bool:
        """Whether the condition reads the parent's columns (evaluated after the lookup)."""
        return f"{PARENT}." in self.condition


@dataclass(frozen=True)
class Table:
    """One table of a drop: a source, or a source's delete feed.

    :param name: the table's name (its silver and bronze name; a delete feed's is its
        landing folder).
    :param columns: columns in file order.
    :param key: key column names.
    :param partition_by: the silver partition column, if any (a child's is its parent's).
    :param partition_expr: SQL deriving the partition column from the row (a child has
        none: its rows follow their parent's partition).
    :param history: ``latest`` or ``scd2``.
    :param track: SCD2: the columns whose change makes a new version.
    :param parent: the parent table of a child, and ``parent_key`` maps the child's
        columns to the parent's key columns.
    :param children: tables whose parent this is.
    :param deletes: the name of this source's delete feed, if it has one.
    :param deletes_of: for a delete feed, the source it deletes from.
    :param folder: the landing folder of the table's files.
    :param files: glob of its file names.
    :param file_format: how its files are written.
    :param expectations: row- and drop-scope rules.
    :param sequence: what orders versions: ``_ds`` or a column (then ``_ds`` breaks
        ties, see :attr:`version_order`).
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    partition_expr: str | None = None
    partition_type: str = "date"
    history: Literal["latest", "scd2"] = "latest"
    track: tuple[str, ...] = ()
    parent: str | None = None
    parent_key: tuple[tuple[str, str], ...] = ()
    children: tuple[str, ...] = ()
    deletes: str | None = None
    deletes_of: str | None = None
    folder: str = ""
    files: str = "*"
    file_format: FileFormat | None = None
    expectations: tuple[Expectation, ...] = ()
    sequence: str = "_ds"

    @property
    def column_names(self) -> list[str]:
        """Names of the declared columns in file order."""
        return [c.name for c in self.columns]

    @property
    def non_key_columns(self) -> list[str]:
        """Names of the declared columns that are not part of the key."""
        return [c.name for c in self.columns if c.name not in self.key]

    @property
    def version_order(self) -> tuple[str, ...]:
        """The columns that order two versions of a key, compared left to right.

        ``("_ds",)``: a newer drop wins. ``(<sequence>, "_ds")``: the higher sequence value
        wins, and of equal values the newer drop; so a late drop carrying an older value
        never replaces a newer one.
        """
        return ("_ds",) if self.sequence == "_ds" else (self.sequence, "_ds")

    @property
    def is_family(self) -> bool:
        """Whether the table is written as a section with its deletions and children.

        A partitioned table, a table with a delete feed and a parent of children read
        rows of each other to decide (a partition, a tombstone, a parent): they are
        written together, in one section that settles against concurrent writers.
        """
        return bool(self.partition_by or self.deletes or self.children) and not self.parent


@dataclass(frozen=True)
class Catalog:
    """A pipeline's tables as the steps use them.

    :param name: the pipeline's name.
    :param tables: sources by name, in spec order.
    :param delete_feeds: delete feeds by landing folder.
    :param marts: gold marts by name (the spec's definitions).
    """

    name: str
    tables: dict[str, Table]
    delete_feeds: dict[str, Table] = field(default_factory=dict)
    marts: dict[str, Mart] = field(default_factory=dict)
    pipeline: Pipeline | None = None

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> Catalog:
        """Resolve a validated spec (see :mod:`jobs.spec.check`) into a catalogue."""
        from jobs.spec.schema import partition_of

        children: dict[str, list[str]] = {}
        for name, src in pipeline.sources.items():
            if src.parent is not None:
                children.setdefault(src.parent.table, []).append(name)
        tables: dict[str, Table] = {}
        feeds: dict[str, Table] = {}
        for name, src in pipeline.sources.items():
            partition = partition_of(pipeline, name)
            columns = tuple(Column(c.name, c.type, c.nullable, c.source) for c in src.columns)
            history: Literal["latest", "scd2"] = src.history
            tables[name] = Table(
                name=name,
                columns=columns,
                key=tuple(src.key),
                partition_by=(partition.column,) if partition is not None else (),
                partition_expr=src.partition.expression if src.partition is not None else None,
                partition_type=partition.type if partition is not None else "date",
                history=history,
                track=tuple(src.track or [c.name for c in src.columns
                                          if c.name not in src.key]) if history == "scd2" else (),
                parent=src.parent.table if src.parent is not None else None,
                parent_key=tuple(src.parent.key.items()) if src.parent is not None else (),
                children=tuple(children.get(name, ())),
                deletes=src.deletes.folder if src.deletes is not None else None,
                folder=src.folder or name,
                files=src.files,
                file_format=src.format,
                expectations=tuple(Expectation(e.name, e.check, e.action, e.scope)
                                   for e in src.expectations),
                sequence=src.sequence,
            )
            if src.deletes is not None:
                by_name = {c.name: c for c in columns}
                feed_columns = (
                    tuple(Column(c.name, c.type, c.nullable, c.source)
                          for c in src.deletes.columns)
                    if src.deletes.columns is not None
                    else tuple(by_name[k] for k in src.key)
                )
                feeds[src.deletes.folder] = Table(
                    name=src.deletes.folder,
                    columns=feed_columns,
                    key=tuple(src.key),
                    deletes_of=name,
                    folder=src.deletes.folder,
                    files=src.deletes.files,
                    file_format=src.deletes.format or src.format,
                    expectations=tuple(Expectation(e.name, e.check, e.action, e.scope)
                                       for e in src.deletes.expectations),
                )
        return cls(pipeline.name, tables, feeds, dict(pipeline.marts), pipeline)

    def table(self, name: str) -> Table:
        """A source or a delete feed by name.

        :raises ValueError: for a name that is neither.
        """
        found = self.tables.get(name) or self.delete_feeds.get(name)
        if found is None:
            known = ", ".join([*self.tables, *self.delete_feeds])
            raise ValueError(f"unknown table {name!r} of pipeline {self.name}; expected one "
                             f"of {known}")
        return found

    @property
    def bronze_tables(self) -> tuple[str, ...]:
        """One bronze (and quarantine) table per landing folder, delete feeds included."""
        return (*self.tables, *self.delete_feeds)

    @property
    def folders(self) -> dict[str, str]:
        """Landing folder -> the bronze table its files go to."""
        return {t.folder: t.name for t in (*self.tables.values(), *self.delete_feeds.values())}

    @property
    def cdf_tables(self) -> tuple[str, ...]:
        """Silver tables whose change data feed gold reads (named in a mart's refresh)."""
        names = {t for mart in self.marts.values() if mart.refresh is not None
                 for t in mart.refresh.when}
        return tuple(t for t in self.tables if t in names)

    def expectations(self, name: str) -> tuple[Expectation, ...]:
        """Row- and drop-scope expectations of a source or delete feed (by name)."""
        return self.table(name).expectations

    @property
    def families(self) -> tuple[str, ...]:
        """Sources written as sections with their deletions and children."""
        return tuple(n for n, t in self.tables.items() if t.is_family)

    @property
    def scd2_tables(self) -> tuple[str, ...]:
        """Sources whose history is kept as SCD2 versions."""
        return tuple(n for n, t in self.tables.items() if t.history == "scd2")

    @property
    def latest_tables(self) -> tuple[str, ...]:
        """Sources kept at their latest version with no section of their own."""
        return tuple(n for n, t in self.tables.items()
                     if t.history == "latest" and not t.is_family and t.parent is None)


@cache
def load_catalog(name: str = DEFAULT_PIPELINE) -> Catalog:
    """Read, check and resolve a pipeline's spec (``pipelines/<name>/``), once per process.

    :raises SpecError: (exit 2) naming every problem of an invalid spec.
    """
    from jobs.spec.load import load_pipeline

    return Catalog.from_pipeline(load_pipeline(name))
