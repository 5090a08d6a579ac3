package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// The tap tests read a real embedded bus.

func newTapAPI(t *testing.T, token string) (*httptest.Server, *bus.Bus, *Tap) {
	t.Helper()
	b, err := bus.Open(context.Background(), bus.Options{
		Dir:     t.TempDir(),
		Streams: map[string]bus.StreamConfig{"events": {}, "raw": {}},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tap := NewTap(b)
	srv := httptest.NewServer(Handler(Options{Tap: tap, Token: token}))
	t.Cleanup(srv.Close)
	return srv, b, tap
}

func publish(t *testing.T, b *bus.Bus, stream string, lines ...string) uint64 {
	t.Helper()
	seq, err := b.Publish(context.Background(), stream, []byte(strings.Join(lines, "\n")+"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// tapStream is an open tap: its lines arrive on lines, which is closed when
// the server ends the response.
type tapStream struct {
	resp   *http.Response
	lines  chan map[string]any
	cancel context.CancelFunc
}

func openTap(t *testing.T, base string, params url.Values) *tapStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/tap?"+params.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("tap %v: %d %s", params, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	ts := &tapStream{resp: resp, lines: make(chan map[string]any, 100), cancel: cancel}
	go func() {
		defer close(ts.lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"unparsable": sc.Text()}
			}
			ts.lines <- m
		}
	}()
	return ts
}

// next returns the next line, failing after a few seconds without one.
func (ts *tapStream) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m, ok := <-ts.lines:
		if !ok {
			t.Fatal("the tap ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the tap within 10s")
	}
	return nil
}

// ended reports whether the server ends the response within d, with no
// further line.
func (ts *tapStream) ended(t *testing.T, d time.Duration) bool {
	t.Helper()
	select {
	case m, ok := <-ts.lines:
		if ok {
			t.Errorf("unexpected line %v", m)
		}
		return !ok
	case <-time.After(d):
		return false
	}
}

func TestTapFiltersLiveEvents(t *testing.T) {
	srv, b, _ := newTapAPI(t, "")
	old := publish(t, b, "events", `{"event":"purchase","revenue":99}`)
	ts := openTap(t, srv.URL, url.Values{"stream": {"events"}, "filter": {`event == "purchase" && revenue * 1.2 > 12 && qty > 2`}, "limit": {"2"}})
	if got := ts.resp.Header.Get("Sluice-Tap-From"); got != fmt.Sprint(old+1) {
		t.Errorf("Sluice-Tap-From %q, want %d (from now)", got, old+1)
	}
	seq := publish(t, b, "events",
		`{"event":"page_view","revenue":100,"qty":5}`,
		`{"event":"purchase","revenue":11,"qty":3,"country":"NZ"}`, // 13.2 > 12
		`{"event":"purchase","revenue":9.5,"qty":9}`,               // 11.4
		`{"event":"purchase","revenue":50,"qty":2}`,
		`{"event":"purchase","qty":3}`, // no revenue: skipped (and reported)
	)
	seq2 := publish(t, b, "events", `{"event":"purchase","revenue":10.5,"qty":3,"tags":["a"]}`, `{"event":"purchase","revenue":70,"qty":4}`)
	first := ts.next(t)
	if first["_seq"] != float64(seq) || first["revenue"] != float64(11) || first["country"] != "NZ" {
		t.Errorf("first: %v (want _seq %d)", first, seq)
	}
	report := ts.next(t)
	if msg, _ := report[TapError].(string); !strings.Contains(msg, fmt.Sprintf("sequence %d", seq)) || !strings.Contains(msg, "<nil> *") {
		t.Errorf("want a %s line about the event without revenue, got %v", TapError, report)
	}
	second := ts.next(t)
	if second["_seq"] != float64(seq2) || second["revenue"] != 10.5 || fmt.Sprint(second["tags"]) != "[a]" {
		t.Errorf("second: %v (want _seq %d)", second, seq2)
	}
	// limit=2: the tap ends after two events, not after the third match.
	if !ts.ended(t, 5*time.Second) {
		t.Error("the tap did not end after limit events")
	}
}

func TestTapFrom(t *testing.T) {
	srv, b, _ := newTapAPI(t, "")
	s1 := publish(t, b, "events", `{"n":1}`, `{"n":2}`)
	s2 := publish(t, b, "events", `{"n":3}`)
	publish(t, b, "events", `{}`, `not json`)
	for _, tc := range []struct {
		from string
		want []string
	}{
		{"beginning", []string{
			fmt.Sprintf(`map[_seq:%d n:1]`, s1), fmt.Sprintf(`map[_seq:%d n:2]`, s1), fmt.Sprintf(`map[_seq:%d n:3]`, s2),
			fmt.Sprintf(`map[_seq:%d]`, s2+1), fmt.Sprintf(`map[_line:not json _seq:%d]`, s2+1),
		}},
		{fmt.Sprint(s2), []string{fmt.Sprintf(`map[_seq:%d n:3]`, s2)}},
	} {
		ts := openTap(t, srv.URL, url.Values{"stream": {"events"}, "from": {tc.from}, "limit": {fmt.Sprint(len(tc.want))}})
		for i, w := range tc.want {
			if got := fmt.Sprint(ts.next(t)); got != w {
				t.Errorf("from %s, line %d: %s, want %s", tc.from, i, got, w)
			}
		}
	}
}

func TestTapRawSummarisesFrames(t *testing.T) {
	srv, b, _ := newTapAPI(t, "")
	frame, err := sluice.EncodeFrame([]sluice.Payload{
		{ReceivedAt: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Collector: "http", Path: "/v1/events", ContentType: "application/json",
			Headers: map[string]string{"Origin": "https://shop.example"}, Body: []byte(`{"event":"x"}`)},
		{Collector: "syslog", Body: []byte("<13>hello")},
	})
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := b.Publish(context.Background(), "raw", frame, "")
	b.Publish(context.Background(), "raw", []byte("garbage"), "")
	ts := openTap(t, srv.URL, url.Values{"stream": {"raw"}, "from": {"beginning"}, "filter": {`any(payloads, .collector == "syslog")`}})
	m := ts.next(t)
	ps, _ := m["payloads"].([]any)
	if m["_seq"] != float64(seq) || m["size"] != float64(len(frame)) || len(ps) != 2 {
		t.Fatalf("raw message: %v", m)
	}
	p := ps[0].(map[string]any)
	if p["path"] != "/v1/events" || p["body_size"] != float64(13) || fmt.Sprint(p["headers"]) != "map[Origin:https://shop.example]" {
		t.Errorf("payload: %v", p)
	}
	if _, ok := p["body"]; ok {
		t.Errorf("bodies are not printed: %v", p)
	}
	// A message that is not a frame is still shown, with what is wrong.
	ts = openTap(t, srv.URL, url.Values{"stream": {"raw"}, "from": {fmt.Sprint(seq + 1)}})
	if m := ts.next(t); m["size"] != float64(7) || !strings.Contains(fmt.Sprint(m["error"]), "malformed raw frame") {
		t.Errorf("garbage: %v", m)
	}
}

func TestTapRefusesBadRequests(t *testing.T) {
	srv, _, _ := newTapAPI(t, "s3cret")
	cases := []struct {
		query string
		code  int
		msg   string
	}{
		{"stream=nope", 404, `no stream "nope": the streams are events, raw`},
		{"", 400, "say which stream"},
		{"stream=events&filter=" + url.QueryEscape(`event ==`), 400, "unexpected token EOF (1:8)"},
		{"stream=events&filter=" + url.QueryEscape(`revenue`+strings.Repeat(" ", 100<<10)), 400, "filter is 102407 bytes long; the limit is 4096"},
		{"stream=events&filter=" + url.QueryEscape(`event == "x" && nosuch(revenue) > 1`), 400, "nosuch is not a function"},
		{"stream=events&filter=" + url.QueryEscape(`a.b() == 1`), 400, "a.b is not a function"},
		{"stream=events&filter=" + url.QueryEscape(`1 + 2`), 400, "expected bool, but got int"},
		{"stream=events&from=yesterday", 400, `from "yesterday": want now, beginning or a sequence`},
		{"stream=events&from=0", 400, "want now, beginning or a sequence"},
		{"stream=events&limit=-1", 400, `limit "-1"`},
	}
	for _, tc := range cases {
		code, body := call(t, "GET", srv.URL+"/api/v1/tap?"+tc.query, "", "s3cret")
		var e struct{ Error string }
		json.Unmarshal([]byte(body), &e)
		if code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%.80s: got %d %s; want %d containing %q", tc.query, code, body, tc.code, tc.msg)
		}
	}
	// The position points into the filter.
	_, body := call(t, "GET", srv.URL+"/api/v1/tap?stream=events&filter="+url.QueryEscape(`nosuch(1)`), "", "s3cret")
	if !strings.Contains(body, `(1:1)\n | nosuch(1)\n | ^`) {
		t.Errorf("unknown function: %s", body)
	}
	if code, _ := call(t, "GET", srv.URL+"/api/v1/tap?stream=events", "", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
}

func TestTapStopsItsReader(t *testing.T) {
	srv, b, tap := newTapAPI(t, "")
	// Warm up the HTTP client and the bus before counting goroutines.
	publish(t, b, "events", `{"n":0}`)
	ts := openTap(t, srv.URL, url.Values{"stream": {"events"}, "from": {"beginning"}, "limit": {"1"}})
	ts.next(t)
	ts.ended(t, 5*time.Second)
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(2 * time.Second) // the ended tap's reader finishes its last fetch
	before := runtime.NumGoroutine()

	ts = openTap(t, srv.URL, url.Values{"stream": {"events"}})
	publish(t, b, "events", `{"n":1}`)
	ts.next(t)
	if n := runtime.NumGoroutine(); n <= before {
		t.Fatalf("an open tap runs no goroutines? %d, %d before", n, before)
	}
	// The client goes away: the server stops reading the bus.
	ts.cancel()
	if n := settledGoroutines(before); n > before {
		t.Errorf("%d goroutines 5s after the client left, %d before the tap", n, before)
	}

	// Close (the server shutting down) ends the taps in progress.
	ts = openTap(t, srv.URL, url.Values{"stream": {"events"}})
	tap.Close()
	if !ts.ended(t, 5*time.Second) {
		t.Error("Close did not end the tap")
	}
}

// settledGoroutines waits up to 5s for the number of goroutines to drop to
// want and returns the last count.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n = runtime.NumGoroutine(); n <= want {
			break
		}
	}
	return n
}
