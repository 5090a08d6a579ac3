package enrich

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/enrich/iglu"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/*.golden from the current enrich")

// TestGoldenOutput pins what enrich publishes, byte for byte, for a varied
// corpus of tracker protocol payloads (and some JSON and Segment ones, which
// share the encoding): events, bad rows and the table schema they leave. A
// change that alters any of it is a change of contract, not an optimisation;
// rewrite the file with -update-golden only when that is the intent.
func TestGoldenOutput(t *testing.T) {
	reg := goldenRegistry(t)
	// The first configurations see the whole corpus, the others enough of
	// it to meet each kind of event (which keeps the file near 1 MB).
	configs := []struct {
		name   string
		events int // generated tracker events, before the odd ones
		opts   Options
		schema []sluice.Column // the events table before the corpus
	}{
		{name: "default", events: 150, opts: Options{Enrichments: []Enrichment{NewUserAgent(), Campaign{}, Referrer{}}}},
		{name: "fingerprint-iglu-anonymize", events: 150, opts: Options{Enrichments: []Enrichment{NewUserAgent(), Campaign{}, Referrer{}, AnonymizeIP{}},
			Fingerprint: true, Iglu: reg, RejectUnknownSchemas: true}},
		{name: "iglu-accept", events: 50, opts: Options{Iglu: reg}},
		{name: "conflicts", events: 25, schema: goldenSchema(), opts: Options{Enrichments: []Enrichment{Referrer{}}}},
		{name: "widen", events: 50, schema: goldenSchema(), opts: Options{WidenToString: true, Enrichments: []Enrichment{Campaign{}}}},
	}
	var out bytes.Buffer
	for _, c := range configs {
		// POST bodies: field order is the body's, so lines are compared
		// byte for byte, and so is the schema.
		e := goldenEnricher(c.opts, c.schema)
		for mi, frame := range goldenFrames(c.events) {
			fmt.Fprintf(&out, "=== %s: message %d\n", c.name, mi)
			writeResult(&out, e.enrichMessage(bus.Msg{Seq: uint64(100 + mi), Time: receivedAt, Data: frame}, new([]idKey)), false)
		}
		fmt.Fprintf(&out, "=== %s: schema\n", c.name)
		for _, col := range e.schema.Columns {
			fmt.Fprintf(&out, "%s %s %s\n", col.Name, col.Type, col.Added.Format(time.RFC3339Nano))
		}
		// GET events' fields came through a map (url.ParseQuery) in a random
		// order when this file was made (they are sorted by name now, see
		// TestGETEventsAreTheSameEveryTime): their lines are compared member
		// by member.
		e = goldenEnricher(c.opts, c.schema)
		fmt.Fprintf(&out, "=== %s: GET\n", c.name)
		writeResult(&out, e.enrichMessage(bus.Msg{Seq: 99, Time: receivedAt, Data: goldenGETFrame()}, new([]idKey)), true)
		names := make([]string, 0, len(e.schema.Columns))
		for _, col := range e.schema.Columns {
			names = append(names, fmt.Sprintf("%s %s", col.Name, col.Type))
		}
		slices.Sort(names)
		fmt.Fprintf(&out, "=== %s: GET schema\n%s\n", c.name, strings.Join(names, "\n"))
	}
	path := filepath.Join("testdata", "enrich.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./enrich -run TestGoldenOutput -update-golden writes it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		got, wantLines := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(got), len(wantLines)) {
			if got[i] != wantLines[i] {
				t.Fatalf("output differs from %s at line %d:\n got: %s\nwant: %s", path, i+1, got[i], wantLines[i])
			}
		}
		t.Fatalf("output differs from %s: %d lines, want %d", path, len(got), len(wantLines))
	}
}

func goldenEnricher(o Options, schema []sluice.Column) *Enricher {
	o.Logger = quiet
	e := New(o)
	e.now = func() time.Time { return time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC) }
	e.schema = sluice.Schema{Table: sluice.StreamEvents, Columns: slices.Clone(schema)}
	return e
}

// goldenSchema is a table whose columns clash with what tracker events bring,
// in type and in the spelling of names.
func goldenSchema() []sluice.Column {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return []sluice.Column{
		{Name: "br_lang", Type: sluice.TypeBigint, Added: at},
		{Name: "se_value", Type: sluice.TypeBigint, Added: at},
		{Name: "domain_sessionidx", Type: sluice.TypeDouble, Added: at},
		{Name: "V_Tracker", Type: sluice.TypeVarchar, Added: at},
		{Name: "dvce_created_tstamp", Type: sluice.TypeVarchar, Added: at},
		{Name: "contexts_com_acme_visitor_1", Type: sluice.TypeVarchar, Added: at},
	}
}

// goldenRegistry holds link_click and visitor; the path is relative, as it
// appears in bad rows' messages.
func goldenRegistry(t *testing.T) *iglu.Registry {
	reg, err := iglu.Open([]string{filepath.Join("testdata", "iglu")})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// writeResult writes what one raw message became; sorted compares each event
// by its sorted members.
func writeResult(w *bytes.Buffer, res result, sorted bool) {
	fmt.Fprintf(w, "enriched %d failed %d duplicates %d changed %v\n", res.enriched, res.failed, res.duplicates, res.schemaChanged)
	for i, l := range res.events {
		fmt.Fprintf(w, "id %s\n", res.eventIDs[i])
		if sorted {
			var members []string
			_ = jsonseq.Fields(l, func(k, v []byte) error {
				members = append(members, strconv.Quote(string(k))+":"+string(v))
				return nil
			})
			slices.Sort(members)
			l = []byte("{" + strings.Join(members, ",") + "}\n")
		}
		w.Write(l)
	}
	for _, l := range res.bad {
		w.WriteString("bad ")
		w.Write(l)
	}
}

// member is one name and raw JSON value of a hand-written tp2 event, so
// that field order and escapes are the test's choice.
type member struct{ k, raw string }

func str(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func htmlStr(s string) string { b, _ := json.Marshal(s); return string(b) }

func object(ms []member) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.k)
		b.WriteByte(':')
		b.WriteString(m.raw)
	}
	b.WriteByte('}')
	return b.String()
}

const (
	goldenContexts = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
	goldenUE       = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
)

// goldenEvents turns demo traffic into tracker events as trackers write
// them, each varied in a way enrich has to get right.
func goldenEvents(n int) []string {
	g := demo.NewGenerator(7)
	r := rand.New(rand.NewPCG(7, 11))
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var evs []map[string]any
	for len(evs) < n {
		evs = append(evs, g.Next(at)...)
		at = at.Add(750 * time.Millisecond)
	}
	var out []string
	for i, ev := range evs[:n] {
		s := func(k string) string { v, _ := ev[k].(string); return v }
		ms := strconv.FormatInt(at.Add(time.Duration(i)*time.Second).UnixMilli(), 10)
		enc := str
		if i%3 == 0 {
			enc = htmlStr // \u0026, \u003c as encoding/json writes them
		}
		var m []member
		add := func(k, v string) {
			if v != "" {
				m = append(m, member{str(k), enc(v)})
			}
		}
		if i%5 != 0 {
			add("eid", fmt.Sprintf("golden-%d-%s", i, s("event_id")))
		}
		add("tv", "js-4.1.0")
		add("tna", "sp")
		add("aid", s("app_id"))
		add("p", s("platform"))
		add("duid", s("anonymous_id"))
		add("sid", s("session_id"))
		add("url", s("page_url"))
		add("page", s("page_title"))
		add("refr", s("referrer"))
		add("uid", s("user_id"))
		if i%4 != 0 {
			add("ua", s("useragent"))
		}
		if i%6 != 0 {
			add("ip", s("ip"))
		} else if i%12 == 0 {
			add("ip", "2001:db8:85a3::8a2e:370:7334")
		}
		add("dtm", ms)
		if i%8 != 0 {
			add("stm", strconv.FormatInt(at.UnixMilli()+int64(i), 10))
		}
		if i%19 == 0 {
			add("ttm", ms)
		}
		add("res", "1920x1080")
		add("vp", "1280x720")
		add("ds", "1263x4000")
		add("lang", "en-US")
		add("tz", "Europe/Berlin")
		add("cs", "UTF-8")
		if i%2 == 0 {
			add("vid", strconv.Itoa(1+i%9))
		}
		if name := s("event"); name == "page_view" {
			add("e", "pv")
		} else if i%11 == 0 {
			add("e", "ue")
			ue := fmt.Sprintf(`{"schema":%q,"data":{"schema":"iglu:com.acme/link_click/jsonschema/1-0-0","data":{"target":%s}}}`, goldenUE, str(name))
			if i%2 == 0 {
				add("ue_pr", ue)
			} else {
				add("ue_px", base64.RawURLEncoding.EncodeToString([]byte(ue)))
			}
		} else {
			add("e", "se")
			add("se_ca", "shop")
			add("se_ac", name)
			if rv, ok := ev["revenue"]; ok {
				add("se_va", fmt.Sprint(rv))
			}
			add("se_la", s("product_id"))
		}
		cx := fmt.Sprintf(`{"schema":%q,"data":[{"schema":"iglu:com.acme/visitor/jsonschema/1-0-0","data":{"country":%s,"device":%s}}]}`,
			goldenContexts, str(s("country")), str(s("device")))
		switch i % 7 {
		case 0:
			add("co", cx)
		case 1:
			add("cx", base64.StdEncoding.EncodeToString([]byte(cx))) // padded, standard alphabet
		case 2:
			// Two contexts of one schema and one of another, pretty-printed.
			two := fmt.Sprintf("{\"schema\": %q, \"data\": [\n  {\"schema\": \"iglu:com.acme/visitor/jsonschema/1-0-0\", \"data\": {\"country\": \"DE\"}},\n  {\"schema\": \"iglu:com.acme/page/jsonschema/1-0-0\", \"data\": {\"kind\": \"list\", \"n\": [1, 2.5, -3e2]}},\n  {\"schema\": \"iglu:com.acme/visitor/jsonschema/1-0-0\", \"data\": {\"device\": \"mobile\"}}]}", goldenContexts)
			add("cx", base64.RawURLEncoding.EncodeToString([]byte(two)))
		default:
			add("cx", base64.RawURLEncoding.EncodeToString([]byte(cx)))
		}
		if i%9 == 0 {
			add("unknown_field", "ignored")
		}
		r.Shuffle(len(m), func(a, b int) { m[a], m[b] = m[b], m[a] })
		out = append(out, object(m))
	}
	return append(out, goldenOddEvents()...)
}

// goldenOddEvents are events at the edges: unicode and escapes, values that
// are not strings, missing and repeated fields, and events that fail.
func goldenOddEvents() []string {
	ctx := func(data string) string {
		return fmt.Sprintf(`{"schema":%q,"data":[{"schema":"iglu:com.acme/odd/jsonschema/1-0-0","data":%s}]}`, goldenContexts, data)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return []string{
		// Unicode written plainly and as escapes, surrogate pairs, an
		// unpaired surrogate, escaped key names, \/ and control escapes.
		`{"e":"pv","eid":"odd-unicode","page":"Caf\u00e9 \"quoted\" \\ back\/slash\nline\ttab \ud83d\ude00 😀 ü","url":"https://shop.example/ü?q=a\u0026b\u003cc","refr":"https://www.google.de/search?q=caf%C3%A9","\u0061id":"sh\u006fp","tz":"\ud800 lone","lang":"\u0000\u001f"}`,
		// Numbers, booleans and null where strings belong.
		`{"e":"se","eid":"odd-numbers","se_ca":"c","se_ac":"a","se_va":12.50,"vid":3,"dtm":1764064790000,"stm":"1764064795000","se_la":true,"tz":null,"cd":"24","ti_qu":"-2","tr_tt":"1E3","ti_pr":"-0"}`,
		`{"e":"se","eid":"odd-float-forms","se_ca":"c","se_ac":"a","se_va":"0.1","tr_tx":"1e-7","tr_sh":"+3","ti_qu":"+4","pp_mix":"007"}`,
		// Repeated fields: the last wins (the first for eid, which is read first).
		`{"e":"pv","eid":"odd-repeated","page":"first","page":"second","e":"pv","uid":"u1","uid":""}`,
		// Context data with escapes, surrogates, invalid UTF-8 escapes.
		`{"e":"pv","eid":"odd-context-escapes","co":` + str(ctx(`{"s":"\ud83d\ude00 \ud83d alone \udc00 \u00e9 \"q\"","n":1e400}`)) + `}`,
		`{"e":"pv","eid":"odd-context-spaces","cx":"` + b64([]byte(ctx("{ \"a\" : [ 1 , { \"b\" : \"c d\" } ] ,\n\t\"e\" : null }"))) + `"}`,
		// Unknown event types and missing ones.
		`{"eid":"odd-no-e","url":"https://a.example/"}`,
		`{"e":"zz","eid":"odd-unknown-e"}`,
		`{"e":"","eid":"odd-empty-e"}`,
		// Fields that must be numbers, times or dimensions, and are not.
		`{"e":"se","eid":"odd-se-va","se_ca":"c","se_ac":"a","se_va":"lots"}`,
		`{"e":"se","eid":"odd-se-va-inf","se_ca":"c","se_ac":"a","se_va":"1e400"}`,
		`{"e":"se","eid":"odd-se-va-nan","se_ca":"c","se_ac":"a","se_va":"NaN"}`,
		`{"e":"pv","eid":"odd-vid"," vid":"x","vid":" 3"}`,
		`{"e":"pv","eid":"odd-res","res":"1920X1080"}`,
		`{"e":"pv","eid":"odd-res-neg","vp":"-1x5"}`,
		`{"e":"pv","eid":"odd-dtm","dtm":"yesterday"}`,
		`{"e":"pv","eid":"odd-dtm-far","dtm":"253402300800000"}`,
		`{"e":"se","eid":"odd-se-no-action","se_ca":"c"}`,
		// Self-describing events gone wrong.
		`{"e":"ue","eid":"odd-ue-none"}`,
		`{"e":"ue","eid":"odd-ue-b64","ue_px":"!!!"}`,
		`{"e":"ue","eid":"odd-ue-json","ue_pr":"{nope"}`,
		`{"e":"ue","eid":"odd-ue-uri","ue_pr":` + str(fmt.Sprintf(`{"schema":%q,"data":{"schema":"com.acme/x/1","data":{}}}`, goldenUE)) + `}`,
		`{"e":"ue","eid":"odd-ue-invalid","ue_pr":` + str(fmt.Sprintf(`{"schema":%q,"data":{"schema":"iglu:com.acme/link_click/jsonschema/1-0-0","data":{"target":"far too long a target","x":1}}}`, goldenUE)) + `}`,
		`{"e":"ue","eid":"odd-ue-unknown","ue_pr":` + str(fmt.Sprintf(`{"schema":%q,"data":{"schema":"iglu:com.acme/otherThing/jsonschema/2-1-0","data":{"a":[1,2]}}}`, goldenUE)) + `}`,
		`{"e":"ue","eid":"odd-ue-no-data","ue_pr":` + str(fmt.Sprintf(`{"schema":%q}`, goldenUE)) + `}`,
		`{"e":"ue","eid":"odd-ue-not-object","ue_pr":"[1,2]"}`,
		// Contexts gone wrong.
		`{"e":"pv","eid":"odd-cx-not-array","co":` + str(fmt.Sprintf(`{"schema":%q,"data":{"a":1}}`, goldenContexts)) + `}`,
		`{"e":"pv","eid":"odd-cx-item","co":` + str(fmt.Sprintf(`{"schema":%q,"data":[{"schema":"iglu:com.acme/visitor/jsonschema/1-0-0","data":{"country":5}}]}`, goldenContexts)) + `}`,
		`{"e":"pv","eid":"odd-cx-item-scalar","co":` + str(fmt.Sprintf(`{"schema":%q,"data":[3]}`, goldenContexts)) + `}`,
		`{"e":"pv","eid":"odd-cx-b64","cx":"a"}`,
		// Values that are objects, arrays; an event that is not an object.
		`{"e":"pv","eid":"odd-object","vid":{"n":1}}`,
		`{"e":"pv","eid":"odd-array","page":["a"]}`,
		`{"e":"pv","ei\u0064":"odd-escaped-eid-key","res":"wide"}`,
		`"just a string"`,
		`42`,
		`[{"e":"pv"}]`,
		`null`,
		// Anonymous tracking and network ids.
		`{"e":"pv","eid":"odd-tnuid","tnuid":"from-tracker"}`,
		// A duplicate of an event id already in the batch, and one without.
		`{"e":"pv","eid":"odd-tnuid"}`,
		`{"e":"pv"}`,
		`{}`,
	}
}

func tp2Payload(body string, headers map[string]string) sluice.Payload {
	h := map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000001"}
	for k, v := range headers {
		h[k] = v
	}
	return sluice.Payload{ReceivedAt: receivedAt, Collector: "http", Path: "/com.snowplowanalytics.snowplow/tp2", ContentType: "application/json; charset=UTF-8",
		IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", Headers: h, Body: []byte(body)}
}

func envelope(evs []string) string {
	return `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[` + strings.Join(evs, ",") + `]}`
}

// goldenFrames are the raw messages of the corpus, with n generated events:
// tp2 POSTs of up to 50 events, envelopes gone wrong, replays, and JSON and
// Segment payloads.
func goldenFrames(n int) [][]byte {
	evs := goldenEvents(n)
	var ps []sluice.Payload
	for i := 0; i < len(evs); i += 50 {
		ps = append(ps, tp2Payload(envelope(evs[i:min(i+50, len(evs))]), nil))
	}
	anon := tp2Payload(envelope([]string{`{"e":"pv","eid":"anon-1","tnuid":"not-for-anonymous","ip":"198.51.100.1"}`, `{"e":"pv","eid":"anon-2"}`}),
		map[string]string{sluice.HeaderAnonymous: "*"})
	anon.IP = ""
	ps = append(ps, anon,
		tp2Payload(`{"schema":"s","data":{"e":"pv"}}`, nil),
		tp2Payload(`{"schema":"s","data":[]}`, nil),
		tp2Payload(`{"schema":"s"}`, nil),
		tp2Payload(`  `+"\ufeff"+`{"data":[{"e":"pv","eid":"leading-space"}], "data":[{"e":"pv","eid":"second-data"}]}`, nil),
		tp2Payload(`{"e":"pv","eid":"replayed","url":"https://a.example/?utm_source=news&utm_medium=email"}`, map[string]string{sluice.HeaderReplayOf: "b-12-0"}),
		tp2Payload(`{"e":"pv","eid":"replayed-bad"`, map[string]string{sluice.HeaderReplayOf: "b-12-1"}),
	)
	syslogish := tp2Payload(`{"data":[{"e":"pv","eid":"other-collector"}]} trailing`, nil)
	syslogish.Collector = "replay"
	ps = append(ps, syslogish)
	json1 := payload(`[{"event":"click","event_id":"json-1","n":1,"x":1.5,"ok":true,"o":{"a":[1, 2]},"s":"caf\u00e9 \ud800","event_time":"2026-11-25T09:00:00Z"},` +
		`{"event":"click","N":2},{"event":"view","event_time":1764064790123.5,"page_url":"https://b.example/?utm_campaign=x"},{"event":"x","dt":1},3]`)
	segment := sluice.Payload{ReceivedAt: receivedAt, Collector: "http", Path: "/v1/batch", IP: "203.0.113.9", UserAgent: "seg",
		Body: []byte(`{"batch":[{"type":"track","event":"Buy","userId":"u","messageId":"seg-1","properties":{"n":1,"price":9.99},"context":{"ip":"1.2.3.4","page":{"url":"https://a/?utm_source=x"}}},{"type":"nope"}]}`)}
	var frames [][]byte
	for i := 0; i < len(ps); i += 3 {
		f, err := sluice.EncodeFrame(ps[i:min(i+3, len(ps))])
		if err != nil {
			panic(err)
		}
		frames = append(frames, f)
	}
	f, err := sluice.EncodeFrame([]sluice.Payload{json1, segment})
	if err != nil {
		panic(err)
	}
	frames = append(frames, f, []byte("not a frame"))
	return frames
}

// goldenGETFrame holds pixel requests (GET /i query strings).
func goldenGETFrame() []byte {
	b64 := base64.RawURLEncoding.EncodeToString
	qs := []url.Values{
		{"e": {"pv"}, "eid": {"get-1"}, "url": {"https://shop.example/p?utm_source=x&utm_medium=y"}, "page": {"Café"}, "res": {"1x2"}, "dtm": {"1764064790000"}, "stm": {"1764064795000"}},
		{"e": {"ue"}, "eid": {"get-2"}, "ue_px": {b64([]byte(fmt.Sprintf(`{"schema":%q,"data":{"schema":"iglu:com.acme/link_click/jsonschema/1-0-0","data":{"target":"/x"}}}`, goldenUE)))},
			"cx": {b64([]byte(fmt.Sprintf(`{"schema":%q,"data":[{"schema":"iglu:com.acme/visitor/jsonschema/1-0-0","data":{"country":"FR"}}]}`, goldenContexts)))}},
		{"e": {"se"}, "eid": {"get-3"}, "se_ca": {"c"}, "se_ac": {"a"}, "se_va": {"2", "3"}, "tnuid": {"t"}},
		{"e": {"se"}, "eid": {"get-4"}, "se_ca": {"c"}, "se_va": {"x"}},
		{"eid": {"get-5"}},
	}
	var ps []sluice.Payload
	for _, q := range qs {
		ps = append(ps, sluice.Payload{ReceivedAt: receivedAt, Collector: "http", Path: "/i", IP: "203.0.113.7", UserAgent: "header-agent/1.0",
			Headers: map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000002"}, Body: []byte(q.Encode())})
	}
	ps = append(ps, sluice.Payload{ReceivedAt: receivedAt, Collector: "http", Path: "/ice.png", Body: []byte("e=pv&eid=%ZZ")})
	f, err := sluice.EncodeFrame(ps)
	if err != nil {
		panic(err)
	}
	return f
}

// The same pixel requests make the same bytes every time: fields in the
// order of their names, and the columns they add in that order.
func TestGETEventsAreTheSameEveryTime(t *testing.T) {
	var first []byte
	for range 5 {
		e := goldenEnricher(Options{}, nil)
		var out bytes.Buffer
		writeResult(&out, e.enrichMessage(bus.Msg{Seq: 99, Time: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), Data: goldenGETFrame()}, new([]idKey)), false)
		for _, col := range e.schema.Columns {
			fmt.Fprintf(&out, "%s %s\n", col.Name, col.Type)
		}
		if first == nil {
			first = out.Bytes()
		} else if !bytes.Equal(out.Bytes(), first) {
			t.Fatalf("the same GET requests made different events or columns:\n%s\nthen\n%s", first, out.Bytes())
		}
	}
}
