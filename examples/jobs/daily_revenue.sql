-- The purchases of one day, per country: daily_revenue(dt DATE, country
-- VARCHAR, purchases BIGINT, revenue DOUBLE). Runs on DuckDB and PostgreSQL.
SELECT DATE '{{.date}}' AS dt,
       country,
       count(*) AS purchases,
       CAST(sum(revenue) AS DOUBLE PRECISION) AS revenue
FROM events
WHERE event = 'purchase'
  AND event_time >= TIMESTAMP '{{.date}}'
  AND event_time < TIMESTAMP '{{.date}}' + INTERVAL '1 day'
GROUP BY country
