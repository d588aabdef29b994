"""The plain-PySpark floor: the pipeline's work on one drop without its guarantees.

    spark-submit bench/baseline_spark.py --landing DIR --ds YYYY-MM-DD --out DIR

What a plain PySpark job would do with the same ``.tbl`` files: Spark's CSV reader with
the TPC-H schema parses and types them (a line that does not parse is dropped), the same
row-level expectations of the TPC-H spec filter the rows (``drop`` and ``fail``
rules; the order-date rule through a join with the drop's orders), one row per key is
kept, the eight silver tables are written as Parquet and the same two gold marts
(the spec's SQL files) are computed and written as Parquet. No Delta, no bronze,
no lineage, no quarantine, no ledger: what the pipeline's guarantees are measured against.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import baseline_parser, parent_rules, row_rules, table_files, tpch
from jobs.steps.gold import mart_sql


def main(argv: list[str]) -> int:
    args = baseline_parser("baseline_spark").parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.getOrCreate()
    catalog = tpch()
    tables = catalog.tables
    drop = args.landing / f"ds={args.ds}"
    silver = {}
    for name, table in tables.items():
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
    # The line-item rules that read its order, and the order's month both live in.
    orders = tables["orders"]
    silver["orders"] = silver["orders"].withColumn(
        "_order_month", F.expr(orders.partition_expr or "NULL"))
    parents = silver["orders"].select(
        F.col("o_orderkey").alias("l_orderkey"), "_order_month",
        F.struct(*[F.col(c) for c in orders.column_names]).alias("parent"))
    lineitem = silver["lineitem"].join(parents, "l_orderkey", "left")
    silver["lineitem"] = lineitem.where(
        " AND ".join(f"coalesce({e.condition}, false)" for e in parent_rules("lineitem"))
    ).select(*tables["lineitem"].column_names, "_order_month")

    for name, df in silver.items():
        df.write.mode("overwrite").parquet(str(args.out / "silver" / name))
    for name in silver:
        spark.read.parquet(str(args.out / "silver" / name)).createOrReplaceTempView(name)
    # The initial load holds one version of each customer, valid from the drop on.
    spark.table("customer").withColumn("valid_from", F.lit(args.ds).cast("date")) \
        .withColumn("valid_to", F.lit(None).cast("date")) \
        .createOrReplaceTempView("customer_history")
    marts = {name: spark.sql(mart_sql(catalog, name)) for name in catalog.marts}
    for name, df in marts.items():
        df.write.mode("overwrite").parquet(str(args.out / "gold" / name))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
