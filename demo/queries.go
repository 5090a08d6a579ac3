package demo

// Query is an example SQL query over the demo's data, to show the user.
type Query struct {
	Title string
	SQL   string
}

// Queries are example queries to print once the demo runs. They read the
// `events` table (DuckDB, the default warehouse) and use only the columns the
// demo sends, so they answer from the first minute of traffic on. Times are
// UTC.
var Queries = []Query{
	{
		Title: "Top pages",
		SQL: `SELECT regexp_replace(page_url, '\?.*$', '') AS page,
       count(*) AS views,
       count(DISTINCT anonymous_id) AS visitors
FROM events
WHERE event = 'page_view'
GROUP BY page
ORDER BY views DESC
LIMIT 10`,
	},
	{
		Title: "Revenue per country per day",
		SQL: `SELECT CAST(event_time AS DATE) AS day,
       country,
       count(*) AS orders,
       round(sum(revenue), 2) AS revenue
FROM events
WHERE event = 'purchase'
GROUP BY day, country
ORDER BY day DESC, revenue DESC`,
	},
	{
		Title: "Conversion funnel (sessions)",
		SQL: `SELECT count(DISTINCT session_id) AS sessions,
       count(DISTINCT session_id) FILTER (WHERE event = 'product_view') AS viewed_product,
       count(DISTINCT session_id) FILTER (WHERE event = 'add_to_cart') AS added_to_cart,
       count(DISTINCT session_id) FILTER (WHERE event = 'begin_checkout') AS began_checkout,
       count(DISTINCT session_id) FILTER (WHERE event = 'purchase') AS purchased,
       round(100.0 * count(DISTINCT session_id) FILTER (WHERE event = 'purchase')
             / count(DISTINCT session_id), 2) AS conversion_pct
FROM events`,
	},
	{
		Title: "Hourly rhythm (UTC)",
		SQL: `SELECT extract(hour FROM event_time) AS hour,
       count(*) FILTER (WHERE event = 'page_view') AS page_views,
       count(DISTINCT session_id) AS sessions
FROM events
GROUP BY hour
ORDER BY hour`,
	},
	{
		Title: "Best-selling products",
		SQL: `SELECT product_name,
       category,
       sum(quantity) AS units,
       round(sum(price * quantity), 2) AS revenue
FROM events
WHERE event = 'purchase_item'
GROUP BY product_name, category
ORDER BY revenue DESC
LIMIT 10`,
	},
	{
		Title: "Sessions by traffic source",
		SQL: `WITH landings AS (
  SELECT page_url, referrer,
         row_number() OVER (PARTITION BY session_id ORDER BY event_time) AS n
  FROM events
  WHERE event = 'page_view'
)
SELECT CASE
         WHEN page_url LIKE '%utm_source=%'
           THEN 'campaign: ' || regexp_extract(page_url, 'utm_source=([^&]+)', 1)
         WHEN referrer IS NULL THEN 'direct'
         ELSE regexp_extract(referrer, '^https?://([^/]+)', 1)
       END AS source,
       count(*) AS sessions
FROM landings
WHERE n = 1
GROUP BY source
ORDER BY sessions DESC`,
	},
	{
		Title: "Events per minute, last hour",
		SQL: `SELECT date_trunc('minute', event_time) AS minute,
       count(*) AS events,
       count(DISTINCT session_id) AS sessions
FROM events
WHERE event_time >= (SELECT max(event_time) FROM events) - INTERVAL 1 HOUR
GROUP BY minute
ORDER BY minute`,
	},
}
