package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// Rates come from the difference with a snapshot at least a second old,
// renewed every five seconds; a request less than a second after it
// repeats the last rates.
func TestStatusRates(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
	snap := func(at time.Duration, seq uint64, total, errs float64) *Status {
		return &Status{Time: t0.Add(at), Streams: []StreamStatus{{Name: "raw", LastSeq: seq}},
			Components: []ComponentStatus{{Name: "enrich", Total: total, Errors: errs, HasTotal: true}}}
	}
	var r rater
	first := snap(0, 100, 1000, 10)
	r.apply(first)
	if first.Streams[0].Rate != 0 || first.Components[0].Rate != 0 {
		t.Errorf("first snapshot has rates: %+v", first)
	}
	s := snap(2*time.Second, 120, 1100, 14)
	r.apply(s)
	if s.Streams[0].Rate != 10 || s.Components[0].Rate != 50 || s.Components[0].ErrorRate != 2 {
		t.Errorf("after 2s: stream %v/s, enrich %v/s, errors %v/s; want 10, 50, 2", s.Streams[0].Rate, s.Components[0].Rate, s.Components[0].ErrorRate)
	}
	renewed := snap(6*time.Second, 160, 1600, 16)
	r.apply(renewed)
	if renewed.Components[0].Rate != 100 {
		t.Errorf("after 6s: %v/s; want 100", renewed.Components[0].Rate)
	}
	soon := snap(6*time.Second+100*time.Millisecond, 161, 1601, 16)
	r.apply(soon)
	if soon.Components[0].Rate != 100 {
		t.Errorf("100 ms later: %v/s; want the last rate, 100", soon.Components[0].Rate)
	}
	// A restart of the counters (a new process behind the same address)
	// gives no negative rate.
	restarted := snap(20*time.Second, 5, 3, 0)
	r.apply(restarted)
	if restarted.Components[0].Rate < 0 || restarted.Streams[0].Rate < 0 {
		t.Errorf("counters restarted: %+v", restarted)
	}
}

func TestStatusRoute(t *testing.T) {
	srv := newAPI(t, Options{Token: "s3cret"})
	if code, body := call(t, "GET", srv.URL+"/api/v1/status", "", "s3cret"); code != http.StatusNotImplemented {
		t.Errorf("without a status source: %d %s", code, body)
	}
	srv = newAPI(t, Options{Status: func(ctx context.Context) (*Status, error) {
		return &Status{Time: time.Now(), Streams: []StreamStatus{{Name: "events", Messages: 3}}}, nil
	}})
	code, body := call(t, "GET", srv.URL+"/api/v1/status", "", "")
	var st Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Streams) != 1 || st.Streams[0].Messages != 3 {
		t.Errorf("%d %s", code, body)
	}
}
