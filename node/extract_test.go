package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/mysqltest"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/server"
)

// withJobs loads jobs (a config file's text) as sluice does.
func withJobs(t *testing.T, yaml string) func(*config.Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return withConfigFile(t, path)
}

// source is a source database of an extract in a test.
type source struct {
	url  string
	exec func(q string)
	// ts is a time as a literal of the database's updated_at column.
	ts func(t time.Time) string
	// ddl is the orders table.
	ddl string
}

func postgresSource(t *testing.T) source {
	url := pgtest.URL(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return source{
		url: url,
		exec: func(q string) {
			if _, err := conn.Exec(context.Background(), q); err != nil {
				t.Fatalf("%.80s: %v", q, err)
			}
		},
		ts:  func(at time.Time) string { return "TIMESTAMPTZ '" + at.Format("2006-01-02 15:04:05.000000") + "+00'" },
		ddl: "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(10,2), updated_at timestamptz NOT NULL)",
	}
}

func mariadbSource(t *testing.T) source {
	url, db := mysqltest.URL(t)
	return source{
		url: url,
		exec: func(q string) {
			if _, err := db.ExecContext(context.Background(), q); err != nil {
				t.Fatalf("%.80s: %v", q, err)
			}
		},
		ts:  func(at time.Time) string { return "TIMESTAMP '" + at.Format("2006-01-02 15:04:05.000000") + "'" },
		ddl: "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(20), amount DECIMAL(10,2), updated_at DATETIME(6) NOT NULL)",
	}
}

// insertOrders adds orders from..to; three share each updated_at, which
// runs on from base.
func (s source) insertOrders(from, to int, base time.Time) {
	var vals []string
	for i := from; i <= to; i++ {
		vals = append(vals, fmt.Sprintf("(%d, 'c%d', %d.25, %s)", i, i%7, i, s.ts(base.Add(time.Duration(i/3)*time.Second))))
	}
	for len(vals) > 0 {
		n := min(len(vals), 1000)
		s.exec("INSERT INTO orders VALUES " + strings.Join(vals[:n], ", "))
		vals = vals[n:]
	}
}

// The acceptance 4: incremental extracts from PostgreSQL and from
// MariaDB pick up only new and changed rows across runs, and runs cancelled
// in the middle, then run again, leave neither duplicates nor gaps.
func TestExtractIncremental(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  func(*testing.T) source
	}{{"postgres", postgresSource}, {"mariadb", mariadbSource}} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src(t)
			src.exec(src.ddl)
			base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			src.insertOrders(1, 500, base)
			n := startNode(t, t.TempDir(), withJobs(t, fmt.Sprintf(`
jobs:
  extract_orders:
    params: {date: date}
    extract: {from: %[1]q, table: orders, cursor: updated_at, key: id, page: 40}
    output: {lake: orders}
    retries: 0
  copy_orders:
    extract: {from: %[1]q, table: orders, key: id, page: 25}
    output: {lake: orders_copy}
    retries: 0
`, src.url)))
			defer n.Stop()
			api := n.APIURL()
			c := &server.Client{URL: api}
			ctx := context.Background()
			run := func(date string) jobs.Run {
				t.Helper()
				ans, err := c.SubmitRun(ctx, "extract_orders", server.RunRequest{Params: map[string]string{"date": date}})
				if err != nil {
					t.Fatal(err)
				}
				r := waitRun(t, c, ans.Run.ID)
				if r.State != jobs.StateSucceeded {
					t.Fatalf("run of %s: %s %s\n%s", date, r.State, r.Error, r.Attempts[len(r.Attempts)-1].Log)
				}
				return r
			}
			count := func(where string) string {
				return fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT id) FROM orders WHERE "+where).Rows)
			}

			// Run 1: every row.
			r1 := run("2026-11-01")
			if got := count("true"); got != "[[500 500]]" {
				t.Fatalf("after run 1: %s", got)
			}
			// The task is complete: its output exists.
			if ans, err := c.SubmitRun(ctx, "extract_orders", server.RunRequest{Params: map[string]string{"date": "2026-11-01"}}); err != nil || !ans.Complete {
				t.Fatalf("run 1 again: %+v %v", ans, err)
			}

			// 70 new rows and 30 changed: run 2 extracts those 100 only.
			later := base.Add(time.Hour)
			src.insertOrders(501, 570, later)
			src.exec(fmt.Sprintf("UPDATE orders SET amount = amount + 1000, updated_at = %s WHERE id <= 30", src.ts(later.Add(time.Hour))))
			r2 := run("2026-11-02")
			if got := count("_run = '" + r2.ID + "'"); got != "[[100 100]]" {
				t.Fatalf("run 2 extracted %s, want 100 rows", got)
			}
			if got := count("_run = '" + r1.ID + "'"); got != "[[500 500]]" {
				t.Fatalf("run 1's rows after run 2: %s", got)
			}
			// The latest version of each row is the source's.
			latest := `SELECT * FROM orders
				QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC, _extracted_at DESC) = 1`
			if got := fmt.Sprint(query(t, api, "SELECT count(*), sum(amount), count(*) FILTER (WHERE amount > 1000) FROM ("+latest+")").Rows); got != fmt.Sprintf("[[570 %v 30]]", 570*571/2+570*0.25+30*1000) {
				t.Fatalf("latest versions: %s", got)
			}
			// Nothing changed: run 3 extracts nothing.
			r3 := run("2026-11-03")
			if got := count("_run = '" + r3.ID + "'"); got != "[[0 0]]" {
				t.Fatalf("run 3 extracted %s", got)
			}

			// An attempt that died after the bus stored a page and before
			// it saved the cursor: the next run goes on after that page.
			src.insertOrders(4001, 4100, base.Add(2*time.Hour))
			var page []byte
			for i := 4001; i <= 4040; i++ {
				at := base.Add(2*time.Hour + time.Duration(i/3)*time.Second)
				page = fmt.Appendf(page, `{"_extracted_at":"2026-11-03T00:00:00.000000Z","_run":"crashed","id":%d,"customer":"c%d","amount":%d.25,"updated_at":"%s"}`+"\n",
					i, i%7, i, at.Format("2006-01-02T15:04:05.000000Z"))
			}
			if _, err := n.Bus().PublishTo(ctx, "orders", "job.extract_orders", page, ""); err != nil {
				t.Fatal(err)
			}
			r4 := run("2026-11-04")
			if !strings.Contains(r4.Attempts[0].Log, "(the last rows stored)") {
				t.Errorf("run 4 did not go on after the stored page:\n%s", r4.Attempts[0].Log)
			}
			if got := count("_run = '" + r4.ID + "'"); got != "[[60 60]]" {
				t.Fatalf("run 4 extracted %s, want the 60 rows after the stored page", got)
			}
			if got := count("id > 4000"); got != "[[100 100]]" {
				t.Fatalf("rows 4001-4100: %s", got)
			}

			// 3,000 new rows, and runs cancelled at random moments until
			// one gets through: each row once in the lake.
			src.insertOrders(1001, 4000, base.Add(3*time.Hour))
			cancels, resumed := 0, 0
			for attempt := 0; ; attempt++ {
				ans, err := c.SubmitRun(ctx, "extract_orders", server.RunRequest{Params: map[string]string{"date": "2026-11-05"}})
				if err != nil && strings.Contains(err.Error(), "already running") {
					// The cancelled run hands its lease back after its record says so.
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if ans.Complete {
					break
				}
				if attempt < 6 {
					time.Sleep(time.Duration(20+rand.IntN(120)) * time.Millisecond)
					c.CancelRun(ctx, ans.Run.ID)
				}
				r := waitRun(t, c, ans.Run.ID)
				if strings.Contains(r.Attempts[0].Log, "(the last rows stored)") {
					resumed++
				}
				if r.State == jobs.StateSucceeded {
					break
				}
				if r.State != jobs.StateCancelled {
					t.Fatalf("run %d: %s %s\n%s", attempt, r.State, r.Error, r.Attempts[0].Log)
				}
				cancels++
			}
			t.Logf("%d runs cancelled in the middle; %d went on after rows stored past the saved cursor", cancels, resumed)
			if got := count("id > 1000 AND id <= 4000"); got != "[[3000 3000]]" {
				t.Fatalf("after cancelled runs: %s, want each of 3000 rows once", got)
			}
			if got := fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT (id, updated_at)) FROM orders").Rows); got != "[[3700 3700]]" {
				t.Fatalf("rows and distinct versions: %s", got)
			}

			// A snapshot: cancelled in the middle, the next run finishes
			// its read; forced, a run reads the whole table again.
			ans, err := c.SubmitRun(ctx, "copy_orders", server.RunRequest{})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Millisecond)
			c.CancelRun(ctx, ans.Run.ID)
			waitRun(t, c, ans.Run.ID)
			for {
				ans, err := c.SubmitRun(ctx, "copy_orders", server.RunRequest{})
				if err != nil && strings.Contains(err.Error(), "already running") {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if !ans.Complete {
					if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateSucceeded {
						t.Fatalf("copy_orders: %s %s", r.State, r.Error)
					}
				}
				break
			}
			if got := fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT id), count(DISTINCT _run) FROM orders_copy").Rows); got != "[[3670 3670 1]]" {
				t.Fatalf("orders_copy: %s", got)
			}
			ans, err = c.SubmitRun(ctx, "copy_orders", server.RunRequest{Force: true})
			if err != nil {
				t.Fatal(err)
			}
			waitRun(t, c, ans.Run.ID)
			if got := fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT id), count(DISTINCT _run) FROM orders_copy").Rows); got != "[[7340 3670 2]]" {
				t.Fatalf("orders_copy after a forced run: %s", got)
			}
		})
	}
}

// api serves 23 records in pages of 5, paginated three ways, and fails
// now and then (429 with Retry-After, or 503).
func api(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer t0k" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		switch {
		case n%4 == 0:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		case n%11 == 0:
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		const total, size = 23, 5
		page := func(from int) string {
			var recs []string
			for i := from; i < min(from+size, total); i++ {
				recs = append(recs, fmt.Sprintf(`{"id":%d,"name":"r%d","score":%d.5,"at":"2026-11-25T10:00:%02dZ","tags":["x"],"address":{"city":"c%d"}}`, i+1, i+1, i, i, i%3))
			}
			return "[" + strings.Join(recs, ",") + "]"
		}
		q := r.URL.Query()
		switch r.URL.Path {
		case "/link":
			from, _ := strconv.Atoi(q.Get("from"))
			if from+size < total {
				w.Header().Add("Link", fmt.Sprintf(`</link?from=%d>; rel="next"`, from+size))
			}
			fmt.Fprint(w, page(from))
		case "/cursor":
			from, _ := strconv.Atoi(strings.TrimPrefix(q.Get("after"), "c"))
			next := "null"
			if from+size < total {
				next = fmt.Sprintf(`"c%d"`, from+size)
			}
			fmt.Fprintf(w, `{"data":{"items":%s},"meta":{"next":%s}}`, page(from), next)
		case "/pages":
			p, _ := strconv.Atoi(q.Get("p"))
			fmt.Fprintf(w, `{"results":%s}`, page(p*size))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// http jobs read a JSON API paginated by Link headers, by a cursor and by
// page numbers, through failures, into lake tables; a cancelled run's read
// is finished by the next run, not begun again.
func TestExtractHTTP(t *testing.T) {
	srv := api(t)
	n := startNode(t, t.TempDir(), withJobs(t, fmt.Sprintf(`
jobs:
  by_link:
    params: {date: date}
    http: {url: "%[1]s/link?since={{.date}}", headers: {Authorization: "Bearer ${API_TOKEN:-t0k}"}}
    output: {lake: users_link}
  by_cursor:
    http: {url: "%[1]s/cursor", headers: {Authorization: Bearer t0k}, records: data.items, paginate: cursor, cursor: meta.next, param: after, rate: 4}
    output: {lake: users_cursor}
  by_page:
    http: {url: "%[1]s/pages", headers: {Authorization: Bearer t0k}, records: results, paginate: page, param: p, first_page: 0, rate: 50}
    output: {lake: users_pages}
`, srv.URL)))
	defer n.Stop()
	api := n.APIURL()
	c := &server.Client{URL: api}
	ctx := context.Background()
	run := func(job string, params map[string]string, force bool) jobs.Run {
		t.Helper()
		ans, err := c.SubmitRun(ctx, job, server.RunRequest{Params: params, Force: force})
		if err != nil {
			t.Fatal(err)
		}
		r := waitRun(t, c, ans.Run.ID)
		if r.State != jobs.StateSucceeded {
			t.Fatalf("%s: %s %s\n%s", job, r.State, r.Error, r.Attempts[len(r.Attempts)-1].Log)
		}
		return r
	}
	run("by_link", map[string]string{"date": "2026-11-25"}, false)
	r := run("by_page", nil, false)
	if !strings.Contains(r.Attempts[0].Log, "retry") {
		t.Errorf("no retries in the log:\n%s", r.Attempts[0].Log)
	}
	// Cancelled in the middle (4 requests a second), then run again.
	ans, err := c.SubmitRun(ctx, "by_cursor", server.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	c.CancelRun(ctx, ans.Run.ID)
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateCancelled {
		t.Fatalf("the cancelled run: %s", r.State)
	}
	for {
		_, err := c.SubmitRun(ctx, "by_cursor", server.RunRequest{})
		if err == nil || !strings.Contains(err.Error(), "already running") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		runs, _ := c.Runs(ctx, "by_cursor", 1)
		if runs[0].ID != ans.Run.ID && runs[0].State == jobs.StateSucceeded {
			if !strings.Contains(runs[0].Attempts[0].Log, "going on from page") {
				t.Errorf("the run after the cancelled one began again:\n%s", runs[0].Attempts[0].Log)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, table := range []string{"users_link", "users_cursor", "users_pages"} {
		got := fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT id), count(DISTINCT _run), sum(score), max(\"at\"), min(address->>'city'), max(tags->>0) FROM "+table).Rows)
		if got != "[[23 23 1 264.5 2026-11-25T10:00:22Z c0 x]]" {
			t.Errorf("%s: %s", table, got)
		}
	}
	cols := fmt.Sprint(query(t, api, "SELECT column_name, column_type FROM (DESCRIBE users_link) WHERE column_name NOT IN ('dt', 'hr') ORDER BY ALL").Rows)
	if cols != "[[_extracted_at TIMESTAMP] [_run VARCHAR] [address JSON] [at TIMESTAMP] [id BIGINT] [name VARCHAR] [score DOUBLE] [tags JSON]]" {
		t.Errorf("columns: %s", cols)
	}
	// Forced, a read is made again: a second copy, under its own run.
	run("by_page", nil, true)
	if got := fmt.Sprint(query(t, api, "SELECT count(*), count(DISTINCT id), count(DISTINCT _run) FROM users_pages").Rows); got != "[[46 23 2]]" {
		t.Errorf("after a forced run: %s", got)
	}
}
