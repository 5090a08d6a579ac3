package server

import (
	"container/list"
	"strconv"
	"sync"
	"time"
)

// exploreCache keeps the explore API's answers, as a BI tool's results
// cache does: a dashboard opened again, or by a second person, is drawn
// from memory instead of scanning the lake again. An answer is served
// while
//
//   - the warehouse's data version is the one it was computed at (any view
//     pointed at new lake files, any table written, changes it), and
//   - it is younger than maxAge, and younger than a sixtieth of the
//     query's shortest "in the past" window (5 s for "5 minutes"), so that
//     a rolling window that moved on is computed again.
//
// Answers are kept as the JSON they were sent as, least recently used
// first out once they take more than limit bytes. Identical queries that
// miss at once run once: the others wait for the first one's answer.
type exploreCache struct {
	maxAge time.Duration
	limit  int64
	now    func() time.Time

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *cachedAnswer, most recently used first
	entries map[string]*list.Element
	flights map[string]*flight
}

// cachedAnswer is one explore answer.
type cachedAnswer struct {
	key     string
	version uint64
	at      time.Time     // when its query ran
	ttl     time.Duration // how long it may be served
	body    []byte        // the JSON sent
}

// flight is a query being run for a key at a version; its answer is for
// whoever asked for the same meanwhile.
type flight struct {
	version uint64
	done    chan struct{}
	status  int
	body    []byte
	at      time.Time
}

// staleShare is the share of a rolling window an answer may lag behind.
const staleShare = 60

func newExploreCache(maxAge time.Duration, limit int64) *exploreCache {
	return &exploreCache{maxAge: maxAge, limit: limit, now: time.Now, lru: list.New(),
		entries: map[string]*list.Element{}, flights: map[string]*flight{}}
}

// ttl is how long an answer to a query with the given "in the past"
// window (0: none) may be served.
func (c *exploreCache) ttl(window time.Duration) time.Duration {
	if window > 0 && window/staleShare < c.maxAge {
		return window / staleShare
	}
	return c.maxAge
}

// answer is the JSON answer to key at data version, and when it was
// computed: from the cache when it is still good (hit) and fresh is not
// asked for, else from run, whose answer is kept if its status is 200.
// Concurrent callers with the same key and version share one run.
func (c *exploreCache) answer(key string, version uint64, window time.Duration, fresh bool, run func() (int, []byte)) (status int, body []byte, at time.Time, hit bool) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && !fresh {
		a := e.Value.(*cachedAnswer)
		if a.version == version && c.now().Sub(a.at) < a.ttl {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			return 200, a.body, a.at, true
		}
		c.remove(e)
	}
	if f, ok := c.flights[key]; ok && f.version == version {
		c.mu.Unlock()
		<-f.done
		return f.status, f.body, f.at, f.status == 200
	}
	f := &flight{version: version, done: make(chan struct{}), at: c.now()}
	c.flights[key] = f
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		if c.flights[key] == f {
			delete(c.flights, key)
		}
		if f.status == 200 && int64(len(f.body)+len(key)) <= c.limit/8 {
			c.put(&cachedAnswer{key: key, version: version, at: f.at, ttl: c.ttl(window), body: f.body})
		}
		c.mu.Unlock()
		close(f.done)
	}()
	// Should run panic, those waiting get this.
	f.status, f.body = 500, []byte(`{"error":"explore query failed"}`)
	f.status, f.body = run()
	return f.status, f.body, f.at, false
}

// put adds a (under mu), making room for it. An answer at a newer data
// version (from a later run that ended first) stays.
func (c *exploreCache) put(a *cachedAnswer) {
	if e, ok := c.entries[a.key]; ok {
		if e.Value.(*cachedAnswer).version > a.version {
			return
		}
		c.remove(e)
	}
	c.entries[a.key] = c.lru.PushFront(a)
	c.size += a.bytes()
	for c.size > c.limit {
		c.remove(c.lru.Back())
	}
}

// remove drops e (under mu).
func (c *exploreCache) remove(e *list.Element) {
	a := c.lru.Remove(e).(*cachedAnswer)
	delete(c.entries, a.key)
	c.size -= a.bytes()
}

// bytes is what a takes: its JSON and its key (the query's SQL).
func (a *cachedAnswer) bytes() int64 { return int64(len(a.body) + len(a.key)) }

// cacheKey is what identifies an explore answer: the query compiled at a
// fixed time (so the SQL names the model's definitions, not the clock) and
// the row limit.
func cacheKey(sqlAtEpoch string, maxRows int) string {
	return strconv.Itoa(maxRows) + "\x00" + sqlAtEpoch
}
