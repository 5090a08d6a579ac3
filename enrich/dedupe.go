package enrich

import (
	"hash/maphash"
	"sync"
	"time"
)

// dedupe remembers the event ids seen within a window. Ids are kept as two
// 64-bit hashes (a false "duplicate" would lose an event, so one 64-bit hash
// is not enough), each tagged with the generation it was last added in.
// Generations span window/4 each; the oldest expires once its newest id is
// older than the window, so an id is remembered for at least the window and
// at most 5/4 of it.
//
// The ids live in one open-addressing table rather than a map per
// generation: a lookup is one probe sequence (usually one cache miss) where
// the maps took one miss per generation, and expiring a generation is
// moving a number. Entries of expired generations are tombstones that new
// ids reuse; the table is rebuilt from its live entries when it fills.
// Memory is 32-64 bytes per id in the window.
type dedupe struct {
	mu     sync.Mutex
	window time.Duration
	span   time.Duration
	seeds  [2]maphash.Seed
	gens   []generation // live generations, newest last
	next   uint32       // the number the next generation gets
	slots  []slot       // len is a power of two (or 0)
	used   int          // slots holding an id, live or expired
}

type generation struct {
	start, last time.Time // when its first and its newest id were added
	n           uint32    // its number: slots tagged below gens[0].n are expired
}

// slot is one table entry: an id's two hashes (both zero: empty) and the
// number of the newest generation it was added in.
type slot struct {
	k0, k1 uint64
	gen    uint32
}

func newDedupe(window time.Duration) *dedupe {
	return &dedupe{
		window: window,
		span:   window / 4,
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		next:   1,
	}
}

// idKey is an event id as the table keeps it.
type idKey struct{ k0, k1 uint64 }

func (d *dedupe) key(id string) idKey {
	k := idKey{maphash.String(d.seeds[0], id), maphash.String(d.seeds[1], id)}
	if k == (idKey{}) {
		k.k1 = 1 // (0, 0) marks an empty slot
	}
	return k
}

// live is the lowest generation number not yet expired.
func (d *dedupe) live() uint32 {
	if len(d.gens) == 0 {
		return d.next
	}
	return d.gens[0].n
}

// contains reports whether id was seen within the window.
func (d *dedupe) contains(id string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if len(d.gens) == 0 {
		return false
	}
	i := d.find(d.key(id))
	return i >= 0 && d.slots[i].gen >= d.live()
}

// add remembers id as seen at t.
func (d *dedupe) add(id string, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.put(d.key(id), t)
}

// addNew remembers k as seen at t unless it was seen within the window
// already; it reports whether k is new.
func (d *dedupe) addNew(k idKey, t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.put(k, t)
}

// forget drops keys, as if they had never been added (their events were
// not stored after all). A key seen again meanwhile is forgotten too.
func (d *dedupe) forget(keys []idKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		if i := d.find(k); i >= 0 {
			d.slots[i].gen = 0 // below every live generation: a tombstone
		}
	}
}

// find returns the slot holding k (live or not), or -1.
func (d *dedupe) find(k idKey) int {
	if len(d.slots) == 0 {
		return -1
	}
	mask := len(d.slots) - 1
	for i := int(k.k0) & mask; ; i = (i + 1) & mask {
		s := &d.slots[i]
		if s.k0 == k.k0 && s.k1 == k.k1 {
			return i
		}
		if s.k0 == 0 && s.k1 == 0 {
			return -1
		}
	}
}

// put tags k with the generation of t (starting one if due); it reports
// whether k was not live before.
func (d *dedupe) put(k idKey, t time.Time) bool {
	d.expire(t)
	if n := len(d.gens); n == 0 || t.Sub(d.gens[n-1].start) >= d.span {
		d.gens = append(d.gens, generation{start: t, n: d.next})
		d.next++
	}
	g := &d.gens[len(d.gens)-1]
	if t.After(g.last) {
		g.last = t
	}
	if d.used+1 > len(d.slots)/4*3 {
		d.rebuild()
	}
	live := d.live()
	mask := len(d.slots) - 1
	free := -1 // the first expired slot on the way: reused if k is not there
	for i := int(k.k0) & mask; ; i = (i + 1) & mask {
		s := &d.slots[i]
		if s.k0 == k.k0 && s.k1 == k.k1 {
			was := s.gen >= live
			s.gen = g.n
			return !was
		}
		if s.k0 == 0 && s.k1 == 0 {
			if free < 0 {
				free = i
				d.used++
			}
			d.slots[free] = slot{k0: k.k0, k1: k.k1, gen: g.n}
			return true
		}
		if free < 0 && s.gen < live {
			free = i
		}
	}
}

// rebuild moves the live ids into a table where they fill at most 3/8 of
// the slots, dropping the expired ones.
func (d *dedupe) rebuild() {
	live := d.live()
	n := 0
	for _, s := range d.slots {
		if (s.k0 != 0 || s.k1 != 0) && s.gen >= live {
			n++
		}
	}
	size := 1024
	for size/8*3 < n+1 {
		size *= 2
	}
	old := d.slots
	d.slots = make([]slot, size)
	d.used = n
	mask := size - 1
	for _, s := range old {
		if (s.k0 == 0 && s.k1 == 0) || s.gen < live {
			continue
		}
		i := int(s.k0) & mask
		for d.slots[i].k0 != 0 || d.slots[i].k1 != 0 {
			i = (i + 1) & mask
		}
		d.slots[i] = s
	}
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
