package enrich

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/enrich/iglu"
)

// enrichPayloads runs enrich on payloads without a bus and returns the events
// and bad rows, decoded. Each payload is deduplicated on its own.
func enrichPayloads(t *testing.T, e *Enricher, ps ...sluice.Payload) (events, bad []map[string]any) {
	t.Helper()
	var res result
	for i := range ps {
		var keys []idKey
		e.enrichPayload(&res, 7, i, &ps[i], &keys)
		e.seen.forget(keys)
	}
	dec := func(lines [][]byte) []map[string]any {
		var out []map[string]any
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("line is not JSON: %v\n%s", err, l)
			}
			out = append(out, m)
		}
		return out
	}
	return dec(res.events), dec(res.bad)
}

func tp2(events ...map[string]string) sluice.Payload {
	data, _ := json.Marshal(events)
	body := `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":` + string(data) + `}`
	return sluice.Payload{
		ReceivedAt: receivedAt, Collector: "http", Path: "/com.snowplowanalytics.snowplow/tp2", ContentType: "application/json",
		IP: "203.0.113.7", UserAgent: "header-agent/1.0",
		Headers: map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000001"},
		Body:    []byte(body),
	}
}

func pixel(q url.Values) sluice.Payload {
	return sluice.Payload{
		ReceivedAt: receivedAt, Collector: "http", Path: "/i", IP: "203.0.113.7", UserAgent: "header-agent/1.0",
		Headers: map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000002"},
		Body:    []byte(q.Encode()),
	}
}

func sdjson(schema string, data any) string {
	b, _ := json.Marshal(map[string]any{"schema": schema, "data": data})
	return string(b)
}

func TestSnowplowPageViewFields(t *testing.T) {
	e := New(Options{})
	// The device clock is 10 s behind: dtm 5 s before stm.
	events, bad := enrichPayloads(t, e, tp2(map[string]string{
		"e": "pv", "eid": "e6f3a0a4-1b6e-4d7b-9f38-3c4b1c2d0001", "aid": "shop", "p": "web", "tv": "js-4.1.0", "tna": "sp",
		"uid": "alice", "duid": "d-1", "sid": "s-1", "vid": "3", "url": "https://shop.example/p?utm_source=x", "page": "Home",
		"refr": "https://www.google.com/", "res": "1920x1080", "vp": "800x600", "lang": "en-GB", "tz": "Europe/London",
		"dtm": "1764064790000", "stm": "1764064795000", "cs": "UTF-8", "unknown_field": "ignored",
	}))
	if len(bad) != 0 || len(events) != 1 {
		t.Fatalf("events %v bad %v", events, bad)
	}
	ev := events[0]
	want := map[string]any{
		"event_id": "e6f3a0a4-1b6e-4d7b-9f38-3c4b1c2d0001", "event": "page_view", "event_type": "page_view",
		"app_id": "shop", "platform": "web", "v_tracker": "js-4.1.0", "name_tracker": "sp", "user_id": "alice",
		"anonymous_id": "d-1", "domain_userid": "d-1", "network_userid": "5c1b3e1e-0000-4000-8000-000000000001",
		"session_id": "s-1", "domain_sessionidx": 3.0, "page_url": "https://shop.example/p?utm_source=x",
		"page_title": "Home", "referrer": "https://www.google.com/", "dvce_screenwidth": 1920.0, "dvce_screenheight": 1080.0,
		"br_viewwidth": 800.0, "br_viewheight": 600.0, "br_lang": "en-GB", "os_timezone": "Europe/London",
		"dvce_created_tstamp": "2025-11-25T09:59:50.000000Z", "dvce_sent_tstamp": "2025-11-25T09:59:55.000000Z",
		"doc_charset": "UTF-8", "ip": "203.0.113.7", "useragent": "header-agent/1.0", "collector": "http",
		// received 2026-11-25T10:00:00.123456 minus the 5 s between creation and sending.
		"event_time": "2026-11-25T09:59:55.123456Z",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("%s = %#v, want %#v", k, ev[k], v)
		}
	}
	if _, ok := ev["unknown_field"]; ok {
		t.Error("unknown tracker fields must not become columns")
	}
}

func TestSnowplowSelfDescribingAndContexts(t *testing.T) {
	e := New(Options{})
	ue := sdjson("iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
		map[string]any{"schema": "iglu:com.acme/linkClick/jsonschema/1-0-0", "data": map[string]any{"target": "/buy", "n": 2}})
	co := sdjson("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", []any{
		map[string]any{"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": map[string]any{"id": "u1"}},
		map[string]any{"schema": "iglu:com.acme/user/jsonschema/1-0-1", "data": map[string]any{"id": "u2"}},
		map[string]any{"schema": "iglu:org.schema/WebPage/jsonschema/1-0-0", "data": map[string]any{"genre": "shop"}},
	})
	raw := base64.RawURLEncoding.EncodeToString
	q := url.Values{"e": {"ue"}, "eid": {"ev-ue-1"}, "ue_px": {raw([]byte(ue))}, "cx": {raw([]byte(co))}, "ttm": {"1764064000000"}}
	events, bad := enrichPayloads(t, e, pixel(q),
		tp2(map[string]string{"e": "se", "eid": "ev-se-1", "se_ca": "shop", "se_ac": "add", "se_va": "12.5", "co": co}))
	if len(bad) != 0 || len(events) != 2 {
		t.Fatalf("events %v bad %v", events, bad)
	}
	ev := events[0]
	for k, v := range map[string]any{
		"event": "linkClick", "event_type": "unstruct", "event_vendor": "com.acme", "event_name": "linkClick",
		"event_version": "1-0-0", "event_format": "jsonschema", "event_time": "2025-11-25T09:46:40.000000Z",
		"network_userid": "5c1b3e1e-0000-4000-8000-000000000002",
		"anonymous_id":   "5c1b3e1e-0000-4000-8000-000000000002",
	} {
		if ev[k] != v {
			t.Errorf("%s = %#v, want %#v", k, ev[k], v)
		}
	}
	if got, _ := json.Marshal(ev["unstruct_event_com_acme_link_click_1"]); string(got) != `{"n":2,"target":"/buy"}` {
		t.Errorf("unstruct column: %s", got)
	}
	if got, _ := json.Marshal(ev["contexts_com_acme_user_1"]); string(got) != `[{"id":"u1"},{"id":"u2"}]` {
		t.Errorf("user contexts: %s", got)
	}
	if got, _ := json.Marshal(ev["contexts_org_schema_web_page_1"]); string(got) != `[{"genre":"shop"}]` {
		t.Errorf("web page context: %s (%v)", got, ev)
	}
	se := events[1]
	if se["event"] != "struct" || se["se_value"] != 12.5 || se["se_category"] != "shop" || se["se_action"] != "add" {
		t.Errorf("structured event: %v", se)
	}
}

func TestSnowplowAnonymous(t *testing.T) {
	e := New(Options{})
	p := tp2(map[string]string{"e": "pv", "eid": "ev-anon", "ip": "198.51.100.1", "tnuid": "not-for-anonymous"})
	p.IP = ""
	p.Headers = map[string]string{sluice.HeaderNetworkUserID: "00000000-0000-0000-0000-000000000000", sluice.HeaderAnonymous: "*"}
	events, _ := enrichPayloads(t, e, p)
	if len(events) != 1 {
		t.Fatal(events)
	}
	ev := events[0]
	if _, ok := ev["ip"]; ok {
		t.Errorf("anonymous event keeps ip %v", ev["ip"])
	}
	if ev["network_userid"] != "00000000-0000-0000-0000-000000000000" {
		t.Errorf("network_userid %v", ev["network_userid"])
	}
}

// writeSchema puts a JSON Schema into an Iglu static registry layout.
func writeSchema(t *testing.T, dir, vendor, name, version, schema string) {
	t.Helper()
	p := filepath.Join(dir, "schemas", vendor, name, "jsonschema", version)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSnowplowBadRows(t *testing.T) {
	dir := t.TempDir()
	writeSchema(t, dir, "com.acme", "link_click", "1-0-0", `{
		"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
		"self": {"vendor": "com.acme", "name": "link_click", "format": "jsonschema", "version": "1-0-0"},
		"type": "object", "properties": {"target": {"type": "string", "maxLength": 10}}, "required": ["target"],
		"additionalProperties": false}`)
	reg, err := iglu.Open([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	ueOf := func(schema string, data any) string {
		return sdjson("iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0", map[string]any{"schema": schema, "data": data})
	}
	cases := []struct {
		name   string
		params map[string]string
		typ    string
		msg    string
	}{
		{"no e", map[string]string{"eid": "b1"}, sluice.BadTrackerProtocol, `needs "e"`},
		{"unknown e", map[string]string{"eid": "b2", "e": "zz"}, sluice.BadTrackerProtocol, `unknown event type e="zz"`},
		{"se_va not a number", map[string]string{"eid": "b3", "e": "se", "se_ca": "c", "se_ac": "a", "se_va": "lots"}, sluice.BadTrackerProtocol, `se_va (se_value): "lots" is not a number`},
		{"se without action", map[string]string{"eid": "b4", "e": "se", "se_ca": "c"}, sluice.BadTrackerProtocol, "needs se_ca and se_ac"},
		{"ue without payload", map[string]string{"eid": "b5", "e": "ue"}, sluice.BadTrackerProtocol, "needs ue_pr or ue_px"},
		{"bad base64", map[string]string{"eid": "b6", "e": "ue", "ue_px": "!!!"}, sluice.BadTrackerProtocol, "ue_px is not base64url"},
		{"ue_pr not JSON", map[string]string{"eid": "b7", "e": "ue", "ue_pr": "{nope"}, sluice.BadTrackerProtocol, "ue_pr is not JSON"},
		{"not an Iglu URI", map[string]string{"eid": "b8", "e": "ue", "ue_pr": ueOf("com.acme/x/1", map[string]any{})}, sluice.BadSchemaViolation, "is not an Iglu URI"},
		{"violates its schema", map[string]string{"eid": "b9", "e": "ue", "ue_pr": ueOf("iglu:com.acme/link_click/jsonschema/1-0-0", map[string]any{"target": "far too long a target", "x": 1})}, sluice.BadSchemaViolation, "does not match iglu:com.acme/link_click/jsonschema/1-0-0: at /"},
		{"missing required", map[string]string{"eid": "b10", "e": "ue", "ue_pr": ueOf("iglu:com.acme/link_click/jsonschema/1-0-0", map[string]any{})}, sluice.BadSchemaViolation, "target"},
		{"unknown schema rejected", map[string]string{"eid": "b11", "e": "ue", "ue_pr": ueOf("iglu:com.acme/other/jsonschema/1-0-0", map[string]any{})}, sluice.BadSchemaViolation, "schema not found"},
		{"bad dimensions", map[string]string{"eid": "b12", "e": "pv", "res": "wide"}, sluice.BadTrackerProtocol, "not WIDTHxHEIGHT"},
		{"bad timestamp", map[string]string{"eid": "b13", "e": "pv", "dtm": "yesterday"}, sluice.BadTrackerProtocol, "epoch milliseconds"},
	}
	e := New(Options{Iglu: reg, RejectUnknownSchemas: true})
	var ps []sluice.Payload
	for _, c := range cases {
		ps = append(ps, tp2(c.params, map[string]string{"e": "pv", "eid": "good-" + c.params["eid"]}))
	}
	// A value that is not a string, and a body that is not an envelope.
	nonString := tp2()
	nonString.Body = []byte(`{"schema":"s","data":[{"e":"pv","eid":"b14","vid":{"n":1}},{"e":"pv","eid":"good-b14"}]}`)
	ps = append(ps, nonString)
	events, bad := enrichPayloads(t, e, ps...)
	if len(events) != len(cases)+1 {
		t.Errorf("%d good events landed, want %d", len(events), len(cases)+1)
	}
	byID := map[string]map[string]any{}
	for _, b := range bad {
		byID[b["event_id"].(string)] = b
	}
	for _, c := range cases {
		b := byID[c.params["eid"]]
		if b == nil {
			t.Errorf("%s: no bad row", c.name)
			continue
		}
		if b["type"] != c.typ || !strings.Contains(b["message"].(string), c.msg) {
			t.Errorf("%s: %v: %v, want %s containing %q", c.name, b["type"], b["message"], c.typ, c.msg)
		}
		if !strings.Contains(b["payload"].(string), c.params["eid"]) {
			t.Errorf("%s: payload %v does not hold the event", c.name, b["payload"])
		}
	}
	if b := byID["b14"]; b == nil || b["type"] != sluice.BadTrackerProtocol || !strings.Contains(b["message"].(string), `"vid" must be a string`) {
		t.Errorf("non-string value: %v", b)
	}

	// With the default policy an unknown schema is accepted, a known one
	// still checked.
	e = New(Options{Iglu: reg})
	events, bad = enrichPayloads(t, e,
		tp2(map[string]string{"e": "ue", "eid": "u1", "ue_pr": ueOf("iglu:com.acme/other/jsonschema/1-0-0", map[string]any{"a": 1})}),
		tp2(map[string]string{"e": "ue", "eid": "u2", "ue_pr": ueOf("iglu:com.acme/link_click/jsonschema/1-0-0", map[string]any{"target": "/x"})}),
		tp2(map[string]string{"e": "ue", "eid": "u3", "ue_pr": ueOf("iglu:com.acme/link_click/jsonschema/1-0-0", map[string]any{"target": 5})}))
	if len(events) != 2 || len(bad) != 1 || bad[0]["event_id"] != "u3" {
		t.Errorf("accept policy: events %v bad %v", events, bad)
	}
}

func TestFingerprint(t *testing.T) {
	e := New(Options{Fingerprint: true})
	a, b := payload(`{"event":"click","n":1,"event_time":"2026-11-25T09:00:00Z"}`), payload(`{"n":1,"event_time":"2026-11-25T09:00:00Z","event":"click"}`)
	c := payload(`{"event":"click","n":2,"event_time":"2026-11-25T09:00:00Z"}`)
	withID := payload(`{"event":"click","n":1,"event_time":"2026-11-25T09:00:00Z","event_id":"mine"}`)
	sp1 := tp2(map[string]string{"e": "pv", "eid": "x1", "url": "https://a.example/", "stm": "1764064795000"})
	sp2 := tp2(map[string]string{"e": "pv", "eid": "x1", "url": "https://a.example/", "stm": "1764064799999"})
	sp3 := tp2(map[string]string{"e": "pv", "eid": "x1", "url": "https://b.example/", "stm": "1764064795000"})
	events, bad := enrichPayloads(t, e, a, b, c, withID, sp1, sp2, sp3)
	if len(bad) != 0 || len(events) != 7 {
		t.Fatalf("events %d bad %v", len(events), bad)
	}
	fp := func(i int) string { return events[i]["event_fingerprint"].(string) }
	id := func(i int) string { return events[i]["event_id"].(string) }
	if fp(0) != fp(1) || id(0) != id(1) {
		t.Errorf("field order changed the fingerprint or id: %v %v", events[0], events[1])
	}
	if fp(0) == fp(2) || id(0) == id(2) {
		t.Error("different events share a fingerprint")
	}
	if fp(3) != fp(0) || id(3) != "mine" {
		t.Errorf("event_id must not count in the fingerprint nor be replaced: %v", events[3])
	}
	if fp(4) != fp(5) || fp(4) == fp(6) {
		t.Errorf("snowplow fingerprints: %s %s %s", fp(4), fp(5), fp(6))
	}
	e = New(Options{})
	events, _ = enrichPayloads(t, e, a)
	if _, ok := events[0]["event_fingerprint"]; ok {
		t.Error("fingerprint off, column present")
	}
}
