-- TPC-H Q1's measures per ship date, in exact DECIMAL scales: price * (1 - discount) has
-- 4 decimals and price * (1 - discount) * (1 + tax) has 6.
SELECT
  l_shipdate AS ship_date,
  l_returnflag,
  l_linestatus,
  CAST(sum(l_quantity) AS DECIMAL(38, 2)) AS sum_qty,
  CAST(sum(l_extendedprice) AS DECIMAL(38, 2)) AS sum_base_price,
  CAST(sum(l_extendedprice * (1 - l_discount)) AS DECIMAL(38, 4)) AS sum_disc_price,
  CAST(sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS DECIMAL(38, 6)) AS sum_charge,
  CAST(sum(l_discount) AS DECIMAL(38, 2)) AS sum_discount,
  CAST(count(*) AS BIGINT) AS count_order
FROM lineitem
GROUP BY l_shipdate, l_returnflag, l_linestatus
