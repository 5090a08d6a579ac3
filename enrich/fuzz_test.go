package enrich

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/sluice-data/sluice"
)

// checkOutput fails unless every line enrich wrote is one JSON object and
// every bad row says what failed.
func checkOutput(t *testing.T, res *result) {
	t.Helper()
	for _, lines := range [][][]byte{res.events, res.bad, res.logs} {
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("output line is not a JSON object: %v\n%q", err, l)
			}
		}
	}
	for _, l := range res.bad {
		var b sluice.BadRow
		_ = json.Unmarshal(l, &b)
		if b.Type == "" || b.Message == "" {
			t.Fatalf("bad row without type or message: %s", l)
		}
	}
}

// FuzzSnowplow feeds the tracker protocol decoder tp2 bodies and GET query
// strings: it must never panic, and everything must come out as events or
// bad rows that are valid JSON.
func FuzzSnowplow(f *testing.F) {
	ue := `{"schema":"iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0","data":{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"a":1}}}`
	co := `{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:com.acme/c/jsonschema/1-0-0","data":{"b":[1,"\u00e9"]}}]}`
	f.Add(true, []byte(`{"schema":"s","data":[{"e":"pv","eid":"1","url":"https://a/","res":"1x2","dtm":"1","stm":"2"}]}`))
	f.Add(true, []byte(`{"schema":"s","data":[{"e":"ue","ue_pr":`+mustJSON(ue)+`,"co":`+mustJSON(co)+`},{"e":"se","se_ca":"a","se_ac":"b","se_va":"1e400"}]}`))
	f.Add(true, []byte(`{"data":[{"e":"ue","ue_px":"`+base64.RawURLEncoding.EncodeToString([]byte(ue))+`"}]}`))
	f.Add(true, []byte(`{"e":"pv","eid":"single"}`))
	f.Add(false, []byte("e=pv&eid=1&url=https%3A%2F%2Fa%2F&cx="+base64.RawURLEncoding.EncodeToString([]byte(co))))
	f.Add(false, []byte("e=se&se_va=%ZZ&tnuid=x"))
	f.Fuzz(func(t *testing.T, post bool, body []byte) {
		p := sluice.Payload{Collector: "fuzz", Path: "/i", Body: body,
			Headers: map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000001"}}
		if post {
			p.Path = "/com.snowplowanalytics.snowplow/tp2"
		}
		e := New(Options{Enrichments: []Enrichment{NewUserAgent(), Campaign{}, Referrer{}, AnonymizeIP{}}, Fingerprint: true})
		var res result
		e.enrichPayload(&res, 1, 0, &p, new([]idKey))
		checkOutput(t, &res)
		if res.enriched+res.failed+res.duplicates == 0 {
			var env struct {
				Data *[]json.RawMessage `json:"data"`
			}
			if json.Unmarshal(body, &env) == nil && env.Data != nil && len(*env.Data) == 0 {
				return // an empty batch (the collector does not store it)
			}
			t.Fatalf("input vanished: no event, bad row or duplicate for %q", body)
		}
	})
}

// FuzzSegment does the same for Segment-style messages, batched and single.
func FuzzSegment(f *testing.F) {
	f.Add(true, []byte(`{"batch":[{"type":"track","event":"Buy","userId":"u","properties":{"n":1},"context":{"ip":"1.2.3.4","page":{"url":"https://a/?utm_source=x"}}}]}`))
	f.Add(true, []byte(`{"batch":[{"type":"identify","traits":{"a":[1]}},{"type":"nope"},3]}`))
	f.Add(false, []byte(`{"type":"page","name":"Home","anonymousId":"a","timestamp":"2026-11-25T10:00:00Z"}`))
	f.Add(false, []byte(`{"event":"x","messageId":{"a":1}}`))
	f.Fuzz(func(t *testing.T, batch bool, body []byte) {
		p := sluice.Payload{Collector: "fuzz", Path: "/v1/track", Body: body}
		if batch {
			p.Path = "/v1/batch"
		}
		e := New(Options{Enrichments: []Enrichment{NewUserAgent(), Campaign{}, Referrer{}}})
		var res result
		e.enrichPayload(&res, 1, 0, &p, new([]idKey))
		checkOutput(t, &res)
		if res.enriched+res.failed+res.duplicates == 0 && batch && len(body) > 0 {
			var v struct {
				Batch []json.RawMessage `json:"batch"`
			}
			if json.Unmarshal(body, &v) == nil && len(v.Batch) > 0 {
				t.Fatalf("batch of %d vanished: %q", len(v.Batch), body)
			}
		}
	})
}

// FuzzSyslog feeds the syslog decoder single messages.
func FuzzSyslog(f *testing.F) {
	f.Add([]byte(`<34>1 2026-11-25T10:00:00.000Z host app 1 ID47 [ex@32473 a="1" b="\]"] hello`))
	f.Add([]byte(`<13>Nov 25 10:00:00 host app[12]: hi`))
	f.Add([]byte(`<999>garbage`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p := sluice.Payload{Collector: "syslog", Path: "udp://127.0.0.1:5514", ContentType: sluice.ContentTypeSyslog, Body: body}
		e := New(Options{})
		var res result
		e.enrichPayload(&res, 1, 0, &p, new([]idKey))
		checkOutput(t, &res)
		if res.logged+res.failed != 1 {
			t.Fatalf("one message gave %d rows and %d bad rows", res.logged, res.failed)
		}
		// The same message as a record, as messages over TCP come.
		p.ContentType, p.Headers = sluice.ContentTypeRecords, map[string]string{sluice.HeaderParse: sluice.ParseSyslog}
		p.Body = sluice.AppendRecord(nil, body, false)
		res = result{}
		e.enrichPayload(&res, 1, 0, &p, new([]idKey))
		checkOutput(t, &res)
		if res.logged+res.failed != 1 {
			t.Fatalf("one record gave %d rows and %d bad rows", res.logged, res.failed)
		}
	})
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
