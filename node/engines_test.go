package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// An engine that knows nothing of Sluice — DuckDB's Node.js package, its own
// process and build — reads the lake as plain hive-partitioned Parquet and
// gets the same answers as Sluice's SQL API.
func TestAnotherEngineReadsTheLake(t *testing.T) {
	nodeBin, dir := npmClient(t, "duckdb-node", "@duckdb/node-api")
	data := t.TempDir()
	n := startNode(t, data)
	defer n.Stop()

	// Two hours of events, so two partitions, with every column type,
	// nulls, a nested object, non-ASCII text; and a few bad rows.
	var body bytes.Buffer
	const total = 3000
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
	api := n.APIURL()
	waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", total))
	waitFor(t, api, "SELECT count(*) FROM bad", "[[2]]")

	queries := []string{
		`SELECT count(*), count(DISTINCT event_id), sum(revenue), sum(quantity), count(*) FILTER (WHERE vip), count(revenue) FROM {events}`,
		`SELECT dt::VARCHAR, hr, event, count(*), sum(revenue), min(event_time)::VARCHAR, max(event_time)::VARCHAR FROM {events} GROUP BY ALL ORDER BY ALL`,
		`SELECT user_id, count(*), sum(quantity) FROM {events} WHERE page_url LIKE '%ü' GROUP BY user_id ORDER BY user_id LIMIT 5`,
		`SELECT sum(json_extract(cart, '$.items[1]')::INT) FROM {events}`,
		`SELECT type, count(*) FROM {bad} GROUP BY type ORDER BY type`,
	}
	out, err := exec.Command(nodeBin, append([]string{filepath.Join(dir, "read.js"), filepath.Join(data, "lake")}, queries...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("read.js: %v\n%s", err, out)
	}
	var theirs [][][]any
	if err := json.Unmarshal(out, &theirs); err != nil {
		t.Fatalf("read.js output: %v\n%s", err, out)
	}
	for i, q := range queries {
		sql := bytes.ReplaceAll([]byte(q), []byte("{events}"), []byte("events"))
		sql = bytes.ReplaceAll(sql, []byte("{bad}"), []byte("bad"))
		ours := query(t, api, string(sql)).Rows
		if got, want := canonical(theirs[i]), canonical(ours); got != want {
			t.Errorf("query %d differs:\n%s\n DuckDB (Node.js) %s\n sluice           %s", i, sql, got, want)
		}
	}
	// And the totals are what was sent, not just equal to each other.
	if got := fmt.Sprint(theirs[0][0][:2], len(theirs[1]), theirs[4]); got != fmt.Sprintf("[%d %d] 6 [[collector_payload_format 1] [schema_violation 1]]", total, total) {
		t.Errorf("the other engine read %s", got)
	}
	t.Logf("DuckDB (Node.js) read: %v", theirs[0])
}

// canonical prints rows with every value as text, numbers normalised, so
// that the two clients' JSON encodings compare.
func canonical(rows [][]any) string {
	var b bytes.Buffer
	for _, r := range rows {
		for _, v := range r {
			s := fmt.Sprint(v)
			var f float64
			if _, err := fmt.Sscan(s, &f); err == nil && s != "" {
				s = fmt.Sprintf("%.6f", f)
			}
			b.WriteString(s)
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	return b.String()
}
