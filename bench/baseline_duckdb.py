"""The DuckDB baseline: the same work as the plain-PySpark floor, on one machine.

    python bench/baseline_duckdb.py --landing DIR --ds YYYY-MM-DD --out DIR [--threads N]

Reads the drop's ``.tbl`` files as text columns, types them with the pipeline's rules (the
same patterns, NULL where a field does not parse), applies the same row-level expectations
(the SQL conditions of the TPC-H spec, which DuckDB runs unchanged), keeps one
row per key, writes the eight silver tables as Parquet and computes the two gold marts
with the same definitions, written as Parquet.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import baseline_parser, parent_rules, row_rules, table_files, tpch
from jobs.spec.model import is_decimal
from jobs.sql import identifier

# The pipeline's own field patterns (jobs/transforms/silver.py).
from jobs.transforms.silver import _DATE_RE, _INT_RE, _decimal_re


def _typed(name: str, typ: str) -> str:
    col = identifier(name, known=False)
    dec = is_decimal(typ)
    pattern = {"bigint": _INT_RE, "int": _INT_RE, "date": _DATE_RE}.get(
        typ, _decimal_re(*dec) if dec else None)
    if pattern is None:
        return col
    return f"CASE WHEN regexp_full_match({col}, '{pattern}') THEN TRY_CAST({col} AS {typ}) END"


def main(argv: list[str]) -> int:
    parser = baseline_parser("baseline_duckdb")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)

    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    drop = args.landing / f"ds={args.ds}"
    for name, table in tpch().tables.items():
        files = [str(p) for p in table_files(drop, name)]
        if not files:
            continue
        # Names are validated identifiers; the file names go in as a query parameter.
        raw_cols = {identifier(c.name, known=False): "VARCHAR" for c in table.columns}
        raw = (f"read_csv($files, delim='|', header=false, quote='', escape='', "
               f"columns={raw_cols | {'_end': 'VARCHAR'}!r}, strict_mode=false, "
               "null_padding=true)")
        typed = ", ".join(f"{_typed(c.name, c.type)} AS {identifier(c.name, known=False)}"
                          for c in table.columns)
        rules = row_rules(name)
        key_ok = " AND ".join(f"{identifier(k, known=False)} IS NOT NULL" for k in table.key)
        cond = " AND ".join([key_ok, *(f"coalesce({e.condition}, false)" for e in rules)])
        keys = ", ".join(identifier(k, known=False) for k in table.key)
        con.execute(f"CREATE TABLE {identifier(name, known=False)} AS "
                    f"SELECT * FROM (SELECT {typed} FROM {raw}) WHERE {cond} "
                    f"QUALIFY row_number() OVER (PARTITION BY {keys}) = 1", {"files": files})
    # The line-item rules that read their order see it as the struct ``parent``.
    con.execute(
        "CREATE OR REPLACE TABLE lineitem AS SELECT l.* FROM lineitem l LEFT JOIN "
        "(SELECT o_orderkey, struct_pack(o_orderdate := o_orderdate) AS parent FROM orders) o "
        "ON l.l_orderkey = o.o_orderkey WHERE "
        + " AND ".join(f"coalesce({e.condition}, false)" for e in parent_rules("lineitem")))
    silver = args.out / "silver"
    for name in tpch().tables:
        (silver / name).mkdir(parents=True, exist_ok=True)
        con.table(identifier(name, known=False)).write_parquet(str(silver / name / "data.parquet"))
    gold = args.out / "gold"
    gold.mkdir(parents=True, exist_ok=True)
    con.sql("""
        SELECT l_shipdate AS ship_date, l_returnflag, l_linestatus,
               CAST(sum(l_quantity) AS DECIMAL(38,2)) AS sum_qty,
               CAST(sum(l_extendedprice) AS DECIMAL(38,2)) AS sum_base_price,
               CAST(sum(l_extendedprice * (1 - l_discount)) AS DECIMAL(38,4)) AS sum_disc_price,
               CAST(sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS DECIMAL(38,6))
                   AS sum_charge,
               CAST(sum(l_discount) AS DECIMAL(38,2)) AS sum_discount,
               count(*) AS count_order
        FROM lineitem GROUP BY ALL""").write_parquet(str(gold / "daily_line_summary.parquet"))
    # Customers are one version each here (an initial load), in effect for every date.
    con.sql("""
        SELECT o_orderdate AS order_date, n_name,
               CAST(sum(l_extendedprice * (1 - l_discount)) AS DECIMAL(38,4)) AS revenue,
               count(DISTINCT o_orderkey) AS order_count
        FROM orders JOIN lineitem ON l_orderkey = o_orderkey
        JOIN customer ON c_custkey = o_custkey JOIN nation ON n_nationkey = c_nationkey
        GROUP BY ALL""").write_parquet(str(gold / "revenue_by_nation.parquet"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
