"""The plain-PySpark floor: the pipeline's work on one drop without its guarantees.

    spark-submit bench/baseline_spark.py --landing DIR --ds YYYY-MM-DD --out DIR

What a plain PySpark job would do with the same ``.tbl`` files: Spark's CSV reader with
the TPC-H schema parses and types them (a line that does not parse is dropped), the same
row-level expectations of :mod:`jobs.expectations` filter the rows (``drop`` and ``fail``
rules; the order-date rule through a join with the drop's orders), one row per key is
kept, the eight silver tables are written as Parquet and the same two gold marts
(:mod:`jobs.transforms.gold`) are computed and written as Parquet. No Delta, no bronze,
no lineage, no quarantine, no ledger: what the pipeline's guarantees are measured against.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import baseline_parser, order_rules, row_rules, table_files
from jobs.tpch import TABLES
from jobs.transforms.gold import daily_line_summary, revenue_by_nation


def main(argv: list[str]) -> int:
    args = baseline_parser("baseline_spark").parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.getOrCreate()
    drop = args.landing / f"ds={args.ds}"
    silver = {}
    for name, table in TABLES.items():
        files = [str(p) for p in table_files(drop, name)]
        if not files:
            continue
        # Every line ends in '|': one more, empty, column.
        schema = ", ".join(f"{c.name} {c.type}" for c in table.columns) + ", _end string"
        df = spark.read.csv(files, sep="|", schema=schema, mode="DROPMALFORMED",
                            dateFormat="yyyy-MM-dd")
        rules = [e.condition for e in row_rules(name)]
        rules += [f"{k} IS NOT NULL" for k in table.key]
        silver[name] = df.where(" AND ".join(f"coalesce({r}, false)" for r in rules)) \
            .select(*table.column_names).dropDuplicates(list(table.key))
    # The line-item rule that needs its order's date.
    order_dates = silver["orders"].select(F.col("o_orderkey").alias("l_orderkey"),
                                          F.col("o_orderdate").alias("_o_orderdate"))
    lineitem = silver["lineitem"].join(order_dates, "l_orderkey", "left")
    silver["lineitem"] = lineitem.where(
        " AND ".join(f"coalesce({e.condition}, false)" for e in order_rules())
    ).select(*TABLES["lineitem"].column_names)

    for name, df in silver.items():
        df.write.mode("overwrite").parquet(str(args.out / "silver" / name))
    read = {n: spark.read.parquet(str(args.out / "silver" / n)) for n in silver}
    customer = read["customer"].withColumn("valid_from", F.lit(args.ds).cast("date")) \
        .withColumn("valid_to", F.lit(None).cast("date"))
    marts = {
        "daily_line_summary": daily_line_summary(read["lineitem"]),
        "revenue_by_nation": revenue_by_nation(read["orders"], read["lineitem"], customer,
                                               read["nation"]),
    }
    for name, df in marts.items():
        df.write.mode("overwrite").parquet(str(args.out / "gold" / name))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
