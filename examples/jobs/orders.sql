-- A demo orders table for examples/jobs: 2,000 orders over the 14 days
-- before today, some cancelled later. Run it again to add and change some.
CREATE TABLE IF NOT EXISTS orders (
  id         bigserial PRIMARY KEY,
  customer   text NOT NULL,
  country    text NOT NULL,
  amount     numeric(10, 2) NOT NULL,
  status     text NOT NULL DEFAULT 'paid',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_updated_at ON orders (updated_at, id);

INSERT INTO orders (customer, country, amount, created_at, updated_at)
SELECT 'customer ' || (random() * 500)::int,
       (ARRAY['DE', 'FR', 'US', 'GB', 'JP'])[1 + (random() * 4)::int],
       round((5 + random() * 195)::numeric, 2),
       t, t
FROM (SELECT date_trunc('day', now()) - INTERVAL '14 days' + random() * INTERVAL '14 days' AS t
      FROM generate_series(1, 2000)) AS s;

UPDATE orders SET status = 'cancelled', updated_at = now()
WHERE id IN (SELECT id FROM orders WHERE status = 'paid' ORDER BY random() LIMIT 40);
