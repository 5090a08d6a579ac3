package node_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
)

// loadConfig reads a config file as sluice does and applies configure-style
// overrides of startNode.
func withConfigFile(t *testing.T, path string) func(*config.Config) {
	t.Helper()
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *config.Config) {
		cfg.Pipelines, cfg.Jobs, cfg.Scheduler, cfg.Rollups = c.Pipelines, c.Jobs, c.Scheduler, c.Rollups
	}
}

// The example pipeline: purchases per minute and country into a warehouse
// table, equal to the same aggregate over the lake; heartbeats never count;
// an event a step cannot process is a bad row and the rest flows.
func TestStreamingExample(t *testing.T) {
	n := startNode(t, t.TempDir(), withConfigFile(t, "../examples/streaming/sluice.yaml"))
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	id := 0
	line := func(at time.Time, event, country string, revenue any) {
		id++
		fmt.Fprintf(&b, `{"event_id":"e%d","event":%q,"event_time":%q,"country":%q,"revenue":%v}`+"\n", id, event, at.Format(time.RFC3339Nano), country, revenue)
	}
	for i := range 300 { // five minutes, in order
		at := base.Add(time.Duration(i) * time.Second)
		line(at, "purchase", []string{"DE", "FR", "US"}[i%3], fmt.Sprintf("%d.25", i%40))
		if i%7 == 0 {
			line(at, "heartbeat", "DE", 1000) // dropped by the first filter
		}
		if i%50 == 0 {
			line(at, "page_view", "FR", "null")
		}
	}
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	b.Reset()
	// Time moves on: the five windows close.
	line(base.Add(10*time.Minute), "page_view", "DE", "null")
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	want := "SELECT time_bucket(INTERVAL 1 minute, event_time) AS w, country, count(*), round(sum(revenue), 2) FROM events WHERE event = 'purchase' AND typeof(revenue) = 'DOUBLE' GROUP BY ALL ORDER BY ALL"
	waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprint("[[", id, "]]"))
	exp := fmt.Sprint(query(t, api, want).Rows)
	waitFor(t, api, "SELECT window_start, country, purchases, round(revenue, 2) FROM revenue_per_minute ORDER BY ALL", exp)
	if !strings.Contains(exp, "2026-11-25T10:04:00Z US 20") {
		t.Fatalf("the expected answer looks wrong: %s", exp)
	}
	waitFor(t, api, "SELECT count(*), typeof(window_start), typeof(purchases), typeof(revenue) FROM revenue_per_minute GROUP BY ALL", "[[15 TIMESTAMP BIGINT DOUBLE]]")
	waitFor(t, api, "SELECT count(*) FROM bad", "[[0]]")
}

// An event a step cannot process (an expression error) is a bad row naming
// the pipeline, the step and the error; the rest flows to the output
// streams, and a pipeline reading one of them gets its events.
func TestPipelinePoisonAndStreams(t *testing.T) {
	dir := t.TempDir()
	cfgFile := dir + "/sluice.yaml"
	os.WriteFile(cfgFile, []byte(`
pipelines:
  parse_qty:
    from: events
    retries: 2
    steps:
      - set: {qty_n: 'int(qty)', big: 'int(qty) > 2'}
      - drop: [useragent]
      - route:
          - {if: 'big', to: {stream: big_orders}}
    to: {stream: small_orders}
  big_total:
    from: big_orders
    steps:
      - keep: [event_id, qty_n]
    to: {table: big_order_ids}
`), 0o644)
	n := startNode(t, dir+"/data", withConfigFile(t, cfgFile))
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	body := `{"event":"o","event_id":"a","qty":"1"}
{"event":"o","event_id":"b","qty":"5"}
{"event":"o","event_id":"c","qty":"many"}
{"event":"o","event_id":"d","qty":"3"}
`
	if code, msg := post(t, coll, "application/x-ndjson", []byte(body)); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT event_id, qty_n FROM big_order_ids ORDER BY event_id", "[[b 5] [d 3]]")
	waitFor(t, api, "SELECT type, path, message LIKE '%steps[0]%many%(tried 3 times)' FROM bad", "[[pipeline_failure pipeline parse_qty steps[0] true]]")
}

// File and webhook outputs: NDJSON appended to a file; POSTed to a webhook
// that fails at first, retried until it answers 2xx, nothing lost.
func TestPipelineFileAndWebhook(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var got []string
	fails := 3
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, strings.Fields(string(b))...)
	}))
	defer hook.Close()
	cfgFile := dir + "/sluice.yaml"
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
pipelines:
  out:
    from: events
    steps:
      - keep: [event_id]
    to: [{file: %q}, {webhook: %q}]
`, dir+"/out/events.ndjson", hook.URL)), 0o644)
	n := startNode(t, dir+"/data", withConfigFile(t, cfgFile))
	defer n.Stop()
	for i := range 5 {
		body := fmt.Sprintf(`[{"event":"e","event_id":"x%d"},{"event":"e","event_id":"y%d"}]`, i, i)
		if code, msg := post(t, n.CollectorURL(), "application/json", []byte(body)); code != 200 {
			t.Fatalf("post: %d %s", code, msg)
		}
	}
	want := `{"event_id":"x0"} {"event_id":"x1"} {"event_id":"x2"} {"event_id":"x3"} {"event_id":"x4"} {"event_id":"y0"} {"event_id":"y1"} {"event_id":"y2"} {"event_id":"y3"} {"event_id":"y4"}`
	sorted := func(lines []string) string {
		s := slices.Clone(lines)
		slices.Sort(s)
		return strings.Join(s, " ")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(dir + "/out/events.ndjson")
		mu.Lock()
		hooked := sorted(got)
		mu.Unlock()
		if sorted(strings.Fields(string(data))) == want && hooked == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file:\n%s\nwebhook: %s\nwant %s", data, hooked, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With PostgreSQL as the warehouse, pipelines write their tables there, and
// the SQL API (which then runs on PostgreSQL) finds them.
func TestPipelineTablesInPostgres(t *testing.T) {
	url := pgtest.URL(t)
	example := withConfigFile(t, "../examples/streaming/sluice.yaml")
	n := startNode(t, t.TempDir(), example, func(c *config.Config) { c.Warehouse.URL = url })
	defer n.Stop()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	for i := range 120 {
		fmt.Fprintf(&b, `{"event_id":"p%d","event":"purchase","event_time":%q,"country":%q,"revenue":%d.5}`+"\n",
			i, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), []string{"DE", "FR"}[i%2], i)
	}
	fmt.Fprintf(&b, `{"event_id":"late","event":"page_view","event_time":%q}`+"\n", base.Add(time.Hour).Format(time.RFC3339))
	if code, msg := post(t, n.CollectorURL(), "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, n.APIURL(), "SELECT count(*) FROM events", "[[121]]")
	waitFor(t, n.APIURL(), "SELECT to_char(window_start, 'HH24:MI'), country, purchases, revenue FROM revenue_per_minute ORDER BY 1, 2",
		"[[10:00 DE 30 885] [10:00 FR 30 915] [10:01 DE 30 2685] [10:01 FR 30 2715]]")
}
