"""Tests of the TPC-H landing-zone generator (``pipelines.tpch.datagen``), on real tpchgen-cli
output.

tpchgen-cli runs twice in this module: once for the shared source fixture, once through the
command line end to end. Every other landing is built from the shared source.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

import pipelines.tpch.datagen.generate as gen
from pipelines.tpch.datagen import cli
from pipelines.tpch.datagen.chaos import KINDS, MANIFEST_NAME
from pipelines.tpch.datagen.generate import DatagenConfig, build_landing, run_tpchgen
from pipelines.tpch.datagen.layout import COLUMNS, TABLES, col, drop_dates, split_fields

REPO = Path(__file__).resolve().parents[3]
SF = 0.01
DAYS = 3
DAILY_DS = ["1998-07-31", "1998-08-01", "1998-08-02"]
INITIAL_DS = "1998-07-30"


def snapshot(landing: Path) -> dict[str, bytes]:
    """Every file under a landing root, by relative path."""
    return {
        p.relative_to(landing).as_posix(): p.read_bytes()
        for p in sorted(landing.rglob("*"))
        if p.is_file()
    }


def lines_of(data: bytes) -> list[bytes]:
    """Lines with their newline (the last one may lack it)."""
    return data.splitlines(keepends=True)


def real_lines(landing: Path, ds: str, table: str) -> list[bytes]:
    """Lines of the tpchgen part files of one table of one drop."""
    out: list[bytes] = []
    for path in sorted((landing / f"ds={ds}" / table).glob("part-*.tbl")):
        out.extend(lines_of(path.read_bytes()))
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tpchgen")
    run_tpchgen(SF, out)
    return out


@pytest.fixture(scope="module")
def source_lines(source: Path) -> dict[str, list[bytes]]:
    return {t: lines_of((source / f"{t}.tbl").read_bytes()) for t in TABLES}


def _build(source: Path, landing: Path, **kwargs: Any) -> Path:
    build_landing(
        source, DatagenConfig(sf=SF, days=kwargs.pop("days", DAYS), landing=landing, **kwargs)
    )
    return landing


@pytest.fixture(scope="module")
def plain(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(source, tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def chaotic(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(source, tmp_path_factory.mktemp("chaos"), chaos=True)


@pytest.fixture(scope="module")
def manifest(chaotic: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((chaotic / MANIFEST_NAME).read_text())
    return data


# --- layout -----------------------------------------------------------------------------


def test_drop_dates() -> None:
    assert [d.isoformat() for d in drop_dates(3)] == [INITIAL_DS, *DAILY_DS]
    dates = drop_dates(2, history_days=3)
    assert dates[0] == date(1998, 7, 28) and dates[-1] == date(1998, 8, 2) and len(dates) == 6


def test_layout(plain: Path) -> None:
    ds_dirs = sorted(p.name for p in plain.iterdir())
    assert ds_dirs == [f"ds={d}" for d in [INITIAL_DS, *DAILY_DS]]
    for name in ds_dirs:
        marker = plain / name / "_SUCCESS"
        assert marker.is_file() and marker.stat().st_size == 0
        # No leftover temporary files.
        assert not [p for p in (plain / name).rglob(".*")]
    assert sorted(p.name for p in (plain / f"ds={INITIAL_DS}").iterdir() if p.is_dir()) == sorted(
        TABLES
    )
    for ds in DAILY_DS:
        tables = sorted(p.name for p in (plain / f"ds={ds}").iterdir() if p.is_dir())
        assert tables == ["lineitem", "orders"]
    for path in plain.rglob("*.tbl"):
        assert path.name == "part-00000.tbl"
        assert path.read_bytes().endswith(b"\n")
    assert not (plain / MANIFEST_NAME).exists()


def test_union_equals_tpchgen(plain: Path, source_lines: dict[str, list[bytes]]) -> None:
    for table in TABLES:
        got: Counter[bytes] = Counter()
        for ds in [INITIAL_DS, *DAILY_DS]:
            got.update(real_lines(plain, ds, table))
        assert got == Counter(source_lines[table]), table


def test_daily_drops_hold_their_orders(plain: Path, source_lines: dict[str, list[bytes]]) -> None:
    date_idx = col("orders", "o_orderdate")
    for ds in DAILY_DS:
        expected = [
            ln for ln in source_lines["orders"] if split_fields(ln)[date_idx] == ds.encode()
        ]
        assert expected and real_lines(plain, ds, "orders") == expected
        keys = {split_fields(ln)[0] for ln in expected}
        items = [ln for ln in source_lines["lineitem"] if split_fields(ln)[0] in keys]
        assert real_lines(plain, ds, "lineitem") == items
    initial = real_lines(plain, INITIAL_DS, "orders")
    assert max(split_fields(ln)[date_idx] for ln in initial) == INITIAL_DS.encode()


def test_history_days_and_split_files(
    source: Path, source_lines: dict[str, list[bytes]], tmp_path: Path
) -> None:
    landing = _build(source, tmp_path, days=2, history_days=3, max_lines_per_file=10_000)
    dates = [d.isoformat() for d in drop_dates(2, 3)]
    assert sorted(p.name for p in landing.iterdir()) == [f"ds={d}" for d in dates]
    parts = sorted((landing / f"ds={dates[0]}" / "lineitem").glob("part-*.tbl"))
    assert len(parts) >= 6
    for part in parts:
        data = part.read_bytes()
        assert data.endswith(b"\n") and data.count(b"\n") <= 10_000
    for table in ("orders", "lineitem"):
        got: Counter[bytes] = Counter()
        for ds in dates:
            got.update(real_lines(landing, ds, table))
        assert got == Counter(source_lines[table])
    for ds in dates[1:]:
        dates_seen = {split_fields(ln)[4] for ln in real_lines(landing, ds, "orders")}
        assert dates_seen == {ds.encode()}


def test_rerun_is_idempotent_and_drops_stale_chaos(
    source: Path, plain: Path, tmp_path: Path
) -> None:
    _build(source, tmp_path, chaos=True)
    assert (tmp_path / MANIFEST_NAME).exists()
    _build(source, tmp_path)
    assert snapshot(tmp_path) == snapshot(plain)


# --- chaos ------------------------------------------------------------------------------


def test_chaos_is_deterministic(source: Path, chaotic: Path, tmp_path: Path) -> None:
    again = _build(source, tmp_path / "again", chaos=True)
    assert snapshot(again) == snapshot(chaotic)
    other = _build(source, tmp_path / "other", chaos=True, seed=7)
    assert (other / MANIFEST_NAME).read_bytes() != (chaotic / MANIFEST_NAME).read_bytes()


def test_chaos_keeps_real_files(chaotic: Path, plain: Path) -> None:
    plain_files = snapshot(plain)
    chaos_files = snapshot(chaotic)
    for rel, data in plain_files.items():
        assert chaos_files[rel] == data, rel
    extra = sorted(set(chaos_files) - set(plain_files) - {MANIFEST_NAME})
    assert extra
    daily_dirs = {f"ds={d}" for d in DAILY_DS}
    for rel in extra:
        ds_dir, _table, name = rel.split("/")
        assert ds_dir in daily_dirs, rel
        assert name in {"chaos-00000.tbl", "part-00000.tbl", "redelivered-00000.tbl"}, rel


def test_manifest_schema_and_kinds(manifest: dict[str, Any]) -> None:
    assert manifest["seed"] == 42 and manifest["sf"] == SF
    keys = ["kind", "ds", "table", "file", "line", "key", "expect", "reason", "values"]
    for entry in manifest["entries"]:
        assert list(entry) == keys
        assert entry["ds"] in DAILY_DS, entry
        assert entry["file"].startswith(f"ds={entry['ds']}/{entry['table']}/")
    assert set(KINDS) <= {e["kind"] for e in manifest["entries"]}
    reasons = {(e["kind"], e["expect"], e["reason"]) for e in manifest["entries"]}
    assert reasons == {
        ("wrong_field_count", "quarantine", "wrong_field_count"),
        ("non_numeric_key", "quarantine", "not_an_integer:l_orderkey"),
        ("bad_date", "quarantine", "bad_date:o_orderdate"),
        ("bad_decimal", "quarantine", "bad_decimal:l_extendedprice"),
        ("non_utf8", "quarantine", "invalid_utf8"),
        ("truncated_last_line", "quarantine", "wrong_field_count"),
        ("null_key", "quarantine", "null_key:l_orderkey"),
        ("negative_quantity", "quarantine", "l_quantity_positive"),
        ("discount_out_of_range", "quarantine", "l_discount_in_range"),
        ("unknown_order_status", "quarantine", "o_orderstatus_valid"),
        ("unknown_return_flag", "quarantine", "l_returnflag_valid"),
        ("ship_before_order", "quarantine", "l_shipdate_after_orderdate"),
        ("exact_duplicate", "duplicate", None),
        ("conflicting_versions", "quarantine", "conflicting_versions_in_drop"),
        ("order_update", "applied", None),
        ("lineitem_update", "applied", None),
        ("late_lineitem", "applied", None),
        ("rf2_delete", "deleted", None),
        ("customer_change", "scd2_version", None),
        ("orphan_lineitem", "quarantine", "orphan_lineitem"),
        ("redelivered_file", "redelivered", None),
    }
    # Faults spread over the daily drops.
    assert len({e["ds"] for e in manifest["entries"]}) == DAYS


def test_keys_not_shared_between_kinds(manifest: dict[str, Any]) -> None:
    kinds_by_key: dict[tuple[str, tuple[int, ...]], set[str]] = {}
    for e in manifest["entries"]:
        if e["key"] is not None:
            table = "orders" if e["table"] == "orders_delete" else e["table"]
            kinds_by_key.setdefault((table, tuple(e["key"])), set()).add(e["kind"])
    assert all(len(kinds) == 1 for kinds in kinds_by_key.values()), kinds_by_key
    deleted = {e["key"][0] for e in manifest["entries"] if e["kind"] == "rf2_delete"}
    assert 2 <= len(deleted) <= 3
    touched = {
        e["key"][0]
        for e in manifest["entries"]
        if e["key"] and e["kind"] != "rf2_delete" and e["table"] in ("orders", "lineitem")
    }
    assert not deleted & touched


def _line(landing: Path, entry: dict[str, Any]) -> bytes:
    return lines_of((landing / entry["file"]).read_bytes())[entry["line"] - 1]


def _by_key(lines: list[bytes], table: str) -> dict[tuple[int, ...], bytes]:
    idx = [
        COLUMNS[table].index(c)
        for c in {
            "orders": ["o_orderkey"],
            "lineitem": ["l_orderkey", "l_linenumber"],
            "customer": ["c_custkey"],
        }[table]
    ]
    out: dict[tuple[int, ...], bytes] = {}
    for ln in lines:
        f = split_fields(ln)
        out[tuple(int(f[i]) for i in idx)] = ln
    return out


def test_entries_point_at_their_faults(chaotic: Path, manifest: dict[str, Any]) -> None:
    entries = manifest["entries"]
    initial = {
        t: _by_key(real_lines(chaotic, INITIAL_DS, t), t)
        for t in ("orders", "lineitem", "customer")
    }
    all_orderkeys = set()
    for ds in [INITIAL_DS, *DAILY_DS]:
        all_orderkeys |= {int(split_fields(ln)[0]) for ln in real_lines(chaotic, ds, "orders")}
    n_items = len(COLUMNS["lineitem"])
    customer_versions: dict[int, list[tuple[str, bytes]]] = {}

    for e in entries:
        kind, table, values = e["kind"], e["table"], e["values"] or {}
        if kind == "redelivered_file":
            assert e["line"] is None and e["key"] is None
            first = chaotic / f"ds={DAILY_DS[0]}" / "orders" / "part-00000.tbl"
            assert (chaotic / e["file"]).read_bytes() == first.read_bytes()
            assert e["file"] == f"ds={DAILY_DS[-1]}/orders/redelivered-00000.tbl"
            redelivered = {int(split_fields(ln)[0]) for ln in lines_of(first.read_bytes())}
            others = {e2["key"][0] for e2 in entries if e2["key"] and e2["table"] == "orders"}
            assert not redelivered & others
            continue
        line = _line(chaotic, e)
        fields = split_fields(line)
        for name, value in values.items():
            assert fields[COLUMNS[table].index(name)].decode() == value, (kind, name)
        drop_real = real_lines(chaotic, e["ds"], table) if table != "orders_delete" else []
        if kind in {
            "wrong_field_count",
            "bad_date",
            "unknown_order_status",
            "non_numeric_key",
            "bad_decimal",
            "null_key",
            "negative_quantity",
            "discount_out_of_range",
            "unknown_return_flag",
            "ship_before_order",
            "truncated_last_line",
        }:
            assert e["file"].endswith("/chaos-00000.tbl")
            if e["key"] is not None:
                # The intact original of the mutated copy arrives in the same drop.
                assert tuple(e["key"]) in _by_key(drop_real, table), kind
        if kind == "wrong_field_count":
            assert len(fields) == len(COLUMNS["orders"]) - 1 and line.endswith(b"|\n")
        elif kind == "non_numeric_key":
            assert not fields[0].isdigit() and b"x" in fields[0] and len(fields) == n_items
        elif kind == "bad_date":
            assert fields[col("orders", "o_orderdate")] == b"1998-02-30"
        elif kind == "bad_decimal":
            assert fields[col("lineitem", "l_extendedprice")] == b"12.3.4"
        elif kind == "non_utf8":
            assert e["file"] == f"ds={e['ds']}/customer/chaos-00000.tbl"
            assert b"\xff\xfe" in fields[col("customer", "c_comment")]
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
        elif kind == "truncated_last_line":
            data = (chaotic / e["file"]).read_bytes()
            assert e["line"] == len(lines_of(data)) and data.endswith(line)
            assert not line.endswith(b"\n") and not line.endswith(b"|")
            assert len(line.split(b"|")) < n_items
        elif kind == "null_key":
            assert fields[0] == b"NULL" and e["key"] is None
        elif kind == "negative_quantity":
            assert fields[col("lineitem", "l_quantity")] == b"-5.00"
        elif kind == "discount_out_of_range":
            assert fields[col("lineitem", "l_discount")] == b"0.15"
        elif kind == "unknown_order_status":
            assert fields[col("orders", "o_orderstatus")] == b"X"
        elif kind == "unknown_return_flag":
            assert fields[col("lineitem", "l_returnflag")] == b"Z"
        elif kind == "ship_before_order":
            orders = _by_key(real_lines(chaotic, e["ds"], "orders"), "orders")
            odate = split_fields(orders[(e["key"][0],)])[col("orders", "o_orderdate")]
            ship = fields[col("lineitem", "l_shipdate")]
            five_days = timedelta(days=5)
            assert (
                date.fromisoformat(ship.decode()) == date.fromisoformat(odate.decode()) - five_days
            )
            original = split_fields(_by_key(drop_real, "lineitem")[tuple(e["key"])])
            assert (
                fields[col("lineitem", "l_commitdate")] == original[col("lineitem", "l_commitdate")]
            )
        elif kind == "exact_duplicate":
            assert line in drop_real
        elif kind in {"conflicting_versions", "lineitem_update", "order_update"}:
            original = split_fields(initial[table][tuple(e["key"])])
            changed = {
                COLUMNS[table][i]
                for i, (a, b) in enumerate(zip(original, fields, strict=True))
                if a != b
            }
            assert changed == set(values), kind
            if kind == "lineitem_update":
                assert 0 <= float(values["l_discount"]) <= 0.10
        elif kind == "late_lineitem":
            okey, number = e["key"]
            existing = [k[1] for k in initial["lineitem"] if k[0] == okey]
            assert number == max(existing) + 1 <= 7
            odate = split_fields(initial["orders"][(okey,)])[col("orders", "o_orderdate")]
            assert fields[col("lineitem", "l_shipdate")] > odate
        elif kind == "rf2_delete":
            assert line == b"%d|\n" % e["key"][0] and (e["key"][0],) in initial["orders"]
        elif kind == "customer_change":
            assert e["file"] == f"ds={e['ds']}/customer/part-00000.tbl"
            assert len(fields) == len(COLUMNS["customer"])
            customer_versions.setdefault(e["key"][0], []).append((e["ds"], line))
            if "c_nationkey" in values:
                assert 0 <= int(values["c_nationkey"]) <= 24
        elif kind == "orphan_lineitem":
            assert e["key"][0] not in all_orderkeys and len(fields) == n_items

    # Every version of a changed customer differs from the previous one in one column.
    for custkey, versions in customer_versions.items():
        previous = split_fields(initial["customer"][(custkey,)])
        for _, line in sorted(versions):
            fields = split_fields(line)
            assert sum(a != b for a, b in zip(previous, fields, strict=True)) == 1
            previous = fields
    assert any(len({ds for ds, _ in v}) == 2 for v in customer_versions.values())
    nation_changes = [e for e in entries if e["values"] and "c_nationkey" in e["values"]]
    assert nation_changes and 3 <= len(customer_versions) <= 4
    changed_columns = {c for e in entries if e["kind"] == "customer_change" for c in e["values"]}
    assert changed_columns == {"c_address", "c_phone", "c_nationkey", "c_mktsegment"}


def test_chaos_with_one_day(source: Path, tmp_path: Path) -> None:
    landing = _build(source, tmp_path, days=1, chaos=True)
    data = json.loads((landing / MANIFEST_NAME).read_text())
    assert set(KINDS) <= {e["kind"] for e in data["entries"]}
    assert {e["ds"] for e in data["entries"]} == {"1998-08-02"}


# --- command line -----------------------------------------------------------------------


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.tpch.datagen", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_cli_end_to_end(chaotic: Path, tmp_path: Path) -> None:
    proc = _run_cli("--sf", str(SF), "--days", str(DAYS), "--landing", str(tmp_path), "--chaos")
    assert proc.returncode == 0, proc.stderr
    assert "ds=1998-08-02" in proc.stdout
    # Same bytes as the library build from the shared tpchgen output; scratch folder removed.
    assert snapshot(tmp_path) == snapshot(chaotic)


@pytest.mark.parametrize(
    "args",
    [
        ["--sf", "abc", "--days", "3", "--landing", "x"],
        ["--sf", "abc"],
        ["--sf", "0.01", "--days", "0", "--landing", "x"],
        ["--sf", "-1", "--days", "3", "--landing", "x"],
        ["--sf", "0.01", "--days", "3"],
        ["--sf", "0.01", "--days", "3000", "--landing", "x"],
    ],
)
def test_bad_args_exit_2(args: list[str]) -> None:
    proc = _run_cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr


def test_tpchgen_failure_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gen, "find_tpchgen", lambda: "false")
    status = cli.main(["--sf", "0.01", "--days", "1", "--landing", str(tmp_path)])
    assert status == 1
    err = capsys.readouterr().err
    assert "tpchgen-cli" in err and len(err.strip().splitlines()) == 1
    # The scratch folder is removed even on failure.
    assert list(tmp_path.iterdir()) == []
