"""Property tests: any sequence of drops, in any order, with repeats, gives the model's tables.

Hypothesis draws two or three tiny hand-written drops (customer snapshots, orders, line
items, RF2 ``orders_delete`` keys, exact duplicate lines, two versions of one key in one
drop) over small key spaces, so updates, deletes and collisions of one key are frequent.
The drops are processed (``ingest``, ``silver``, ``gold``, in-process on the session's
Spark) in a random order with up to two extra events: the same drop again, again with
``--force``, or a corrected re-delivery of it (same keys, new contents). Afterwards silver,
quarantine and gold must equal a small pure-Python model computed from the landed files
alone (:func:`expected_tables`), whose rules are the contract's:

* per drop, exact duplicate lines count once, and two different versions of one key are
  all quarantined (``conflicting_versions_in_drop``);
* the newest ``_ds`` of a key wins; the last delivery of a drop is its content;
* an RF2 deletion at ``ds`` removes every version of the order and of its line items with
  ``_ds <= ds``; the newest deletion of a key counts;
* a line item needs its order: while the order is not live, its line items newer than
  the order's deletion are parked in quarantine (``orphan_lineitem``), never in silver;
* customer history is SCD2 over every snapshot observed: versions ordered by ``_ds``, a
  version equal to its predecessor is no change, ``valid_to`` is the next version's
  ``valid_from``;
* gold is TPC-H Q1's measures per ship date over the model's line items, and revenue per
  order date and customer nation as of the order date (the earliest customer version also
  covers earlier dates), in exact decimals.

Cost: a pipeline run costs per Spark job and commit, not per row. So every drop holds two
independent *lanes* of rows with disjoint keys (two cases per run), and the base drop
(region, nation, supplier, part, partsupp, customers, orders, and lines that create the
quarantine and tombstone tables) is processed once into a template lake: every example
works on its own copy of it (a fresh, isolated lake, without creating some twenty tables
again). A repeat without ``--force`` is a cheap no-op by design.

Determinism: CI runs ``PROPERTY_EXAMPLES`` examples (default 4) derandomized, i.e. the
same examples on every run (the first is Hypothesis's simplest: empty drops).
``PROPERTY_SEED=<int>`` draws other examples from that seed, and ``PROPERTY_EXAMPLES=<n>``
runs more of them, e.g.::

    PROPERTY_EXAMPLES=50 PROPERTY_SEED=7 .venv/bin/python -m pytest \\
        tests/e2e/test_properties.py -q

The number of examples run, the seconds per example and what they exercised are printed
at the end.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from jobs.lake import Lake
from jobs.steps import gold, ingest, silver
from jobs.steps.common import StepContext, run_parallel
from jobs.tpch import table
from jobs.transforms.silver import CONFLICT_REASON, ORPHAN_REASON
from tests.e2e.conftest import lake_of
from tests.e2e.kills import Kill, submit

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "4"))
SEED = os.environ.get("PROPERTY_SEED")
BASE_DS = dt.date(1998, 8, 1)  # the base drop; the drawn drops follow it day by day
F = TypeVar("F", bound=Callable[..., Any])

# -- what a drop can hold --------------------------------------------------------------------
# Small key spaces: keys collide across and within drops. A drop holds LANES independent
# groups of rows with disjoint keys (lane n adds 10 * n to order and customer keys): more
# cases per pipeline run at almost no cost, since runs cost per commit, not per row.
LANES = 2
CUSTKEYS = (1, 2, 3)
ORDERKEYS = (1, 2, 3, 4)
ITEMKEYS = tuple(itertools.product(ORDERKEYS, (1, 2)))
NATIONS = {0: "ALGERIA", 1: "ARGENTINA", 2: "BRAZIL"}
# Customer content: nation and balance (a nation change moves revenue between nations).
CUSTOMERS = tuple(itertools.product(sorted(NATIONS), ("100.00", "250.50")))
# Order content: customer, status, total price, order date. The dates straddle the drops
# (customer history matters) and two months (an update moves an order to another month).
ORDERS = tuple(itertools.product(CUSTKEYS, ("O", "F"), ("1000.00", "2500.25"),
                                 ("1998-07-20", "1998-08-02", "1998-08-04")))
# Line item content: quantity, price, discount, tax, (return flag, line status), ship
# date; every ship date is after every order date (no order-dependent rule fires).
ITEMS = tuple(itertools.product(("1.00", "7.50"), ("100.00", "333.33"), ("0.00", "0.05", "0.10"),
                                ("0.00", "0.08"), (("N", "O"), ("R", "F")),
                                ("1998-08-10", "1998-08-12")))

Cust = tuple[int, str]
Order = tuple[int, str, str, str]
Item = tuple[str, str, str, str, tuple[str, str], str]


def customer_line(key: int, content: Cust, lane: int = 0) -> str:
    """A dbgen ``customer`` line."""
    nation, balance = content
    key += 10 * lane
    return (f"{key}|Customer#{key:09d}|address {key}|{nation}|25-989-741-{key:04d}|{balance}|"
            f"BUILDING|customer {key}|")


def order_line(key: int, content: Order, lane: int = 0) -> str:
    """A dbgen ``orders`` line."""
    cust, status, price, date = content
    key, cust = key + 10 * lane, cust + 10 * lane
    return f"{key}|{cust}|{status}|{price}|{date}|5-LOW|Clerk#000000001|0|order {key}|"


def item_line(key: tuple[int, int], content: Item, lane: int = 0) -> str:
    """A dbgen ``lineitem`` line (commit and receipt dates follow the ship date)."""
    (order, number), (qty, price, discount, tax, (flag, status), ship) = key, content
    order += 10 * lane
    day = dt.date.fromisoformat(ship)
    commit, receipt = day + dt.timedelta(days=1), day + dt.timedelta(days=3)
    return (f"{order}|1|1|{number}|{qty}|{price}|{discount}|{tax}|{flag}|{status}|{ship}|"
            f"{commit}|{receipt}|DELIVER IN PERSON|TRUCK|item {order}-{number}|")


def delete_line(key: int, content: None = None, lane: int = 0) -> str:
    """An RF2 ``orders_delete`` line."""
    return f"{key + 10 * lane}|"


BASE_FILES: dict[str, list[str]] = {
    "region/part-1.tbl": ["0|AFRICA|lar deposits|", "1|AMERICA|hs use ironic requests|"],
    "nation/part-1.tbl": [f"{k}|{name}|{min(k, 1)}|nation {k}|" for k, name in NATIONS.items()],
    "supplier/part-1.tbl": ["1|Supplier#000000001|address|0|10-000-000-0001|100.00|s|"],
    "part/part-1.tbl": ["1|goldenrod lace|Manufacturer#1|Brand#13|PROMO BURNISHED COPPER|7|"
                        "JUMBO PKG|901.00|p|"],
    "partsupp/part-1.tbl": ["1|1|3325|771.64|ps|"],
    "customer/part-1.tbl": [customer_line(k, CUSTOMERS[2 * (k - 1)], lane)
                            for lane in range(LANES) for k in CUSTKEYS],
    "orders/part-1.tbl": [line for lane in range(LANES) for line in (
        order_line(1, ORDERS[0], lane), order_line(2, ORDERS[-1], lane))],
    "lineitem/part-1.tbl": [line for lane in range(LANES) for line in (
        item_line((1, 1), ITEMS[0], lane), item_line((2, 1), ITEMS[-1], lane))],
    # Outside the drawn key spaces: two versions of customer 9 and of order 9 (conflicts),
    # a line item of order 9 (an orphan for good), a deletion of an unknown order. They
    # create the quarantine and tombstone tables once here rather than in every example.
    "customer/part-2.tbl": [customer_line(9, CUSTOMERS[0]), customer_line(9, CUSTOMERS[1])],
    "orders/part-2.tbl": [order_line(9, ORDERS[0]), order_line(9, ORDERS[1])],
    "lineitem/part-2.tbl": [item_line((9, 1), ITEMS[0])],
    "orders_delete/part-1.tbl": [delete_line(99)],
}

RENDER: dict[str, Callable[..., str]] = {
    "customer": customer_line, "orders": order_line, "lineitem": item_line,
    "orders_delete": delete_line,
}
CHOICES: dict[str, tuple[Any, ...]] = {"customer": CUSTOMERS, "orders": ORDERS,
                                       "lineitem": ITEMS}


@dataclass(frozen=True)
class LaneSpec:
    """One lane of a drop: rows by key, RF2 deletions, and extra lines.

    ``extra`` rows ``(table, key, content)`` land in a second file of their table: an
    exact copy of a row (a duplicate) or another version of a key of the drop (a
    conflict).
    """

    customers: dict[int, Cust]
    orders: dict[int, Order]
    items: dict[tuple[int, int], Item]
    deletes: tuple[int, ...] = ()
    extra: tuple[tuple[str, Any, Any], ...] = ()

    def add_files(self, out: dict[str, list[str]], lane: int) -> None:
        """Add the lane's lines to a drop's files (relative path -> lines)."""
        rows = {"customer": self.customers, "orders": self.orders, "lineitem": self.items,
                "orders_delete": dict.fromkeys(self.deletes)}
        for name, by_key in rows.items():
            out[f"{name}/part-1.tbl"] += [RENDER[name](k, c, lane) for k, c in by_key.items()]
        for name, key, content in self.extra:
            out[f"{name}/part-2.tbl"].append(RENDER[name](key, content, lane))


Drop = tuple[LaneSpec, ...]


def files_of(drop: Drop) -> dict[str, list[str]]:
    """The files of a drop: relative path -> lines."""
    out: dict[str, list[str]] = defaultdict(list)
    for lane, spec in enumerate(drop):
        spec.add_files(out, lane)
    return {path: lines for path, lines in out.items() if lines}


@dataclass(frozen=True)
class Event:
    """One thing that happens to the lake: ``process`` a drop (``force``: with ``--force``),
    or deliver its ``correction`` over the landed drop and process it."""

    drop: int
    force: bool = False
    correction: Drop | None = None


@dataclass(frozen=True)
class Scenario:
    """The drawn drops (``drops[i]`` lands as ``ds`` = base + i + 1 days) and the events."""

    drops: tuple[Drop, ...]
    events: tuple[Event, ...]


def _other(draw: st.DrawFn, choices: tuple[Any, ...], current: Any) -> Any:
    """A content different from ``current`` (no filtering, so shrinking stays cheap)."""
    i = choices.index(current)
    return choices[(i + 1 + draw(st.integers(0, len(choices) - 2))) % len(choices)]


@st.composite
def lane_specs(draw: st.DrawFn) -> LaneSpec:
    """At most 2 customers, 3 orders, 3 line items and 1 deletion, plus extra lines."""
    rows = {
        "customer": draw(st.dictionaries(st.sampled_from(CUSTKEYS), st.sampled_from(CUSTOMERS),
                                         max_size=2)),
        "orders": draw(st.dictionaries(st.sampled_from(ORDERKEYS), st.sampled_from(ORDERS),
                                       max_size=3)),
        "lineitem": draw(st.dictionaries(st.sampled_from(ITEMKEYS), st.sampled_from(ITEMS),
                                         max_size=3)),
    }
    deletes = draw(st.lists(st.sampled_from(ORDERKEYS), max_size=1))
    extra: list[tuple[str, Any, Any]] = []
    for name, by_key in rows.items():
        kind = draw(st.sampled_from(("none", "duplicate", "conflict"))) if by_key else "none"
        if kind != "none":
            key = draw(st.sampled_from(sorted(by_key)))
            content = by_key[key] if kind == "duplicate" else _other(draw, CHOICES[name],
                                                                      by_key[key])
            extra.append((name, key, content))
    if deletes and draw(st.booleans()):
        extra.append(("orders_delete", deletes[0], None))
    return LaneSpec(rows["customer"], rows["orders"], rows["lineitem"], tuple(deletes),
                    tuple(extra))


def correction_of(draw: st.DrawFn, drop: Drop) -> Drop:
    """A corrected re-delivery: the same files and keys, some new contents.

    Keys with extra lines keep their content, so a correction never turns a valid line
    into a conflict (silver would rightly keep the earlier version then).
    """
    def redraw(spec: LaneSpec, name: str, by_key: dict[Any, Any]) -> dict[Any, Any]:
        fixed = {key for n, key, _ in spec.extra if n == name}
        return {k: c if k in fixed or draw(st.booleans()) else _other(draw, CHOICES[name], c)
                for k, c in by_key.items()}

    return tuple(
        LaneSpec(redraw(s, "customer", s.customers), redraw(s, "orders", s.orders),
                 redraw(s, "lineitem", s.items), s.deletes, s.extra)
        for s in drop)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """2-3 drops processed in a random order, plus up to 2 repeats or corrections."""
    drops = tuple(draw(st.lists(st.tuples(*[lane_specs()] * LANES), min_size=2, max_size=3)))
    events = [Event(i) for i in draw(st.permutations(range(len(drops))))]
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(drops) - 1))
        kind = draw(st.sampled_from(("again", "force", "correction")))
        event_ = Event(i, force=kind == "force",
                       correction=correction_of(draw, drops[i]) if kind == "correction"
                       else None)
        events.insert(draw(st.integers(0, len(events))), event_)
    return Scenario(drops, tuple(events))


def scenario_counts(scenario: Scenario) -> Counter[str]:
    """What the processing order of a scenario exercises (for the report)."""
    out: Counter[str] = Counter()
    done: set[int] = set()
    for e in scenario.events:
        if e.correction is not None:
            out["corrections"] += 1
        elif e.drop in done:
            out["forced_repeats" if e.force else "repeats"] += 1
        elif done and e.drop < max(done):
            out["late_drops"] += 1
        done.add(e.drop)
    return out


# -- the landing zone ------------------------------------------------------------------------

def ds_of(drop: int) -> dt.date:
    """The ``ds`` of drawn drop number ``drop``."""
    return BASE_DS + dt.timedelta(days=drop + 1)


def land(landing: Path, ds: dt.date, files: dict[str, list[str]]) -> None:
    """Write a drop (replacing whatever was landed for ``ds``), then its ``_SUCCESS``."""
    drop = landing / f"ds={ds.isoformat()}"
    if drop.exists():
        shutil.rmtree(drop)
    for relative, lines in files.items():
        path = drop / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "_SUCCESS").write_bytes(b"")


def landed(landing: Path) -> list[tuple[dt.date, str, str, list[str]]]:
    """Every landed file: ``(ds, table, uri, lines)``, read back from disk."""
    out = []
    for path in sorted(landing.glob("ds=*/*/*.tbl")):
        ds = dt.date.fromisoformat(path.parent.parent.name[3:])
        out.append((ds, path.parent.name, "file:" + str(path),
                    path.read_text(encoding="utf-8").splitlines()))
    return out


def process(spark: SparkSession, lake: Lake, landing: Path, ds: dt.date, force: bool,
            steps: tuple[Any, ...] = (ingest, silver, gold)) -> None:
    """Run ``ingest``, ``silver`` and ``gold`` for one drop on the shared session."""
    ctx = StepContext(spark, lake, "file:" + str(landing), ds, force)
    for step in steps:
        step.run(ctx)


# -- the reference model (pure Python) -------------------------------------------------------

Row = tuple[Any, ...]
Key = tuple[Any, ...]


def parse(name: str, line: str) -> dict[str, Any]:
    """A dbgen line as typed TPC-H values."""
    convert: dict[str, Callable[[str], Any]] = {
        "bigint": int, "int": int, "date": dt.date.fromisoformat, "string": str,
    }
    values = line.split("|")[:-1]
    return {c.name: (Decimal if c.type.startswith("decimal") else convert[c.type])(v)
            for c, v in zip(table(name).columns, values, strict=True)}


@dataclass(frozen=True)
class Version:
    """One valid version of a key in one drop, with its lineage."""

    row: dict[str, Any]
    text: str
    ds: dt.date
    uri: str
    line: int

    def tpch(self, name: str) -> Row:
        return tuple(self.row[c] for c in table(name).column_names)

    @property
    def lineage(self) -> Row:
        return (self.ds, self.uri, self.line)


@dataclass
class Drops:
    """Per table: the valid versions of each key per drop, and the quarantined lines."""

    versions: dict[str, dict[Key, dict[dt.date, Version]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict)))
    quarantine: dict[str, dict[Row, Row]] = field(default_factory=lambda: defaultdict(dict))
    duplicates: int = 0


def read_drops(files: Iterable[tuple[dt.date, str, str, list[str]]]) -> Drops:
    """Deduplicate each drop: copies of a line count once (the first by file and line), and
    a key with two different lines in one drop has no valid version there."""
    by_drop: dict[tuple[str, dt.date], dict[Key, dict[str, list[tuple[str, int]]]]] = (
        defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    for ds, name, uri, lines in files:
        for number, line in enumerate(lines, start=1):
            row = parse(name, line)
            key = tuple(row[k] for k in table(name).key)
            by_drop[(name, ds)][key][line].append((uri, number))
    out = Drops()
    for (name, ds), keys in by_drop.items():
        for key, texts in keys.items():
            firsts = {text: min(places) for text, places in texts.items()}
            out.duplicates += sum(len(places) - 1 for places in texts.values())
            if len(texts) > 1:
                for text, (uri, number) in firsts.items():
                    out.quarantine[name][(ds, uri, number)] = (text, (CONFLICT_REASON,))
                continue
            (text, (uri, number)), = firsts.items()
            out.versions[name][key][ds] = Version(parse(name, text), text, ds, uri, number)
    return out


def month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def scd2(snapshots: dict[dt.date, Version]) -> list[tuple[Version, dt.date | None]]:
    """A customer's history: ``(version, valid_to)``, oldest first, runs of equal contents
    collapsed into their earliest version."""
    kept: list[Version] = []
    for ds in sorted(snapshots):
        if not kept or kept[-1].tpch("customer") != snapshots[ds].tpch("customer"):
            kept.append(snapshots[ds])
    return [(v, kept[i + 1].ds if i + 1 < len(kept) else None) for i, v in enumerate(kept)]


def expected_tables(files: Iterable[tuple[dt.date, str, str, list[str]]]
                    ) -> tuple[dict[str, dict[Key, Row]], Counter[str]]:
    """Silver, quarantine and gold as the model says, keyed for comparison.

    :return: ``layer/table`` -> key -> row, and counts of the situations the drops made
        (for the report of what the examples exercised).
    """
    drops = read_drops(files)
    seen: Counter[str] = Counter(duplicate_lines=drops.duplicates)
    out: dict[str, dict[Key, Row]] = {}
    v = drops.versions
    tomb = {k: max(by_ds) for k, by_ds in v["orders_delete"].items()}
    out["silver/_order_tombstones"] = {k: (k[0], *v["orders_delete"][k][ds].lineage)
                                       for k, ds in tomb.items()}
    orders: dict[Key, Version] = {}
    for k, by_ds in v["orders"].items():
        newest = max(by_ds)
        if k in tomb and newest <= tomb[k]:
            seen["deleted_orders"] += 1
        else:
            orders[k] = by_ds[newest]
        seen["order_updates"] += len(by_ds) - 1
        months = {month(x.row["o_orderdate"]) for x in by_ds.values()}
        seen["order_month_changes"] += len(months) - 1
    out["silver/orders"] = {k: (*x.tpch("orders"), *x.lineage, month(x.row["o_orderdate"]))
                            for k, x in orders.items()}
    items: dict[Key, Version] = {}
    orphans: dict[Row, Row] = {}
    for k, by_ds in v["lineitem"].items():
        order = (k[0],)
        alive = {ds: x for ds, x in by_ds.items() if order not in tomb or ds > tomb[order]}
        seen["deleted_item_versions"] += len(by_ds) - len(alive)
        if order in orders and alive:
            items[k] = alive[max(alive)]
        for x in alive.values() if order not in orders else ():
            orphans[x.lineage] = (x.text, (ORPHAN_REASON,))
    seen["orphans_left"] = len(orphans)
    out["silver/lineitem"] = {
        k: (*x.tpch("lineitem"), *x.lineage, month(orders[(k[0],)].row["o_orderdate"]))
        for k, x in items.items()}
    out["silver/_customer_snapshots"] = {
        (*k, ds): (*x.tpch("customer"), *x.lineage)
        for k, by_ds in v["customer"].items() for ds, x in by_ds.items()}
    history = {k: scd2(by_ds) for k, by_ds in v["customer"].items()}
    out["silver/customer"] = {
        (*k, x.ds): (*x.tpch("customer"), x.ds, to, to is None, *x.lineage)
        for k, versions in history.items() for x, to in versions}
    seen["customer_versions"] = len(out["silver/customer"])
    for name in ("customer", "orders", "lineitem"):
        out[f"quarantine/{name}"] = drops.quarantine[name] | (
            orphans if name == "lineitem" else {})
        seen[f"conflicts_{name}"] = len(drops.quarantine[name])
    out |= expected_gold(orders, items, history, v["nation"])
    return out, seen


def expected_gold(orders: dict[Key, Version], items: dict[Key, Version],
                  history: dict[Key, list[tuple[Version, dt.date | None]]],
                  nations: dict[Key, dict[dt.date, Version]]) -> dict[str, dict[Key, Row]]:
    """Both marts from the model's silver (the definitions of ``jobs/transforms/gold.py``)."""
    zero = Decimal(0)
    summary: dict[Key, list[Any]] = defaultdict(lambda: [zero, zero, zero, zero, zero, 0])
    revenue: dict[Key, list[Any]] = defaultdict(lambda: [zero, set()])
    nation = {k[0]: by_ds[max(by_ds)].row["n_name"] for k, by_ds in nations.items()}
    for (order_key, _), x in items.items():
        r = x.row
        disc_price = r["l_extendedprice"] * (1 - r["l_discount"])
        s = summary[(r["l_shipdate"], r["l_returnflag"], r["l_linestatus"])]
        s[0] += r["l_quantity"]
        s[1] += r["l_extendedprice"]
        s[2] += disc_price
        s[3] += disc_price * (1 + r["l_tax"])
        s[4] += r["l_discount"]
        s[5] += 1
        o = orders[(order_key,)].row
        day = o["o_orderdate"]
        versions = history[(o["o_custkey"],)]
        # The earliest version also covers every date before it.
        as_of = [c for i, (c, to) in enumerate(versions)
                 if (i == 0 or c.ds <= day) and (to is None or day < to)]
        if as_of:
            t = revenue[(day, nation[as_of[0].row["c_nationkey"]])]
            t[0] += disc_price
            t[1].add(order_key)
    return {
        "gold/daily_line_summary": {k: tuple(s) for k, s in summary.items()},
        "gold/revenue_by_nation": {k: (t[0], len(t[1])) for k, t in revenue.items()},
    }


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
    "silver/_order_tombstones": (("o_orderkey",), ("o_orderkey", *LINEAGE)),
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


# -- the property ----------------------------------------------------------------------------

def build_base(spark: SparkSession, root: Path) -> tuple[Path, Path]:
    """The base drop processed under ``root``: ``(landing, lake)`` folders to copy."""
    land(root / "landing", BASE_DS, BASE_FILES)
    process(spark, lake_of(root / "lake"), root / "landing", BASE_DS, force=False)
    return root / "landing", root / "lake"


@pytest.fixture(scope="module")
def base(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The base drop processed once: ``(landing, lake)`` folders that examples copy."""
    return build_base(spark, tmp_path_factory.mktemp("property-base"))


def _seeded(test: F) -> F:
    """Derandomized by default (CI); ``PROPERTY_SEED`` picks other examples."""
    return seed(int(SEED))(test) if SEED else test


def test_any_order_of_drops_converges_to_the_model(
    spark: SparkSession, base: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base_landing, base_lake = base
    runs: list[float] = []
    exercised: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @_seeded
    @given(scenarios())
    def check(scenario: Scenario) -> None:
        start = time.monotonic()
        root = Path(tempfile.mkdtemp(dir=tmp_path))
        try:
            landing, lake = root / "landing", lake_of(root / "lake")
            shutil.copytree(base_lake, root / "lake")
            for i, drop in enumerate(scenario.drops):
                land(landing, ds_of(i), files_of(drop))
            for e in scenario.events:
                if e.correction is not None:
                    land(landing, ds_of(e.drop), files_of(e.correction))
                process(spark, lake, landing, ds_of(e.drop), e.force)
            expected, seen = expected_tables([*landed(base_landing), *landed(landing)])
            seen.update(scenario_counts(scenario))
            for name, n in seen.items():
                if n:
                    event(name)
            exercised.update({k: n for k, n in seen.items() if n})
            actual = actual_tables(spark, lake)
            for name in READ:
                assert actual[name] == expected[name], difference(name, actual, expected)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            runs.append(time.monotonic() - start)

    check()
    assert runs, "no example ran"
    with capsys.disabled():
        print(f"\nproperty: {len(runs)} examples, {sum(runs):.0f} s, "
              f"{sum(runs) / len(runs):.1f} s per example; exercised: {dict(exercised)}")


def test_line_item_newer_than_its_orders_deletion_is_parked_as_an_orphan(
    spark: SparkSession, base: tuple[Path, Path], tmp_path: Path,
) -> None:
    """Found by the property: a line item newer than a deletion of its order that is
    processed after it lost its order but stayed in silver. It is parked as an orphan, as
    when the deletion comes first (every later run retries it, like any orphan)."""
    _, base_lake = base
    shutil.copytree(base_lake, tmp_path / "lake")
    lake, landing = lake_of(tmp_path / "lake"), tmp_path / "landing"
    item = item_line((1, 2), ITEMS[5])
    land(landing, ds_of(0), {"orders_delete/part-1.tbl": [delete_line(1)]})
    land(landing, ds_of(1), {"lineitem/part-1.tbl": [item]})
    # The line item first: its order (from the base drop) exists then.
    for drop in (1, 0):
        process(spark, lake, landing, ds_of(drop), force=False, steps=(ingest, silver))

    tables = actual_tables(spark, lake)
    assert (1,) not in tables["silver/orders"]
    assert [k for k in tables["silver/lineitem"] if k[0] == 1] == []
    uri = f"file:{landing}/ds={ds_of(1)}/lineitem/part-1.tbl"
    assert tables["quarantine/lineitem"][(ds_of(1), uri, 1)] == (item, (ORPHAN_REASON,))


@pytest.mark.parametrize("point", ["during_write:silver/lineitem", "after_write:silver/lineitem",
                                   "after_write:silver/orders"])
def test_a_crash_between_an_orders_write_and_its_line_items_write_is_completed_by_the_rerun(
    spark: SparkSession, base: tuple[Path, Path], tmp_path: Path, point: str,
) -> None:
    """Found in review: silver wrote an order, then its line items, and a crash in between
    left the line items wrong for good, because the re-run decides from the order:

    * an update moving an order to another month moved the order first; the re-run saw no
      month change, so its line items stayed in the old month (and a later update of one
      of them made a second copy);
    * an RF2 deletion deleted the order first; the re-run found no order, so its line
      items stayed in silver.

    Line items are now written first in both cases. Each drop's first silver run, a
    ``spark-submit jobs/main.py silver``, is SIGKILLed at ``point`` (while its line items are
    written, after they are committed, after the order is), the drop is re-run, and the
    lake must equal the model."""
    base_landing, base_lake = base
    shutil.copytree(base_lake, tmp_path / "lake")
    lake, landing = lake_of(tmp_path / "lake"), tmp_path / "landing"
    assert month(dt.date.fromisoformat(ORDERS[0][3])) != month(dt.date.fromisoformat(ORDERS[1][3]))
    land(landing, ds_of(0), {"orders/part-1.tbl": [order_line(1, ORDERS[1])]})
    land(landing, ds_of(1), {"orders_delete/part-1.tbl": [delete_line(2)],
                             "lineitem/part-1.tbl": [item_line((1, 1), ITEMS[1])]})
    for drop in (0, 1):
        process(spark, lake, landing, ds_of(drop), force=False, steps=(ingest,))
        submit(tmp_path / "lake", landing, "silver", ds_of(drop).isoformat(), Kill(point))
        process(spark, lake, landing, ds_of(drop), force=False, steps=(ingest, silver))

    # Gold reads silver only, and the property covers it: silver and quarantine here.
    expected, _ = expected_tables([*landed(base_landing), *landed(landing)])
    actual = actual_tables(spark, lake)
    for name in READ:
        if not name.startswith("gold/"):
            assert actual[name] == expected[name], difference(name, actual, expected)



def test_a_pass_another_writer_interleaved_with_is_repaired_and_run_again(
    spark: SparkSession, base: tuple[Path, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deterministic half of tests/e2e/test_concurrent_silver.py, with what
    interleaved runs leave behind. Before drop 0's silver run: a second, older row of
    order 1 in another month (as a run killed while repairing leaves it); pass 1 finds it,
    repairs and runs again. During pass 2, another writer commits line items into a month
    no order has and an older copy of a line item of an order drop 0 deletes; the run
    sees those commits, repairs again and runs a third pass. The lake must equal the
    model."""
    from pyspark.sql import functions as F

    from jobs.delta_io import commit_tag

    base_landing, base_lake = base
    shutil.copytree(base_lake, tmp_path / "lake")
    lake, landing = lake_of(tmp_path / "lake"), tmp_path / "landing"
    land(landing, ds_of(0), {"orders/part-1.tbl": [order_line(1, ORDERS[1])],
                             "orders_delete/part-1.tbl": [delete_line(2)]})
    land(landing, ds_of(1), {"lineitem/part-1.tbl": [item_line((2, 2), ITEMS[2])]})
    process(spark, lake, landing, ds_of(1), force=False, steps=(ingest, silver))
    process(spark, lake, landing, ds_of(0), force=False, steps=(ingest,))
    orders, items = lake.table("silver", "orders"), lake.table("silver", "lineitem")
    september = dt.date(1998, 9, 1)

    def older_copy(uri: str, where: str, month: dt.date) -> None:
        (spark.read.format("delta").load(uri).where(where)
         .withColumn("_order_month", F.lit(month)).withColumn("_ds", F.date_sub("_ds", 1))
         .write.format("delta").mode("append").save(uri))

    def another_writer() -> None:
        with commit_tag(spark, "another run"):
            older_copy(items, "l_orderkey = 2 AND l_linenumber = 1", september)
            spark.sql(f"UPDATE delta.`{items[5:]}` SET _order_month = DATE'{september}' "
                      "WHERE (l_orderkey = 1 AND l_linenumber = 1) "
                      "OR (l_orderkey = 2 AND l_linenumber = 2)")

    section = silver._Silver.order_section
    passes: list[int] = []

    def interleaved(self: Any) -> None:
        passes.append(1)
        if len(passes) == 2:
            another_writer()
        section(self)

    older_copy(orders, "o_orderkey = 1", dt.date(1998, 8, 1))
    monkeypatch.setattr(silver._Silver, "order_section", interleaved)
    process(spark, lake, landing, ds_of(0), force=False, steps=(silver,))

    expected, _ = expected_tables([*landed(base_landing), *landed(landing)])
    actual = actual_tables(spark, lake)
    for name in READ:
        if not name.startswith("gold/"):
            assert actual[name] == expected[name], difference(name, actual, expected)
    assert len(passes) == 3
    (details,) = [json.loads(r["details"]) for r in spark.read.format("delta").load(
        lake.table("ops", "runs")).where(f"step = 'silver' AND ds = DATE'{ds_of(0)}'").collect()]
    assert details["passes"]["orders"] == 3
    # The ledger describes the last pass; the third pass's repair fixed the line items.
    assert september.isoformat() in details["repaired_months"]["lineitem"]
