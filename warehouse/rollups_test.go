package warehouse

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
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

// BenchmarkReplaceBuckets: one refresh of a rollup's table under load, the
// minute's 3,000 groups replaced (time, 2 dimensions, 3 metrics, a sketch).
// go test ./warehouse -run - -bench ReplaceBuckets
func BenchmarkReplaceBuckets(b *testing.B) {
	dir := b.TempDir()
	w, err := Open(context.Background(), filepath.Join(dir, "wh.duckdb"), filepath.Join(dir, "lake"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cols := []TableColumn{{"time", "TIMESTAMP"}, {"country", "VARCHAR"}, {"page_url", "VARCHAR"}, {"views", "BIGINT"}, {"visitors", "BIGINT"}, {"load", "DOUBLE"}, {"visitors_sketch", "BLOB"}}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var rows [][]any
	for i := range 3000 {
		rows = append(rows, []any{at, fmt.Sprintf("c%d", i%30), fmt.Sprintf("/p%d", i), int64(i), int64(i / 2), float64(i) / 3, make([]byte, 200)})
	}
	for b.Loop() {
		if err := w.ReplaceBuckets(context.Background(), "r", cols, []time.Time{at}, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/refresh")
}

// A refresh is one transaction: a reader sees the buckets' rows before or
// after it, never some deleted and others not yet in; a refresh that fails
// half way (a value of the wrong type) changes nothing.
func TestReplaceBucketsAtomic(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	w, err := Open(ctx, filepath.Join(dir, "wh.duckdb"), filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cols := []TableColumn{{"time", "TIMESTAMP"}, {"page_url", "VARCHAR"}, {"views", "BIGINT"}, {"visitors_sketch", "BLOB"}}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	rowsOf := func(v int64) [][]any {
		var rows [][]any
		for i := range 2000 {
			rows = append(rows, []any{at, fmt.Sprintf("/p%d", i), v, []byte{1, 2}})
		}
		return rows
	}
	if err := w.ReplaceBuckets(ctx, "r", cols, []time.Time{at}, rowsOf(1)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	seen := make(chan string, 100000)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := w.Query(ctx, "SELECT count(*), sum(views) FROM r", 0)
			if err != nil {
				seen <- err.Error()
				continue
			}
			seen <- fmt.Sprint(res.Rows)
		}
	})
	for i := range 20 {
		if err := w.ReplaceBuckets(ctx, "r", cols, []time.Time{at}, rowsOf(int64(1+i%2))); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(seen)
	n := 0
	for s := range seen {
		n++
		if s != "[[2000 2000]]" && s != "[[2000 4000]]" {
			t.Fatalf("a reader saw %s during a refresh", s)
		}
	}
	t.Logf("%d reads during 20 refreshes", n)
	bad := rowsOf(7)
	bad[1500][2] = "many"
	if err := w.ReplaceBuckets(ctx, "r", cols, []time.Time{at}, bad); err == nil {
		t.Fatal("a text value in a BIGINT column was taken")
	}
	if res, err := w.Query(ctx, "SELECT count(*), sum(views) FROM r", 0); err != nil || fmt.Sprint(res.Rows) != "[[2000 4000]]" { // the last refresh's
		t.Fatalf("after a failed refresh: %v %v", res, err)
	}
}
