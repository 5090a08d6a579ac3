package pipeline_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/pipeline"
)

// A pipeline's lag is what its checkpoints say it has not read of its
// input: all of it before it runs, none once it caught up, what came while
// it was stopped. It holds for a window that stays open (the checkpoint's
// position waits for the window's first message, but the pipeline has
// read on) and for workers (the one furthest behind counts).
func TestLag(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"window", `    from: events
    steps:
      - window: {type: tumbling, size: 1h, group_by: [user], aggregates: {n: count()}}
    to: {stream: out}
`},
		{"workers", workersYAML},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBus(t)
			ctx := t.Context()
			for _, s := range []string{"events", "out"} {
				if err := b.EnsureStream(ctx, s, bus.StreamConfig{Retention: time.Hour}); err != nil {
					t.Fatal(err)
				}
			}
			c, err := config.Parse("sluice.yaml", []byte("pipelines:\n  p:\n"+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			lag := func() uint64 {
				t.Helper()
				lag, err := pipeline.Lag(ctx, b, "p", c.Pipelines["p"])
				if _, ok := lag["events"]; err != nil || !ok || len(lag) != 1 {
					t.Fatalf("lag: %v %v", lag, err)
				}
				return lag["events"]
			}
			publish := func(msgs int) {
				for i := range msgs {
					ev := fmt.Sprintf(`{"user":"u%d","n":%d,"event_time":%q}`, i%3, i, time.Now().UTC().Format(time.RFC3339Nano))
					if _, err := b.Publish(ctx, "events", []byte(ev), ""); err != nil {
						t.Fatal(err)
					}
				}
			}
			publish(10)
			if n := lag(); n != 10 {
				t.Errorf("before the pipeline ran: lag %d, want 10", n)
			}
			_, stop := runGroup(t, b, "a", tc.yaml)
			waitFor(t, "the lag to fall to 0", func() bool { return lag() == 0 })
			stop()
			publish(4)
			if n := lag(); n != 4 {
				t.Errorf("stopped, 4 messages later: lag %d, want 4", n)
			}
			runGroup(t, b, "a", tc.yaml)
			waitFor(t, "the lag to fall to 0 again", func() bool { return lag() == 0 })
		})
	}
}
