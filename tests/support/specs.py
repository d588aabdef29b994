"""A small valid pipeline spec that each bad-spec test breaks in one place.

``SPEC`` uses every kind of field the checks look at: a csv scd2 source, a partitioned
source with a delete feed and a drop-scope expectation, a jsonl child whose expectation
reads its parent, a mart with refresh queries, and a gate check with ``{touched:...}``.
Tests break it by replacing one fragment (:func:`write_spec`'s ``replace``) and find the
line a problem must name with :func:`line_of`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MART_SQL", "NAME", "SAMPLE_KEYS", "SPEC", "line_of", "set_keys", "spec_text",
           "write_samples", "write_spec"]

NAME = "shop"

SPEC = """\
name: shop
schedule: "@daily"
sources:
  customers:
    format: {type: csv}
    files: "*.csv"
    columns:
      - {name: customer_id, type: bigint, nullable: false}
      - {name: country, type: string}
    key: [customer_id]
    history: scd2
  orders:
    format: {type: delimited, separator: "|"}
    columns:
      - {name: order_id, type: bigint, nullable: false}
      - {name: customer_id, type: bigint}
      - {name: order_date, type: date}
      - {name: amount, type: "decimal(15,2)"}
    key: [order_id]
    partition: {column: _order_month, expression: "trunc(order_date, 'MM')"}
    deletes: {folder: orders_delete}
    expectations:
      - {name: amount_positive, check: "amount > 0"}
      - {name: some_orders, check: "count(*) > 0", scope: drop, action: warn}
  items:
    format: {type: jsonl}
    columns:
      - {name: order_id, type: bigint, nullable: false}
      - {name: line, type: int, nullable: false}
      - {name: qty, type: int}
    key: [order_id, line]
    parent: {table: orders, key: {order_id: order_id}}
    expectations:
      - {name: qty_positive, check: "qty > 0"}
      - {name: after_order, check: "parent.order_date IS NOT NULL", action: warn}
marts:
  sales_by_country:
    sql: gold/sales_by_country.sql
    grain: [order_date, country]
    refresh:
      column: order_date
      when:
        orders: "SELECT order_date FROM changes"
        items: "SELECT o.order_date FROM changes c JOIN orders o ON o.order_id = c.order_id"
        customers: all
gate:
  checks:
    - name: sales_present
      table: sales_by_country
      sql: "SELECT count(*) FROM orders WHERE _order_month IN {touched:orders}"
"""

MART_SQL = """\
-- Sales per order date and the customer's current country.
SELECT o.order_date, c.country, CAST(sum(o.amount) AS DECIMAL(38, 2)) AS amount,
       count(*) AS orders
FROM orders o
JOIN customers c ON c.customer_id = o.customer_id
GROUP BY o.order_date, c.country
"""


def spec_text(replace: Mapping[str, str] | None = None) -> str:
    """``SPEC`` with each ``old -> new`` of ``replace`` applied (each ``old`` must occur)."""
    text = SPEC
    for old, new in (replace or {}).items():
        assert old in text, f"{old!r} is not in the spec"
        text = text.replace(old, new, 1)
    return text


def write_spec(root: Path, replace: Mapping[str, str] | None = None, *,
               text: str | None = None, sql: Mapping[str, str] | None = None,
               name: str = NAME) -> Path:
    """Write ``<root>/pipelines/<name>/pipeline.yaml`` and its SQL files.

    :param root: the folder to hold ``pipelines/`` (a test's ``tmp_path``).
    :param replace: fragments of ``SPEC`` to replace (see :func:`spec_text`).
    :param text: the whole spec instead of ``SPEC``.
    :param sql: SQL files by path relative to the pipeline folder (default: the mart's).
    :return: the pipeline folder.
    """
    folder = root / "pipelines" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(text if text is not None else spec_text(replace),
                                          encoding="utf-8")
    files = {"gold/sales_by_country.sql": MART_SQL} if sql is None else sql
    for relative, body in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(body, encoding="utf-8")
    return folder


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``text`` holding ``fragment``."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) >= occurrence, f"{fragment!r} occurs {len(found)} time(s)"
    return found[occurrence - 1]


def write_samples(sample: Path) -> None:
    """One table per format: csv with a header, dbgen-like delimited text, jsonl, parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (sample / "customers").mkdir(parents=True)
    (sample / "customers" / "part-1.csv").write_text(
        "Customer ID,Name,Joined,Balance\n1,\"Smith, Ann\",2024-01-02,10.50\n"
        "2,Bob,2024-01-03,-3\n", encoding="utf-8")
    (sample / "orders").mkdir()
    (sample / "orders" / "orders.tbl").write_text(
        "1|7|2024-01-02 10:00:00|true|\n2|7|2024-01-03 11:30:00|false|\n", encoding="utf-8")
    (sample / "events").mkdir()
    (sample / "events" / "a.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": 1, "kind": "click", "at": "2024-01-02", "score": 0.125},
        {"id": 2, "kind": "view", "at": "2024-01-03", "score": 2},
    ]) + "\n", encoding="utf-8")
    (sample / "stock").mkdir()
    pq.write_table(pa.table({
        "sku": pa.array([1, 2], pa.int64()),
        "qty": pa.array([5, 6], pa.int32()),
        "price": pa.array([1, 2], pa.decimal128(12, 2)),
    }), sample / "stock" / "s.parquet")


# The key of each sample table, as the user would set it in the drafted spec.
SAMPLE_KEYS = {"customers": "customer_id", "events": "id", "orders": "col_1", "stock": "sku"}


def set_keys(spec: Path, keys: Mapping[str, str]) -> None:
    """Set each table's ``key: []`` of a drafted spec, tables in the draft's (sorted) order."""
    text = spec.read_text(encoding="utf-8")
    for table in sorted(keys):
        assert f"  {table}:" in text
        text = text.replace("key: []", f"key: [{keys[table]}]", 1)
    spec.write_text(text, encoding="utf-8")
