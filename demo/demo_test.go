package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCollector stands in for Sluice's HTTP collector: it fails the first
// requests as told (fail returns true when a request should not be stored),
// then stores events, remembering each event_id.
type fakeCollector struct {
	t    *testing.T
	fail func(n int, w http.ResponseWriter) bool

	mu        sync.Mutex
	requests  int
	stored    map[string]int  // event_id -> times stored
	attempted map[string]bool // every event_id ever posted
	batches   int
}

func newFakeCollector(t *testing.T, fail func(n int, w http.ResponseWriter) bool) (*fakeCollector, *httptest.Server) {
	f := &fakeCollector{t: t, fail: fail, stored: map[string]int{}, attempted: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" || r.Header.Get("Content-Type") != "application/json" {
		f.t.Errorf("request %s %s (%s), want POST /v1/events (application/json)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		http.Error(w, `{"error":"wrong endpoint"}`, http.StatusNotFound)
		return
	}
	var evs []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
		f.t.Errorf("body is not a JSON array of objects: %v", err)
		http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	for _, ev := range evs {
		f.attempted[ev["event_id"].(string)] = true
	}
	if f.fail != nil && f.fail(f.requests, w) {
		return
	}
	for _, ev := range evs {
		f.stored[ev["event_id"].(string)]++
	}
	f.batches++
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"accepted": len(evs)})
}

func TestRunRetriesUntilStoredAndLosesNothing(t *testing.T) {
	f, srv := newFakeCollector(t, func(n int, w http.ResponseWriter) bool {
		switch {
		case n == 1: // the connection drops: a network error
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		case n <= 4:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"bus unavailable"}`))
			return true
		}
		return false
	})
	var progress bytes.Buffer
	start := time.Now()
	st, err := Run(context.Background(), Options{
		CollectorURL:         srv.URL,
		Rate:                 400,
		History:              2 * time.Hour,
		HistoryEventsPerHour: 2000,
		BatchSize:            50,
		Seed:                 7,
		Duration:             700 * time.Millisecond,
		Progress:             &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Logf("%+v; %d requests; progress:\n%s", st, f.requests, progress.String())
	for id, n := range f.stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	for id := range f.attempted {
		if f.stored[id] == 0 {
			t.Errorf("event %s was posted but never stored", id)
		}
	}
	if st.Sent != int64(len(f.stored)) || st.Batches != int64(f.batches) {
		t.Errorf("stats say %d events in %d batches, the collector stored %d in %d", st.Sent, st.Batches, len(f.stored), f.batches)
	}
	if st.Retries != 4 {
		t.Errorf("Retries = %d, want 4 (one network error, three 503s)", st.Retries)
	}
	// About 2h*2000/h of history (a weekday evening or a quiet night) plus live traffic.
	if st.Sent < 500 {
		t.Errorf("only %d events sent", st.Sent)
	}
	if got := st.FirstEventTime; got.Before(start.Add(-2*time.Hour-time.Second)) || got.After(start.Add(-90*time.Minute)) {
		t.Errorf("first event at %s, want about 2h before %s", got, start)
	}
	if got := st.LastEventTime; got.Before(start) || got.After(time.Now().Add(time.Minute)) {
		t.Errorf("last event at %s, want live (after %s)", got, start)
	}
	for _, want := range []string{"history", "503 Service Unavailable: bus unavailable", "live"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress output lacks %q", want)
		}
	}
}

func TestRunReturnsTheCollectorsMessageOn400(t *testing.T) {
	f, srv := newFakeCollector(t, func(n int, w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"event 0: event_time is not RFC 3339"}`))
		return true
	})
	done := make(chan struct{})
	var st Stats
	var err error
	go func() {
		defer close(done)
		st, err = Run(context.Background(), Options{CollectorURL: srv.URL, Rate: 200, BatchSize: 10, Duration: time.Minute})
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after a 400")
	}
	if err == nil || !strings.Contains(err.Error(), "event 0: event_time is not RFC 3339") || !strings.Contains(err.Error(), "400") {
		t.Fatalf("Run = %v, want an error with the collector's status and message", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requests != 1 || st.Sent != 0 || st.Retries != 0 {
		t.Errorf("%d requests, stats %+v: a 400 must not be retried nor counted", f.requests, st)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	f, srv := newFakeCollector(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	st, err := Run(ctx, Options{CollectorURL: srv.URL, Rate: 100})
	if err != nil {
		t.Fatalf("Run = %v, want nil when the context ends", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Sent == 0 || st.Sent != int64(len(f.stored)) {
		t.Errorf("stats %+v, collector stored %d", st, len(f.stored))
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{CollectorURL: "127.0.0.1:8080"},
		{CollectorURL: "http://127.0.0.1:8080", Rate: -1},
		{CollectorURL: "http://127.0.0.1:8080", History: -time.Hour},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v): no error", o)
		}
	}
}

func TestQueries(t *testing.T) {
	if len(Queries) < 4 {
		t.Fatalf("%d queries", len(Queries))
	}
	for _, q := range Queries {
		if q.Title == "" || !strings.Contains(q.SQL, "FROM events") {
			t.Errorf("query %q does not read events: %s", q.Title, q.SQL)
		}
	}
}
