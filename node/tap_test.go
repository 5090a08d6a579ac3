package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/server"
)

// readTap reads a tap's events until it ends or want lines came. (It may
// run on its own goroutine, so it reports with Errorf.)
func readTap(t *testing.T, body io.Reader, want int) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(body)
	for len(out) < want && sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("tap line %q: %v", sc.Text(), err)
			return out
		}
		out = append(out, m)
	}
	return out
}

func ids(events []map[string]any) string {
	var s []string
	for _, e := range events {
		s = append(s, fmt.Sprint(e["event_id"]))
	}
	return strings.Join(s, " ")
}

func TestTapPrintsLiveEvents(t *testing.T) {
	n := startNode(t, t.TempDir(), func(c *config.Config) { c.Auth.Token = "s3cret" })
	stopped := false
	defer func() {
		if !stopped {
			n.Stop()
		}
	}()
	coll, api := n.CollectorURL(), n.APIURL()
	client := &server.Client{URL: api, Token: "s3cret"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const filter = `event == "purchase" && revenue > 10`

	// An earlier purchase, on the stream before the tap starts.
	if code, body := post(t, coll, "application/json", []byte(`{"event":"purchase","event_id":"early","revenue":50}`)); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	body, _, err := client.Tap(ctx, server.TapRequest{Stream: "events", From: "beginning", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(readTap(t, body, 1)); got != "early" {
		t.Fatalf("from beginning: %q", got)
	}
	body.Close()

	body, _, err = client.Tap(ctx, server.TapRequest{Stream: "events", Filter: filter, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got := make(chan []map[string]any, 1)
	go func() { got <- readTap(t, body, 10) }()
	post(t, coll, "application/json", []byte(`[
		{"event":"purchase","event_id":"p1","revenue":12.5,"country":"NZ","qty":2},
		{"event":"purchase","event_id":"p2","revenue":10},
		{"event":"page_view","event_id":"v1","revenue":99}
	]`))
	post(t, coll, "application/x-ndjson", []byte("{\"event\":\"purchase\",\"event_id\":\"p3\",\"revenue\":11}\n{\"event\":\"add_to_cart\",\"event_id\":\"c1\"}\n"))
	post(t, coll, "application/json", []byte(`{"event":"purchase","event_id":"p4","revenue":300}`))
	post(t, coll, "application/json", []byte(`{"event":"purchase","event_id":"p5","revenue":400}`))
	var events []map[string]any
	select {
	case events = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the tap did not deliver 3 events within 30s")
	}
	// Exactly the matches, in order, and the tap ended at the limit (p5
	// matches too, but readTap would have read it before the end).
	if ids(events) != "p1 p3 p4" {
		t.Fatalf("tap %s: %q, want p1 p3 p4", filter, ids(events))
	}
	p1 := events[0]
	if p1["country"] != "NZ" || p1["revenue"] != 12.5 || p1["qty"] != float64(2) || p1["collector"] != "http" || p1["event_time"] == nil {
		t.Errorf("p1 has its fields: %v", p1)
	}
	if s, _ := p1["_seq"].(float64); s < 2 || events[2]["_seq"].(float64) <= s {
		t.Errorf("_seq: %v then %v", p1["_seq"], events[2]["_seq"])
	}

	// From the beginning, the earlier purchase comes first.
	body2, from, err := client.Tap(ctx, server.TapRequest{Stream: "events", Filter: filter, From: "beginning", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if replay := ids(readTap(t, body2, 10)); from != 1 || replay != "early p1 p3 p4 p5" {
		t.Errorf("from beginning (sequence %d): %q", from, replay)
	}
	body2.Close()

	// Refused requests say why.
	get := func(q string, token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/tap?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		query, token string
		code         int
		msg          string
	}{
		{"stream=events&filter=" + url.QueryEscape(`revenue >`), "s3cret", 400, `unexpected token EOF (1:9)`},
		{"stream=events&filter=" + url.QueryEscape(strings.Repeat("x", 100<<10)), "s3cret", 400, "filter is 102400 bytes long; the limit is 4096"},
		{"stream=events&filter=" + url.QueryEscape(`lookup(user_id) == "x"`), "s3cret", 400, "lookup is not a function"},
		{"stream=purchases", "s3cret", 404, `no stream \"purchases\": the streams are bad, events, logs, raw`},
		{"stream=events&limit=x", "s3cret", 400, `limit \"x\"`},
		{"stream=events", "wrong", 401, "token"},
	} {
		if code, b := get(tc.query, tc.token); code != tc.code || !strings.Contains(b, tc.msg) {
			t.Errorf("%.60s: %d %s; want %d containing %q", tc.query, code, b, tc.code, tc.msg)
		}
	}

	// A tap left open does not hold up the server's stop: it ends it.
	tctx, tcancel := context.WithCancel(ctx)
	open, _, err := client.Tap(tctx, server.TapRequest{Stream: "events"})
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := client.Tap(tctx, server.TapRequest{Stream: "logs"})
	if err != nil {
		t.Fatal(err)
	}
	gone.Close() // a client that went away
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, open)
		ended <- err
	}()
	start := time.Now()
	stopped = true
	if err := n.Stop(); err != nil {
		t.Errorf("stop with a tap open: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stop with a tap open took %v", d)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("the open tap ended with %v, want a clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the open tap did not end with the server")
	}
	tcancel()
}
