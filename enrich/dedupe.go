package enrich

import (
	"hash/maphash"
	"sync"
	"time"
)

// dedupe remembers the event ids seen within a window. Ids are kept as two
// 64-bit hashes (a false "duplicate" would lose an event, so one 64-bit hash
// is not enough) in generations of window/4 each: expiring the oldest
// generation is dropping one map, and an id is remembered for at least the
// window. Memory is about 40 bytes per id in the window.
type dedupe struct {
	mu     sync.Mutex
	window time.Duration
	span   time.Duration
	seeds  [2]maphash.Seed
	gens   []generation // newest last
}

type generation struct {
	start time.Time
	ids   map[[2]uint64]struct{}
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
	d.current(now) // expire what is older than the window
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
	d.current(t)[d.key(id)] = struct{}{}
}

// current returns the generation for time now, rotating out the ones that
// ended more than a window ago.
func (d *dedupe) current(now time.Time) map[[2]uint64]struct{} {
	if n := len(d.gens); n == 0 || now.Sub(d.gens[n-1].start) >= d.span {
		d.gens = append(d.gens, generation{start: now, ids: make(map[[2]uint64]struct{})})
	}
	keep := 0
	for keep < len(d.gens)-1 && now.Sub(d.gens[keep+1].start) > d.window {
		keep++
	}
	if keep > 0 {
		d.gens = append(d.gens[:0], d.gens[keep:]...)
	}
	return d.gens[len(d.gens)-1].ids
}
