-- Departures per flight date, carrier and origin. A flight without a departure time was
-- cancelled; delay measures cover departed flights only. Means and shares are exact
-- DECIMAL quotients rounded half away from zero (a CAST's rounding), so any engine with
-- exact decimals reproduces them digit for digit.
SELECT
  make_date(f.year, f.month, f.day) AS flight_date,
  f.carrier,
  a.name AS airline_name,
  f.origin,
  CAST(count(*) AS BIGINT) AS flights,
  CAST(sum(CASE WHEN f.dep_time IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS cancelled_flights,
  CAST(sum(f.dep_delay) AS BIGINT) AS dep_delay_minutes,
  CAST(CAST(sum(f.dep_delay) AS DECIMAL(20, 0)) / NULLIF(count(f.dep_delay), 0)
       AS DECIMAL(10, 2)) AS avg_dep_delay_minutes,
  CAST(sum(CASE WHEN f.dep_delay >= 15 THEN 1 ELSE 0 END) AS BIGINT) AS delayed_15_flights,
  CAST(CAST(sum(CASE WHEN f.dep_delay >= 15 THEN 1 ELSE 0 END) AS DECIMAL(20, 0))
       / NULLIF(count(f.dep_delay), 0) AS DECIMAL(5, 4)) AS delayed_15_share
FROM flights f
LEFT JOIN airlines a ON a.carrier = f.carrier
GROUP BY make_date(f.year, f.month, f.day), f.carrier, a.name, f.origin
