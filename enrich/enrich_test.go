package enrich

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/internal/jsonseq"
	"github.com/sluice-data/sluice/lake"
)

var quiet = slog.New(slog.DiscardHandler)

// receivedAt is when the test collector "received" every payload.
var receivedAt = time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)

const receivedAtText = "2026-11-25T10:00:00.123456Z"

// openBus opens an embedded bus in dir with the streams node.go creates.
func openBus(t *testing.T, dir string) *bus.Bus {
	t.Helper()
	streams := map[string]bus.StreamConfig{}
	for _, s := range sluice.Streams {
		streams[s] = bus.StreamConfig{}
	}
	b, err := bus.Open(context.Background(), bus.Options{Dir: dir, Streams: streams, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func payload(body string) sluice.Payload {
	return sluice.Payload{
		ReceivedAt: receivedAt, Collector: "http", Path: "/v1/events", ContentType: "application/json",
		IP: "203.0.113.7", UserAgent: "test-agent/1.0", Body: []byte(body),
	}
}

// Each value on raw becomes one event, bad row or duplicate, which enrich
// counts once it is stored; the tests wait for those counts (a consumer's
// pending count may lag a publish by a moment). Tests run one at a time.
var (
	published = map[*bus.Bus]int{} // values stored on raw
	settled   = map[*bus.Bus]int{} // of those, known to be enriched
)

func processed() float64 { return counter("enriched") + counter("bad") + counter("duplicate") }

// publishRaw stores one raw frame holding the given bodies, one payload each,
// and returns its sequence.
func publishRaw(t *testing.T, b *bus.Bus, bodies ...string) uint64 {
	t.Helper()
	ps := make([]sluice.Payload, len(bodies))
	for i, body := range bodies {
		ps[i] = payload(body)
		n, err := jsonseq.Count([]byte(body))
		if err != nil {
			n = 1 // one bad row for the body
		}
		published[b] += n
	}
	frame, err := sluice.EncodeFrame(ps)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := b.Publish(context.Background(), sluice.StreamRaw, frame, "")
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// runner is an Enricher running in the background.
type runner struct {
	e    *Enricher
	b    *bus.Bus
	base float64 // processed() when it started
	from int     // settled[b] when it started
	stop func()
}

func start(t *testing.T, b *bus.Bus, window time.Duration) *runner {
	t.Helper()
	e := New(Options{Bus: b, DedupeWindow: window, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := &runner{e: e, b: b, base: processed(), from: settled[b]}
	go func() { done <- e.Run(ctx) }()
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after its context ended")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// wait returns once every value published on raw is enriched and stored,
// and every raw message acknowledged.
func (r *runner) wait(t *testing.T) {
	t.Helper()
	want := float64(published[r.b] - r.from)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if processed()-r.base >= want {
			if lag, err := r.e.Lag(context.Background()); err == nil && lag == 0 {
				settled[r.b] = published[r.b]
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("enrich did not catch up with raw within 15s: %v of %v values", processed()-r.base, want)
}

// readLines returns every NDJSON line on stream, checking the line format:
// each message is whole lines, each line one valid UTF-8 JSON object.
func readLines(t *testing.T, b *bus.Bus, stream string) [][]byte {
	t.Helper()
	ctx := context.Background()
	info, err := b.Info(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if info.LastSeq == 0 {
		return nil
	}
	r, err := b.ReadFrom(ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var lines [][]byte
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-r.C():
			if len(m.Data) == 0 || m.Data[len(m.Data)-1] != '\n' {
				t.Fatalf("%s seq %d does not end in a newline: %q", stream, m.Seq, m.Data)
			}
			for line := range bytes.Lines(m.Data) {
				if !utf8.Valid(line) {
					t.Errorf("%s seq %d: line is not valid UTF-8: %q", stream, m.Seq, line)
				}
				if !json.Valid(line) || line[0] != '{' {
					t.Fatalf("%s seq %d: line is not one JSON object: %q", stream, m.Seq, line)
				}
				lines = append(lines, line)
			}
			if m.Seq >= info.LastSeq {
				return lines
			}
		case <-timeout:
			t.Fatalf("read %s: timed out before seq %d", stream, info.LastSeq)
		}
	}
}

// row is one decoded line, numbers kept as their text.
type row map[string]any

func decode(t *testing.T, line []byte) row {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var r row
	if err := d.Decode(&r); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	return r
}

func events(t *testing.T, b *bus.Bus) []row {
	t.Helper()
	var out []row
	for _, l := range readLines(t, b, sluice.StreamEvents) {
		out = append(out, decode(t, l))
	}
	return out
}

func badRows(t *testing.T, b *bus.Bus) []sluice.BadRow {
	t.Helper()
	var out []sluice.BadRow
	for _, l := range readLines(t, b, sluice.StreamBad) {
		var br sluice.BadRow
		if err := json.Unmarshal(l, &br); err != nil {
			t.Fatalf("bad row %q: %v", l, err)
		}
		out = append(out, br)
	}
	return out
}

// byEvent indexes events by their "event" name, which the tests keep unique.
func byEvent(t *testing.T, rows []row) map[string]row {
	t.Helper()
	m := map[string]row{}
	for _, r := range rows {
		name, _ := r["event"].(string)
		if _, dup := m[name]; dup {
			t.Fatalf("two events named %q", name)
		}
		m[name] = r
	}
	return m
}

func counter(result string) float64 { return testutil.ToFloat64(enrichEvents.WithLabelValues(result)) }

// checkSchemaCovers asserts the schema record has a column, in the line's
// spelling, for every own field of every event: the archiver cannot write a
// row whose column is missing.
func checkSchemaCovers(t *testing.T, b *bus.Bus, rows []row) sluice.Schema {
	t.Helper()
	s, _, err := b.Schema(context.Background(), sluice.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	canonical := map[string]bool{}
	for _, c := range sluice.EventColumns {
		canonical[c.Name] = true
	}
	for _, r := range rows {
		for k := range r {
			if canonical[k] {
				continue
			}
			if _, ok := s.Lookup(k); !ok {
				t.Errorf("event %v has field %q, which is not in the schema record %+v", r["event_id"], k, s.Columns)
			}
		}
	}
	return s
}

func TestCanonicalColumns(t *testing.T) {
	b := openBus(t, t.TempDir())
	rawSeq := publishRaw(t, b,
		`{"event_id":"given-1","event":"with_id","user_id":"u1","anonymous_id":42,"session_id":true,"page_url":"https://shop.example/p?q=1&r=<2>","page_title":"Shop","referrer":"https://ref.example/","app_id":"web","platform":"web","browser":"Firefox","os":"Linux","device_class":"Desktop","collector":"spoofed","received_at":"2001-01-01T00:00:00Z"}`,
		`[{"event":"no_id_a"},{"event":"no_id_b","ip":"198.51.100.1","useragent":"own/2"},{"event":"null_id","event_id":null},{"event":"empty_id","event_id":""}]`,
	)
	r := start(t, b, 0)
	r.wait(t)
	lines := readLines(t, b, sluice.StreamEvents)
	if len(lines) != 5 {
		t.Fatalf("got %d events, want 5:\n%s", len(lines), bytes.Join(lines, nil))
	}
	for _, l := range lines {
		if !bytes.HasPrefix(l, []byte(`{"event_id":"`)) {
			t.Errorf("line does not start with event_id: %q", l)
		}
		if id, ok := leadingEventID(l); !ok || id != decode(t, l)["event_id"] {
			t.Errorf("leadingEventID(%q) = %q, %v", l, id, ok)
		}
	}
	ev := byEvent(t, events(t, b))

	want := row{
		"event_id": "given-1", "event_time": receivedAtText, "received_at": receivedAtText,
		"collector": "http", "event": "with_id", "user_id": "u1", "anonymous_id": "42", "session_id": "true",
		"page_url": "https://shop.example/p?q=1&r=<2>", "page_title": "Shop", "referrer": "https://ref.example/",
		"app_id": "web", "platform": "web", "browser": "Firefox", "os": "Linux", "device_class": "Desktop",
		"ip": "203.0.113.7", "useragent": "test-agent/1.0",
	}
	if got := ev["with_id"]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event with_id:\n got %v\nwant %v", got, want)
	}
	if got := ev["no_id_b"]; got["ip"] != "198.51.100.1" || got["useragent"] != "own/2" {
		t.Errorf("the event's own ip/useragent were not kept: %v", got)
	}

	ids := map[string]bool{}
	for i, name := range []string{"no_id_a", "no_id_b", "null_id", "empty_id"} {
		id, _ := ev[name]["event_id"].(string)
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 5 || u.Variant() != uuid.RFC4122 {
			t.Errorf("%s: generated event_id %q is not a name-based (v5) UUID: %v", name, id, err)
		}
		if ids[id] {
			t.Errorf("%s: generated event_id %q repeats", name, id)
		}
		ids[id] = true
		// The id is the raw position: message, payload, value.
		if want := uuid.NewSHA1(idNamespace, fmt.Appendf(nil, "%d/%d/%d", rawSeq, 1, i)).String(); id != want {
			t.Errorf("%s: event_id %s, want the id of raw position %d/1/%d (%s)", name, id, rawSeq, i, want)
		}
	}
}

// Ids enrich assigns come from the raw position, so enriching the same raw
// message again (after a crash before the ack, or a replay) gives the same
// ids, and the dedupe window drops the second copy.
func TestGeneratedIDsAreStableWhenRawIsReprocessed(t *testing.T) {
	bodies := []string{`{"event":"a"}`, `[{"event":"b"},{"event":"c","event_time":1764064800000}]`}
	dir := t.TempDir()
	b := openBus(t, dir)
	publishRaw(t, b, `{"event":"first"}`)
	publishRaw(t, b, bodies...)
	r := start(t, b, 0)
	r.wait(t)
	r.stop()
	first := readLines(t, b, sluice.StreamEvents)
	if len(first) != 4 {
		t.Fatalf("got %d events, want 4", len(first))
	}

	// A new Enricher on the same bus, as after a restart, handed the raw
	// messages again, as a reset consumer would.
	ctx := context.Background()
	e := New(Options{Bus: b, Logger: quiet})
	var err error
	if e.schema, e.rev, err = b.Schema(ctx, sluice.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if err := e.rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	raw := readRaw(t, b)
	var again [][]byte
	for _, m := range raw {
		if res := e.enrichMessage(m, new([]idKey)); len(res.events) != 0 {
			t.Errorf("raw %d: re-enriched %d events that are already on events", m.Seq, len(res.events))
		}
		fresh := New(Options{Bus: b, Logger: quiet})
		fresh.schema = e.schema
		again = append(again, fresh.enrichMessage(m, new([]idKey)).events...)
	}
	if len(again) != len(first) {
		t.Fatalf("reprocessing gave %d events, want %d", len(again), len(first))
	}
	for i := range first {
		id1, _ := leadingEventID(first[i])
		id2, _ := leadingEventID(again[i])
		if id1 != id2 {
			t.Errorf("event %d: id %s the first time, %s when reprocessed", i, id1, id2)
		}
	}

	dups := counter("duplicate")
	before, _ := b.Info(ctx, sluice.StreamEvents)
	finish, err := e.handle(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := finish(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := b.Info(ctx, sluice.StreamEvents)
	if after.LastSeq != before.LastSeq {
		t.Errorf("reprocessing published %d more events messages", after.LastSeq-before.LastSeq)
	}
	if d := counter("duplicate") - dups; d != 4 {
		t.Errorf("reprocessing counted %v duplicates, want 4", d)
	}

	// Another bus with the same raw at the same positions assigns the same
	// ids: they depend on nothing but the position.
	b2 := openBus(t, t.TempDir())
	publishRaw(t, b2, `{"event":"first"}`)
	publishRaw(t, b2, bodies...)
	r2 := start(t, b2, 0)
	r2.wait(t)
	other := readLines(t, b2, sluice.StreamEvents)
	for i := range first {
		if !bytes.Equal(first[i], other[i]) {
			t.Errorf("event %d differs between two buses with the same raw:\n%s%s", i, first[i], other[i])
		}
	}
}

func readRaw(t *testing.T, b *bus.Bus) []bus.Msg {
	t.Helper()
	ctx := context.Background()
	info, err := b.Info(ctx, sluice.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := b.ReadFrom(ctx, sluice.StreamRaw, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []bus.Msg
	for m := range rd.C() {
		out = append(out, m)
		if m.Seq >= info.LastSeq {
			break
		}
	}
	return out
}

func TestEventTime(t *testing.T) {
	tests := []struct {
		value string // JSON value of event_time; "" = absent
		want  string // event_time on the line; "" = a bad row
	}{
		{``, receivedAtText},
		{`null`, receivedAtText},
		{`"2026-11-24T08:30:00Z"`, "2026-11-24T08:30:00.000000Z"},
		{`"2026-11-24T08:30:00.123456789Z"`, "2026-11-24T08:30:00.123456Z"},
		{`"2026-11-24T10:30:00+02:00"`, "2026-11-24T08:30:00.000000Z"},
		{`"2026-11-24T02:00:00-07:30"`, "2026-11-24T09:30:00.000000Z"},
		{`1764064800000`, "2025-11-25T10:00:00.000000Z"},
		{`1764064800123.5`, "2025-11-25T10:00:00.123500Z"},
		{`1.764064800001e12`, "2025-11-25T10:00:00.001000Z"},
		{`0`, "1970-01-01T00:00:00.000000Z"},
		{`"1764064800000"`, "2025-11-25T10:00:00.000000Z"},
		{`"0"`, "1970-01-01T00:00:00.000000Z"},
		{`"yesterday"`, ""},
		{`"2026-11-24 08:30:00"`, ""},
		{`"2026-11-24"`, ""},
		{`""`, ""},
		{`-1`, ""},
		{`"-1"`, ""},
		{`1e300`, ""},
		{`253402300800000`, ""}, // year 10000
		{`"0001-01-01T00:00:00Z"`, ""},
		{`true`, ""},
		{`{"ms":1}`, ""},
		{`[1764064800000]`, ""},
	}
	b := openBus(t, t.TempDir())
	var bodies []string
	for i, tt := range tests {
		body := fmt.Sprintf(`{"event":"t%d"`, i)
		if tt.value != "" {
			body += `,"event_time":` + tt.value
		}
		bodies = append(bodies, body+"}")
	}
	publishRaw(t, b, bodies...)
	r := start(t, b, 0)
	r.wait(t)
	ev := byEvent(t, events(t, b))
	bad := map[string]sluice.BadRow{}
	for _, br := range badRows(t, b) {
		var v struct{ Event string }
		json.Unmarshal([]byte(br.Payload), &v)
		bad[v.Event] = br
	}
	for i, tt := range tests {
		name := fmt.Sprintf("t%d", i)
		got, isEvent := ev[name]
		br, isBad := bad[name]
		switch {
		case isEvent == isBad:
			t.Errorf("event_time %s: event %v, bad row %v: want exactly one", tt.value, isEvent, isBad)
		case tt.want == "" && isEvent:
			t.Errorf("event_time %s was accepted as %v, want a bad row", tt.value, got["event_time"])
		case tt.want != "" && isBad:
			t.Errorf("event_time %s gave a bad row: %s", tt.value, br.Message)
		case isEvent && got["event_time"] != tt.want:
			t.Errorf("event_time %s = %v, want %s", tt.value, got["event_time"], tt.want)
		case isBad && (br.Type != sluice.BadTrackerProtocol || !strings.Contains(br.Message, "event_time")):
			t.Errorf("event_time %s: bad row %s %q, want a tracker_protocol failure naming event_time", tt.value, br.Type, br.Message)
		}
		if isEvent && got["received_at"] != receivedAtText {
			t.Errorf("received_at = %v", got["received_at"])
		}
	}
}

// Every value of a body ends up as an event or a bad row that holds it.
func TestBadRows(t *testing.T) {
	tests := []struct {
		name, value, typ, msg string // msg: a substring of the message
	}{
		{"string", `"page_view"`, sluice.BadCollectorPayloadFormat, "got a string"},
		{"number", `42`, sluice.BadCollectorPayloadFormat, "got a number"},
		{"null", `null`, sluice.BadCollectorPayloadFormat, "got null"},
		{"bool", `true`, sluice.BadCollectorPayloadFormat, "got a boolean"},
		{"array", `[[{"event":"nested"}]]`, sluice.BadCollectorPayloadFormat, "got an array"},
		{"no name", `{"event_id":"n1","user_id":"u"}`, sluice.BadTrackerProtocol, "no name"},
		{"empty name", `{"event_id":"n2","event":""}`, sluice.BadTrackerProtocol, "no name"},
		{"null name", `{"event_id":"n3","event":null}`, sluice.BadTrackerProtocol, "no name"},
		{"bad time", `{"event_id":"n4","event":"x","event_time":"soon"}`, sluice.BadTrackerProtocol, "event_time"},
		{"dt", `{"event_id":"n5","event":"x","dt":"2026-01-01"}`, sluice.BadSchemaViolation, "reserved"},
		{"HR", `{"event_id":"n6","event":"x","HR":3}`, sluice.BadSchemaViolation, "reserved"},
		{"case dup", `{"event_id":"n7","event":"x","Amount":1,"amount":2}`, sluice.BadSchemaViolation, "twice"},
		{"case dup canonical", `{"event_id":"n8","event":"x","USER_ID":"a","user_id":"b"}`, sluice.BadSchemaViolation, "twice"},
		{"object in event", `{"event_id":"n9","event":{"name":"x"}}`, sluice.BadSchemaViolation, "must be a string, got an object"},
		{"array in user_id", `{"event_id":"n10","event":"x","user_id":["a"]}`, sluice.BadSchemaViolation, "must be a string, got an array"},
		{"object in event_id", `{"event_id":{"a":1},"event":"x"}`, sluice.BadSchemaViolation, "must be a string, got an object"},
		{"empty field name", `{"event_id":"n11","event":"x","":1}`, sluice.BadSchemaViolation, "not usable as a column"},
		{"control char in name", `{"event_id":"n12","event":"x","a\tb":1}`, sluice.BadSchemaViolation, "not usable as a column"},
		{"long field name", `{"event_id":"n13","event":"x","` + strings.Repeat("k", 129) + `":1}`, sluice.BadSchemaViolation, "not usable as a column"},
		{"unicode case dup", `{"event_id":"n16","event":"x","Ärger":1,"ärger":2}`, sluice.BadSchemaViolation, "twice"},
		{"exact dup", `{"event_id":"n17","event":"x","a":1,"a":2}`, sluice.BadSchemaViolation, "twice"},
		{"number beyond DOUBLE", `{"event_id":"n14","event":"x","big":1e400}`, sluice.BadSchemaViolation, "big"},
		{"integer beyond DOUBLE", `{"event_id":"n15","event":"x","huge":1` + strings.Repeat("0", 400) + `}`, sluice.BadSchemaViolation, "huge"},
	}
	b := openBus(t, t.TempDir())
	values := []string{`{"event":"ok_before","event_id":"ok1"}`}
	for _, tt := range tests {
		values = append(values, tt.value)
	}
	values = append(values, `{"event":"ok_after","event_id":"ok2"}`)
	// One body as an array, and each value again as its own payload.
	bodies := []string{"[" + strings.Join(values, ",\n") + "]"}
	for _, tt := range tests {
		body := tt.value
		if body[0] == '[' {
			body = "[" + body + "]" // a body that is one array is unpacked
		}
		bodies = append(bodies, body)
	}
	rawSeq := publishRaw(t, b, bodies...)
	// A body that is not JSON, and a frame that is not a frame.
	notJSON := publishRaw(t, b, `{"event":"x"`)
	notFrame, err := b.Publish(context.Background(), sluice.StreamRaw, []byte("\x07garbage"), "")
	if err != nil {
		t.Fatal(err)
	}
	published[b]++
	r := start(t, b, 0)
	r.wait(t)

	ev := events(t, b)
	if len(ev) != 2 {
		t.Errorf("got %d events, want ok_before and ok_after: %v", len(ev), ev)
	}
	bad := badRows(t, b)
	if len(bad) != 2*len(tests)+2 {
		t.Fatalf("got %d bad rows, want %d", len(bad), 2*len(tests)+2)
	}
	// The array's elements come first, in order; then the payloads.
	for i, tt := range tests {
		for _, br := range []sluice.BadRow{bad[i], bad[len(tests)+i]} {
			if br.Type != tt.typ || !strings.Contains(br.Message, tt.msg) {
				t.Errorf("%s: bad row %s %q, want %s containing %q", tt.name, br.Type, br.Message, tt.typ, tt.msg)
			}
			if br.Payload != tt.value {
				t.Errorf("%s: payload %q, want the value as received %q", tt.name, br.Payload, tt.value)
			}
			if br.RawSeq != rawSeq || br.Collector != "http" || br.Path != "/v1/events" || br.IP != "203.0.113.7" ||
				!br.ReceivedAt.Equal(receivedAt) || br.FailedAt.IsZero() {
				t.Errorf("%s: bad row does not say where it came from: %+v", tt.name, br)
			}
		}
	}
	if br := bad[len(bad)-2]; br.Type != sluice.BadCollectorPayloadFormat || br.RawSeq != notJSON || br.Payload != `{"event":"x"` {
		t.Errorf("a body that is not JSON: %+v", br)
	}
	if br := bad[len(bad)-1]; br.Type != sluice.BadCollectorPayloadFormat || br.RawSeq != notFrame || !strings.Contains(br.Payload, "garbage") {
		t.Errorf("a raw message that is not a frame: %+v", br)
	}
	// Bad rows carry the event id when there is one, whichever field failed.
	for i, tt := range tests {
		var v struct {
			EventID any `json:"event_id"`
		}
		json.Unmarshal([]byte(tt.value), &v)
		id, _ := v.EventID.(string)
		for _, br := range []sluice.BadRow{bad[i], bad[len(tests)+i]} {
			if br.EventID != id {
				t.Errorf("%s: bad row has event_id %q, want %q", tt.name, br.EventID, id)
			}
		}
	}
	checkSchemaCovers(t, b, ev)
}

func TestSchemaEvolution(t *testing.T) {
	b := openBus(t, t.TempDir())
	r := start(t, b, 0)
	step := func(bodies ...string) {
		t.Helper()
		publishRaw(t, b, bodies...)
		r.wait(t)
	}
	// First values fix the types; the spelling of the first wins.
	step(`{"event":"e1","Price":10,"label":"a","flag":true,"meta":{"k":1},"gone":null}`)
	s, _, err := b.Schema(context.Background(), sluice.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]sluice.ColumnType{}
	for _, c := range s.Columns {
		types[c.Name] = c.Type
		if c.Added.IsZero() {
			t.Errorf("column %s has no Added time", c.Name)
		}
	}
	want := map[string]sluice.ColumnType{"Price": sluice.TypeBigint, "label": sluice.TypeVarchar, "flag": sluice.TypeBoolean, "meta": sluice.TypeJSON}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("schema after the first event: %v, want %v", types, want)
	}
	// Conflicts go to bad; other spellings take the schema's; an integer
	// column widens to DOUBLE, and integers after that are written as doubles.
	step(
		`{"event":"e2","event_id":"conflict1","label":5}`,
		`{"event":"e3","event_id":"conflict2","flag":"yes"}`,
		`{"event":"e4","event_id":"conflict3","meta":"text"}`,
		`{"event":"e5","event_id":"conflict4","price":"ten"}`,
		`{"event":"e6","PRICE":11,"LABEL":"b"}`,
	)
	step(`{"event":"e7","price":10.5}`)
	step(`{"event":"e8","pRiCe":12}`, `{"event":"e9","price":-3,"Flag":false,"META":[1,2]}`)
	// Folding is Unicode's, as in checkSchema.
	step(`{"event":"e10","Ärger":"x"}`, `{"event":"e11","äRGER":"y"}`)

	s, _, err = b.Schema(context.Background(), sluice.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Lookup("Price"); c.Type != sluice.TypeDouble {
		t.Errorf("Price is %s after a fractional value, want DOUBLE", c.Type)
	}
	if len(s.Columns) != 5 {
		t.Errorf("schema has %d columns, want 5: %+v", len(s.Columns), s.Columns)
	}
	rows := events(t, b)
	ev := byEvent(t, rows)
	for name, want := range map[string]string{"e1": "10", "e6": "11", "e7": "10.5", "e8": "12.0", "e9": "-3.0"} {
		if got := fmt.Sprint(ev[name]["Price"]); got != want {
			t.Errorf("%s: Price = %s, want %s (%v)", name, got, want, ev[name])
		}
	}
	if ev["e11"]["Ärger"] != "y" {
		t.Errorf("äRGER was not renamed to Ärger: %v", ev["e11"])
	}
	if ev["e6"]["label"] != "b" || ev["e9"]["flag"] != false || fmt.Sprint(ev["e9"]["meta"]) != "[1 2]" {
		t.Errorf("fields were not renamed to the schema's spelling: %v %v", ev["e6"], ev["e9"])
	}
	for _, r := range rows {
		for k := range r {
			if k != strings.ToLower(k) && k != "Price" && k != "Ärger" {
				t.Errorf("event %v has field %q in a spelling the schema does not have", r["event"], k)
			}
		}
	}
	bad := badRows(t, b)
	if len(bad) != 4 {
		t.Fatalf("got %d bad rows, want the 4 conflicts", len(bad))
	}
	for _, br := range bad {
		if br.Type != sluice.BadSchemaViolation || !strings.HasPrefix(br.EventID, "conflict") || !strings.Contains(br.Message, "in table events") {
			t.Errorf("conflict: %+v", br)
		}
	}
	checkSchemaCovers(t, b, rows)
}

// A duplicate event is dropped, but columns it brought must not end up in
// lines while missing from the schema record.
func TestDuplicateWithNewFieldKeepsSchemaRecordComplete(t *testing.T) {
	b := openBus(t, t.TempDir())
	r := start(t, b, 0)
	publishRaw(t, b, `{"event":"a","event_id":"same","f":1}`)
	r.wait(t)
	publishRaw(t, b, `{"event":"a","event_id":"same","g":1}`)
	r.wait(t)
	publishRaw(t, b, `{"event":"b","event_id":"other","g":2}`)
	r.wait(t)
	rows := events(t, b)
	if len(rows) != 2 {
		t.Fatalf("got %d events, want 2", len(rows))
	}
	checkSchemaCovers(t, b, rows)
}

func TestJSONValuesAreCompacted(t *testing.T) {
	b := openBus(t, t.TempDir())
	pretty := "{\n  \"event\": \"pretty\",\n  \"obj\": {\n    \"a\": [\n      1,\n      2\n    ],\r\n\t\"s\": \"x y\\n\"\n  },\n  \"arr\": [ {\"k\" : \"v\"} , [ ] ]\n}"
	publishRaw(t, b, pretty, "[\n"+strings.ReplaceAll(pretty, "pretty", "in_array")+"\n]")
	r := start(t, b, 0)
	r.wait(t)
	lines := readLines(t, b, sluice.StreamEvents)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (a pretty-printed object broke the format?)", len(lines))
	}
	for _, l := range lines {
		if !bytes.Contains(l, []byte(`"obj":{"a":[1,2],"s":"x y\n"}`)) || !bytes.Contains(l, []byte(`"arr":[{"k":"v"},[]]`)) {
			t.Errorf("JSON values not compacted as they were: %s", l)
		}
	}
}

func TestDuplicatesAreDropped(t *testing.T) {
	b := openBus(t, t.TempDir())
	dups, enriched := counter("duplicate"), counter("enriched")
	r := start(t, b, 0)
	// In one payload, across payloads of one frame, across frames of one
	// batch (published before enrich reads them).
	publishRaw(t, b, `[{"event":"a1","event_id":"A"},{"event":"a2","event_id":"A"}]`, `{"event":"a3","event_id":"A"}`)
	publishRaw(t, b, `{"event":"a4","event_id":"A"}`, `{"event":"b1","event_id":"B"}`)
	r.wait(t)
	// Across batches.
	publishRaw(t, b, `{"event":"a5","event_id":"A"}`, `{"event":"c1","event_id":"C"}`)
	r.wait(t)
	publishRaw(t, b, `{"event":"b2","event_id":"B"}`, `{"event":"c2","event_id":"C"}`, `{"event":"d1","event_id":"D"}`)
	r.wait(t)
	rows := events(t, b)
	var names []string
	for _, r := range rows {
		names = append(names, r["event"].(string))
	}
	if got := strings.Join(names, " "); got != "a1 b1 c1 d1" {
		t.Errorf("events %s, want a1 b1 c1 d1 (the first of each id)", got)
	}
	if d := counter("duplicate") - dups; d != 6 {
		t.Errorf("counted %v duplicates, want 6", d)
	}
	if n := counter("enriched") - enriched; n != 4 {
		t.Errorf("counted %v enriched, want 4", n)
	}
	if bad := badRows(t, b); len(bad) != 0 {
		t.Errorf("duplicates are not bad rows: %+v", bad)
	}
}

func TestDedupeWindowSurvivesRestart(t *testing.T) {
	b := openBus(t, t.TempDir())
	r := start(t, b, 0)
	publishRaw(t, b, `[{"event":"old1","event_id":"X"},{"event":"old2","event_id":"Y"}]`)
	publishRaw(t, b, `{"event":"gen"}`)
	r.wait(t)
	r.stop()
	genID := events(t, b)[2]["event_id"]

	r = start(t, b, 0)
	publishRaw(t, b, `[{"event":"new1","event_id":"X"},{"event":"new2","event_id":"Z"}]`)
	publishRaw(t, b, fmt.Sprintf(`{"event":"new3","event_id":%q}`, genID))
	r.wait(t)
	var names []string
	for _, r := range events(t, b) {
		names = append(names, r["event"].(string))
	}
	if got := strings.Join(names, " "); got != "old1 old2 gen new2" {
		t.Errorf("events %s after a restart, want old1 old2 gen new2", got)
	}
}

func TestDedupeWindowExpires(t *testing.T) {
	const window = 200 * time.Millisecond
	b := openBus(t, t.TempDir())
	r := start(t, b, window)
	publishRaw(t, b, `{"event":"first","event_id":"W"}`)
	r.wait(t)
	publishRaw(t, b, `{"event":"within","event_id":"W"}`)
	r.wait(t)
	time.Sleep(window + window/2)
	publishRaw(t, b, `{"event":"after","event_id":"W"}`)
	r.wait(t)
	var names []string
	for _, r := range events(t, b) {
		names = append(names, r["event"].(string))
	}
	if got := strings.Join(names, " "); got != "first after" {
		t.Errorf("events %s, want first after (the window is %v)", got, window)
	}
}

// Strings that are hard to carry through JSON, in values and in keys, come
// out as encoding/json decodes them (invalid UTF-8 as U+FFFD) or as bad rows;
// the line format never breaks.
func TestHostileStrings(t *testing.T) {
	hostile := []string{ // JSON string literals
		`"say \"hi\""`,
		`"C:\\path\\to\\"`,
		`"a\nb\r\nc"`,
		`"\u0000\u0001\u001f\t\b\f"`,
		"\"\x7f\"",
		`"Grüße, 東京, emoji 🎉, rtl עברית"`,
		`"\u00e9\u6771\ud83c\udf89"`,
		"\"\u2028\u2029\"",
		`"<script>&amp;</script>"`,
		`"{\"event\":\"fake\"}\n{"`,
		`"\ud800x\udc00"`,
		"\"a\xffb\xc0\"",
		"\"\xe6\x9d\"",
		"\"\xed\xa0\x80\"", // a surrogate encoded in UTF-8
		"\"\xef\xbf\xbd\"", // U+FFFD itself
	}
	b := openBus(t, t.TempDir())
	var bodies []string
	for i, h := range hostile {
		// As a canonical value, an own value and inside a JSON value; and
		// as a key.
		bodies = append(bodies,
			fmt.Sprintf(`{"event":"v%d","user_id":%s,"text":%s,"doc":{"k":%s}}`, i, h, h, h),
			fmt.Sprintf(`{"event":"k%d","k%s:%d}`, i, h[1:], i))
	}
	publishRaw(t, b, bodies...)
	r := start(t, b, 0)
	r.wait(t)
	rows := events(t, b)
	ev := byEvent(t, rows)
	bad := map[string]sluice.BadRow{}
	for _, br := range badRows(t, b) {
		var v struct{ Event string }
		if err := json.Unmarshal([]byte(br.Payload), &v); err != nil {
			t.Errorf("bad row payload %q: %v", br.Payload, err)
		}
		bad[v.Event] = br
	}
	for i, h := range hostile {
		var want string
		if err := json.Unmarshal([]byte(h), &want); err != nil {
			t.Fatal(err)
		}
		got, ok := ev[fmt.Sprintf("v%d", i)]
		if !ok {
			t.Errorf("%s as a value: no event (bad row %+v)", h, bad[fmt.Sprintf("v%d", i)])
		} else {
			doc, _ := got["doc"].(map[string]any)
			if got["user_id"] != want || got["text"] != want || doc["k"] != want {
				t.Errorf("%s as a value: user_id %q, text %q, in JSON %q; want %q", h, got["user_id"], got["text"], doc["k"], want)
			}
		}
		name := fmt.Sprintf("k%d", i)
		got, isEvent := ev[name]
		br, isBad := bad[name]
		switch {
		case !utf8.ValidString(h) && isBad:
			// A name must be valid UTF-8; refusing one is fine.
			if br.Type != sluice.BadSchemaViolation || !strings.Contains(br.Message, "not usable as a column") {
				t.Errorf("%s as a key: bad row %+v", h, br)
			}
		case strings.ContainsFunc(want, func(r rune) bool { return r < 0x20 }):
			if !isBad || isEvent || br.Type != sluice.BadSchemaViolation || !strings.Contains(br.Message, "not usable as a column") {
				t.Errorf("%s as a key: want a schema_violation bad row, got event %v, bad row %+v", h, got, br)
			}
		case !isEvent:
			t.Errorf("%s as a key: no event (bad row %+v)", h, br)
		default:
			if v, ok := got["k"+want]; !ok || fmt.Sprint(v) != fmt.Sprint(i) {
				t.Errorf("%s as a key: want key %q = %d in %v", h, "k"+want, i, got)
			}
		}
	}
	if len(ev)+len(bad) != 2*len(hostile) {
		t.Errorf("%d events + %d bad rows for %d values: some were lost", len(ev), len(bad), 2*len(hostile))
	}
	checkSchemaCovers(t, b, rows)

	// The lake takes every line, and DuckDB reads back what encoding/json
	// decodes.
	db := archive(t, b, len(ev))
	q, err := db.Query(`SELECT event, user_id, text, doc->>'$.k', doc::VARCHAR FROM events WHERE event LIKE 'v%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n := 0
	for q.Next() {
		var event, userID, text, inDoc, doc string
		if err := q.Scan(&event, &userID, &text, &inDoc, &doc); err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(event, "v%d", &i)
		var want string
		json.Unmarshal([]byte(hostile[i]), &want)
		if userID != want || text != want || inDoc != want {
			t.Errorf("%s in the lake: user_id %q, text %q, in JSON %q (%s); want %q", hostile[i], userID, text, inDoc, doc, want)
		}
		n++
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(hostile) {
		t.Errorf("DuckDB read %d of %d events", n, len(hostile))
	}
	// Every column of every row, the odd keys included, reads back.
	all, err := db.Query(`SELECT COLUMNS(*)::VARCHAR FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	for all.Next() {
	}
	if err := all.Err(); err != nil {
		t.Errorf("SELECT * from the lake: %v", err)
	}
}

// archive runs the lake's archiver over the events stream until it holds
// rows events, and returns a DuckDB with them as the view "events".
func archive(t *testing.T, b *bus.Bus, rows int) *sql.DB {
	t.Helper()
	info, err := b.Info(context.Background(), sluice.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	store, err := lake.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := lake.NewArchiver(lake.ArchiverOptions{Bus: b, Store: store, Table: lake.EventsTable, FlushInterval: 50 * time.Millisecond, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for a.Committed() < info.LastSeq && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("archiver: %v", err)
	}
	if a.Committed() < info.LastSeq {
		t.Fatalf("archiver committed up to %d of %d", a.Committed(), info.LastSeq)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	glob := filepath.Join(store.Root(), "events", "*", "*", "*.parquet")
	for _, q := range []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"CREATE VIEW events AS SELECT * FROM read_parquet('" + glob + "', hive_partitioning = true, union_by_name = true)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil || n != rows {
		t.Fatalf("the lake holds %d rows (%v), want %d", n, err, rows)
	}
	return db
}

func TestPairSurrogates(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"plain"}`, `{"a":"plain"}`},
		{`"\ud83c\udf89"`, `"\ud83c\udf89"`},
		{`"\uD83C\uDF89"`, `"\uD83C\uDF89"`},
		{`"\ud800"`, `"\ufffd"`},
		{`"\udc00"`, `"\ufffd"`},
		{`"\ud800\u0041"`, `"\ufffd\u0041"`},
		{`"\ud800\ud800\udc00"`, `"\ufffd\ud800\udc00"`},
		{`"\udc00\ud800"`, `"\ufffd\ufffd"`},
		{`"x\\ud800"`, `"x\\ud800"`}, // an escaped backslash, then text
		{`"\\\ud800"`, `"\\\ufffd"`},
		{`{"\ud800":["\udfff",{"k":"\ud801\udc37"}]}`, `{"\ufffd":["\ufffd",{"k":"\ud801\udc37"}]}`},
		{`"\u00e9\ud800"`, `"\u00e9\ufffd"`},
	}
	for _, tt := range tests {
		got := string(pairSurrogates([]byte(tt.in)))
		if got != tt.want {
			t.Errorf("pairSurrogates(%s) = %s, want %s", tt.in, got, tt.want)
		}
		// It changes nothing encoding/json sees.
		var a, b any
		if json.Unmarshal([]byte(tt.in), &a) != nil || json.Unmarshal([]byte(got), &b) != nil || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("pairSurrogates(%s) = %s: decodes differently", tt.in, got)
		}
	}
}

// A bad row names its event even when the failing field comes before
// event_id in the object.
func TestBadRowFindsEventIDAfterTheFailure(t *testing.T) {
	e := New(Options{})
	p := &sluice.Payload{ReceivedAt: time.Now(), Collector: "http"}
	_, f := e.toEvent([]byte(`{"event":"x","event_time":"yesterday","event_id":"late-id"}`), p, 1, 0, 0)
	if f == nil || f.eventID != "late-id" {
		t.Fatalf("failure %+v", f)
	}
	_, f = e.toEvent([]byte(`{"dt":1,"EVENT_ID":"upper"}`), p, 1, 0, 0)
	if f == nil || f.eventID != "upper" {
		t.Fatalf("failure %+v", f)
	}
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 25, 9, 5, 7, 123456789, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(2026, 3, 1, 0, 30, 0, 1000, time.FixedZone("x", 3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(TimeLayout); got != want {
			t.Errorf("%v: %s, want %s", tm, got, want)
		}
	}
}

// A client that lost an answer sends its events again, and another process
// (whose dedupe window has not seen them) enriches the second copy while
// the first is being published: the bus drops the copy, because messages
// of events are named by the events they hold.
func TestSameEventsFromTwoProcessesAreStoredOnce(t *testing.T) {
	b := openBus(t, t.TempDir())
	ctx := context.Background()
	body := `[{"event_id":"r-1","event":"a"},{"event_id":"r-2","event":"b"},{"event_id":"r-3","event":"c"}]`
	for _, bd := range []string{body, body, `[{"event_id":"r-4","event":"d"}]`} {
		publishRaw(t, b, bd)
	}
	raw := readRaw(t, b)
	if len(raw) != 3 {
		t.Fatalf("%d raw messages, want 3", len(raw))
	}
	for i, m := range raw {
		// A process each, neither knowing what the other published.
		e := New(Options{Bus: b, Logger: quiet})
		var err error
		if e.schema, e.rev, err = b.Schema(ctx, sluice.StreamEvents); err != nil {
			t.Fatal(err)
		}
		finish, err := e.handle(ctx, []bus.Msg{m})
		if err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
		if err := finish(ctx); err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
	}
	var ids []string
	for _, l := range readLines(t, b, sluice.StreamEvents) {
		id, _ := leadingEventID(l)
		ids = append(ids, id)
	}
	if got := strings.Join(ids, " "); got != "r-1 r-2 r-3 r-4" {
		t.Errorf("events hold %s, want r-1 r-2 r-3 r-4 once each", got)
	}
}

// A batch whose store failed comes again and its events are enriched again,
// not dropped as duplicates of themselves: both the batch that failed and
// the one the bus fails after it (handled while, or just after, the store
// failed, and redelivered without being stored).
func TestEventsOfAnUnstoredBatchAreNotDuplicates(t *testing.T) {
	dir := t.TempDir()
	b := openBus(t, dir)
	publishRaw(t, b, `[{"event":"a","event_id":"A"},{"event":"a2","event_id":"A"}]`)
	publishRaw(t, b, `{"event":"b","event_id":"B"}`, `{"event":"c"}`)
	raw := readRaw(t, b)
	ctx := context.Background()
	e := New(Options{Bus: b, Logger: quiet})
	var err error
	if e.schema, e.rev, err = b.Schema(ctx, sluice.StreamEvents); err != nil {
		t.Fatal(err)
	}
	handle := func(batch []bus.Msg) bus.Finish {
		t.Helper()
		finish, err := e.handle(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		return finish
	}
	first := handle(raw[:1])
	// The bus goes away while the first batch is stored.
	b.Close()
	if err := first(ctx); err == nil {
		t.Fatal("storing on a closed bus succeeded")
	}
	b = openBus(t, dir)
	e.bus = b
	// The next batch is handled, then failed by the bus (its predecessor
	// failed) without being stored; then both come again.
	handle(raw[1:2])
	for _, batch := range [][]bus.Msg{raw[:1], raw[1:2]} {
		if err := handle(batch)(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range events(t, b) {
		got = append(got, r["event"].(string))
	}
	if s := strings.Join(got, " "); s != "a b c" {
		t.Fatalf("events %q, want \"a b c\" (a2 is a duplicate of a)", s)
	}
}
