package enrich

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bench"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/demo"
)

// BenchmarkEnrichMessage measures enrich's per-event work on a frame of
// realistic demo events (no bus I/O), with the default enrichments.
func BenchmarkEnrichMessage(b *testing.B) {
	g := demo.NewGenerator(1)
	var evs []map[string]any
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for len(evs) < 1000 {
		evs = append(evs, g.Next(at)...)
		at = at.Add(time.Second)
	}
	var payloads []sluice.Payload
	size := 0
	for i := 0; i+100 <= len(evs); i += 100 {
		body, _ := json.Marshal(evs[i : i+100])
		size += len(body)
		payloads = append(payloads, sluice.Payload{ReceivedAt: at, Collector: "http", Path: "/v1/events", IP: "127.0.0.1", UserAgent: "bench", Body: body})
	}
	benchEnrich(b, payloads, size)
}

// BenchmarkEnrichTP2 is the same for Snowplow tp2 POSTs of 50 events, as the
// load generator sends them (`sluice bench --protocol tp2`).
func BenchmarkEnrichTP2(b *testing.B) {
	corpus, err := bench.NewCorpus(1000, 1, "tp2")
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var payloads []sluice.Payload
	size := 0
	for range 20 {
		body := corpus.Body(50)
		size += len(body)
		payloads = append(payloads, sluice.Payload{ReceivedAt: at, Collector: "http", Path: "/com.snowplowanalytics.snowplow/tp2", IP: "127.0.0.1", UserAgent: "bench",
			Headers: map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000001"}, Body: body})
	}
	benchEnrich(b, payloads, size)
}

// benchEnrich enriches one frame of payloads over and over, with the default
// enrichments.
func benchEnrich(b *testing.B, payloads []sluice.Payload, size int) {
	frame, err := sluice.EncodeFrame(payloads)
	if err != nil {
		b.Fatal(err)
	}
	e := New(Options{Enrichments: []Enrichment{NewUserAgent(), Campaign{}, Referrer{}}})
	b.SetBytes(int64(size))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		var keys []idKey
		res := e.enrichMessage(bus.Msg{Seq: 1, Time: payloads[0].ReceivedAt, Data: frame}, &keys)
		// The same events come round again: let them not be duplicates.
		e.seen.forget(keys)
		if res.failed != 0 {
			b.Fatalf("%d bad rows: %s", res.failed, res.bad[0])
		}
		n += res.enriched
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
