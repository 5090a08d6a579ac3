package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/node"
)

// A field that changes type mid-stream, a new field and a nested object,
// each arriving in a later file than the rows before: the table answers
// correctly before and after, and the conflicting row is in bad.
func TestSchemaChangesAcrossFiles(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	send := func(body string) {
		t.Helper()
		if code, msg := post(t, coll, "application/json", []byte(body)); code != 200 {
			t.Fatalf("post: %d %s", code, msg)
		}
	}
	send(`[{"event":"buy","event_id":"a1","price":10,"qty":1},{"event":"buy","event_id":"a2","price":20,"qty":2}]`)
	waitFor(t, api, "SELECT sum(price), typeof(sum(price)), sum(qty) FROM events", "[[30 HUGEINT 3]]")

	// price widens to DOUBLE; a new column and a nested object arrive.
	send(`[{"event":"buy","event_id":"b1","price":2.5,"qty":3,"coupon":"XMAS","cart":{"items":[{"sku":"A","n":2}]}}]`)
	waitFor(t, api, "SELECT count(*) FROM events", "[[3]]")
	waitFor(t, api, "SELECT sum(price), typeof(price) FROM events GROUP BY ALL", "[[32.5 DOUBLE]]")
	waitFor(t, api, "SELECT event_id, coupon, cart->'items'->0->>'sku' FROM events ORDER BY event_id",
		"[[a1 <nil> <nil>] [a2 <nil> <nil>] [b1 XMAS A]]")

	// A value that fits no type of the column is a bad row; the table's
	// answers don't change, and a later integer still lands.
	send(`[{"event":"buy","event_id":"c1","price":"ten"},{"event":"buy","event_id":"c2","price":7,"qty":"x"},{"event":"buy","event_id":"c3","price":4}]`)
	waitFor(t, api, "SELECT type, event_id FROM bad ORDER BY event_id", "[[schema_violation c1] [schema_violation c2]]")
	waitFor(t, api, "SELECT count(*), sum(price), sum(qty) FROM events", "[[4 36.5 6]]")
}

// lake.retention deletes the partitions it no longer keeps; the table then
// answers without them.
func TestRetentionExpiresOldPartitions(t *testing.T) {
	data := t.TempDir()
	configure := func(cfg *config.Config) {
		cfg.Lake.Retention = map[string]config.Duration{"events": config.Duration(48 * time.Hour)}
	}
	n := startNode(t, data, configure)
	defer n.Stop()
	api := n.APIURL()
	now := time.Now().UTC()
	body := fmt.Sprintf(`[{"event":"old","event_time":%q},{"event":"old","event_time":%q},{"event":"new","event_time":%q}]`,
		now.Add(-30*24*time.Hour).Format(time.RFC3339), now.Add(-72*time.Hour).Format(time.RFC3339), now.Format(time.RFC3339))
	if code, msg := post(t, n.CollectorURL(), "application/json", []byte(body)); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", "[[3]]")
	cfg := config.Default()
	cfg.ApplyOverrides(data, "", "")
	configure(cfg)
	store, err := lake.NewDir(cfg.LakeDir())
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := node.Expire(context.Background(), cfg, store, now)
	if err != nil || deleted != 2 {
		t.Fatalf("expired %d files (%v), want the 2 old partitions' files", deleted, err)
	}
	waitFor(t, api, "SELECT event, count(*) FROM events GROUP BY event", "[[new 1]]")
}

// enrich.widen_to_string: a value its column cannot take turns the column
// into VARCHAR instead of making a bad row; older files' values read as
// text too.
func TestWidenToString(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *config.Config) { c.Enrich.WidenToString = true })
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	send := func(body string) {
		t.Helper()
		if code, msg := post(t, coll, "application/json", []byte(body)); code != 200 {
			t.Fatalf("post: %d %s", code, msg)
		}
	}
	send(`[{"event":"e","event_id":"a","code":5,"n":1},{"event":"e","event_id":"b","code":6,"n":2.5}]`)
	waitFor(t, api, "SELECT typeof(code), sum(code), typeof(n) FROM events GROUP BY ALL", "[[BIGINT 11 DOUBLE]]")
	send(`[{"event":"e","event_id":"c","code":"A7"},{"event":"e","event_id":"d","code":{"x": [1, 2]}},{"event":"e","event_id":"f","code":true}]`)
	waitFor(t, api, "SELECT event_id, code, typeof(code) FROM events ORDER BY event_id",
		`[[a 5 VARCHAR] [b 6 VARCHAR] [c A7 VARCHAR] [d {"x":[1,2]} VARCHAR] [f true VARCHAR]]`)
	waitFor(t, api, "SELECT count(*) FROM bad", "[[0]]")
	// Without the option the same conflict is a bad row (TestSchemaChangesAcrossFiles).
}
