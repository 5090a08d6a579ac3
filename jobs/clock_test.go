package jobs

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
)

// A scheduled job with a time parameter runs every interval, each with
// the interval's start; a date parameter gets the interval's day.
func TestClockPassesTheIntervalStart(t *testing.T) {
	ctx := context.Background()
	bs, err := bus.Open(ctx, bus.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	c, err := config.Parse("sluice.yaml", []byte(`
jobs:
  often:
    schedule: '@every 1s'
    params: {at: time}
    sql: SELECT TIMESTAMP '{{.at}}' AS at
    output: {table: often, partition_by: at, partition: '{{.at}}'}
`))
	if err != nil {
		t.Fatal(err)
	}
	wh := &memWarehouse{done: map[string]time.Time{}}
	s := New(Options{Jobs: c.Jobs, Bus: bs, Warehouse: wh, Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()
	lctx, cancel := context.WithCancel(ctx)
	go s.Loop(lctx)
	time.Sleep(4500 * time.Millisecond)
	cancel()
	time.Sleep(300 * time.Millisecond)
	wh.mu.Lock()
	var parts []string
	for k := range wh.done {
		parts = append(parts, strings.TrimPrefix(k, "often/"))
	}
	wh.mu.Unlock()
	slices.Sort(parts)
	if len(parts) < 3 {
		t.Fatalf("%d intervals ran in 4.5 s of a 1 s schedule: %v", len(parts), parts)
	}
	for i, p := range parts {
		at, err := time.Parse(time.RFC3339, p)
		if err != nil {
			t.Fatalf("partition %q is not the interval's start", p)
		}
		if i > 0 {
			prev, _ := time.Parse(time.RFC3339, parts[i-1])
			if d := at.Sub(prev); d != time.Second {
				t.Fatalf("intervals %s and %s are %s apart, want 1s (one run each): %v", parts[i-1], p, d, parts)
			}
		}
	}
	// Normalized times.
	if _, err := Normalize(c.Jobs, Task{Job: "often", Params: map[string]string{"at": "2026-11-25T11:00:00+01:00"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := Normalize(c.Jobs, Task{Job: "often", Params: map[string]string{"at": "2026-11-25T11:00:00+01:00"}})
	if got.Params["at"] != "2026-11-25T10:00:00Z" {
		t.Fatalf("normalized: %v", got)
	}
	if _, err := Normalize(c.Jobs, Task{Job: "often", Params: map[string]string{"at": "2026-11-25"}}); err == nil || !strings.Contains(err.Error(), "not a time (RFC 3339") {
		t.Fatalf("a date for a time: %v", err)
	}
}
