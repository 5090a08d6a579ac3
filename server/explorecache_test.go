package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/semantic"
)

// fakeClock is a settable now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestCache(maxAge time.Duration, limit int64) (*exploreCache, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	c := newExploreCache(maxAge, limit)
	c.now = clk.now
	return c, clk
}

// runner counts its runs and answers body n for run n.
type runner struct {
	runs   atomic.Int32
	status int
}

func (r *runner) run() (int, []byte) {
	n := r.runs.Add(1)
	status := r.status
	if status == 0 {
		status = 200
	}
	return status, []byte(fmt.Sprintf(`{"run":%d}`, n))
}

func TestExploreCacheServesUntilTheDataChanges(t *testing.T) {
	c, clk := newTestCache(5*time.Minute, 1<<20)
	var r runner
	ask := func(version uint64, window time.Duration, fresh bool) (string, bool) {
		_, body, _, hit := c.answer("q", version, window, fresh, r.run)
		return string(body), hit
	}
	if body, hit := ask(1, 0, false); hit || body != `{"run":1}` {
		t.Fatalf("first ask: %s hit=%v", body, hit)
	}
	clk.t = clk.t.Add(4 * time.Minute)
	if body, hit := ask(1, 0, false); !hit || body != `{"run":1}` {
		t.Fatalf("same version within max age: %s hit=%v, want the first answer from the cache", body, hit)
	}
	if body, hit := ask(2, 0, false); hit || body != `{"run":2}` {
		t.Fatalf("new data version: %s hit=%v, want a new run", body, hit)
	}
	clk.t = clk.t.Add(5 * time.Minute)
	if body, hit := ask(2, 0, false); hit || body != `{"run":3}` {
		t.Fatalf("past max age: %s hit=%v, want a new run", body, hit)
	}
	if body, hit := ask(2, 0, true); hit || body != `{"run":4}` {
		t.Fatalf("fresh: %s hit=%v, want a new run", body, hit)
	}
	if body, hit := ask(2, 0, false); !hit || body != `{"run":4}` {
		t.Fatalf("after a fresh run: %s hit=%v, want its answer", body, hit)
	}
}

func TestExploreCacheRollingWindowsAgeFaster(t *testing.T) {
	c, clk := newTestCache(5*time.Minute, 1<<20)
	var r runner
	c.answer("5m", 1, 5*time.Minute, false, r.run)
	c.answer("24h", 1, 24*time.Hour, false, r.run)
	clk.t = clk.t.Add(4 * time.Second)
	for _, k := range []string{"5m", "24h"} {
		if _, _, _, hit := c.answer(k, 1, map[string]time.Duration{"5m": 5 * time.Minute, "24h": 24 * time.Hour}[k], false, r.run); !hit {
			t.Errorf("%s after 4s: miss, want a hit", k)
		}
	}
	clk.t = clk.t.Add(2 * time.Second)
	if _, _, _, hit := c.answer("5m", 1, 5*time.Minute, false, r.run); hit {
		t.Error(`"in the past 5 minutes" answered from the cache 6 s later; it may lag by 5 s at most`)
	}
	if _, _, _, hit := c.answer("24h", 1, 24*time.Hour, false, r.run); !hit {
		t.Error(`"in the past 24 hours" 6 s later: miss, want a hit (its bound is max age, 5m)`)
	}
}

func TestExploreCacheKeepsOnlySuccesses(t *testing.T) {
	c, _ := newTestCache(time.Minute, 1<<20)
	r := runner{status: 400}
	for i := 1; i <= 2; i++ {
		status, body, _, hit := c.answer("bad", 1, 0, false, r.run)
		if status != 400 || hit || string(body) != fmt.Sprintf(`{"run":%d}`, i) {
			t.Fatalf("ask %d: %d %s hit=%v, want 400 from a new run", i, status, body, hit)
		}
	}
}

func TestExploreCacheEvictsLeastRecentlyUsed(t *testing.T) {
	// Answers of 9 bytes and keys of 1 in a cache of 80: 8 fit; one may
	// take 10 (an eighth).
	c, _ := newTestCache(time.Minute, 80)
	var r runner
	for i := range 8 {
		c.answer(fmt.Sprint(i), 1, 0, false, r.run)
	}
	c.answer("0", 1, 0, false, r.run) // 0 is now the most recently used
	c.answer("8", 1, 0, false, r.run) // evicts 1
	if len(c.entries) != 8 || c.size > c.limit {
		t.Fatalf("%d answers, %d bytes; want 8 within %d", len(c.entries), c.size, c.limit)
	}
	if _, ok := c.entries["1"]; ok {
		t.Error("answer 1, the least recently used, is still kept")
	}
	if _, ok := c.entries["0"]; !ok {
		t.Error("answer 0, used again, was evicted")
	}
	big := func() (int, []byte) { return 200, bytes.Repeat([]byte("x"), 8) }
	c.answer("big", 1, 0, false, big)
	if _, ok := c.entries["big"]; ok {
		t.Error("an answer larger than an eighth of the cache (its key counted) was kept")
	}
}

func TestExploreCacheRunsConcurrentAsksOnce(t *testing.T) {
	c, _ := newTestCache(time.Minute, 1<<20)
	release := make(chan struct{})
	var runs atomic.Int32
	slow := func() (int, []byte) {
		runs.Add(1)
		<-release
		return 200, []byte(`{"rows":[]}`)
	}
	var wg sync.WaitGroup
	hits := make(chan bool, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, body, _, hit := c.answer("q", 1, 0, false, slow)
			if string(body) != `{"rows":[]}` {
				t.Errorf("body %s", body)
			}
			hits <- hit
		}()
	}
	for {
		c.mu.Lock()
		_, flying := c.flights["q"]
		c.mu.Unlock()
		if flying {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others queue behind the flight
	close(release)
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("10 concurrent asks ran the query %d times, want 1", n)
	}
	// A run at an older version that ends last does not replace a newer answer.
	c.answer("q", 3, 0, false, func() (int, []byte) { return 200, []byte(`{"v":3}`) })
	c.mu.Lock()
	c.put(&cachedAnswer{key: "q", version: 2, at: c.now(), ttl: time.Minute, body: []byte(`{"v":2}`)})
	c.mu.Unlock()
	if _, body, _, hit := c.answer("q", 3, 0, false, nil); !hit || string(body) != `{"v":3}` {
		t.Errorf("after an older run ended: %s hit=%v, want version 3's answer", body, hit)
	}
	// A caller at another data version does not wait for an old flight.
	if _, body, _, _ := c.answer("q", 2, 0, false, func() (int, []byte) { return 200, []byte(`{"v":2}`) }); string(body) != `{"v":2}` {
		t.Errorf("version 2: %s", body)
	}
}

// exploreAsk posts q to the explore API and returns the answer and its
// X-Sluice-Cache header.
func exploreAsk(t *testing.T, url, q string) (ExploreResponse, string) {
	t.Helper()
	res, err := http.Post(url+"/api/v1/explore", "application/json", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d %s", q, res.StatusCode, body)
	}
	var out ExploreResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out, res.Header.Get("X-Sluice-Cache")
}

func TestExploreCacheOverDuckDB(t *testing.T) {
	wh := duckShop(t)
	m, err := semantic.Load(shopModels)
	if err != nil {
		t.Fatal(err)
	}
	var model atomic.Pointer[semantic.Model]
	model.Store(m)
	srv := httptest.NewServer(Handler(Options{Warehouse: wh, Models: func() *semantic.Model { return model.Load() },
		ExploreCacheSize: 1 << 20, ExploreCacheAge: time.Hour}))
	t.Cleanup(srv.Close)
	const q = `{"explore": "orders", "fields": ["orders.status", "orders.count"], "filters": [{"field": "orders.status", "op": "=", "value": "complete"}]}`
	first, cache := exploreAsk(t, srv.URL, q)
	if cache != "miss" || len(first.Rows) != 1 || fmt.Sprint(first.Rows[0][1]) != "13" {
		t.Fatalf("first: %s %v, want a miss counting 13 complete orders", cache, first.Rows)
	}
	again, cache := exploreAsk(t, srv.URL, q)
	if cache != "hit" || !again.RanAt.Equal(first.RanAt) || fmt.Sprint(again.Rows) != fmt.Sprint(first.Rows) {
		t.Fatalf("again: %s ran at %s %v, want the first answer from the cache", cache, again.RanAt, again.Rows)
	}
	// An order more, written through the warehouse: the answer is computed again.
	if err := wh.WriteRows(context.Background(), "orders", []string{"id"}, []map[string]any{{"id": 100, "user_id": 1, "status": "complete"}}); err != nil {
		t.Fatal(err)
	}
	after, cache := exploreAsk(t, srv.URL, q)
	if cache != "miss" || fmt.Sprint(after.Rows[0][1]) != "14" {
		t.Fatalf("after a write: %s %v, want a miss counting 14", cache, after.Rows)
	}
	// A reloaded model whose measure means something else: a new answer.
	changed, err := semantic.Parse("shop.yml", []byte(`
views:
  orders:
    table: orders
    dimensions:
      id: {type: number, primary_key: true}
      status: {}
    measures:
      count: {type: count, filters: [{field: id, op: "<", value: 100}]}
explores:
  orders: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	model.Store(changed)
	remodelled, cache := exploreAsk(t, srv.URL, q)
	if cache != "miss" || fmt.Sprint(remodelled.Rows[0][1]) != "13" {
		t.Fatalf("after a model change: %s %v, want a miss counting 13 (ids under 100)", cache, remodelled.Rows)
	}
	// no_cache runs the query even though its answer is cached.
	_, cache = exploreAsk(t, srv.URL, strings.TrimSuffix(q, "}")+`, "no_cache": true}`)
	if cache != "miss" {
		t.Errorf("no_cache: %s, want a miss", cache)
	}
}
