package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/rollup"
	"github.com/sluice-data/sluice/server"
)

const rollupConfig = `
rollups:
  pageviews_1m:
    from: events
    filter: 'event == "page_view"'
    granularity: 1m
    dimensions: [country, page_url]
    metrics: {views: count(), visitors: distinct(user_id), load_p95: 'quantile(load_ms, 0.95)'}
`

func rollupQuery(t *testing.T, api, name, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(api+"/api/v1/rollups/"+name+"/query", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A rollup counts events as they arrive: its table equals exact SQL over
// the events; its query API merges coarser; after a restart it goes on
// from its snapshot without counting anything twice.
func TestRollupPageviews(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(rollupConfig), 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, data, withConfigFile(t, cfgFile))
	api, coll := n.APIURL(), n.CollectorURL()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	id := 0
	send := func(count int) {
		var b strings.Builder
		for range count {
			id++
			at := base.Add(time.Duration(id) * 700 * time.Millisecond)
			ev := "page_view"
			if id%5 == 0 {
				ev = "click"
			}
			fmt.Fprintf(&b, `{"event_id":"e%d","event":%q,"event_time":%q,"country":%q,"page_url":"/p%d","user_id":"u%d","load_ms":%d}`+"\n",
				id, ev, at.Format(time.RFC3339Nano), []string{"DE", "FR", "FR"}[id%3], id%4, id%17, 100+id%50)
		}
		if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
			t.Fatalf("post: %d %s", code, msg)
		}
	}
	send(600)
	exact := "SELECT time_bucket(INTERVAL 1 minute, event_time) AS t, country, page_url, count(*), count(DISTINCT user_id) FROM events WHERE event = 'page_view' GROUP BY ALL ORDER BY ALL"
	waitFor(t, api, "SELECT count(*) FROM events", "[[600]]")
	want := fmt.Sprint(query(t, api, exact).Rows)
	waitFor(t, api, "SELECT time, country, page_url, views, visitors FROM pageviews_1m ORDER BY ALL", want)
	waitFor(t, api, "SELECT typeof(time), typeof(views), typeof(visitors), typeof(load_p95) FROM pageviews_1m LIMIT 1", "[[TIMESTAMP BIGINT BIGINT DOUBLE]]")

	// The query API: a topN over everything, merged.
	code, body := rollupQuery(t, api, "pageviews_1m", `{"queryType":"topN","dimension":"country","metric":"views","threshold":1}`)
	var res []struct {
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || len(res) != 1 || len(res[0].Result) != 1 {
		t.Fatalf("topN: %d %s", code, body)
	}
	wantTop := fmt.Sprint(query(t, api, "SELECT country, count(*), count(DISTINCT user_id) FROM events WHERE event = 'page_view' GROUP BY ALL ORDER BY 2 DESC LIMIT 1").Rows)
	if got := fmt.Sprintf("[[%v %v %v]]", res[0].Result[0]["country"], res[0].Result[0]["views"], res[0].Result[0]["visitors"]); got != wantTop {
		t.Fatalf("topN: %s, want %s", got, wantTop)
	}
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"nosuch", `{"queryType":"timeseries"}`, 404, `no rollup \"nosuch\"`},
		{"pageviews_1m", `{"queryType":"scan"}`, 400, `queryType \"scan\"`},
		{"pageviews_1m", `{"queryType":"groupBy","dimensions":["city"]}`, 400, `no dimension \"city\"`},
		{"pageviews_1m", `{"queryType":`, 400, "request body"},
	} {
		if code, body := rollupQuery(t, api, tc.name, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s", tc.name, tc.body, code, body)
		}
	}

	// Restart: the snapshot and the stream position go together.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, data, withConfigFile(t, cfgFile))
	defer n.Stop()
	api, coll = n.APIURL(), n.CollectorURL()
	send(300)
	waitFor(t, api, "SELECT count(*) FROM events", "[[900]]")
	want = fmt.Sprint(query(t, api, exact).Rows)
	waitFor(t, api, "SELECT time, country, page_url, views, visitors FROM pageviews_1m ORDER BY ALL", want)
}

// A rollup counted with a wrong filter, rebuilt from the lake for the same
// hours with the filter fixed, is exact; queries during the rebuild see
// the old version or the new one, never a mix.
func TestRollupRebuild(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	wrong := strings.Replace(rollupConfig, `'event == "page_view"'`, `'event == "click"'`, 1)
	os.WriteFile(cfgFile, []byte(wrong), 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, data, withConfigFile(t, cfgFile))
	api, coll := n.APIURL(), n.CollectorURL()
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	for id := 1; id <= 3000; id++ {
		at := base.Add(time.Duration(id) * 2 * time.Second) // 09:00 to 10:40
		ev := "page_view"
		if id%4 == 0 {
			ev = "click"
		}
		fmt.Fprintf(&b, `{"event_id":"e%d","event":%q,"event_time":%q,"country":%q,"page_url":"/p%d","user_id":"u%d","load_ms":%d}`+"\n",
			id, ev, at.Format(time.RFC3339Nano), []string{"DE", "FR", "FR"}[id%3], id%4, id%97, 100+id%50)
	}
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", "[[3000]]")
	waitFor(t, api, "SELECT sum(views) FROM pageviews_1m", "[[750]]") // the clicks
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	// Fixed; the snapshot still holds the clicks.
	os.WriteFile(cfgFile, []byte(rollupConfig), 0o644)
	n = startNode(t, data, withConfigFile(t, cfgFile))
	defer n.Stop()
	api = n.APIURL()
	waitFor(t, api, "SELECT sum(views) FROM pageviews_1m", "[[750]]")

	total := func() string {
		code, body := rollupQuery(t, api, "pageviews_1m", `{"queryType":"timeseries","metrics":["views"]}`)
		if code != 200 {
			t.Errorf("query: %d %s", code, body)
		}
		return body
	}
	old := total()
	stop := make(chan struct{})
	seen := make(chan string, 10000)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
				seen <- total()
			}
		}
	}()
	req := `{"from":"2026-11-25T09:00:00Z","to":"2026-11-25T11:00:00Z"}`
	resp, err := http.Post(api+"/api/v1/rollups/pageviews_1m/rebuild", "application/json", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(stop)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"lake_rows":3000`) {
		t.Fatalf("rebuild: %d %s", resp.StatusCode, body)
	}
	updated := total()
	if !strings.Contains(updated, `"views":2250`) {
		t.Fatalf("after the rebuild: %s", updated)
	}
	n2 := 0
	for s := range seen {
		n2++
		if s != old && s != updated {
			t.Fatalf("a query during the rebuild saw %s, neither %s nor %s", s, old, updated)
		}
	}
	t.Logf("%d queries during the rebuild; %s", n2, body)
	exact := "SELECT time_bucket(INTERVAL 1 minute, event_time) AS t, country, page_url, count(*), count(DISTINCT user_id) FROM events WHERE event = 'page_view' GROUP BY ALL ORDER BY ALL"
	waitFor(t, api, "SELECT time, country, page_url, views, visitors FROM pageviews_1m ORDER BY ALL", fmt.Sprint(query(t, api, exact).Rows))
	// Bad requests.
	for _, tc := range [][2]string{{`{"from":"2026-11-25T10:00:00Z"}`, `give \"from\" and \"to\"`}, {`{"from":"2026-11-25T10:00:00Z","to":"2026-11-25T09:00:00Z"}`, "is not after from"}} {
		resp, err := http.Post(api+"/api/v1/rollups/pageviews_1m/rebuild", "application/json", strings.NewReader(tc[0]))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), tc[1]) {
			t.Errorf("%s: %d %s", tc[0], resp.StatusCode, b)
		}
	}
}

// History older than a day is re-rolled to hours: the SQL table holds one
// row per hour and group there, with the same counts and (sketches
// merged) distinct visitors; the intervals say their grain and version;
// all of it survives a restart, and recent minutes stay as they are.
func TestRollupCoarsen(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(rollupConfig+"    retention: 30d\n    coarsen: [{after: 24h, granularity: 1h}]\n"), 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, data, withConfigFile(t, cfgFile))
	api, coll := n.APIURL(), n.CollectorURL()
	old := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Hour)
	recent := time.Now().UTC().Add(-10 * time.Minute)
	var b strings.Builder
	for id := 1; id <= 2000; id++ {
		at := old.Add(time.Duration(id) * 3 * time.Second) // two hours
		if id > 1800 {
			at = recent.Add(time.Duration(id-1800) * time.Second)
		}
		fmt.Fprintf(&b, `{"event_id":"e%d","event":"page_view","event_time":%q,"country":%q,"page_url":"/p%d","user_id":"u%d","load_ms":%d}`+"\n",
			id, at.Format(time.RFC3339Nano), []string{"DE", "FR", "FR"}[id%3], id%4, id%101, 100+id%50)
	}
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", "[[2000]]")
	cut := recent.Add(-time.Hour).Format("2006-01-02 15:04:05")
	// Old rows at hour starts only, as many as hours × groups.
	waitFor(t, api, "SELECT count(*) FROM pageviews_1m WHERE time < TIMESTAMP '"+cut+"' AND minute(time) <> 0", "[[0]]")
	exact := "SELECT time_bucket(INTERVAL 1 hour, event_time) AS t, country, page_url, count(*), count(DISTINCT user_id) FROM events WHERE event_time < TIMESTAMP '" + cut + "' GROUP BY ALL ORDER BY ALL"
	want := fmt.Sprint(query(t, api, exact).Rows)
	got := "SELECT time, country, page_url, views, visitors FROM pageviews_1m WHERE time < TIMESTAMP '" + cut + "' ORDER BY ALL"
	waitFor(t, api, got, want)
	// Recent minutes are minutes still.
	waitFor(t, api, "SELECT sum(views), count(DISTINCT time) > 1 FROM pageviews_1m WHERE time >= TIMESTAMP '"+cut+"'", "[[200 true]]")

	describe := func() []rollup.IntervalInfo {
		resp, err := http.Get(api + "/api/v1/rollups/pageviews_1m")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d rollup.Description
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 {
			t.Fatalf("describe: %d %v", resp.StatusCode, err)
		}
		return d.Intervals
	}
	ivs := describe()
	if len(ivs) < 3 || !ivs[0].Start.Equal(old) || ivs[0].Grain != "1h0m0s" || ivs[0].Version != 1 || ivs[0].Buckets != 1 || ivs[len(ivs)-1].Grain != "1m0s" || ivs[len(ivs)-1].Version != 0 {
		t.Fatalf("intervals: %+v", ivs)
	}
	if resp, err := http.Get(api + "/api/v1/rollups/nosuch"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("describe of no rollup: %v %v", resp, err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, data, withConfigFile(t, cfgFile))
	defer n.Stop()
	api = n.APIURL()
	// The rollup loads its saved segments after the node is up: poll.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after := describe()
		if fmt.Sprint(after) == fmt.Sprint(ivs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("intervals after a restart:\n%+v\nwant\n%+v", after, ivs)
		}
	}
	waitFor(t, api, got, want)
}

// The nightly half of the lambda architecture as a job: a rollup counted
// with a wrong filter is exact for the day once the job has run.
func TestRollupRebuildJob(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	job := "\njobs:\n  rebuild_pageviews:\n    params: {date: date}\n    rollup: {name: pageviews_1m}\n"
	os.WriteFile(cfgFile, []byte(strings.Replace(rollupConfig, `'event == "page_view"'`, `'event == "click"'`, 1)+job), 0o644)
	data := filepath.Join(dir, "data")
	n := startNode(t, data, withConfigFile(t, cfgFile))
	api, coll := n.APIURL(), n.CollectorURL()
	base := time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)
	var b strings.Builder
	for id := 1; id <= 2000; id++ {
		at := base.Add(time.Duration(id) * 4 * time.Second) // 22:00 on the 24th to 00:13 on the 25th
		ev := []string{"page_view", "page_view", "click"}[id%3]
		fmt.Fprintf(&b, `{"event_id":"e%d","event":%q,"event_time":%q,"country":"DE","page_url":"/p%d","user_id":"u%d","load_ms":1}`+"\n", id, ev, at.Format(time.RFC3339Nano), id%3, id%7)
	}
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", "[[2000]]")
	waitFor(t, api, "SELECT sum(views), count(*) FILTER (WHERE page_url <> '/p2') FROM pageviews_1m", "[[667 0]]") // the clicks, all /p2
	n.Stop()
	os.WriteFile(cfgFile, []byte(rollupConfig+job), 0o644)
	n = startNode(t, data, withConfigFile(t, cfgFile))
	defer n.Stop()
	api = n.APIURL()
	c := &server.Client{URL: api}
	ans, err := c.SubmitRun(t.Context(), "rebuild_pageviews", server.RunRequest{Params: map[string]string{"date": "2026-11-24"}})
	if err != nil || ans.Run == nil {
		t.Fatalf("submit: %+v %v", ans, err)
	}
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateSucceeded {
		t.Fatalf("run: %+v", r)
	}
	// The 24th is exact; the 25th still holds the clicks.
	day := "event_time < TIMESTAMP '2026-11-25 00:00:00'"
	exact := "SELECT time_bucket(INTERVAL 1 minute, event_time), country, page_url, count(*) FROM events WHERE event = 'page_view' AND " + day + " GROUP BY ALL ORDER BY ALL"
	waitFor(t, api, "SELECT time, country, page_url, views FROM pageviews_1m WHERE time < TIMESTAMP '2026-11-25 00:00:00' ORDER BY ALL", fmt.Sprint(query(t, api, exact).Rows))
	waitFor(t, api, "SELECT DISTINCT page_url FROM pageviews_1m WHERE time >= TIMESTAMP '2026-11-25 00:00:00'", "[[/p2]]")
}
