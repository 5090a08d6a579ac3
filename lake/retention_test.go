package lake

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestExpire(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	for _, k := range []string{
		"events/dt=2026-10-01/hr=00/events-1-5.parquet",
		"events/dt=2026-11-24/hr=09/events-6-9.parquet",
		"events/dt=2026-11-24/hr=10/events-6-9.parquet",
		"events/dt=2026-11-25/hr=10/events-10-12.parquet",
		"logs/dt=2026-10-01/hr=00/logs-1-1.parquet",
		"_sluice/commits/events.json",
	} {
		if err := d.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)
	// Keep one day: the partition of 2026-11-24 09:00-10:00 ended 24.5 h ago.
	got, err := Expire(ctx, d, "events", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"events/dt=2026-10-01/hr=00/events-1-5.parquet", "events/dt=2026-11-24/hr=09/events-6-9.parquet"}
	if !slices.Equal(got, want) {
		t.Errorf("expired %q, want %q", got, want)
	}
	left := keys(t, d, "")
	for _, k := range []string{"events/dt=2026-11-24/hr=10/events-6-9.parquet", "events/dt=2026-11-25/hr=10/events-10-12.parquet",
		"logs/dt=2026-10-01/hr=00/logs-1-1.parquet", "_sluice/commits/events.json"} {
		if !slices.Contains(left, k) {
			t.Errorf("%s was deleted", k)
		}
	}
	if len(left) != 4 {
		t.Errorf("left: %q", left)
	}
}
