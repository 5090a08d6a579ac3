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

// Many ids, added again at random, through many rebuilds of the table and
// expiries of its generations: every id is remembered within the window and
// forgotten once it is 5/4 of the window old, as a plain map of last-seen
// times says.
func TestDedupeAgainstAModel(t *testing.T) {
	const window = time.Second
	d := newDedupe(window)
	lastSeen := map[string]time.Time{}
	r := uint64(7)
	rnd := func(n int) int {
		r = r*6364136223846793005 + 1442695040888963407
		return int(r>>33) % n
	}
	now := t0
	for i := range 300_000 {
		now = now.Add(time.Duration(rnd(40)) * time.Microsecond)
		id := fmt.Sprint("id-", i)
		if i > 0 && rnd(4) == 0 {
			// An id seen before, maybe long ago.
			id = fmt.Sprint("id-", i-1-rnd(min(i, 100_000)))
		}
		age, seen := now.Sub(lastSeen[id]), lastSeen[id] != (time.Time{})
		got := d.contains(id, now)
		switch {
		case seen && age <= window && !got:
			t.Fatalf("event %d: %s seen %v ago was forgotten (window %v)", i, id, age, window)
		case (!seen || age > window+window/4+time.Millisecond) && got:
			t.Fatalf("event %d: %s (seen %v, %v ago) is remembered", i, id, seen, age)
		}
		d.add(id, now)
		lastSeen[id] = now
	}
	// About 4 ms of ids a millisecond... the window holds ~50,000 ids at
	// ~20 µs apart; the table must not hold every id ever added.
	if live := len(d.slots); live > 1<<18 {
		t.Errorf("table of %d slots for a window of ~50,000 ids: expired ids are not dropped", live)
	}
}

// BenchmarkDedupe is enrich's use: every id new, looked up, then added,
// 100,000 a second into a 5-minute window (8M ids; the table grows to hold
// them all).
func BenchmarkDedupe(b *testing.B) {
	d := newDedupe(5 * time.Minute)
	ids := make([]string, 1<<23)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%019d-%d", i*7919, i)
	}
	now := t0
	i := 0
	for b.Loop() {
		id := ids[i&(len(ids)-1)]
		if !d.contains(id, now) {
			d.add(id, now)
		}
		i++
		now = now.Add(10 * time.Microsecond)
	}
}
