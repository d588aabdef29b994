"""The property tests' reference model: tiny hand-written drops, and in pure Python the
tables the contract says they give.

Drops are built from small key spaces (so updates, deletes and collisions of one key are
frequent) in independent *lanes* with disjoint keys. :func:`expected_tables` computes
silver, quarantine and gold from the landed files alone, by the contract's rules:

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

The lake side (running drops, reading tables keyed like the model) is in
:mod:`tests.support.model_lake`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from jobs.transforms.silver import CONFLICT_REASON
from tests.support.tpch import ORPHAN_REASON, TOMBSTONES, table

__all__ = ["BASE_DS", "BASE_FILES", "CHOICES", "CUSTKEYS", "CUSTOMERS", "ITEMKEYS", "ITEMS",
           "LANES", "ORDERKEYS", "ORDERS", "Drop", "Key", "LaneSpec", "Row", "customer_line",
           "delete_line", "ds_of", "expected_tables", "files_of", "item_line", "land",
           "landed", "month", "order_line"]

BASE_DS = dt.date(1998, 8, 1)  # the base drop; the drawn drops follow it day by day

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
    out[f"silver/{TOMBSTONES}"] = {k: (k[0], *v["orders_delete"][k][ds].lineage)
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
    """Both marts from the model's silver (the definitions of ``pipelines/tpch/gold/*.sql``)."""
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
