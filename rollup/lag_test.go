package rollup

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-data/sluice/config"
)

// A rollup's lag is the messages of its stream it has not counted: none
// once it caught up, those that came while it was stopped; its counters
// say how many events it read and how many it could not count.
func TestLagAndCounters(t *testing.T) {
	ctx := t.Context()
	b := eventsBus(t)
	publish := func(lines ...string) {
		for _, l := range lines {
			if _, err := b.Publish(ctx, "events", []byte(l), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	ok := `{"event":"view","event_time":"` + now + `"}`
	publish(ok, ok+"\n"+ok, `{"event":"view"}`, ok) // one without a time: skipped
	c := config.Rollup{From: "events", Granularity: config.Duration(time.Minute), Time: "event_time",
		Metrics: map[string]string{"n": "count()"}, Retention: config.Duration(time.Hour)}
	dir := t.TempDir()
	run := func() (stop func()) {
		r, err := New(Options{Name: "lagged", Config: c, Bus: b, Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := r.Lag(ctx); ok {
			t.Error("a rollup that has not started says its lag")
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			lag, ok, err := r.Lag(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ok && lag == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lag %d (%v), want 0", lag, ok)
			}
		}
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			// Stopped, it is behind by what comes.
			publish(ok, ok, ok)
			if lag, ok, err := r.Lag(ctx); err != nil || !ok || lag != 3 {
				t.Errorf("stopped, 3 messages later: lag %d (%v, %v), want 3", lag, ok, err)
			}
		}
	}
	run()()
	if n, s := testutil.ToFloat64(rollupEvents.WithLabelValues("lagged")), testutil.ToFloat64(rollupSkipped.WithLabelValues("lagged")); n != 5 || s != 1 {
		t.Errorf("counted %v events, skipped %v; want 5 and 1", n, s)
	}
	stop := run()
	if n := testutil.ToFloat64(rollupEvents.WithLabelValues("lagged")); n != 8 {
		t.Errorf("after a restart: %v events; want 8", n)
	}
	stop()
}
