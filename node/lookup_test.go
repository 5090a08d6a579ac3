package node_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
)

// A pipeline enriches purchases from the customers table that another
// pipeline writes into the DuckDB warehouse.
func TestPipelineLookupTable(t *testing.T) {
	testLookupTable(t)
}

// The same with PostgreSQL as the warehouse.
func TestPipelineLookupTableInPostgres(t *testing.T) {
	url := pgtest.URL(t)
	testLookupTable(t, func(c *config.Config) { c.Warehouse.URL = url })
}

// testLookupTable: the customers table does not exist when the node starts
// (its pipeline creates it), so the lookup starts empty; once the table is
// there, purchases get the customer's fields with the warehouse's types
// (the integer customer_id matches user_id, which events hold as text); a
// customer added later is found after the next reload.
func testLookupTable(t *testing.T, configure ...func(*config.Config)) {
	dir := t.TempDir()
	out := filepath.Join(dir, "enriched.ndjson")
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
pipelines:
  customers:
    from: events
    steps:
      - filter: 'event == "signup"'
      - parse: {field: since, format: timestamp}
      - keep: [customer_id, plan, seats, score, since]
    to: {table: customers}
  enriched:
    from: events
    steps:
      - filter: 'event == "purchase"'
      - lookup: {table: customers, key: user_id, column: customer_id, fields: [plan, seats, score, since], reload: 1s}
      - keep: [event_id, user_id, plan, seats, score, since]
    to: {file: %q}
`, out)), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), append([]func(*config.Config){withConfigFile(t, cfgFile)}, configure...)...)
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	send := func(body string) {
		t.Helper()
		if code, msg := post(t, coll, "application/x-ndjson", []byte(body)); code != 200 {
			t.Fatalf("post: %d %s", code, msg)
		}
	}
	signup := func(id int, plan string, seats int, score float64) string {
		return fmt.Sprintf(`{"event":"signup","event_id":"s%d","customer_id":%d,"plan":%q,"seats":%d,"score":%g,"since":"2025-03-0%dT12:00:00Z"}`+"\n", id, id, plan, seats, score, id)
	}
	// purchasesUntilEnriched sends purchases of user until one comes out
	// with the customer's plan (the first ones after the table changed may
	// go before the reload), and returns that one.
	seq := 0
	purchasesUntilEnriched := func(user string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			seq++
			id := fmt.Sprintf("p%d", seq)
			send(fmt.Sprintf(`{"event":"purchase","event_id":%q,"user_id":%q}`+"\n", id, user))
			for range 10 {
				time.Sleep(50 * time.Millisecond)
				if row, ok := outputRows(t, out)[id]; ok {
					if row["plan"] != nil {
						return row
					}
					break
				}
			}
		}
		t.Fatalf("no purchase of user %s was enriched; the output:\n%v", user, outputRows(t, out))
		return nil
	}

	send(signup(1, "pro", 5, 0.5) + signup(2, "free", 1, 1.25))
	waitFor(t, api, "SELECT count(*) FROM customers", "[[2]]")
	got := purchasesUntilEnriched("1")
	want := map[string]any{"event_id": got["event_id"], "user_id": "1", "plan": "pro", "seats": 5.0, "score": 0.5, "since": "2025-03-01T12:00:00.000000Z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("enriched: got %#v, want %#v", got, want)
	}
	// The table stays loaded: every purchase from now on is enriched, and
	// one of no customer passes as it is.
	send(`{"event":"purchase","event_id":"q2","user_id":"2"}` + "\n" + `{"event":"purchase","event_id":"q9","user_id":"9"}` + "\n")

	// A customer added later: the lookup reads the table again.
	send(signup(3, "team", 12, 2))
	waitFor(t, api, "SELECT count(*) FROM customers", "[[3]]")
	got = purchasesUntilEnriched("3")
	want = map[string]any{"event_id": got["event_id"], "user_id": "3", "plan": "team", "seats": 12.0, "score": 2.0, "since": "2025-03-03T12:00:00.000000Z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a customer added later: got %#v, want %#v", got, want)
	}
	rows := outputRows(t, out)
	want = map[string]any{"event_id": "q2", "user_id": "2", "plan": "free", "seats": 1.0, "score": 1.25, "since": "2025-03-02T12:00:00.000000Z"}
	if !reflect.DeepEqual(rows["q2"], want) {
		t.Errorf("customer 2: got %#v, want %#v", rows["q2"], want)
	}
	if want = map[string]any{"event_id": "q9", "user_id": "9"}; !reflect.DeepEqual(rows["q9"], want) {
		t.Errorf("no customer: got %#v, want %#v", rows["q9"], want)
	}
}

// outputRows reads a file output's NDJSON rows, by event_id.
func outputRows(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	rows := map[string]map[string]any{}
	for line := range strings.Lines(string(data)) {
		if !strings.HasSuffix(line, "\n") {
			break // being written
		}
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		rows[fmt.Sprint(row["event_id"])] = row
	}
	return rows
}
