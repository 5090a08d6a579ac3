package enrich

import (
	"hash/maphash"
	"sync"
	"time"
)

// dedupe remembers the event ids seen within a window. Ids are kept as two
// 64-bit hashes (a false "duplicate" would lose an event, so one 64-bit hash
// is not enough) in generations of window/4 each: expiring the oldest
// generation is dropping one map, once its newest id is older than the
// window, so an id is remembered for at least the window and at most
// 5/4 of it. Memory is about 40 bytes per id in the window.
type dedupe struct {
	mu     sync.Mutex
	window time.Duration
	span   time.Duration
	seeds  [2]maphash.Seed
	gens   []generation // newest last
}

type generation struct {
	start, last time.Time // when its first and its newest id were added
	ids         map[[2]uint64]struct{}
}

func newDedupe(window time.Duration) *dedupe {
	return &dedupe{
		window: window,
		span:   window / 4,
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

func (d *dedupe) key(id string) [2]uint64 {
	return [2]uint64{maphash.String(d.seeds[0], id), maphash.String(d.seeds[1], id)}
}

// contains reports whether id was seen within the window.
func (d *dedupe) contains(id string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	k := d.key(id)
	for _, g := range d.gens {
		if _, ok := g.ids[k]; ok {
			return true
		}
	}
	return false
}

// add remembers id as seen at t.
func (d *dedupe) add(id string, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(t)
	if n := len(d.gens); n == 0 || t.Sub(d.gens[n-1].start) >= d.span {
		d.gens = append(d.gens, generation{start: t, ids: make(map[[2]uint64]struct{})})
	}
	g := &d.gens[len(d.gens)-1]
	if t.After(g.last) {
		g.last = t
	}
	g.ids[d.key(id)] = struct{}{}
}

// expire drops the generations whose ids were all added more than a window
// before now. (Judging a generation by when the next one started would keep
// an id forever when no other id came after it.)
func (d *dedupe) expire(now time.Time) {
	drop := 0
	for drop < len(d.gens) && now.Sub(d.gens[drop].last) > d.window {
		drop++
	}
	if drop > 0 {
		d.gens = append(d.gens[:0], d.gens[drop:]...)
	}
}
