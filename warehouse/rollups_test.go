package warehouse

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A rollup's table in PostgreSQL holds what its table in DuckDB holds,
// after each replacement of buckets and after its columns change; a table
// of the same name that is not the rollup's is left alone.
func TestPostgresReplaceBuckets(t *testing.T) {
	l := newTestLake(t, PostgresOptions{})
	ctx := context.Background()
	cols := []TableColumn{{"time", "TIMESTAMP"}, {"country", "VARCHAR"}, {"views", "BIGINT"}, {"load_p95", "DOUBLE"}, {"visitors_sketch", "BLOB"}}
	b1 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	b2 := b1.Add(time.Minute)
	replace := func(cols []TableColumn, buckets []time.Time, rows [][]any) {
		t.Helper()
		if err := l.w.ReplaceBuckets(ctx, "pageviews_1m", cols, buckets, rows); err != nil {
			t.Fatal(err)
		}
		if err := l.pg.ReplaceBuckets(ctx, "pageviews_1m", cols, buckets, rows); err != nil {
			t.Fatal(err)
		}
	}
	same := func(q string, want int) {
		t.Helper()
		d, err := l.w.Query(ctx, q, 0)
		if err != nil {
			t.Fatalf("DuckDB: %s: %v", q, err)
		}
		p, err := l.pg.Query(ctx, q, 0)
		if err != nil {
			t.Fatalf("PostgreSQL: %s: %v", q, err)
		}
		if g, w := fmt.Sprint(p.Rows), fmt.Sprint(d.Rows); g != w || len(d.Rows) != want {
			t.Errorf("%s\n PostgreSQL: %s\n DuckDB:     %s (want %d rows)", q, g, w, want)
		}
	}
	const all = "SELECT time, country, views, load_p95, visitors_sketch FROM pageviews_1m ORDER BY time, country"
	replace(cols, []time.Time{b1, b2}, [][]any{
		{b1, "DE", int64(3), 120.5, []byte{1, 0, 255, 7}},
		{b1, "FR", int64(1), nil, []byte("sketch")},
		{b2, "", int64(2), 99.0, []byte{}},
	})
	same(all, 3)
	// Bucket b1 again: its rows are replaced, b2's kept.
	replace(cols, []time.Time{b1}, [][]any{{b1, "DE", int64(5), 130.0, []byte{2}}})
	same(all, 2)
	same("SELECT sum(views), count(*) FROM pageviews_1m", 1)
	if res, err := l.pg.Query(ctx, "SELECT pg_typeof(time)::text, pg_typeof(country)::text, pg_typeof(views)::text, pg_typeof(load_p95)::text, pg_typeof(visitors_sketch)::text FROM pageviews_1m LIMIT 1", 0); err != nil ||
		fmt.Sprint(res.Rows) != "[[timestamp without time zone text bigint double precision bytea]]" {
		t.Errorf("PostgreSQL column types: %v %v", res, err)
	}
	// The rollup's definition changed: a new metric, the table anew.
	cols2 := append(cols[:4:4], TableColumn{"revenue", "DOUBLE"}, cols[4])
	replace(cols2, []time.Time{b2}, [][]any{{b2, "US", int64(1), 10.0, 19.99, []byte{3}}})
	same("SELECT time, country, views, revenue, visitors_sketch FROM pageviews_1m ORDER BY time", 1)

	// A table of PostgreSQL's that is not the rollup's.
	conn, err := l.pg.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "CREATE TABLE orders_1m (id bigint); INSERT INTO orders_1m VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	err = l.pg.ReplaceBuckets(ctx, "orders_1m", cols, []time.Time{b1}, [][]any{{b1, "DE", int64(1), 1.0, []byte{1}}})
	if err == nil || !strings.Contains(err.Error(), `PostgreSQL has a table "orders_1m" that is not rollup orders_1m's`) {
		t.Errorf("a table that is not the rollup's: %v", err)
	}
	if res, err := l.pg.Query(ctx, "SELECT * FROM orders_1m", 0); err != nil || fmt.Sprint(res.Rows) != "[[42]]" {
		t.Errorf("the table that is not the rollup's holds %v %v", res, err)
	}
}
