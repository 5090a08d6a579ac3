package node_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Lake outputs: a pipeline's rows become a Parquet lake table (a view in
// the warehouse) with columns typed from the fields written, times as
// TIMESTAMP; a row whose field conflicts with its column goes to bad and
// the rest land; window results land once each, equal to SQL over events.
// Three workers write the first table, adding its columns at once.
func TestPipelineLakeOutputs(t *testing.T) {
	dir := t.TempDir()
	cfgFile := dir + "/sluice.yaml"
	os.WriteFile(cfgFile, []byte(`
pipelines:
  purchases:
    from: events
    workers: 3
    key: event_id
    steps:
      - filter: 'event == "purchase"'
      - set: {total: 'price * qty', size: 'qty > 2 ? "big" : qty'}
      - keep: [event_id, event_time, country, total, size, items]
    to: {lake: purchases}
  per_minute:
    from: events
    steps:
      - filter: 'event == "purchase" && event_id != "big"'
      - set: {total: 'price * qty'}
      - window: {type: tumbling, size: 1m, group_by: [country], aggregates: {n: count(), revenue: sum(total)}}
    to: {lake: purchases_per_minute}
`), 0o644)
	n := startNode(t, dir+"/data", withConfigFile(t, cfgFile))
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	for i := range 240 {
		at := base.Add(time.Duration(i) * time.Second)
		fmt.Fprintf(&b, `{"event_id":"p%d","event":"purchase","event_time":%q,"country":%q,"price":%d.5,"qty":%d,"items":[{"sku":"s%d"}]}`+"\n",
			i, at.Format(time.RFC3339Nano), []string{"DE", "FR"}[i%2], i%10, 1+i%2, i)
		if i%10 == 0 {
			fmt.Fprintf(&b, `{"event_id":"v%d","event":"page_view","event_time":%q,"country":"DE"}`+"\n", i, at.Format(time.RFC3339Nano))
		}
	}
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*), count(DISTINCT event_id) FROM purchases", "[[240 240]]")
	waitFor(t, api, "SELECT typeof(event_time), typeof(total), typeof(size), typeof(items), typeof(country) FROM purchases LIMIT 1",
		"[[TIMESTAMP DOUBLE BIGINT JSON VARCHAR]]")
	// qty 3 makes size the text "big", in a BIGINT column: a bad row. Then
	// time moves on, and the four windows close.
	b.Reset()
	fmt.Fprintf(&b, `{"event_id":"big","event":"purchase","event_time":%q,"country":"DE","price":1,"qty":3,"items":[]}`+"\n", base.Add(5*time.Minute).Format(time.RFC3339Nano))
	fmt.Fprintf(&b, `{"event_id":"last","event":"purchase","event_time":%q,"country":"DE","price":1,"qty":1,"items":[]}`+"\n", base.Add(10*time.Minute).Format(time.RFC3339Nano))
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM purchases", "[[241]]")
	waitFor(t, api, "SELECT type, path, message LIKE '%\"size\" is BIGINT in lake table purchases%big%' FROM bad", "[[pipeline_failure pipeline purchases to lake purchases true]]")
	// Window results over the lake table equal SQL over events.
	want := fmt.Sprint(query(t, api, "SELECT time_bucket(INTERVAL 1 minute, event_time) AS w, country, count(*), round(sum(price * qty), 2) FROM events WHERE event = 'purchase' AND event_id NOT IN ('big', 'last') GROUP BY ALL ORDER BY ALL").Rows)
	waitFor(t, api, "SELECT window_start, country, n, round(revenue, 2) FROM purchases_per_minute ORDER BY ALL", want)
	if !strings.Contains(want, "2026-11-25T10:03:00Z FR 30") {
		t.Fatalf("the expected answer looks wrong: %s", want)
	}
	waitFor(t, api, "SELECT typeof(window_start), typeof(n) FROM purchases_per_minute LIMIT 1", "[[TIMESTAMP BIGINT]]")
}
