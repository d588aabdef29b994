-- Scheduled flights and on-time departures per scheduled local hour and the origin's
-- weather in that hour (joined on the UTC hour, which daylight saving cannot repeat).
-- The first matching condition wins: low_visibility (visib < 1 mile), precipitation
-- (precip > 0 inches), high_wind (wind_speed >= 25 mph), else clear; no_weather when the
-- hour has no observation. On time: departed less than 15 minutes late, so a cancelled
-- flight counts against the share.
WITH conditions AS (
  SELECT
    f.hour AS sched_hour,
    CASE
      WHEN w.origin IS NULL THEN 'no_weather'
      WHEN w.visib < 1 THEN 'low_visibility'
      WHEN w.precip > 0 THEN 'precipitation'
      WHEN w.wind_speed >= 25 THEN 'high_wind'
      ELSE 'clear'
    END AS weather_condition,
    f.dep_time,
    f.dep_delay
  FROM flights f
  LEFT JOIN weather w ON w.origin = f.origin AND w.time_hour = f.time_hour
)
SELECT
  sched_hour,
  weather_condition,
  CAST(count(*) AS BIGINT) AS flights,
  CAST(sum(CASE WHEN dep_time IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS cancelled_flights,
  CAST(sum(CASE WHEN dep_delay < 15 THEN 1 ELSE 0 END) AS BIGINT) AS ontime_flights,
  CAST(CAST(sum(CASE WHEN dep_delay < 15 THEN 1 ELSE 0 END) AS DECIMAL(20, 0)) / count(*)
       AS DECIMAL(5, 4)) AS ontime_share
FROM conditions
GROUP BY sched_hour, weather_condition
