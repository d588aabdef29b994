-- Revenue and orders per order date and the customer's nation as of the order date.
-- The earliest known version of a customer also covers every date before it: the initial
-- load describes customers whose history started before the lake did.
WITH versions AS (
  SELECT
    c_custkey,
    c_nationkey,
    CASE WHEN row_number() OVER (PARTITION BY c_custkey ORDER BY valid_from) = 1
         THEN DATE '0001-01-01' ELSE valid_from END AS valid_from,
    valid_to
  FROM customer_history
)
SELECT
  o.o_orderdate AS order_date,
  n.n_name,
  CAST(sum(l.l_extendedprice * (1 - l.l_discount)) AS DECIMAL(38, 4)) AS revenue,
  CAST(count(DISTINCT o.o_orderkey) AS BIGINT) AS order_count
FROM orders o
JOIN lineitem l ON l.l_orderkey = o.o_orderkey AND l._order_month = o._order_month
JOIN versions c
  ON c.c_custkey = o.o_custkey
  AND o.o_orderdate >= c.valid_from
  AND (c.valid_to IS NULL OR o.o_orderdate < c.valid_to)
JOIN nation n ON n.n_nationkey = c.c_nationkey
GROUP BY o.o_orderdate, n.n_name
