package node_test

import (
	"testing"
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
