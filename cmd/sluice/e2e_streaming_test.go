package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/demo"
)

// Issue 5, acceptance 1: the streaming example on demo traffic, with kill -9
// and a restart in the middle (twice): every closed window in
// revenue_per_minute equals the same aggregate computed by SQL over the
// lake — no window missing, none counted twice.
func TestStreamingExampleSurvivesKillNine(t *testing.T) {
	data := t.TempDir()
	collector, api := freePort(t), freePort(t)
	const example = "../../examples/streaming/sluice.yaml"
	p := startSluice(t, data, collector, api, "-c", example)

	finish := startDemo(t, collector, demo.Options{History: 30 * time.Minute, HistoryEventsPerHour: 60000, Rate: 400, Seed: 42})
	// Live traffic for 72 s, killed at 3, 20 and 40 s: at least one minute
	// (a window) that was open at a kill closes before the end and is
	// compared.
	began := time.Now()
	for _, at := range []time.Duration{3 * time.Second, 20 * time.Second, 40 * time.Second} {
		time.Sleep(time.Until(began.Add(at)))
		p.kill(t)
		for _, l := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(l, "pipeline starting") {
				t.Log(l)
			}
		}
		t.Logf("kill -9 at %s", time.Now().UTC().Format("15:04:05"))
		time.Sleep(300 * time.Millisecond)
		p = startSluice(t, data, collector, api, "-c", example)
	}
	time.Sleep(time.Until(began.Add(72 * time.Second)))
	r := finish()
	t.Logf("demo sent %d events (%d retries), event times %s to %s", r.Sent, r.Retries, r.FirstEventTime, r.LastEventTime)

	// Every acknowledged event in the lake, then the closed windows.
	waitSQL(t, data, "SELECT count(*), count(DISTINCT event_id) FROM events", fmt.Sprintf("[[%d %d]]", r.Sent, r.Sent))
	got := `SELECT strftime(window_start, '%H:%M'), country, purchases, round(revenue, 2) FROM revenue_per_minute
		WHERE window_start + INTERVAL 65 second <= (SELECT max(event_time) FROM events) ORDER BY 1, 2`
	want := `SELECT strftime(time_bucket(INTERVAL 1 minute, event_time), '%H:%M') AS w, country, count(*), round(sum(revenue), 2)
		FROM events WHERE event = 'purchase'
		  AND time_bucket(INTERVAL 1 minute, event_time) + INTERVAL 65 second <= (SELECT max(event_time) FROM events) -- closed: the watermark (5 s) passed its end
		GROUP BY ALL ORDER BY 1, 2`
	deadline := time.Now().Add(60 * time.Second)
	for {
		g, w := fmt.Sprint(sql(t, data, got)), fmt.Sprint(sql(t, data, want))
		if g == w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revenue_per_minute:\n%s\nSQL over the lake:\n%s", g, w)
		}
		time.Sleep(time.Second)
	}
	t.Logf("windows: %v; purchases in the lake up to %v", sql(t, data, "SELECT min(window_start), max(window_start) FROM revenue_per_minute"),
		sql(t, data, "SELECT max(event_time) FROM events WHERE event = 'purchase'"))
	n := sql(t, data, "SELECT count(DISTINCT window_start), count(*) FROM revenue_per_minute")
	t.Logf("revenue_per_minute: %v windows, rows; equal to the lake", n)
	if w, _ := n[0][0].(float64); w < 10 {
		t.Errorf("only %v windows: the test did not cover the history", n)
	}
	p.stop(t)
}

// startDemo sends demo traffic (opts, to collector) until the returned
// finish is called, which stops it and returns what was sent.
func startDemo(t *testing.T, collector string, opts demo.Options) (finish func() demo.Stats) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	type result struct {
		s   demo.Stats
		err error
	}
	done := make(chan result, 1)
	opts.CollectorURL = "http://" + collector
	opts.Client = &http.Client{Timeout: 5 * time.Second}
	go func() {
		s, err := demo.Run(ctx, opts)
		done <- result{s, err}
	}()
	return func() demo.Stats {
		t.Helper()
		stop()
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.s
	}
}

// waitSQL polls `sluice sql` until it answers want.
func waitSQL(t *testing.T, data, q, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = fmt.Sprint(sql(t, data, q)); got == want {
			return
		}
	}
	t.Fatalf("%s: %s, want %s", q, got, want)
}
