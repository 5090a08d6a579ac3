package node_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/config"
)

// Every bad row type, each caused by a real request, lands in bad with a
// message that says what was wrong, while the good events of the same
// requests land in events.
func TestEveryBadRowType(t *testing.T) {
	registry := t.TempDir()
	addSchema(t, registry, "cart")
	broken := filepath.Join(registry, "schemas", "com.acme", "broken", "jsonschema", "1-0-0")
	os.MkdirAll(filepath.Dir(broken), 0o755)
	os.WriteFile(broken, []byte(`{"type": "object", "properties": {"x": {"type": 12}}}`), 0o644)
	n := startNode(t, t.TempDir(), func(cfg *config.Config) {
		cfg.Enrich.Iglu = config.Iglu{Registries: []string{registry}, Unknown: "accept"}
		cfg.Sources = map[string]config.Source{"tcp": {Type: "syslog", Listen: "tcp://127.0.0.1:0"}}
	})
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()

	// collector_payload_format: a value in a batch that is not an object.
	// schema_violation: a field whose type conflicts with earlier rows.
	if code, body := post(t, coll, "application/json", []byte(`[{"event":"a","event_id":"g1","qty":1},42,{"event":"a","event_id":"b-type","qty":"many"},{"event":"a","event_id":"g2","qty":2}]`)); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	// tracker_protocol: an unknown Snowplow event type, and an event that
	// breaks its schema (schema_violation); enrichment_failure: a schema
	// file that is not a usable schema.
	ue := func(id, name string, data string) string {
		return fmt.Sprintf(`{"e":"ue","eid":"%s","ue_pr":%q}`, id,
			fmt.Sprintf(`{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/%s/jsonschema/1-0-0","data":%s}}`, name, data))
	}
	postTP2(t, coll, `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[`+
		`{"e":"pv","eid":"g3"},{"e":"xx","eid":"b-proto"},`+ue("b-schema", "cart", `{"sku":7}`)+`,`+ue("b-registry", "broken", `{}`)+`,{"e":"se","eid":"g4","se_ca":"c","se_ac":"a"}]}`)
	// size_violation: a syslog message over 64 KiB, between two good ones.
	addr := strings.TrimPrefix(n.SyslogAddrs()[0], "tcp://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	huge := "<13>1 2026-11-25T10:00:00Z h app - - - " + strings.Repeat("x", 70<<10)
	fmt.Fprintf(conn, "<13>1 2026-11-25T10:00:00Z h app - - - before\n%d %s<13>1 2026-11-25T10:00:01Z h app - - - after\n", len(huge), huge)
	conn.Close()

	waitFor(t, api, "SELECT event_id FROM events ORDER BY event_id", "[[g1] [g2] [g3] [g4]]")
	waitFor(t, api, "SELECT message FROM logs ORDER BY timestamp", "[[before] [after]]")
	waitFor(t, api, "SELECT count(*) FROM bad", "[[6]]")
	for _, c := range []struct{ typ, where, want string }{
		{"collector_payload_format", "payload = '42'", "expected a JSON object"},
		{"schema_violation", "event_id = 'b-type'", `field "qty" is BIGINT`},
		{"tracker_protocol", "event_id = 'b-proto'", `unknown event type e="xx"`},
		{"schema_violation", "event_id = 'b-schema'", "does not match iglu:com.acme/cart/jsonschema/1-0-0: at /sku"},
		{"enrichment_failure", "event_id = 'b-registry'", "schema registry"},
		{"size_violation", "collector = 'syslog'", "longer than the limit"},
	} {
		res := query(t, api, "SELECT type, message FROM bad WHERE "+c.where)
		got := fmt.Sprint(res.Rows)
		if len(res.Rows) != 1 || fmt.Sprint(res.Rows[0][0]) != c.typ || !strings.Contains(got, c.want) {
			t.Errorf("%s: got %s, want type %s with %q", c.where, got, c.typ, c.want)
		}
	}
}
