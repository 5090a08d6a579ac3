package server

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// What fan-out handling costs at run time, on DuckDB: revenue of orders and
// quantity of their items by country, 200,000 orders of 20,000 users with
// 500,000 items, as the explore compiles it (two steps), numbered with
// ROW_NUMBER() as the compiler does when several views are repeated, and as
// a person would write it (each side aggregated, then joined).
func BenchmarkExploreRun(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "warehouse.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range []string{
		"CREATE TABLE users AS SELECT i AS id, ['DE', 'FR', 'US', 'JP', 'BR'][i % 5 + 1] AS country, TIMESTAMP '2025-01-01' AS signed_up_at FROM range(20000) t(i)",
		"CREATE TABLE orders AS SELECT i AS id, i % 20000 AS user_id, ['complete', 'pending'][i % 2 + 1] AS status, CAST((i * 37) % 50000 AS DECIMAL(10, 2)) / 100 AS amount, " +
			"TIMESTAMP '2026-01-01' + to_minutes(i) AS created_at FROM range(200000) t(i)",
		"CREATE TABLE order_items AS SELECT i AS id, (i * 7) % 200000 AS order_id, ['apron', 'bowl', 'cup'][i % 3 + 1] AS product, i % 5 + 1 AS quantity FROM range(500000) t(i)",
	} {
		if _, err := db.Exec(s); err != nil {
			b.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
	wh, err := warehouse.Open(context.Background(), path, filepath.Join(dir, "lake"))
	if err != nil {
		b.Fatal(err)
	}
	defer wh.Close()
	m, err := semantic.Load(shopModels)
	if err != nil {
		b.Fatal(err)
	}
	c, err := m.Compile(semantic.Query{Explore: "orders", Fields: []string{"users.country", "orders.total_revenue", "orders.count", "order_items.total_quantity"}}, semantic.DuckDB)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, sql string }{
		{"explore", c.SQL},
		{"row_number", `WITH "rows" AS (SELECT "users"."country" AS "d0", "orders"."amount" AS "m0", "orders"."id" AS "m1", "order_items"."quantity" AS "m2",
			ROW_NUMBER() OVER (PARTITION BY "users"."country", "orders"."id") AS "first_orders"
			FROM "orders" AS "orders" LEFT JOIN "users" AS "users" ON "orders"."user_id" = "users"."id" LEFT JOIN "order_items" AS "order_items" ON "orders"."id" = "order_items"."order_id")
			SELECT "d0", SUM(CASE WHEN "first_orders" = 1 THEN "m0" END), COUNT(CASE WHEN "first_orders" = 1 THEN "m1" END), SUM("m2") FROM "rows" GROUP BY 1 ORDER BY 2 DESC`},
		{"by_hand", `WITH o AS (SELECT u.country, sum(o.amount) AS revenue, count(*) AS orders FROM orders o LEFT JOIN users u ON o.user_id = u.id GROUP BY 1),
			i AS (SELECT u.country, sum(i.quantity) AS quantity FROM orders o LEFT JOIN users u ON o.user_id = u.id LEFT JOIN order_items i ON i.order_id = o.id GROUP BY 1)
			SELECT o.country, revenue, orders, quantity FROM o JOIN i ON o.country IS NOT DISTINCT FROM i.country ORDER BY 2 DESC`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := wh.Query(context.Background(), bc.sql, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
