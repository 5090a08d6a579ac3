package rollup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
)

// A rebuild counts the lake up to its position and the stream after it:
// every event once, with the definition as it is now.
func TestRebuildLakeAndStream(t *testing.T) {
	ctx := t.Context()
	b := eventsBus(t)
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var all []map[string]any
	for msg := range 10 {
		var lines strings.Builder
		for i := range 10 {
			n := msg*10 + i
			ev := map[string]any{"event": []string{"click", "view", "view", "view", "view"}[n%5], "event_time": base.Add(time.Duration(n) * time.Second).Format(time.RFC3339), "country": "DE"}
			all = append(all, ev)
			fmt.Fprintf(&lines, `{"event":%q,"event_time":%q,"country":"DE"}`+"\n", ev["event"], ev["event_time"])
		}
		if _, err := b.Publish(ctx, "events", []byte(lines.String()), ""); err != nil {
			t.Fatal(err)
		}
	}
	c := config.Rollup{From: "events", Filter: `event == "view"`, Granularity: config.Duration(time.Minute), Time: "event_time",
		Dimensions: []string{"country"}, Metrics: map[string]string{"n": "count()"}, Retention: config.Duration(time.Hour)}
	r, err := New(Options{Name: "r", Config: c, Bus: b, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, _ := r.Table.Run(Query{QueryType: "timeseries"})
		if len(res) == 1 && res[0].Event["n"] == int64(80) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live count: %+v", res)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The lake holds the first 4 messages (seq 1-4); the stream the rest.
	lake := func(ctx context.Context, from, to time.Time, visit func(map[string]any) error) (uint64, error) {
		for _, ev := range all[:40] {
			if err := visit(ev); err != nil {
				return 0, err
			}
		}
		return 4, nil
	}
	// Rebuilt counting clicks instead: the definition as it is now.
	r.filter, _ = config.CompileExpr(`event == "click"`, true)
	rep, err := r.Rebuild(ctx, base, base.Add(2*time.Minute), lake)
	if err != nil {
		t.Fatal(err)
	}
	if rep.LakeRows != 40 || rep.LakeSeq != 4 || rep.StreamEvents != 6 || rep.Version != 1 {
		t.Fatalf("report: %+v", rep)
	}
	res, _ := r.Table.Run(Query{QueryType: "timeseries"})
	if len(res) != 1 || res[0].Event["n"] != int64(20) {
		t.Fatalf("after the rebuild: %+v", res)
	}
	// Outside the interval nothing changed; a second rebuild is version 2.
	rep, err = r.Rebuild(ctx, base, base.Add(2*time.Minute), lake)
	if err != nil || rep.Version != 2 {
		t.Fatalf("second rebuild: %+v %v", rep, err)
	}
	// The new version is on disk before the rebuild reports: its segment
	// is the one the manifest names, the one before it gone.
	back := NewTable(r.Table.Granularity, r.Table.Dimensions, r.Table.Metrics)
	if _, err := back.load(r.dir(), ""); err != nil {
		t.Fatal(err)
	}
	if ivs := back.Intervals(); len(ivs) != 1 || ivs[0].Version != 2 || !ivs[0].Start.Equal(base) {
		t.Fatalf("saved intervals: %+v", ivs)
	}
	if files := segFiles(t, r.dir()); len(files) != 1 || !strings.Contains(files[0], "-v2-") {
		t.Fatalf("segment files: %v", files)
	}
	if res, _ := back.Run(Query{QueryType: "timeseries"}); len(res) != 1 || res[0].Event["n"] != int64(20) {
		t.Fatalf("saved: %+v", res)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// eventsBus is an embedded bus with an events stream, closed when the test ends.
func eventsBus(t *testing.T) *bus.Bus {
	b, err := bus.Open(t.Context(), bus.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Streams: map[string]bus.StreamConfig{"events": {Retention: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
