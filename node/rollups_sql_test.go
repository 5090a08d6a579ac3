package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/node"
)

const rollupSQLConfig = `
rollups:
  pageviews_1m:
    from: events
    filter: 'event == "page_view"'
    granularity: 1m
    dimensions: [country]
    metrics: {views: count(), visitors: distinct(user_id), load: 'quantile(load_ms, 0.95)'}
`

// postPageviews sends three hours of events ending at the last full hour:
// page views (and clicks, which the rollup leaves out) of 1,500 users in
// three countries, with skewed load times. It returns the first hour.
func postPageviews(t *testing.T, collector string) time.Time {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	r := rand.New(rand.NewPCG(7, 11))
	var b strings.Builder
	const total = 9000
	for id := range total {
		at := base.Add(time.Duration(id) * 1200 * time.Millisecond)
		ev := "page_view"
		if id%5 == 0 {
			ev = "click"
		}
		load := math.Round((20+r.ExpFloat64()*300)*10) / 10
		fmt.Fprintf(&b, `{"event_id":"e%d","event":%q,"event_time":%q,"country":%q,"user_id":"u%d","load_ms":%v}`+"\n",
			id, ev, at.Format(time.RFC3339Nano), []string{"DE", "FR", "US"}[r.IntN(3)], r.IntN(1500), load)
		if id%2000 == 1999 || id == total-1 { // under the collector's body limit
			if code, msg := post(t, collector, "application/x-ndjson", []byte(b.String())); code != 200 {
				t.Fatalf("post: %d %s", code, msg)
			}
			b.Reset()
		}
	}
	return base
}

// num reads a number of an answer (json.Number, float64, or text).
func num(t *testing.T, v any) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(fmt.Sprint(v), 64)
	if err != nil {
		t.Fatalf("%v is not a number", v)
	}
	return f
}

// sqlStatus posts a statement to the SQL API and returns the status and
// the answer's body.
func sqlStatus(t *testing.T, api, q string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"sql": q})
	resp, err := http.Post(api+"/api/v1/sql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// SQL that groups a rollup's table coarser than its grain merges the
// sketches with sluice_distinct and sluice_quantile: per hour and country
// the numbers are the query API's, and within the sketches' accuracy of
// exact SQL over the events.
func TestRollupSQLMergesSketches(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(rollupSQLConfig), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), withConfigFile(t, cfgFile))
	defer n.Stop()
	api := n.APIURL()
	postPageviews(t, n.CollectorURL())
	waitFor(t, api, "SELECT count(*) FROM events", "[[9000]]")
	// The exact p95 is the value at rank 0.95·(n−1), rounded down, as a
	// DDSketch ranks; quantile_disc takes the one at ⌈0.95·n⌉−1, which can
	// be the next, a percent or two away in a sparse tail.
	exact := query(t, api, `SELECT date_trunc('hour', event_time) AS hour, country, count(*), count(DISTINCT user_id),
		list_sort(list(load_ms))[floor(0.95 * (count(*) - 1))::BIGINT + 1]
		FROM events WHERE event = 'page_view' GROUP BY ALL ORDER BY ALL`).Rows
	if len(exact) != 9 {
		t.Fatalf("exact: %d groups, want 3 hours × 3 countries: %v", len(exact), exact)
	}
	var views int
	for _, r := range exact {
		views += int(num(t, r[2]))
	}
	waitFor(t, api, "SELECT sum(views) FROM pageviews_1m", fmt.Sprintf("[[%d]]", views))

	// The query API's groupBy by hour, merged from the same buckets.
	code, body := rollupQuery(t, api, "pageviews_1m", `{"queryType":"groupBy","granularity":"hour","dimensions":["country"]}`)
	var byHour []struct {
		Time  time.Time      `json:"timestamp"`
		Event map[string]any `json:"event"`
	}
	if err := json.Unmarshal([]byte(body), &byHour); code != 200 || err != nil || len(byHour) != len(exact) {
		t.Fatalf("groupBy by hour: %d %v %s", code, err, body)
	}

	got := query(t, api, `SELECT date_trunc('hour', time) AS hour, country, sum(views),
		sluice_distinct(list(visitors_sketch)) AS visitors, sluice_quantile(list(load_sketch), 0.95) AS load
		FROM pageviews_1m GROUP BY ALL ORDER BY ALL`)
	if len(got.Rows) != len(exact) {
		t.Fatalf("SQL over the rollup: %d groups, want %d: %v", len(got.Rows), len(exact), got.Rows)
	}
	if typ := fmt.Sprint(got.Columns[3].Type, " ", got.Columns[4].Type); typ != "BIGINT DOUBLE" {
		t.Errorf("sluice_distinct, sluice_quantile answer %s, want BIGINT DOUBLE", typ)
	}
	var worstVisitors, worstLoad float64
	for i, g := range got.Rows {
		e, api := exact[i], byHour[i]
		where := fmt.Sprintf("%v %v", g[0], g[1])
		if fmt.Sprint(g[0], g[1]) != fmt.Sprint(e[0], e[1]) || fmt.Sprint(g[0], g[1]) != fmt.Sprint(api.Time.Format(time.RFC3339), api.Event["country"]) {
			t.Fatalf("row %d: SQL %v, exact %v, query API %v %v", i, g[:2], e[:2], api.Time, api.Event["country"])
		}
		if num(t, g[2]) != num(t, e[2]) {
			t.Errorf("%s: %v views, exact %v", where, g[2], e[2])
		}
		visitors, exactVisitors := num(t, g[3]), num(t, e[3])
		if visitors != api.Event["visitors"] {
			t.Errorf("%s: sluice_distinct %v, the query API %v", where, visitors, api.Event["visitors"])
		}
		d := math.Abs(visitors-exactVisitors) / exactVisitors
		worstVisitors = max(worstVisitors, d)
		if d > 0.02 {
			t.Errorf("%s: sluice_distinct %v, exact %v: %.1f %% off", where, visitors, exactVisitors, 100*d)
		}
		// A DDSketch's promise: within its relative accuracy (0.5 %) of
		// the value at the quantile's rank.
		load, exactLoad := num(t, g[4]), num(t, e[4])
		if load != api.Event["load"] {
			t.Errorf("%s: sluice_quantile %v, the query API %v", where, load, api.Event["load"])
		}
		d = math.Abs(load-exactLoad) / exactLoad
		worstLoad = max(worstLoad, d)
		if d > 0.01 {
			t.Errorf("%s: sluice_quantile %v, exact %v: %.2f %% off", where, load, exactLoad, 100*d)
		}
	}
	t.Logf("per hour and country, at worst: sluice_distinct %.2f %% off, sluice_quantile %.2f %% off", 100*worstVisitors, 100*worstLoad)
	// Over everything: the union, not the sum of the hours'.
	all := query(t, api, "SELECT sluice_distinct(list(visitors_sketch)) FROM pageviews_1m").Rows[0][0]
	exactAll := query(t, api, "SELECT count(DISTINCT user_id) FROM events WHERE event = 'page_view'").Rows[0][0]
	if d := math.Abs(num(t, all)-num(t, exactAll)) / num(t, exactAll); d > 0.02 {
		t.Errorf("all: sluice_distinct %v, exact %v", all, exactAll)
	}

	// What is not a sketch, a q outside [0, 1], arguments of other types:
	// the user's error, which names the function.
	for _, tc := range []struct{ sql, want string }{
		{"SELECT sluice_distinct(list(load_sketch)) FROM pageviews_1m", "sluice_distinct: element 1 is not a distinct metric's sketch"},
		{"SELECT sluice_distinct(['not a sketch'::BLOB])", "sluice_distinct: element 1 is not a distinct metric's sketch"},
		{"SELECT sluice_quantile(list(visitors_sketch), 0.5) FROM pageviews_1m", "sluice_quantile: element 1 is not a quantile metric's sketch"},
		{"SELECT sluice_quantile(list(load_sketch), 2) FROM pageviews_1m", "sluice_quantile: q is 2: it must be between 0 and 1"},
		{"SELECT sluice_distinct(visitors_sketch) FROM pageviews_1m", "sluice_distinct(BLOB[])"},
		{"SELECT sluice_distinct(list(views)) FROM pageviews_1m", "sluice_distinct(BLOB[])"},
		{"SELECT sluice_quantile(list(load_sketch), 'p95') FROM pageviews_1m", "p95"},
	} {
		if code, body := sqlStatus(t, api, tc.sql); code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.sql, code, body, tc.want)
		}
	}
}

// With PostgreSQL as the warehouse the rollup's table is there too, bucket
// for bucket what DuckDB's holds, sketches included.
func TestRollupTableInPostgres(t *testing.T) {
	url := pgtest.URL(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(rollupSQLConfig), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), withConfigFile(t, cfgFile), func(cfg *config.Config) { cfg.Warehouse.URL = url })
	defer n.Stop()
	api := n.APIURL()
	postPageviews(t, n.CollectorURL())
	waitFor(t, api, "SELECT count(*) FROM events", "[[9000]]")
	views := query(t, api, "SELECT count(*) FROM events WHERE event = 'page_view'").Rows[0][0]
	waitFor(t, api, "SELECT sum(views) FROM pageviews_1m", fmt.Sprintf("[[%v]]", views))
	if res := query(t, api, "SELECT pg_typeof(time)::text, pg_typeof(visitors_sketch)::text FROM pageviews_1m LIMIT 1"); fmt.Sprint(res.Rows) != "[[timestamp without time zone bytea]]" {
		t.Errorf("the API does not answer from PostgreSQL's table: %v", res.Rows)
	}

	const all = "SELECT time, country, views, visitors, load, visitors_sketch, load_sketch FROM pageviews_1m ORDER BY time, country"
	same := func(duck *node.Node) (string, string) {
		d, err := duck.DuckDB().Query(context.Background(), all, 0)
		if err != nil {
			t.Fatal(err)
		}
		return normalized(query(t, api, all).Rows), normalized(d.Rows)
	}
	// The two are written one after the other: wait until they settle.
	var pg, duck string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if pg, duck = same(n); pg == duck {
			break
		}
	}
	if pg != duck || strings.Count(duck, "\n") < 3*180 {
		t.Fatalf("PostgreSQL's table:\n%.2000s\nDuckDB's:\n%.2000s", pg, duck)
	}
	// PostgreSQL has no sketch functions: sums per stored bucket work,
	// as documented.
	hourly := query(t, api, "SELECT date_trunc('hour', time), sum(views) FROM pageviews_1m GROUP BY 1 ORDER BY 1").Rows
	if len(hourly) != 3 {
		t.Errorf("hourly views in PostgreSQL: %v", hourly)
	}
}
