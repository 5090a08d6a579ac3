package node_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/server"
)

// The jobs example (examples/jobs) on a real node, with its orders in
// PostgreSQL, on either warehouse: the DAG backfilled over 14 days, a
// second backfill runs nothing, and a day of daily_revenue deleted runs
// that day of it and of revenue_vs_orders again, nothing else (issue 6,
// acceptance 1).
func TestJobsExample(t *testing.T) {
	t.Run("duckdb", func(t *testing.T) { testJobsExample(t, false) })
	t.Run("postgres", func(t *testing.T) { testJobsExample(t, true) })
}

func testJobsExample(t *testing.T, pgWarehouse bool) {
	url := pgtest.URL(t)
	t.Setenv("ORDERS_DB", url)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The demo table as the example makes it, then orders of known days.
	demoSQL, err := os.ReadFile("../examples/jobs/orders.sql")
	if err != nil {
		t.Fatal(err)
	}
	pgExec(t, conn, string(demoSQL), "TRUNCATE orders")
	type dayOrders struct {
		n      int
		amount float64
	}
	want := map[int]dayOrders{}
	id := 0
	for day := 1; day <= 14; day++ {
		for i := range day + 3 {
			id++
			at := time.Date(2026, 11, day, 8+i%12, i, 0, 0, time.UTC)
			status, amount := "paid", float64(10*day)+float64(i)+0.5
			if i == 2 {
				status = "cancelled"
			} else {
				d := want[day]
				d.n++
				d.amount += amount
				want[day] = d
			}
			pgExec(t, conn, fmt.Sprintf(`INSERT INTO orders (id, customer, country, amount, status, created_at, updated_at)
				VALUES (%d, 'c%d', 'DE', %.2f, '%s', '%s', '%s')`, id, id, amount, status, at.Format(time.RFC3339), at.Add(time.Hour).Format(time.RFC3339)))
		}
	}

	dataDir := t.TempDir()
	cfg, err := config.Load("../examples/jobs/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Jobs["extract_orders"].Extract.From; got != url {
		t.Fatalf("extract_orders reads %s, want ORDERS_DB", got)
	}
	// 14 days of purchases (and page views, which do not count).
	var b strings.Builder
	ev := 0
	for day := 1; day <= 14; day++ {
		for i := range 24 {
			ev++
			at := time.Date(2026, 11, day, i, 15, 0, 0, time.UTC)
			kind := "purchase"
			if i%4 == 3 {
				kind = "page_view"
			}
			fmt.Fprintf(&b, `{"event_id":"e%d","event":%q,"event_time":%q,"country":%q,"revenue":%d.25}`+"\n",
				ev, kind, at.Format(time.RFC3339), []string{"DE", "FR", "US"}[i%3], 10+i)
		}
	}
	configure := []func(*config.Config){withConfigFile(t, "../examples/jobs/sluice.yaml")}
	whURL := ""
	if pgWarehouse {
		whURL = pgtest.URL(t)
		configure = append(configure, func(c *config.Config) { c.Warehouse.URL = whURL })
	}
	n := startNode(t, dataDir, configure...)
	api := n.APIURL()
	c := &server.Client{URL: api}
	if code, msg := post(t, n.CollectorURL(), "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", ev))

	began := time.Now()
	if sum := backfill(t, c, "revenue_vs_orders", "2026-11-01", "2026-11-14"); sum.Done != 14 || sum.Failed != 0 {
		t.Fatalf("backfill: %+v", sum)
	}
	t.Logf("the example's DAG over 14 days in %s", time.Since(began).Round(time.Millisecond))
	runs := func() string {
		return fmt.Sprintf("daily_revenue %d, extract_orders %d, revenue_vs_orders %d",
			runCount(t, c, "daily_revenue"), runCount(t, c, "extract_orders"), runCount(t, c, "revenue_vs_orders"))
	}
	if got := runs(); got != "daily_revenue 14, extract_orders 14, revenue_vs_orders 14" {
		t.Fatalf("runs: %s", got)
	}
	// daily_revenue(dt DATE, country VARCHAR, purchases BIGINT, revenue DOUBLE).
	wantCols := "[[dt DATE] [country VARCHAR] [purchases BIGINT] [revenue DOUBLE]]"
	if pgWarehouse {
		wantCols = "[[dt date] [country text] [purchases bigint] [revenue double precision]]"
	}
	if got := fmt.Sprint(query(t, api, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'daily_revenue' AND table_schema = current_schema() ORDER BY ordinal_position").Rows); got != wantCols {
		t.Fatalf("daily_revenue's columns: %s", got)
	}
	wantRevenue := fmt.Sprint(query(t, api, "SELECT CAST(event_time AS DATE), country, count(*), sum(revenue) FROM events WHERE event = 'purchase' GROUP BY 1, 2 ORDER BY 1, 2").Rows)
	if got := fmt.Sprint(query(t, api, "SELECT * FROM daily_revenue ORDER BY 1, 2").Rows); got != wantRevenue {
		t.Fatalf("daily_revenue:\n%s\nwant\n%s", got, wantRevenue)
	}
	var wantRows []string
	for day := 1; day <= 14; day++ {
		revenue := 0.0
		for i := range 24 {
			if i%4 != 3 {
				revenue += float64(10+i) + 0.25
			}
		}
		wantRows = append(wantRows, fmt.Sprintf("[%d 18 %v %d %v]", day, revenue, want[day].n, want[day].amount))
	}
	if got := fmt.Sprint(query(t, api, "SELECT CAST(EXTRACT(day FROM dt) AS INTEGER), purchases, revenue, orders, order_amount FROM revenue_vs_orders ORDER BY dt").Rows); got != "["+strings.Join(wantRows, " ")+"]" {
		t.Fatalf("revenue_vs_orders:\n%s\nwant\n[%s]", got, strings.Join(wantRows, " "))
	}

	// Everything is complete: nothing runs.
	if sum := backfill(t, c, "revenue_vs_orders", "2026-11-01", "2026-11-14"); sum.Done != 14 || sum.Failed != 0 {
		t.Fatalf("second backfill: %+v", sum)
	}
	if got := runs(); got != "daily_revenue 14, extract_orders 14, revenue_vs_orders 14" {
		t.Fatalf("a second backfill ran something: %s", got)
	}

	// A day of daily_revenue deleted (sluice stopped, with the
	// warehouse's own client): that day of it, and of revenue_vs_orders,
	// run again.
	n.Stop()
	del := "DELETE FROM daily_revenue WHERE dt = DATE '2026-11-05'"
	if pgWarehouse {
		wh, err := pgx.Connect(ctx, whURL)
		if err != nil {
			t.Fatal(err)
		}
		pgExec(t, wh, del)
		wh.Close(ctx)
	} else {
		db, err := sql.Open("duckdb", filepath.Join(dataDir, "warehouse.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(del); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	n = startNode(t, dataDir, configure...)
	defer n.Stop()
	api = n.APIURL()
	c = &server.Client{URL: api}
	if sum := backfill(t, c, "revenue_vs_orders", "2026-11-01", "2026-11-14"); sum.Done != 14 || sum.Failed != 0 {
		t.Fatalf("backfill after the deletion: %+v", sum)
	}
	if got := runs(); got != "daily_revenue 15, extract_orders 14, revenue_vs_orders 15" {
		t.Fatalf("after deleting a day of daily_revenue: %s", got)
	}
	for _, job := range []string{"daily_revenue", "revenue_vs_orders"} {
		if r, _ := c.Runs(ctx, job, 1); r[0].Params["date"] != "2026-11-05" {
			t.Errorf("%s ran again for %s, want 2026-11-05", job, r[0].Params["date"])
		}
	}
	if got := fmt.Sprint(query(t, api, "SELECT * FROM daily_revenue ORDER BY 1, 2").Rows); got != wantRevenue {
		t.Fatalf("daily_revenue made again:\n%s\nwant\n%s", got, wantRevenue)
	}
}
