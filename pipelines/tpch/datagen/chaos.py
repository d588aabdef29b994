"""Deterministic fault injection into the daily drops of the landing zone.

:func:`plan_chaos` is pure: it takes real lines sampled by the generator and returns the extra
files to write plus the manifest entries describing every injected fault. The generator then
writes the files (atomically) before the drops' ``_SUCCESS`` markers.

Faulty lines are mutated *copies* of real lines and go to ``<table>/chaos-00000.tbl`` next to
the real part files, so the real files stay byte-identical to tpchgen's output and the original
row still arrives intact. Every random choice comes from ``random.Random`` seeded with a string
derived from the seed (string seeding does not depend on ``PYTHONHASHSEED``), and no set is
ever iterated, so the same seed yields byte-identical output.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from pipelines.tpch.datagen.errors import DatagenError
from pipelines.tpch.datagen.layout import col, ds_dir_name, join_fields, key_of, split_fields

__all__ = [
    "CHAOS_FILE",
    "KINDS",
    "MANIFEST_NAME",
    "ORPHAN_KEY_BASE",
    "ChaosEntry",
    "ChaosMaterial",
    "ChaosPlan",
    "plan_chaos",
]

MANIFEST_NAME = "chaos_manifest.json"
CHAOS_FILE = "chaos-00000.tbl"
REDELIVERED_FILE = "redelivered-00000.tbl"
PART_FILE = "part-00000.tbl"

#: Orphan line items use order keys far above any scale factor's largest o_orderkey.
ORPHAN_KEY_BASE = 10_000_000_000

#: Every kind :func:`plan_chaos` injects, each at least once.
KINDS: tuple[str, ...] = (
    "wrong_field_count",
    "non_numeric_key",
    "bad_date",
    "bad_decimal",
    "non_utf8",
    "truncated_last_line",
    "null_key",
    "negative_quantity",
    "discount_out_of_range",
    "unknown_order_status",
    "unknown_return_flag",
    "ship_before_order",
    "exact_duplicate",
    "conflicting_versions",
    "order_update",
    "lineitem_update",
    "late_lineitem",
    "rf2_delete",
    "customer_change",
    "orphan_lineitem",
    "redelivered_file",
)

_PRIORITIES = (b"1-URGENT", b"2-HIGH", b"3-MEDIUM", b"4-NOT SPECIFIED", b"5-LOW")
_SEGMENTS = (b"AUTOMOBILE", b"BUILDING", b"FURNITURE", b"HOUSEHOLD", b"MACHINERY")
_NATIONS = 25
# Vocabulary in the style of TPC-H comments, so replacement comments look like real ones.
_WORDS = (
    "carefully final deposits haggle slyly regular requests ironic accounts blithely express "
    "packages pending furiously bold instructions quickly special theodolites even foxes "
    "silent asymptotes quiet pinto beans sleep nag wake cajole"
).split()


@dataclass
class ChaosEntry:
    """One injected fault, as listed in ``chaos_manifest.json``.

    :param kind: fault kind (one of :data:`KINDS`).
    :param ds: ``YYYY-MM-DD`` of the drop holding the fault.
    :param table: TPC-H table (or ``orders_delete``) the file belongs to.
    :param file: path of the file relative to the landing root.
    :param line: 1-based line number in ``file``, ``None`` for whole-file faults.
    :param key: primary key carried by the line when every key field is an integer, else None.
    :param expect: what the pipeline must do (``quarantine``, ``duplicate``, ``applied``,
        ``deleted``, ``scd2_version``, ``redelivered``).
    :param reason: quarantine reason the pipeline must record, else ``None``.
    :param values: columns the fault sets, with their new values as text, else ``None``.
    """

    kind: str
    ds: str
    table: str
    file: str
    line: int | None
    key: list[int] | None
    expect: str
    reason: str | None = None
    values: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """Manifest form of the entry.

        :return: a JSON-serialisable dict with the keys in a fixed order.
        """
        return {
            "kind": self.kind,
            "ds": self.ds,
            "table": self.table,
            "file": self.file,
            "line": self.line,
            "key": self.key,
            "expect": self.expect,
            "reason": self.reason,
            "values": self.values,
        }


@dataclass
class ChaosMaterial:
    """Real lines the injector copies and mutates, collected by the generator while streaming.

    :param seed: random seed.
    :param sf: scale factor (recorded in the manifest).
    :param drop_dates: date of every drop, index 0 being the initial load.
    :param chaos_drops: indices of the daily drops that receive faults, ascending.
    :param drop_orders: real orders lines of each chaos drop, in file order.
    :param drop_lineitems: real lineitem lines of each chaos drop, in file order.
    :param base_orders: a random sample of orders lines from the initial load.
    :param base_lineitems: every lineitem line of the sampled initial-load orders, by orderkey.
    :param customers: a random sample of customer lines.
    """

    seed: int
    sf: float
    drop_dates: list[date]
    chaos_drops: list[int]
    drop_orders: dict[int, list[bytes]]
    drop_lineitems: dict[int, list[bytes]]
    base_orders: list[bytes]
    base_lineitems: dict[int, list[bytes]]
    customers: list[bytes]


@dataclass
class ChaosPlan:
    """Files to add to the landing zone and the manifest describing them.

    :param files: new files (path relative to the landing root -> full content).
    :param copies: ``(source, target)`` relative paths of files to copy byte-for-byte.
    :param entries: manifest entries, sorted by drop, file and line.
    """

    files: dict[str, bytes]
    copies: list[tuple[str, str]]
    entries: list[ChaosEntry]

    def manifest(self, seed: int, sf: float) -> dict[str, Any]:
        """Manifest document.

        :param seed: random seed used.
        :param sf: scale factor used.
        :return: ``{"seed", "sf", "entries"}``.
        """
        return {"seed": seed, "sf": sf, "entries": [e.to_json() for e in self.entries]}


class _Emit(Protocol):
    def __call__(
        self,
        kind: str,
        drop: int,
        table: str,
        data: bytes,
        expect: str,
        reason: str | None,
        values: dict[str, str] | None = None,
        name: str = ...,
        last: bool = False,
    ) -> ChaosEntry: ...


@dataclass
class _Line:
    data: bytes
    entries: list[ChaosEntry]
    last: bool = False


@dataclass
class _Files:
    """Lines of the files being built; line numbers are assigned once all lines are known."""

    lines: dict[str, list[_Line]] = field(default_factory=dict)

    def add(self, rel: str, data: bytes, entries: list[ChaosEntry], last: bool = False) -> None:
        self.lines.setdefault(rel, []).append(_Line(data, entries, last))

    def render(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for rel, lines in self.lines.items():
            # A truncated line must be the very last one (no newline follows it).
            ordered = [ln for ln in lines if not ln.last] + [ln for ln in lines if ln.last]
            for number, ln in enumerate(ordered, start=1):
                for entry in ln.entries:
                    entry.line = number
            out[rel] = b"".join(ln.data for ln in ordered)
        return out


@dataclass
class _DropPicker:
    """Hands out distinct real lines of one drop in a seeded random order."""

    orders: list[bytes]
    lineitems: list[bytes]
    next_order: int = 0
    next_lineitem: int = 0

    def order(self) -> bytes:
        # Wrap around only when a tiny drop has fewer lines than faults: keys then repeat.
        line = self.orders[self.next_order % len(self.orders)]
        self.next_order += 1
        return line

    def lineitem(self) -> bytes:
        line = self.lineitems[self.next_lineitem % len(self.lineitems)]
        self.next_lineitem += 1
        return line


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _comment(rng: random.Random, old: bytes) -> bytes:
    """A new TPC-H style comment, different from ``old``."""
    while True:
        new = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 7))).encode()
        if new != old:
            return new


def _other(rng: random.Random, choices: Sequence[bytes], old: bytes) -> bytes:
    return rng.choice([c for c in choices if c != old])


def plan_chaos(material: ChaosMaterial) -> ChaosPlan:
    """Choose and build every fault for a landing zone.

    Faults built from the chaos drops' own lines go to the chaos drops after the first (whose
    orders file is redelivered, so none of its orders may be touched), unless there is only
    one chaos drop. Updates, deletes, late and orphan line items use orders of the initial load
    and are spread over all chaos drops. No key is used by two kinds, except the customer that
    deliberately changes twice (when there are at least two chaos drops).

    :param material: real lines to copy and mutate.
    :return: the files to write and the manifest entries.
    :raises DatagenError: when the data is too small to inject every kind.
    """
    rng = random.Random(f"tpch-datagen-chaos:{material.seed}")
    chaos = list(material.chaos_drops)
    if not chaos:
        raise DatagenError("--chaos needs at least one daily drop")
    ds = {i: material.drop_dates[i].isoformat() for i in chaos}
    own = [i for i in chaos[1:] if material.drop_orders.get(i)] or [
        i for i in chaos if material.drop_orders.get(i)
    ]
    if not own or not material.base_orders or not material.customers:
        raise DatagenError("not enough generated data to inject chaos; use a larger --sf")

    pickers: dict[int, _DropPicker] = {}
    for i in own:
        orders = list(material.drop_orders[i])
        drop_items = list(material.drop_lineitems.get(i, []))
        rng.shuffle(orders)
        rng.shuffle(drop_items)
        pickers[i] = _DropPicker(orders, drop_items)
    if not any(p.lineitems for p in pickers.values()):
        raise DatagenError("not enough generated line items to inject chaos; use a larger --sf")
    order_dates: dict[int, date] = {}
    for i in own:
        for line in material.drop_orders[i]:
            f = split_fields(line)
            order_dates[int(f[0])] = date.fromisoformat(f[col("orders", "o_orderdate")].decode())

    files = _Files()
    entries: list[ChaosEntry] = []

    def emit(
        kind: str,
        drop: int,
        table: str,
        data: bytes,
        expect: str,
        reason: str | None,
        values: dict[str, str] | None = None,
        name: str = CHAOS_FILE,
        last: bool = False,
    ) -> ChaosEntry:
        rel = f"{ds_dir_name(material.drop_dates[drop])}/{table}/{name}"
        entry = ChaosEntry(
            kind=kind,
            ds=ds[drop],
            table=table,
            file=rel,
            line=None,
            key=key_of(table, split_fields(data)),
            expect=expect,
            reason=reason,
            values=values,
        )
        files.add(rel, data, [entry], last)
        entries.append(entry)
        return entry

    # Round-robin over the drops that have lines of their own (skipping those without).
    own_cycle = [0]

    def next_own() -> int:
        while True:
            drop = own[own_cycle[0] % len(own)]
            own_cycle[0] += 1
            if pickers[drop].lineitems:
                return drop

    def quarantine(
        kind: str, table: str, reason: str, set_cols: dict[str, bytes], last: bool = False
    ) -> None:
        drop = next_own()
        picker = pickers[drop]
        fields = split_fields(picker.order() if table == "orders" else picker.lineitem())
        for name, value in set_cols.items():
            fields[col(table, name)] = value
        values = {name: _text(value) for name, value in set_cols.items()}
        emit(kind, drop, table, join_fields(fields), "quarantine", reason, values, last=last)

    # --- Malformed lines -------------------------------------------------------------------
    drop = next_own()
    fields = split_fields(pickers[drop].order())
    del fields[rng.randrange(1, len(fields))]  # keep o_orderkey so the row stays traceable
    emit(
        "wrong_field_count", drop, "orders", join_fields(fields), "quarantine", "wrong_field_count"
    )

    drop = next_own()
    fields = split_fields(pickers[drop].lineitem())
    okey = fields[0]
    fields[0] = okey[:1] + b"x" + okey[1:]
    emit(
        "non_numeric_key",
        drop,
        "lineitem",
        join_fields(fields),
        "quarantine",
        "not_an_integer:l_orderkey",
        {"l_orderkey": _text(fields[0])},
    )

    quarantine("bad_date", "orders", "bad_date:o_orderdate", {"o_orderdate": b"1998-02-30"})
    quarantine(
        "bad_decimal", "lineitem", "bad_decimal:l_extendedprice", {"l_extendedprice": b"12.3.4"}
    )

    customers = list(material.customers)
    rng.shuffle(customers)
    invalid_customer = split_fields(customers.pop())
    comment_idx = col("customer", "c_comment")
    comment = invalid_customer[comment_idx]
    middle = len(comment) // 2
    invalid_customer[comment_idx] = comment[:middle] + b"\xff\xfe" + comment[middle:]
    emit(
        "non_utf8",
        next_own(),
        "customer",
        join_fields(invalid_customer),
        "quarantine",
        "invalid_utf8",
    )

    drop = next_own()
    fields = split_fields(pickers[drop].lineitem())
    cut_idx = col("lineitem", "l_shipinstruct")
    cut = fields[cut_idx]
    truncated = b"|".join([*fields[:cut_idx], cut[: max(1, len(cut) // 2)]])
    emit(
        "truncated_last_line",
        drop,
        "lineitem",
        truncated,
        "quarantine",
        "wrong_field_count",
        last=True,
    )

    quarantine("null_key", "lineitem", "null_key:l_orderkey", {"l_orderkey": b"NULL"})

    # --- Rule violations -------------------------------------------------------------------
    quarantine("negative_quantity", "lineitem", "l_quantity_positive", {"l_quantity": b"-5.00"})
    quarantine("discount_out_of_range", "lineitem", "l_discount_in_range", {"l_discount": b"0.15"})
    quarantine("unknown_order_status", "orders", "o_orderstatus_valid", {"o_orderstatus": b"X"})
    quarantine("unknown_return_flag", "lineitem", "l_returnflag_valid", {"l_returnflag": b"Z"})

    drop = next_own()
    fields = split_fields(pickers[drop].lineitem())
    ship = order_dates[int(fields[0])] - timedelta(days=5)
    receipt = ship + timedelta(days=1)
    fields[col("lineitem", "l_shipdate")] = ship.isoformat().encode()
    fields[col("lineitem", "l_receiptdate")] = receipt.isoformat().encode()
    emit(
        "ship_before_order",
        drop,
        "lineitem",
        join_fields(fields),
        "quarantine",
        "l_shipdate_after_orderdate",
        {"l_shipdate": ship.isoformat(), "l_receiptdate": receipt.isoformat()},
    )

    # --- Exact duplicates of real lines of the same drop -----------------------------------
    drop = next_own()
    emit("exact_duplicate", drop, "orders", pickers[drop].order(), "duplicate", None)
    drop = next_own()
    emit("exact_duplicate", drop, "lineitem", pickers[drop].lineitem(), "duplicate", None)

    # --- Changes to rows of the initial load -----------------------------------------------
    base = sorted(material.base_orders, key=lambda ln: int(split_fields(ln)[0]))
    rng.shuffle(base)
    base_cycle = [0]

    def next_chaos_drop() -> int:
        drop = chaos[base_cycle[0] % len(chaos)]
        base_cycle[0] += 1
        return drop

    def take_base(max_lines: int = 7) -> tuple[list[bytes], list[list[bytes]]]:
        """Pop a sampled initial-load order (with at most ``max_lines`` line items)."""
        for pos, line in enumerate(base):
            fields = split_fields(line)
            items = material.base_lineitems.get(int(fields[0]), [])
            if items and len(items) <= max_lines:
                del base[pos]
                return fields, [split_fields(item) for item in items]
        raise DatagenError("not enough sampled orders to inject chaos; use a larger --sf")

    ln_idx = col("lineitem", "l_linenumber")
    comment_l = col("lineitem", "l_comment")

    fields, _ = take_base()
    prio_idx, ocomment_idx = col("orders", "o_orderpriority"), col("orders", "o_comment")
    fields[prio_idx] = _other(rng, _PRIORITIES, fields[prio_idx])
    fields[ocomment_idx] = _comment(rng, fields[ocomment_idx])
    emit(
        "order_update",
        next_chaos_drop(),
        "orders",
        join_fields(fields),
        "applied",
        None,
        {"o_orderpriority": _text(fields[prio_idx]), "o_comment": _text(fields[ocomment_idx])},
    )

    _, items = take_base()
    item = rng.choice(items)
    disc_idx = col("lineitem", "l_discount")
    item[disc_idx] = _other(rng, [f"0.{n:02d}".encode() for n in range(11)], item[disc_idx])
    item[comment_l] = _comment(rng, item[comment_l])
    emit(
        "lineitem_update",
        next_chaos_drop(),
        "lineitem",
        join_fields(item),
        "applied",
        None,
        {"l_discount": _text(item[disc_idx]), "l_comment": _text(item[comment_l])},
    )

    # TPC-H orders have at most 7 line items: the late one must keep the line number valid.
    _, items = take_base(max_lines=6)
    late = list(rng.choice(items))
    late[ln_idx] = str(max(int(it[ln_idx]) for it in items) + 1).encode()
    emit("late_lineitem", next_chaos_drop(), "lineitem", join_fields(late), "applied", None)

    _, items = take_base()
    item = rng.choice(items)
    drop = next_chaos_drop()
    first = _comment(rng, item[comment_l])
    second = first
    while second in (first, item[comment_l]):
        second = _comment(rng, item[comment_l])
    for new_comment in (first, second):
        version = list(item)
        version[comment_l] = new_comment
        emit(
            "conflicting_versions",
            drop,
            "lineitem",
            join_fields(version),
            "quarantine",
            "conflicting_versions_in_drop",
            {"l_comment": _text(new_comment)},
        )

    drop = next_chaos_drop()
    deleted = sorted(int(take_base()[0][0]) for _ in range(rng.choice((2, 3))))
    for okey_int in deleted:
        emit(
            "rf2_delete",
            drop,
            "orders_delete",
            b"%d|\n" % okey_int,
            "deleted",
            None,
            name=PART_FILE,
        )

    drop = next_chaos_drop()
    sources = [
        ln
        for okey_int in sorted(material.base_lineitems)
        for ln in material.base_lineitems[okey_int]
    ]
    for n in (1, 2):
        fields = split_fields(rng.choice(sources))
        fields[0] = str(ORPHAN_KEY_BASE + n).encode()
        fields[ln_idx] = b"1"
        emit(
            "orphan_lineitem",
            drop,
            "lineitem",
            join_fields(fields),
            "quarantine",
            "orphan_lineitem",
            {"l_orderkey": _text(fields[0])},
        )

    # --- Customer changes (SCD2) -------------------------------------------------------------
    _plan_customer_changes(rng, customers, chaos, emit)

    # --- Whole-file redelivery -------------------------------------------------------------
    first_dir = ds_dir_name(material.drop_dates[chaos[0]])
    last_dir = ds_dir_name(material.drop_dates[chaos[-1]])
    target = f"{last_dir}/orders/{REDELIVERED_FILE}"
    entries.append(
        ChaosEntry("redelivered_file", ds[chaos[-1]], "orders", target, None, None, "redelivered")
    )

    rendered = files.render()
    entries.sort(key=lambda e: (e.ds, e.file, e.line or 0, e.kind))
    return ChaosPlan(rendered, [(f"{first_dir}/orders/{PART_FILE}", target)], entries)


def _plan_customer_changes(
    rng: random.Random,
    customers: list[bytes],
    chaos: list[int],
    emit: _Emit,
) -> None:
    """Emit 3-4 valid changed customer rows as partial snapshots in the chaos drops.

    One customer changes its nation and, when there are two chaos drops or more, changes again
    (another column, built on the first new version) in the next drop.

    :param rng: seeded random generator.
    :param customers: shuffled sample of customer lines not used by another kind.
    :param chaos: chaos drop indices.
    :param emit: the planner's line emitter.
    """
    count = min(rng.choice((3, 4)), len(customers))
    if count < 3:
        raise DatagenError("not enough customers to inject chaos; use a larger --sf")
    # The first customer changes nation (at least one nation change); the others change one
    # other column each, and the double change takes a column not used yet when there is one,
    # so that every kind of change shows up.
    others = ["c_address", "c_phone", "c_mktsegment"]
    kinds = ["c_nationkey", *rng.sample(others, count - 1)]
    unused = [c for c in others if c not in kinds]
    chosen = sorted(customers[:count], key=lambda ln: int(split_fields(ln)[0]))
    rng.shuffle(chosen)
    changes: list[tuple[int, list[bytes], str]] = []
    for n, (line, column) in enumerate(zip(chosen, kinds, strict=True)):
        changes.append((chaos[n % len(chaos)], split_fields(line), column))
    if len(chaos) >= 2:
        first_drop, fields, _ = changes[0]
        again = unused[0] if unused else rng.choice(others)
        changes.insert(1, (chaos[(chaos.index(first_drop) + 1) % len(chaos)], fields, again))

    rows: list[tuple[int, int, bytes, dict[str, str]]] = []
    for drop, fields, column in changes:
        # ``fields`` is shared between a customer's two changes: the second builds on the first.
        idx = col("customer", column)
        old = fields[idx]
        if column == "c_nationkey":
            new = str(rng.choice([n for n in range(_NATIONS) if n != int(old)])).encode()
        elif column == "c_mktsegment":
            new = _other(rng, _SEGMENTS, old)
        elif column == "c_phone":
            new = old
            while new == old:
                new = b"%s-%03d-%03d-%04d" % (
                    old.split(b"-")[0],
                    rng.randint(100, 999),
                    rng.randint(100, 999),
                    rng.randint(1000, 9999),
                )
        else:
            alphabet = string.ascii_letters + string.digits + ", "
            new = old
            while new == old or new.strip() != new:
                new = "".join(rng.choice(alphabet) for _ in range(rng.randint(10, 35))).encode()
        fields[idx] = new
        rows.append((drop, int(fields[0]), join_fields(fields), {column: _text(new)}))
    # Each drop's customer file is a partial snapshot, ordered by key like tpchgen's files.
    for drop, _, data, values in sorted(rows, key=lambda r: (r[0], r[1])):
        emit(
            "customer_change", drop, "customer", data, "scd2_version", None, values, name=PART_FILE
        )
