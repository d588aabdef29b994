"""Property test of the generic engine: random specs, random drops, any order, one answer.

Hypothesis draws a small pipeline spec (:class:`tests.support.spec_model.SpecDraw`): a
parent table ``p`` with a one- or two-column key, a numeric column of a drawn type and a
file format of its own (delimited with or without a trailing separator, CSV, JSON lines,
Parquet); maybe a sequence column ordering its versions, a partition (the month of a date,
or a bucket of the key), a delete feed, a ``drop`` or ``warn`` expectation, a child ``c``
related to ``p``, and an SCD2 table ``s`` tracking all or some columns; and marts whose
refresh is bounded by a grain column, ``all`` or absent. It then draws two or three drops
over small key spaces (updates, deletions, exact duplicate lines, two versions of a key in
one drop, lines that do not parse) and processes them (``ingest``, ``silver``, ``gold`` on
the session's Spark, the spec read from a temporary ``PIPELINES_DIR`` like any user's) in
a random order, with a repeat (a no-op that must commit nothing) or a ``--force`` run.
Every drawn spec must pass ``validate`` (its SQL included), and afterwards silver,
quarantine and gold must equal the pure-Python model of
:func:`tests.support.spec_model.expected`, computed from the landed files alone.

CI runs ``PROPERTY_EXAMPLES`` examples (default 4), derandomized; ``PROPERTY_SEED=<int>``
draws others, e.g. ``PROPERTY_EXAMPLES=30 PROPERTY_SEED=3 .venv/bin/python -m pytest
tests/integration/e2e/test_spec_properties.py -q``. What the examples exercised is printed
at the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from jobs.catalog import Catalog
from jobs.spec.cli import validate_pipeline
from jobs.spec.load import PIPELINES_ENV, load_pipeline
from jobs.steps import gold, ingest, silver
from jobs.steps.common import StepContext
from tests.support.lake import lake_of
from tests.support.properties import pipeline_examples
from tests.support.spec_model import (
    BAD_KINDS,
    BOOL_VALUES,
    COLOUR_VALUES,
    DATE_VALUES,
    DECIMAL_VALUES,
    GROUP_VALUES,
    INT_VALUES,
    QTY_VALUES,
    SEQUENCE_VALUES,
    SIZE_VALUES,
    Col,
    DropDraw,
    SpecDraw,
    TableRows,
    TableSpec,
    ds_of,
    expected,
    land_drop,
    read_specs,
    write_pipeline,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.lake import Lake

pytestmark = pytest.mark.slow

FORMATS = ("delimited", "csv", "jsonl", "parquet")
_names = itertools.count(1)


# -- what Hypothesis draws -------------------------------------------------------------------

@st.composite
def specs(draw: st.DrawFn) -> SpecDraw:
    """A spec: ``p`` always; a partition, a delete feed, an expectation, a child ``c`` and
    an SCD2 table ``s`` each maybe; every table in a format of its own."""
    def table_format() -> tuple[str, bool]:
        fmt = draw(st.sampled_from(FORMATS))
        return fmt, fmt == "delimited" and draw(st.booleans())

    composite = draw(st.booleans())
    key = (Col("k", "bigint", False), *((Col("r", "string", False),) if composite else ()))
    key_names = tuple(c.name for c in key)
    # A sequence column orders the versions of a plain latest table (not of a family):
    # one spec in four is such a table.
    sequence = draw(st.integers(0, 3)) == 0
    partition = None if sequence else draw(st.sampled_from((None, "month", "bucket")))
    date_required = partition == "month" or draw(st.booleans())
    fmt, trailing = table_format()
    deletes = not sequence and draw(st.booleans())
    child = not sequence and draw(st.booleans())
    p = TableSpec("p", fmt, (*key, Col("g", "string"),
                             Col("n", draw(st.sampled_from(("int", "bigint", "decimal(9,2)")))),
                             Col("d", "date", not date_required), Col("b", "boolean"),
                             *((Col("u", "int", False),) if sequence else ())),
                  key_names, trailing=trailing, sequence="u" if sequence else None)
    c = s = None
    if child:
        fmt, trailing = table_format()
        c = TableSpec("c", fmt, (*key, Col("line", "int", False), Col("qty", "int")),
                      (*key_names, "line"), trailing=trailing)
    if draw(st.booleans()):
        fmt, trailing = table_format()
        s = TableSpec("s", fmt, (Col("id", "bigint", False), Col("colour", "string", False),
                                 Col("size", "int")), ("id",), history="scd2",
                      track=draw(st.sampled_from((None, ("colour",)))), trailing=trailing)
    return SpecDraw(
        name=f"gen{next(_names)}", p=p, partition=partition, deletes=deletes,
        expectation=draw(st.sampled_from((None, "drop", "warn"))), c=c, s=s,
        refresh=draw(st.sampled_from(("bounded", "all", "none"))))


def _keys(spec: SpecDraw, t: TableSpec) -> list[tuple[Any, ...]]:
    parent = ([(k, r) for k in (1, 2) for r in ("A", "B")] if len(spec.p.key) == 2
              else [(k,) for k in (1, 2, 3)])
    if t.name == "p":
        return parent
    if t.name == "c":
        return [(*k, line) for k in parent for line in (1, 2)]
    return [(i,) for i in (1, 2, 3)]


def _content(spec: SpecDraw, t: TableSpec) -> st.SearchStrategy[tuple[Any, ...]]:
    if t.name == "p":
        numbers = DECIMAL_VALUES if spec.n_type.startswith("decimal") else INT_VALUES
        dates = DATE_VALUES if t.col("d").nullable else tuple(d for d in DATE_VALUES if d)
        fields = [st.sampled_from(GROUP_VALUES), st.sampled_from(numbers),
                  st.sampled_from(dates), st.sampled_from(BOOL_VALUES)]
        if t.sequence is not None:
            fields.append(st.sampled_from(SEQUENCE_VALUES))
        return st.tuples(*fields)
    if t.name == "c":
        return st.tuples(st.sampled_from(QTY_VALUES))
    return st.tuples(st.sampled_from(COLOUR_VALUES), st.sampled_from(SIZE_VALUES))


@st.composite
def table_rows(draw: st.DrawFn, spec: SpecDraw, t: TableSpec) -> TableRows:
    """Up to 3 rows, maybe an exact duplicate or a second version of one, maybe a bad line."""
    content = _content(spec, t)
    rows = draw(st.dictionaries(st.sampled_from(_keys(spec, t)), content, max_size=3))
    extra: tuple[tuple[Any, Any], ...] = ()
    if rows and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(rows, key=repr)))
        other = rows[key] if draw(st.booleans()) else draw(
            content.filter(lambda c, current=rows[key]: c != current))
        extra = ((key, other),)
    bad = tuple(draw(st.lists(st.sampled_from(BAD_KINDS), max_size=1))) if rows else ()
    return TableRows(rows, extra, bad)


@st.composite
def drops(draw: st.DrawFn, spec: SpecDraw) -> DropDraw:
    tables = {t.name: draw(table_rows(spec, t)) for t in spec.tables}
    deletes = tuple(draw(st.lists(st.sampled_from(_keys(spec, spec.p)), max_size=2,
                                  unique=True))) if spec.deletes else ()
    return DropDraw({n: r for n, r in tables.items() if r.rows}, deletes)


@dataclass(frozen=True)
class Scenario:
    spec: SpecDraw
    drops: tuple[DropDraw, ...]
    events: tuple[tuple[int, str], ...]  # (drop, "first" | "again" | "force")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A spec, 2-3 drops in a random order, and maybe one repeat (plain or ``--force``)."""
    spec = draw(specs())
    drawn = tuple(draw(st.lists(drops(spec), min_size=2, max_size=3)))
    events = [(i, "first") for i in draw(st.permutations(range(len(drawn))))]
    repeat = draw(st.sampled_from((None, "again", "force")))
    if repeat is not None:
        i = draw(st.integers(0, len(drawn) - 1))
        at = draw(st.integers(events.index((i, "first")) + 1, len(events)))
        events.insert(at, (i, repeat))
    return Scenario(spec, drawn, tuple(events))


# -- running and reading ---------------------------------------------------------------------

@contextmanager
def pipelines_dir(path: Path) -> Iterator[None]:
    before = os.environ.get(PIPELINES_ENV)
    os.environ[PIPELINES_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ[PIPELINES_ENV]
        else:
            os.environ[PIPELINES_ENV] = before


def commits(lake_root: Path) -> dict[str, int]:
    """Every table's number of commits (a no-op run adds none)."""
    return {str(log.parent.relative_to(lake_root)): len(list(log.glob("*.json")))
            for log in lake_root.glob("*/*/_delta_log")}


def read_tables(spark: SparkSession, lake: Lake, spec: SpecDraw
                ) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """The lake's tables keyed like the model (a missing table reads as empty)."""
    from jobs.delta_io import is_delta_table

    parquet = {t.name for t in spec.tables if t.fmt == "parquet"} | (
        {spec.feed} if spec.deletes and spec.p.fmt == "parquet" else set())
    out = {}
    for name, (key, value) in read_specs(spec).items():
        uri = lake.table(*name.split("/"))
        if not is_delta_table(spark, uri):
            out[name] = {}
            continue
        rows = spark.read.format("delta").load(uri).select(*key, *value).collect()
        table = {tuple(r[:len(key)]): tuple(r[len(key):]) for r in rows}
        assert len(table) == len(rows), f"{name}: two rows of one key"
        if name.startswith("quarantine/"):
            # Bronze keeps a Parquet record as its own JSON text: compare reasons there.
            raw_kept = name.split("/")[1] not in parquet
            table = {k: (raw if raw_kept else None, tuple(sorted(set(reasons))))
                     for k, (raw, reasons) in table.items()}
        out[name] = table
    return out


def difference(name: str, actual: dict[str, Any], model: dict[str, Any]) -> str:
    lines = [f"{name}: the lake differs from the model"]
    for key in sorted(actual[name].keys() | model[name].keys(), key=repr):
        if actual[name].get(key) != model[name].get(key):
            lines.append(f"  {key}: lake {actual[name].get(key)} != model "
                         f"{model[name].get(key)}")
    return "\n".join(lines)


def run_scenario(spark: SparkSession, root: Path, scenario: Scenario) -> Counter[str]:
    """Write the spec, land the drops, check the spec, process the events, compare."""
    spec = scenario.spec
    pipelines, landing = root / "pipelines", root / "landing"
    write_pipeline(pipelines, spec)
    for i, drop in enumerate(scenario.drops):
        land_drop(landing, spec, ds_of(i), drop)
    with pipelines_dir(pipelines):
        assert validate_pipeline(spec.name, spark=spark) == []
        catalog = Catalog.from_pipeline(load_pipeline(spec.name))
        lake = lake_of(root / "lake")
        for i, kind in scenario.events:
            before = commits(root / "lake")
            ctx = StepContext(spark, lake, "file:" + str(landing), ds_of(i),
                              force=kind == "force", catalog=catalog)
            for step in (ingest, silver, gold):
                step.run(ctx)
            if kind == "again":
                assert commits(root / "lake") == before, f"re-run of drop {i} committed"
        model, seen = expected(spec, landing)
        actual = read_tables(spark, lake, spec)
    for name in read_specs(spec):
        assert actual[name] == model[name], difference(name, actual, model)
    seen.update(f"{k}_{v}" for k, v in (
        ("format", spec.p.fmt), ("partition", spec.partition), ("refresh", spec.refresh),
        ("expectation", spec.expectation)) if v)
    seen.update(["sequence_column"] if spec.p.sequence else [])
    seen.update(n for n, present in (("child", spec.c), ("scd2", spec.s),
                                     ("deletes", spec.deletes),
                                     ("composite_key", len(spec.p.key) == 2)) if present)
    seen.update(f"repeat_{k}" for _, k in scenario.events if k != "first")
    if [i for i, k in scenario.events if k == "first"] != sorted(range(len(scenario.drops))):
        seen["out_of_order"] += 1
    return seen


def test_random_specs_and_drops_in_any_order_give_the_model(
        spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs: list[float] = []
    exercised: Counter[str] = Counter()

    @pipeline_examples
    @given(scenarios())
    def check(scenario: Scenario) -> None:
        start = time.monotonic()
        root = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            seen = run_scenario(spark, root, scenario)
            for name, n in seen.items():
                if n:
                    event(name)
            exercised.update({k: n for k, n in seen.items() if n})
        finally:
            shutil.rmtree(root, ignore_errors=True)
            runs.append(time.monotonic() - start)

    check()
    assert runs, "no example ran"
    with capsys.disabled():
        print(f"\nspec property: {len(runs)} examples, {sum(runs):.0f} s, "
              f"{sum(runs) / len(runs):.1f} s per example; exercised: {dict(exercised)}")
