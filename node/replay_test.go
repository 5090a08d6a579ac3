package node_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/server"
)

func postTP2(t *testing.T, collector, body string) {
	t.Helper()
	resp, err := http.Post(collector+"/com.snowplowanalytics.snowplow/tp2", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tp2: %d", resp.StatusCode)
	}
}

// ueEvent is a tp2 body with one page view and one self-describing event of
// schema iglu:com.acme/<name>/jsonschema/1-0-0.
func ueEvent(id, name string) string {
	ue := fmt.Sprintf(`{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/%s/jsonschema/1-0-0","data":{"sku":"A-1"}}}`, name)
	return fmt.Sprintf(`{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","eid":"pv-%s"},{"e":"ue","eid":"%s","ue_pr":%q}]}`, id, id, ue)
}

func addSchema(t *testing.T, registry, name string) {
	t.Helper()
	p := filepath.Join(registry, "schemas", "com.acme", name, "jsonschema", "1-0-0")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	schema := `{"type":"object","properties":{"sku":{"type":"string"}},"required":["sku"]}`
	if err := os.WriteFile(p, []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An event whose schema was missing is a bad row; once the schema is in the
// registry, `bad replay` turns it into an event, through the running server
// or, with none running, on the data dir; replaying again adds nothing.
func TestReplayBadRowsAfterAFix(t *testing.T) {
	dir, registry := t.TempDir(), t.TempDir()
	withRegistry := func(cfg *config.Config) {
		cfg.Enrich.Iglu = config.Iglu{Registries: []string{registry}, Unknown: "bad"}
	}
	n := startNode(t, dir, withRegistry)
	api := n.APIURL()
	postTP2(t, n.CollectorURL(), ueEvent("ue-1", "cart"))
	waitFor(t, api, "SELECT type, event_id FROM bad", "[[schema_violation ue-1]]")
	waitFor(t, api, "SELECT event_id FROM events", "[[pv-ue-1]]")
	if msg := fmt.Sprint(query(t, api, "SELECT message FROM bad").Rows); !strings.Contains(msg, "iglu:com.acme/cart/jsonschema/1-0-0") {
		t.Errorf("bad row message does not name the schema: %s", msg)
	}

	client := &server.Client{URL: api}
	replay := func(types ...string) map[string]any {
		var res map[string]any
		if err := client.Replay(context.Background(), server.ReplayRequest{Types: types, Since: time.Now().Add(-time.Hour)}, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	// A type with no rows replays nothing.
	if res := replay("enrichment_failure"); fmt.Sprint(res["matched"]) != "0" {
		t.Errorf("replay of another type: %v", res)
	}
	addSchema(t, registry, "cart")
	if res := replay("schema_violation"); fmt.Sprintf("%v %v", res["matched"], res["replayed"]) != "1 1" {
		t.Fatalf("replay: %v", res)
	}
	waitFor(t, api, "SELECT event_id, event, unstruct_event_com_acme_cart_1->>'sku' FROM events WHERE event_id = 'ue-1'", "[[ue-1 cart A-1]]")

	// Again: the same event, dropped as a duplicate. A marker sent after
	// it shows enrich got past it.
	replay("schema_violation")
	postTP2(t, n.CollectorURL(), `{"schema":"s","data":[{"e":"pv","eid":"marker-1"}]}`)
	waitFor(t, api, "SELECT count(*) FROM events WHERE event_id = 'marker-1'", "[[1]]")
	waitFor(t, api, "SELECT count(*) FROM events", "[[3]]")

	// With no server running, the replay goes on the data dir; enrich takes
	// it at the next start.
	postTP2(t, n.CollectorURL(), ueEvent("ue-2", "wishlist"))
	waitFor(t, api, "SELECT count(*) FROM bad WHERE event_id = 'ue-2'", "[[1]]")
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	addSchema(t, registry, "wishlist")
	cfg := config.Default()
	cfg.ApplyOverrides(dir, "", "")
	withRegistry(cfg)
	res, err := node.Replay(context.Background(), cfg, server.ReplayRequest{Types: []string{"schema_violation"}, Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Both rows match; ue-1 is replayed once more and dropped again.
	if res.Matched != 2 || res.Replayed != 2 {
		t.Errorf("offline replay: %+v", res)
	}
	n = startNode(t, dir, withRegistry)
	defer n.Stop()
	waitFor(t, n.APIURL(), "SELECT event_id FROM events WHERE event = 'wishlist'", "[[ue-2]]")
	waitFor(t, n.APIURL(), "SELECT count(*), count(DISTINCT event_id) FROM events", "[[5 5]]")
}
