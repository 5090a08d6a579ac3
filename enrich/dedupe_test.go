package enrich

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestDedupeRemembersForTheWindow(t *testing.T) {
	const window = 200 * time.Millisecond
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	d := newDedupe(window)
	d.add("a", ms(0))
	for _, at := range []int{0, 1, 100, 199, 200} {
		if !d.contains("a", ms(at)) {
			t.Errorf("a was forgotten %dms after it was added (window %v)", at, window)
		}
	}
	if d.contains("b", ms(10)) {
		t.Error("b was never added")
	}
	// With nothing else added since, it must still expire.
	if d.contains("a", ms(400)) {
		t.Errorf("a is still remembered 400ms after it was added (window %v)", window)
	}
	// A lone id added again after expiry is new again, then remembered.
	d.add("a", ms(400))
	if !d.contains("a", ms(550)) || d.contains("a", ms(900)) {
		t.Error("a re-added at 400ms: want it remembered at 550ms and forgotten at 900ms")
	}
}

func TestDedupeUnderSteadyTraffic(t *testing.T) {
	const window = 200 * time.Millisecond
	d := newDedupe(window)
	added := map[string]time.Time{}
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		id := fmt.Sprint("id-", i)
		d.add(id, now)
		added[id] = now
		if i%37 != 0 {
			continue
		}
		for old, at := range added {
			age := now.Sub(at)
			got := d.contains(old, now)
			if age <= window && !got {
				t.Fatalf("at %v: %s (age %v) was forgotten within the window", now.Sub(t0), old, age)
			}
			if age > window+window/4+time.Millisecond && got {
				t.Fatalf("at %v: %s (age %v) is remembered well past the window", now.Sub(t0), old, age)
			}
		}
	}
	// Old generations are dropped, not kept around.
	if n := len(d.gens); n > 6 {
		t.Errorf("%d generations held for a window of 4 spans", n)
	}
}

// The rebuild adds ids at the times they were published, which are in the past.
func TestDedupeRebuiltFromPastTimes(t *testing.T) {
	const window = 10 * time.Minute
	d := newDedupe(window)
	now := t0.Add(time.Hour)
	for i := range 100 {
		d.add(fmt.Sprint("id-", i), now.Add(-window+time.Duration(i)*time.Second))
	}
	if !d.contains("id-99", now) || !d.contains("id-10", now) {
		t.Error("ids published within the window were not remembered")
	}
	if d.contains("id-0", now.Add(2*window/4)) || d.contains("id-99", now.Add(2*window/4)) {
		t.Error("ids published 12.5 to 15 minutes ago are remembered in a 10 minute window")
	}
}
