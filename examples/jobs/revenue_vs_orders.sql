-- One day of the shop's tracked revenue (daily_revenue, from the events)
-- next to its orders in the database (the lake table orders, copied by
-- extract_orders). orders holds every version of an order the extract saw:
-- the latest is the one with the greatest updated_at. Runs on DuckDB and
-- PostgreSQL.
WITH latest AS (
  SELECT *
  FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY updated_at DESC, _extracted_at DESC) AS version
        FROM orders) AS o
  WHERE version = 1
),
day_orders AS (
  SELECT count(*) AS orders,
         CAST(coalesce(sum(amount), 0) AS DOUBLE PRECISION) AS order_amount
  FROM latest
  WHERE status <> 'cancelled'
    AND created_at >= TIMESTAMP '{{.date}}'
    AND created_at < TIMESTAMP '{{.date}}' + INTERVAL '1 day'
),
day_revenue AS (
  SELECT CAST(coalesce(sum(purchases), 0) AS BIGINT) AS purchases,
         CAST(coalesce(sum(revenue), 0) AS DOUBLE PRECISION) AS revenue
  FROM daily_revenue
  WHERE dt = DATE '{{.date}}'
)
SELECT DATE '{{.date}}' AS dt,
       r.purchases,
       r.revenue,
       o.orders,
       o.order_amount,
       o.order_amount - r.revenue AS untracked
FROM day_revenue AS r, day_orders AS o
