package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/warehouse"
)

// With warehouse.url: postgres://… the lake is loaded into PostgreSQL and
// the SQL API answers from there: the same queries give the same answers as
// DuckDB reading the lake, before and after a new column and a widened one,
// and loads neither double nor lose rows.
func TestPostgresAnswersLikeDuckDB(t *testing.T) {
	url := pgtest.URL(t)
	data := t.TempDir()
	n := startNode(t, data, func(cfg *config.Config) { cfg.Warehouse.URL = url })
	defer n.Stop()
	api := n.APIURL()
	ctx := context.Background()

	// The built-in tables exist, empty, before anything arrives.
	waitFor(t, api, "SELECT count(*) FROM events", "[[0]]")
	if res := query(t, api, "SELECT count(*) FROM bad"); res.Columns[0].Type != "int8" {
		t.Errorf("the API does not answer from PostgreSQL: %+v", res.Columns)
	}

	// Two hours of events, so two partitions, with typed fields of their
	// own (integer, double, boolean, nested object), nulls, non-ASCII
	// text; and two bad rows.
	var body bytes.Buffer
	const total = 2000
	for i := range total {
		ev := map[string]any{
			"event_id": fmt.Sprintf("ev-%d", i), "event": []string{"page_view", "add_to_cart", "purchase"}[i%3],
			"event_time": time.Date(2026, 11, 25, 9+i%2, i%60, i%60, i*1000, time.UTC).Format(time.RFC3339Nano),
			"user_id":    fmt.Sprintf("u%d", i%37), "page_url": fmt.Sprintf("https://shop.example/p/%d?q=ü", i%11),
			"quantity": i % 7, "vip": i%5 == 0, "cart": map[string]any{"items": []int{i % 3, i % 4}},
		}
		if i%3 == 2 {
			ev["revenue"] = float64(i%1000)/8 + 0.125
		}
		json.NewEncoder(&body).Encode(ev)
	}
	body.WriteString(`{"event":"bad","quantity":"many"}` + "\n" + `42` + "\n")
	if code, msg := post(t, n.CollectorURL(), "application/x-ndjson", body.Bytes()); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", total))
	waitFor(t, api, "SELECT count(*) FROM bad", "[[2]]")

	// DuckDB over the same lake, in a file of its own.
	duck, err := warehouse.Open(ctx, filepath.Join(t.TempDir(), "check.duckdb"), filepath.Join(data, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	queries := []string{
		`SELECT count(*), count(DISTINCT event_id), sum(revenue), sum(quantity), count(*) FILTER (WHERE vip), count(revenue) FROM events`,
		`SELECT dt, hr, event, count(*), sum(revenue), avg(quantity), min(event_time), max(event_time) FROM events GROUP BY dt, hr, event ORDER BY dt, hr, event`,
		`SELECT user_id, count(*), sum(quantity) FROM events WHERE page_url LIKE '%ü' GROUP BY user_id ORDER BY user_id LIMIT 5`,
		`SELECT vip, cart->'items'->>1 AS item2, count(*) FROM events GROUP BY vip, item2 ORDER BY vip, item2`,
		`SELECT event_id, event_time, page_url, quantity, vip, revenue, cart FROM events ORDER BY event_id LIMIT 20`,
		`SELECT type, count(*) FROM bad GROUP BY type ORDER BY type`,
	}
	compare := func(queries []string) {
		t.Helper()
		if err := duck.RefreshAll(ctx); err != nil {
			t.Fatal(err)
		}
		for _, q := range queries {
			want, err := duck.Query(ctx, q, 0)
			if err != nil {
				t.Fatalf("DuckDB: %s: %v", q, err)
			}
			got := query(t, api, q)
			if g, w := normalized(got.Rows), normalized(want.Rows); g != w || len(want.Rows) == 0 {
				t.Errorf("%s\n PostgreSQL:\n%s DuckDB:\n%s", q, g, w)
			}
		}
	}
	compare(queries)
	// And the totals are what was sent, not only equal to each other.
	if got := fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT dt::text || hr::text) FROM events").Rows); got != fmt.Sprintf("[[%d 2]]", total) {
		t.Errorf("PostgreSQL holds %s", got)
	}

	// Later events: a new column (coupon), quantity widened to DOUBLE, an
	// hour already loaded (reloaded, not doubled) and a new one.
	body.Reset()
	for i := range 30 {
		ev := map[string]any{
			"event_id": fmt.Sprintf("late-%d", i), "event": "purchase", "quantity": float64(i) + 0.5, "coupon": []string{"XMAS", "VIP"}[i%2],
			"event_time": time.Date(2026, 11, 25, 10+i%2, 30, 0, 0, time.UTC).Format(time.RFC3339),
		}
		json.NewEncoder(&body).Encode(ev)
	}
	if code, msg := post(t, n.CollectorURL(), "application/x-ndjson", body.Bytes()); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*), count(coupon) FROM events", fmt.Sprintf("[[%d 30]]", total+30))
	compare(append(queries,
		`SELECT coupon, count(*), sum(quantity), min(quantity) FROM events GROUP BY coupon ORDER BY coupon`,
		`SELECT hr, count(*), sum(quantity) FROM events GROUP BY hr ORDER BY hr`,
	))
	if res := query(t, api, "SELECT pg_typeof(quantity)::text, pg_typeof(coupon)::text FROM events LIMIT 1"); fmt.Sprint(res.Rows) != "[[double precision text]]" {
		t.Errorf("PostgreSQL column types: %v", res.Rows)
	}

	// Idempotency: a second loader that syncs again finds nothing to do; a
	// partition whose record is lost is reloaded, replacing its rows.
	pg, err := warehouse.OpenPostgres(ctx, url, warehouse.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	counts := "SELECT hr, count(*), count(DISTINCT event_id), sum(quantity) FROM events GROUP BY hr ORDER BY hr"
	before := normalized(query(t, api, counts).Rows)
	for range 2 {
		if st, err := pg.Sync(ctx, duck, "events"); err != nil || st != (warehouse.SyncStats{}) {
			t.Errorf("sync of a loaded table: %+v %v", st, err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM _sluice_loads WHERE table_name = 'events' AND hr = 10"); err != nil {
		t.Fatal(err)
	}
	if st, err := pg.Sync(ctx, duck, "events"); err != nil || st.Loaded != 1 || st.Rows != int64(total/2+15) {
		t.Errorf("reload of hour 10: %+v %v", st, err)
	}
	if after := normalized(query(t, api, counts).Rows); after != before {
		t.Errorf("a reload changed the table:\nbefore\n%safter\n%s", before, after)
	}
}

// normalized prints rows with numbers as numbers whichever JSON type
// carries them (DuckDB's HUGEINT sums and PostgreSQL's integral numerics
// are decimal text, other numbers floats) and everything else as it is.
func normalized(rows [][]any) string {
	var b strings.Builder
	for _, r := range rows {
		for _, v := range r {
			s := fmt.Sprint(v)
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				s = strconv.FormatFloat(f, 'g', 12, 64)
			}
			b.WriteString(s)
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	return b.String()
}
