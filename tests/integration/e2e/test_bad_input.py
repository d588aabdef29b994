"""The bad-input catalogue: every kind of bad input the pipeline meets, and its one outcome.

The two tables below (:data:`LINE_KINDS`, :data:`DROP_KINDS`) are the catalogue's single
source: each kind names what lands and the documented outcome, and ``docs/bad_input.md``
must list the same kinds with the same outcome text (checked here).

* A *line kind* lands one file per kind (``<table>/<kind>.tbl``), and every line of the
  file has an expected fate: ``silver``, ``superseded``, ``deleted``, ``unchanged``,
  ``duplicate`` or ``quarantine: <reasons>`` (the reasons exactly as the pipeline writes
  them). The fates of *all* landed lines come from one line-by-line accounting over bronze
  (:func:`tests.support.accounting.account_for_every_line`), which also asserts that the
  contract's accounting rule balances: every line is in exactly one place, and the ledger's
  ``rows_read`` / ``rows_duplicate`` match.
* A *drop kind* is judged on the whole drop, mostly by refusing it: the real command line
  (:func:`jobs.main.main`, in-process on the test session) must return the documented exit
  status with one ``error:`` line that names the drop, or the file and line, and no
  traceback, and must leave nothing of the drop behind.

Cost: every line kind shares one tiny hand-written lake of two drops: D1 (a clean
baseline and almost every kind, one file per kind) and D2 (newer versions for the kinds
that need two drops). D2 is ingested, delivered a second time, and processed first, so D1
arrives late (out of order). Only ``ingest`` and ``silver`` run (gold does not decide where
a line ends): two silver runs for all the line kinds. Re-running silver on an unchanged
drop (``--force``) is the property tests' job (``test_properties.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobs.lake import Lake
from jobs.main import main
from jobs.steps import ingest, silver
from tests.support.accounting import Line, account_for_every_line
from tests.support.lake import DATA_LAYERS, lake_of, run_drop, table_versions
from tests.support.tpch import TOMBSTONES, table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "bad_input.md"
DROPS = {"D1": "1998-08-01", "D2": "1998-08-02"}
PROCESSING_ORDER = ("D2", "D1")  # the older drop arrives late
HUGE = 1 << 20  # characters in the huge text field

# A valid dbgen line per table; kinds override single fields.
DEFAULTS: dict[str, dict[str, str]] = {
    "region": {"r_regionkey": "0", "r_name": "AFRICA",
               "r_comment": "lar deposits. blithely final packages cajole"},
    "nation": {"n_nationkey": "0", "n_name": "ALGERIA", "n_regionkey": "0",
               "n_comment": " haggle. carefully final deposits detect slyly agai"},
    "supplier": {"s_suppkey": "1", "s_name": "Supplier#000000001",
                 "s_address": " N kD4on9OM Ipw3,gf0JBoQDd7tgrzrddZ", "s_nationkey": "17",
                 "s_phone": "27-918-335-1736", "s_acctbal": "5755.94",
                 "s_comment": "each slyly above the careful"},
    "customer": {"c_custkey": "1", "c_name": "Customer#000000001",
                 "c_address": "IVhzIApeRb ot,c,E", "c_nationkey": "15",
                 "c_phone": "25-989-741-2988", "c_acctbal": "711.56",
                 "c_mktsegment": "BUILDING", "c_comment": "to the even, regular platelets"},
    "part": {"p_partkey": "1", "p_name": "goldenrod lavender spring chocolate lace",
             "p_mfgr": "Manufacturer#1", "p_brand": "Brand#13",
             "p_type": "PROMO BURNISHED COPPER", "p_size": "7", "p_container": "JUMBO PKG",
             "p_retailprice": "901.00", "p_comment": "ly. slyly ironi"},
    "partsupp": {"ps_partkey": "1", "ps_suppkey": "1", "ps_availqty": "3325",
                 "ps_supplycost": "771.64", "ps_comment": "final theodolites"},
    "orders": {"o_orderkey": "1", "o_custkey": "1", "o_orderstatus": "O",
               "o_totalprice": "173665.47", "o_orderdate": "1998-07-01",
               "o_orderpriority": "5-LOW", "o_clerk": "Clerk#000000951",
               "o_shippriority": "0", "o_comment": "nstructions sleep furiously among"},
    "lineitem": {"l_orderkey": "1", "l_partkey": "1", "l_suppkey": "1", "l_linenumber": "1",
                 "l_quantity": "17.00", "l_extendedprice": "21168.23", "l_discount": "0.04",
                 "l_tax": "0.02", "l_returnflag": "N", "l_linestatus": "O",
                 "l_shipdate": "1998-07-10", "l_commitdate": "1998-07-20",
                 "l_receiptdate": "1998-07-15", "l_shipinstruct": "DELIVER IN PERSON",
                 "l_shipmode": "TRUCK", "l_comment": "egular courts above the"},
    "orders_delete": {"o_orderkey": "1"},
}


def row(name: str, **fields: object) -> str:
    """A dbgen line of a table: the defaults with some fields replaced."""
    values = dict(DEFAULTS[name])
    assert set(fields) <= set(values), set(fields) - set(values)
    values.update({k: str(v) for k, v in fields.items()})
    return "".join(values[c] + "|" for c in table(name).column_names)


def text(*lines: str, end: str = "\n") -> bytes:
    """A file of lines, each ended by ``end``."""
    return "".join(line + end for line in lines).encode("utf-8")


def q(reason: str) -> str:
    """The fate of a line in quarantine with these reasons (as written, comma-separated)."""
    return f"quarantine: {reason}"


@dataclass(frozen=True)
class Landed:
    """One landed file of a kind: ``<drop>/<table>/<kind><suffix>.tbl``.

    :param expect: the fate of each line, in file order.
    """

    drop: str
    table: str
    content: bytes
    expect: tuple[str, ...]
    suffix: str = ""


@dataclass(frozen=True)
class LineKind:
    """A kind of bad input whose outcome is where each of its lines ends."""

    name: str
    outcome: str
    files: tuple[Landed, ...]
    check: Callable[[Catalogue], None] | None = None

    def file_name(self, landed: Landed) -> str:
        return f"{self.name}{landed.suffix}.tbl"


# -- extra checks of some kinds (beyond each line's fate) ------------------------------------

def _silver_row(cat: Catalogue, name: str, **key: object) -> Any:
    rows = [r for r in cat.rows("silver", name) if all(r[k] == v for k, v in key.items())]
    assert len(rows) == 1, (name, key, rows)
    return rows[0]


def _silver_run(cat: Catalogue, drop: str) -> Any:
    runs = [r for r in cat.rows("ops", "runs") if r["step"] == "silver"
            and r["status"] == "succeeded" and r["ds"].isoformat() == DROPS[drop]]
    return max(runs, key=lambda r: r["ended_at"])


def _huge_comment_kept_verbatim(cat: Catalogue) -> None:
    assert _silver_row(cat, "orders", o_orderkey=104)["o_comment"] == "x" * HUGE


def _crlf_stripped(cat: Catalogue) -> None:
    for key in (102, 103):
        assert _silver_row(cat, "supplier", s_suppkey=key)["s_comment"] == "crlf line"


def _balance_warned(cat: Catalogue) -> None:
    run_id = _silver_run(cat, "D1")["run_id"]
    (result,) = [r for r in cat.rows("ops", "dq_results")
                 if r["run_id"] == run_id and r["expectation"] == "s_acctbal_in_range"]
    assert (result["action"], result["failed_rows"], result["outcome"]) == ("warn", 1, "warned")
    assert _silver_row(cat, "supplier", s_suppkey=106)["s_acctbal"] == Decimal("12345.67")


def _unknown_delete_recorded(cat: Catalogue) -> None:
    tomb = _silver_row(cat, TOMBSTONES, o_orderkey=999001)
    assert tomb["_ds"].isoformat() == DROPS["D1"]
    # Unknown when the deletions were applied: 999001, and 111, whose order arrived in the
    # same drop and was never applied (see order_and_its_delete_in_one_drop).
    details = json.loads(_silver_run(cat, "D1")["details"])
    assert details["deletes_unknown_key"] == 2, details


def _order_and_delete(cat: Catalogue) -> None:
    assert not [r for r in cat.rows("silver", "orders") if r["o_orderkey"] == 111]
    details = json.loads(_silver_run(cat, "D1")["details"])
    assert details["superseded_by_delete"]["orders"] == 1, details


def _empty_file_seen(cat: Catalogue) -> None:
    runs = [r for r in cat.rows("ops", "runs") if r["step"] == "ingest"
            and r["ds"].isoformat() == DROPS["D1"]]
    (run,) = runs
    assert "nation/empty_file.tbl" in json.loads(run["details"])["files"]["nation"]


def _scd2_history_in_ds_order(cat: Catalogue) -> None:
    history = sorted((r for r in cat.rows("silver", "customer") if r["c_custkey"] == 104),
                     key=lambda r: r["valid_from"])
    d1, d2 = (dt.date.fromisoformat(DROPS[d]) for d in ("D1", "D2"))
    assert [(r["c_acctbal"], r["valid_from"], r["valid_to"], r["is_current"])
            for r in history] == [(Decimal(1), d1, d2, False), (Decimal(2), d2, None, True)]


def _redelivery_ingested_once(cat: Catalogue) -> None:
    runs = sorted((r for r in cat.rows("ops", "runs") if r["ds"].isoformat() == DROPS["D2"]
                   and r["status"] == "succeeded"), key=lambda r: r["ended_at"])
    assert [r["step"] for r in runs] == ["ingest", "ingest", "silver"]
    first, again, processed = runs
    assert again["input_fingerprint"] != first["input_fingerprint"], "not seen as new"
    # The second delivery replaced the first in bronze, and silver read one copy.
    assert again["rows_written"] == first["rows_written"]
    assert processed["rows_read"] == again["rows_written"]
    assert not any((processed["rows_duplicate"] or {}).values())


# -- the catalogue: kinds whose outcome is each line's fate ---------------------------------

GARBAGE = (
    "This is not a TPC-H file.",
    "Minutes of the weekly meeting, attached by mistake",
    "1. Welcome",
    "2. Quarterly numbers: see the spreadsheet",
    "3. Any other business",
    "a|b|c",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
    "-- end of notes --",
)


def lineitem(linenumber: int, **fields: object) -> str:
    """A line item of the baseline's order 2 (order date 1998-07-01, also in D1)."""
    return row("lineitem", l_orderkey=2, l_linenumber=linenumber, **fields)


LINE_KINDS: tuple[LineKind, ...] = (
    LineKind("wrong_field_count", q("`wrong_field_count`"), (
        Landed("D1", "orders", text(row("orders", o_orderkey=101).rsplit("|", 2)[0] + "|"),
               (q("wrong_field_count"),)),)),
    LineKind("extra_column", q("`wrong_field_count`"), (
        Landed("D1", "customer", text(row("customer", c_custkey=101) + "EXTRA|"),
               (q("wrong_field_count"),)),)),
    LineKind("truncated_file", "the cut last line is quarantined: `wrong_field_count`; "
             "the lines before it reach silver", (
        Landed("D1", "lineitem",
               text(lineitem(10), lineitem(11)) + lineitem(12)[:57].encode(),
               ("silver", "silver", q("wrong_field_count"))),)),
    LineKind("non_numeric_key", q("`not_an_integer:p_partkey`"), (
        Landed("D1", "part", text(row("part", p_partkey="12a")),
               (q("not_an_integer:p_partkey"),)),)),
    LineKind("huge_number", q("`not_an_integer:o_orderkey`"), (
        Landed("D1", "orders", text(row("orders", o_orderkey="1" * 30)),
               (q("not_an_integer:o_orderkey"),)),)),
    LineKind("padded_number", q("`not_an_integer:ps_availqty`"), (
        Landed("D1", "partsupp", text(row("partsupp", ps_partkey=101, ps_availqty=" 5")),
               (q("not_an_integer:ps_availqty"),)),)),
    LineKind("non_numeric_money", q("`bad_decimal:ps_supplycost`"), (
        Landed("D1", "partsupp", text(row("partsupp", ps_partkey=102, ps_supplycost="cheap")),
               (q("bad_decimal:ps_supplycost"),)),)),
    LineKind("three_decimal_places", q("`bad_decimal:l_extendedprice`"), (
        Landed("D1", "lineitem", text(lineitem(14, l_extendedprice="12.345")),
               (q("bad_decimal:l_extendedprice"),)),)),
    LineKind("invalid_date", q("`bad_date:o_orderdate`"), (
        Landed("D1", "orders", text(row("orders", o_orderkey=102, o_orderdate="1998-02-30"),
                                    row("orders", o_orderkey=103, o_orderdate="1998/07/01")),
               (q("bad_date:o_orderdate"), q("bad_date:o_orderdate"))),)),
    LineKind("non_utf8_bytes", q("`invalid_utf8`"), (
        Landed("D1", "supplier",
               row("supplier", s_suppkey=101, s_name="Supplier#@").encode().replace(
                   b"@", b"\xff\xfe") + b"\n",
               (q("invalid_utf8"),)),)),
    LineKind("byte_order_mark", "silver: the reader drops a UTF-8 BOM at the start of a "
             "file", (
        Landed("D1", "supplier", "\ufeff".encode() + text(row("supplier", s_suppkey=104),
                                                          row("supplier", s_suppkey=105)),
               ("silver", "silver")),)),
    LineKind("crlf_line_endings", "silver, the `\\r` is not part of the last field", (
        Landed("D1", "supplier", text(row("supplier", s_suppkey=102, s_comment="crlf line"),
                                      row("supplier", s_suppkey=103, s_comment="crlf line"),
                                      end="\r\n"),
               ("silver", "silver")),), _crlf_stripped),
    LineKind("empty_file", "nothing: no lines, no error (the file is listed in the ledger)", (
        Landed("D1", "nation", b"", ()),), _empty_file_seen),
    LineKind("blank_line", "the blank line is quarantined: `wrong_field_count`", (
        Landed("D1", "nation", text(row("nation", n_nationkey=5, n_name="ETHIOPIA"), "",
                                    row("nation", n_nationkey=6, n_name="FRANCE")),
               ("silver", q("wrong_field_count"), "silver")),)),
    LineKind("garbage_text_file", "every line is quarantined: `wrong_field_count`", (
        Landed("D1", "part", text(*GARBAGE), (q("wrong_field_count"),) * len(GARBAGE)),)),
    LineKind("huge_text_field", "silver, verbatim (text columns have no length limit)", (
        Landed("D1", "orders", text(row("orders", o_orderkey=104, o_comment="x" * HUGE)),
               ("silver",)),), _huge_comment_kept_verbatim),
    LineKind("null_like_key", q("`null_key:c_custkey`") + " (`NULL`, `\\N`, empty)", (
        Landed("D1", "customer", text(*(row("customer", c_custkey=token)
                                        for token in ("NULL", "\\N", ""))),
               (q("null_key:c_custkey"),) * 3),)),
    LineKind("null_in_composite_key", q("`null_key:ps_suppkey`"), (
        Landed("D1", "partsupp", text(row("partsupp", ps_partkey=103, ps_suppkey="\\N")),
               (q("null_key:ps_suppkey"),)),)),
    LineKind("negative_key", q("`o_orderkey_positive`"), (
        Landed("D1", "orders", text(row("orders", o_orderkey=-7)),
               (q("o_orderkey_positive"),)),)),
    LineKind("negative_price", q("`p_retailprice_positive`"), (
        Landed("D1", "part", text(row("part", p_partkey=101, p_retailprice="-1.00")),
               (q("p_retailprice_positive"),)),)),
    LineKind("negative_line_price", q("`l_extendedprice_positive`"), (
        Landed("D1", "lineitem", text(lineitem(15, l_extendedprice="-5.00")),
               (q("l_extendedprice_positive"),)),)),
    LineKind("discount_out_of_range", q("`l_discount_in_range`"), (
        Landed("D1", "lineitem", text(lineitem(16, l_discount="0.50")),
               (q("l_discount_in_range"),)),)),
    LineKind("ship_before_order", q("`l_shipdate_after_orderdate`"), (
        Landed("D1", "lineitem", text(lineitem(17, l_shipdate="1998-06-01",
                                               l_commitdate="1998-06-10",
                                               l_receiptdate="1998-06-05")),
               (q("l_shipdate_after_orderdate"),)),)),
    LineKind("unknown_order_status", q("`o_orderstatus_valid`"), (
        Landed("D1", "orders", text(row("orders", o_orderkey=110, o_orderstatus="X")),
               (q("o_orderstatus_valid"),)),)),
    LineKind("bad_nation_reference", q("`c_nationkey_in_range`"), (
        Landed("D1", "customer", text(row("customer", c_custkey=102, c_nationkey=99)),
               (q("c_nationkey_in_range"),)),)),
    LineKind("bad_region_reference", q("`n_regionkey_in_range`"), (
        Landed("D1", "nation", text(row("nation", n_nationkey=7, n_name="GERMANY",
                                        n_regionkey=9)),
               (q("n_regionkey_in_range"),)),)),
    LineKind("unknown_region_key", q("`r_regionkey_in_range`"), (
        Landed("D1", "region", text(row("region", r_regionkey=9, r_name="ATLANTIS")),
               (q("r_regionkey_in_range"),)),)),
    LineKind("balance_out_of_range", "silver, warned: `s_acctbal_in_range` counted in "
             "`ops/dq_results`", (
        Landed("D1", "supplier", text(row("supplier", s_suppkey=106, s_acctbal="12345.67")),
               ("silver",)),), _balance_warned),
    LineKind("two_versions_in_one_drop", "both quarantined: `conflicting_versions_in_drop`; "
             "silver keeps what it had", (
        Landed("D1", "orders", text(row("orders", o_orderkey=109, o_totalprice="100.00"),
                                    row("orders", o_orderkey=109, o_totalprice="200.00")),
               (q("conflicting_versions_in_drop"),) * 2),)),
    LineKind("duplicate_line_in_file", "applied once, the copy is a counted duplicate "
             "(`rows_duplicate`)", (
        Landed("D1", "lineitem", text(lineitem(13), lineitem(13)), ("silver", "duplicate")),)),
    LineKind("same_file_twice_in_drop", "applied once, every line of the second copy is a "
             "counted duplicate", (
        Landed("D1", "orders", text(row("orders", o_orderkey=105), row("orders", o_orderkey=106)),
               ("silver", "silver"), suffix="_1"),
        Landed("D1", "orders", text(row("orders", o_orderkey=105), row("orders", o_orderkey=106)),
               ("duplicate", "duplicate"), suffix="_2"))),
    LineKind("same_content_in_two_drops", "the newer drop's copy is the silver row, the older "
             "copy is superseded", (
        Landed("D1", "orders", text(row("orders", o_orderkey=107)), ("superseded",)),
        Landed("D2", "orders", text(row("orders", o_orderkey=107)), ("silver",)))),
    LineKind("unchanged_customer_redelivered", "no new SCD2 version; the later line is "
             "recorded in `silver/_customer_snapshots` (unchanged)", (
        Landed("D1", "customer", text(row("customer", c_custkey=103)), ("silver",)),
        Landed("D2", "customer", text(row("customer", c_custkey=103)), ("unchanged",)))),
    LineKind("same_drop_redelivered", "ingested again, replacing the first copy in bronze; "
             "every line read and applied once", (
        Landed("D2", "orders", text(row("orders", o_orderkey=113)), ("silver",)),),
        _redelivery_ingested_once),
    LineKind("drop_out_of_order", "the newer drop's version stays in silver; the late, older "
             "version is superseded", (
        Landed("D1", "orders", text(row("orders", o_orderkey=108, o_comment="older")),
               ("superseded",)),
        Landed("D2", "orders", text(row("orders", o_orderkey=108, o_comment="newer")),
               ("silver",)))),
    LineKind("customer_history_out_of_order", "every version lands in SCD2 history in `ds` "
             "order, whatever order the drops arrive in", (
        Landed("D1", "customer", text(row("customer", c_custkey=104, c_acctbal="1.00")),
               ("silver",)),
        Landed("D2", "customer", text(row("customer", c_custkey=104, c_acctbal="2.00")),
               ("silver",))), _scd2_history_in_ds_order),
    LineKind("orphan_line_item", q("`orphan_lineitem`") + " (parked; retried by every later "
             "drop)", (
        Landed("D1", "lineitem", text(row("lineitem", l_orderkey=888001)),
               (q("orphan_lineitem"),)),)),
    LineKind("line_item_before_its_order", "parked as `orphan_lineitem`, then in silver once "
             "its order's (older) drop is processed", (
        Landed("D2", "lineitem", text(row("lineitem", l_orderkey=112)), ("silver",)),
        Landed("D1", "orders", text(row("orders", o_orderkey=112)), ("silver",)))),
    LineKind("delete_of_unknown_key", "a tombstone in `silver/_orders_tombstones`; counted as "
             "`deletes_unknown_key`", (
        Landed("D1", "orders_delete", text(row("orders_delete", o_orderkey=999001)),
               ("silver",)),), _unknown_delete_recorded),
    LineKind("order_and_its_delete_in_one_drop", "the deletion wins: the order is deleted "
             "(counted in `superseded_by_delete`)", (
        Landed("D1", "orders", text(row("orders", o_orderkey=111)), ("deleted",)),
        Landed("D1", "orders_delete", text(row("orders_delete", o_orderkey=111)), ("silver",))),
        _order_and_delete),
    LineKind("garbage_delete_lines", "quarantined: `not_an_integer:o_orderkey`, "
             "`null_key:o_orderkey` (empty, `NULL`), `wrong_field_count`", (
        Landed("D1", "orders_delete", text("abc|", "|", "NULL|", "5|6|"),
               (q("not_an_integer:o_orderkey"), q("null_key:o_orderkey"),
                q("null_key:o_orderkey"), q("wrong_field_count"))),)),
)

# A clean baseline in D1, one line per table (all must reach silver: the control group).
BASELINE: dict[str, list[str]] = {
    name: [row(name, **({"o_orderkey": 2} if name == "orders" else {}))]
    for name in ("region", "nation", "supplier", "customer", "part", "partsupp", "orders")
} | {"lineitem": [lineitem(1)]}


# -- the catalogue: kinds judged on the whole drop (exit status and message) -----------------

@dataclass(frozen=True)
class DropKind:
    """A kind of bad input judged on the whole drop: the step's exit status and message.

    :param files: the drop's files, relative to the drop folder.
    :param message: the ``error:`` line without its prefix; ``{drop}`` is the drop's URI,
        ``{n}`` the number of quarantined lines of a catalogue drop.
    :param catalogue: run against the shared catalogue lake instead of a scratch lake.
    :param note: the outcome when the step succeeds (no message).
    """

    name: str
    step: str
    ds: str
    code: int
    message: str
    files: dict[str, bytes] = field(default_factory=dict)
    complete: bool = True
    catalogue: bool = False
    note: str = ""

    @property
    def outcome(self) -> str:
        return f"exit {self.code}: `{self.message}`" if self.message else f"exit 0; {self.note}"


GOOD_ORDERS = text(row("orders"))
USAGE = ("usage: jobs <step> --ds YYYY-MM-DD [--pipeline NAME] [--lake URI] [--landing URI] "
         "[--force]")
DROP_KINDS: tuple[DropKind, ...] = (
    DropKind("missing_success_marker", "ingest", "1998-09-01", 1,
             "{drop}: drop is not complete (no _SUCCESS marker yet)",
             {"orders/part-1.tbl": GOOD_ORDERS}, complete=False),
    DropKind("unknown_table_folder", "ingest", "1998-09-02", 3,
             "{drop}/lineitems/part-1.tbl: unexpected file in the drop (expected "
             "<folder>/<file> with a folder in region, nation, supplier, customer, part, "
             "partsupp, orders, lineitem, orders_delete)",
             {"orders/part-1.tbl": GOOD_ORDERS, "lineitems/part-1.tbl": text(row("lineitem"))}),
    DropKind("file_not_ending_in_tbl", "ingest", "1998-09-03", 3,
             "{drop}/orders/part-1.csv: file name does not match '*.tbl', the files of "
             "orders", {"orders/part-1.csv": GOOD_ORDERS}),
    DropKind("binary_file", "ingest", "1998-09-04", 3,
             "{drop}/lineitem/part-1.tbl line 3: binary content (NUL byte); the file is not "
             "text",
             {"orders/part-1.tbl": GOOD_ORDERS,
              "lineitem/part-1.tbl": text(row("lineitem"), row("lineitem", l_linenumber=2))
              + b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage\n"}),
    DropKind("drop_far_in_the_future", "ingest", "2999-12-31", 2,
             f"{USAGE}: argument --ds: --ds '2999-12-31' is after tomorrow (UTC): a drop for "
             "a future date would outrank every real drop",
             {"orders/part-1.tbl": GOOD_ORDERS}),
    DropKind("empty_drop", "all", "1998-09-05", 0, "",
             note="no data table written; `drop_not_empty` warned in `ops/dq_results`"),
    DropKind("mostly_rejected_drop", "quality", DROPS["D1"], 3,
             "quality gate failed for ds={ds}: quarantine_ratio ({n}); gold restored: unchanged",
             catalogue=True),
)


# -- the shared catalogue lake ---------------------------------------------------------------

@dataclass
class Catalogue:
    """The processed catalogue lake and every landed line's fate."""

    spark: SparkSession
    landing: Path
    lake: Lake
    fates: dict[Line, str] = field(default_factory=dict)
    _cache: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    _reasons: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def uri(self, drop: str, name: str, file: str) -> str:
        return f"file:{self.landing}/ds={DROPS[drop]}/{name}/{file}"

    def rows(self, layer: str, name: str) -> list[Any]:
        if (layer, name) not in self._cache:
            df = self.spark.read.format("delta").load(self.lake.table(layer, name))
            self._cache[(layer, name)] = df.collect()
        return self._cache[(layer, name)]

    def fates_of(self, name: str, uri: str) -> list[str]:
        """The fates of a file's lines in line order (quarantine with its reasons)."""
        found = sorted((line, fate) for (t, f, line), fate in self.fates.items()
                       if t == name and f == uri)
        assert [n for n, _ in found] == list(range(1, len(found) + 1)), found
        return [self.quarantine_fate(name, uri, n) if fate == "quarantine" else fate
                for n, fate in found]

    def quarantine_fate(self, name: str, uri: str, line: int) -> str:
        if not self._reasons:
            # Every quarantine table has the same schema: one read for all of them.
            tables = [self.spark.read.format("delta").load(self.lake.table("quarantine", t))
                      for t in sorted(os.listdir(self.lake.root[5:] + "/quarantine"))]
            rows = reduce(lambda a, b: a.unionByName(b), tables).collect()
            self._reasons = {(r["_source_file"], r["_line_number"]): r["reasons"] for r in rows}
        return q(", ".join(self._reasons[(uri, line)]))


def write_files(drop: Path, files: dict[str, bytes], complete: bool = True) -> None:
    """Write a drop's files (relative path -> bytes) and, when complete, its marker."""
    drop.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = drop / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if complete:
        (drop / "_SUCCESS").write_bytes(b"")


def catalogue_drops() -> dict[str, dict[str, bytes]]:
    """Every catalogue file by drop: relative path -> content."""
    drops: dict[str, dict[str, bytes]] = {d: {} for d in DROPS}
    for name, lines in BASELINE.items():
        drops["D1"][f"{name}/baseline.tbl"] = text(*lines)
    for kind in LINE_KINDS:
        for landed in kind.files:
            drops[landed.drop][f"{landed.table}/{kind.file_name(landed)}"] = landed.content
    return drops


@pytest.fixture(scope="module")
def catalogue(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """The catalogue drops processed (D2 delivered twice, then D1), and every line's fate."""
    root = tmp_path_factory.mktemp("bad-input")
    cat = Catalogue(spark, root / "landing", lake_of(root / "lake"))
    drops = catalogue_drops()
    for drop, files in drops.items():
        write_files(cat.landing / f"ds={DROPS[drop]}", files)
    run_drop(spark, cat.lake, cat.landing, DROPS["D2"], steps=(ingest,))
    # The same D2 delivered again once ingested: same bytes, newer files.
    later = dt.datetime.now().timestamp() + 60
    for relative, content in drops["D2"].items():
        path = cat.landing / f"ds={DROPS['D2']}" / relative
        path.write_bytes(content)
        os.utime(path, (later, later))
    for drop in PROCESSING_ORDER:
        run_drop(spark, cat.lake, cat.landing, DROPS[drop], steps=(ingest, silver))
    cat.fates = account_for_every_line(spark, cat.lake)
    return cat


def test_catalogue_covers_twenty_kinds_and_every_table() -> None:
    kinds = [k.name for k in LINE_KINDS] + [k.name for k in DROP_KINDS]
    assert len(kinds) == len(set(kinds)) >= 20
    tables = {f.table for k in LINE_KINDS for f in k.files}
    assert tables == {*BASELINE, "orders_delete"}
    # No two catalogue lines of one table and drop are equal unless a kind wants a duplicate:
    # a kind's fates must not depend on another kind's lines.
    for drop, files in catalogue_drops().items():
        seen: dict[tuple[str, bytes], str] = {}
        for relative, content in files.items():
            for line in content.splitlines():
                key = (relative.split("/")[0], line)
                other = seen.setdefault(key, relative)
                wanted = relative.startswith("orders/same_file_twice")
                assert other == relative or wanted, (drop, relative, other, line[:60])


def test_clean_baseline_lines_all_reach_silver(catalogue: Catalogue) -> None:
    for name, lines in BASELINE.items():
        uri = catalogue.uri("D1", name, "baseline.tbl")
        assert catalogue.fates_of(name, uri) == ["silver"] * len(lines), name


@pytest.mark.parametrize("kind", LINE_KINDS, ids=lambda k: k.name)
def test_bad_line_ends_where_the_catalogue_says(kind: LineKind, catalogue: Catalogue) -> None:
    for landed in kind.files:
        uri = catalogue.uri(landed.drop, landed.table, kind.file_name(landed))
        assert catalogue.fates_of(landed.table, uri) == list(landed.expect), landed.table
    if kind.check is not None:
        kind.check(catalogue)


# -- drop kinds --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Lake]:
    """A landing with one drop per drop kind that has its own drop, and an empty lake."""
    root = tmp_path_factory.mktemp("bad-input-drops")
    for kind in DROP_KINDS:
        if not kind.catalogue:
            write_files(root / "landing" / f"ds={kind.ds}", kind.files, kind.complete)
    return root / "landing", lake_of(root / "lake")


def d1_quarantined() -> tuple[int, int]:
    """Lines of the catalogue drop D1, and how many of them the catalogue quarantines."""
    fates = [e for k in LINE_KINDS for f in k.files if f.drop == "D1" for e in f.expect]
    fates += ["silver" for lines in BASELINE.values() for _ in lines]
    return len(fates), sum(e.startswith("quarantine") for e in fates)


@pytest.mark.parametrize("kind", DROP_KINDS, ids=lambda k: k.name)
def test_drop_kind_exits_with_its_documented_status_and_message(
        kind: DropKind, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("PIPELINE_FAULT", "DQ_MAX_QUARANTINE_RATIO", "LAKE_URI", "LANDING_URI"):
        monkeypatch.delenv(variable, raising=False)
    spark: SparkSession = request.getfixturevalue("spark")
    if kind.catalogue:
        cat: Catalogue = request.getfixturevalue("catalogue")
        landing, lake = cat.landing, cat.lake
        read, quarantined = d1_quarantined()
        assert quarantined > 0.5 * read, "the catalogue drop must be mostly rejected"
    else:
        landing, lake = request.getfixturevalue("scratch")
        quarantined = 0
    lake_path = lake.root.removeprefix("file:")
    versions = table_versions(spark, lake, DATA_LAYERS)
    capsys.readouterr()

    code = main([kind.step, "--ds", kind.ds, "--lake", lake_path, "--landing", str(landing)])

    err = capsys.readouterr().err
    assert code == kind.code, err
    expected = kind.message.format(drop=f"file:{landing}/ds={kind.ds}", ds=kind.ds,
                                   n=quarantined)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ([f"error: {expected}"] if kind.message else []), err
    assert "Traceback" not in err
    # Nothing of a refused drop is half-landed (the gate only judges): no data table has a
    # new version, and the accounting still balances.
    assert table_versions(spark, lake, DATA_LAYERS) == versions
    if not kind.catalogue:
        fates = account_for_every_line(spark, lake)
        assert not [line for line in fates if f"/ds={kind.ds}/" in line[1]], fates
    if kind.code == 0:
        dq = spark.read.format("delta").load(lake.table("ops", "dq_results")).where(
            f"ds = DATE'{kind.ds}' AND expectation = 'drop_not_empty'").collect()
        assert [(r["action"], r["outcome"]) for r in dq] == [("warn", "warned")]


# -- the document ------------------------------------------------------------------------------

def test_bad_input_doc_lists_every_kind_with_its_outcome() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|[^|\n]*\|[^\n]*\| (.+) \|$",
                      DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    documented = dict(rows)
    assert len(documented) == len(rows), "a kind is listed twice"
    expected = {k.name: k.outcome for k in LINE_KINDS} | {k.name: k.outcome for k in DROP_KINDS}
    assert documented == expected
