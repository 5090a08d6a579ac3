package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// collector is a stand-in that counts events and event ids it was sent; the
// real collector is measured by `sluice bench` itself.
type collector struct {
	mu   sync.Mutex
	ids  map[string]bool
	fail atomic.Bool
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.fail.Load() {
		http.Error(w, `{"error":"full"}`, http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var evs []map[string]any
	if err := json.Unmarshal(body, &evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, e := range evs {
		c.ids[e["event_id"].(string)] = true
	}
	c.mu.Unlock()
	w.Write([]byte(`{"accepted":1}`))
}

func TestIngestCountsWhatWasAcknowledged(t *testing.T) {
	c := &collector{ids: map[string]bool{}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	corpus, err := NewCorpus(200, 1, "json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Ingest(context.Background(), srv.URL, corpus, 4, 10, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events == 0 || r.Events != r.Requests*10 || r.Bytes == 0 || r.P99 < r.P50 {
		t.Errorf("result: %+v", r)
	}
	// Every event sent carried a fresh id (prebuilt bodies repeat, so count
	// distinct ids against distinct bodies: 4 clients x 64 bodies x 10).
	if got := len(c.ids); got < int(min(r.Events, 4*64*10)) {
		t.Errorf("%d distinct ids for %d events", got, r.Events)
	}
	c.fail.Store(true)
	if _, err := Ingest(context.Background(), srv.URL, corpus, 1, 1, 100*time.Millisecond); err == nil {
		t.Error("a 503 is not reported")
	}
}

func TestLakeWaitsForEveryRow(t *testing.T) {
	c := &collector{ids: map[string]bool{}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	corpus, _ := NewCorpus(100, 2, "json")
	count := func(context.Context) (int64, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return int64(len(c.ids)), nil
	}
	r, err := Lake(context.Background(), srv.URL, corpus, 2, 50, 5000, 20000, count)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 5000 || r.LakeTime < r.IngestTime || len(r.Samples) == 0 {
		t.Errorf("result: %+v", r)
	}
	// Paced at 20,000/s, 5,000 events take about a quarter second.
	if r.IngestTime < 200*time.Millisecond {
		t.Errorf("pacing ignored: %v", r.IngestTime)
	}
}

func TestTP2Bodies(t *testing.T) {
	c, err := NewCorpus(50, 3, "tp2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Path() != "/com.snowplowanalytics.snowplow/tp2" {
		t.Errorf("path %s", c.Path())
	}
	var env struct {
		Schema string              `json:"schema"`
		Data   []map[string]string `json:"data"` // every value a string
	}
	if err := json.Unmarshal(c.Body(50), &env); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(env.Schema, "payload_data") || len(env.Data) != 50 {
		t.Fatalf("envelope: %s, %d events", env.Schema, len(env.Data))
	}
	ids := map[string]bool{}
	for _, ev := range env.Data {
		ids[ev["eid"]] = true
		if ev["e"] != "pv" && (ev["e"] != "se" || ev["se_ac"] == "") {
			t.Errorf("event %v", ev)
		}
	}
	if len(ids) != 50 {
		t.Errorf("%d distinct eids", len(ids))
	}
	if _, err := NewCorpus(1, 1, "xml"); err == nil {
		t.Error("unknown protocol accepted")
	}
}

func TestLiveCorpusIsNowAndMostlyPageViews(t *testing.T) {
	c, err := NewLiveCorpus(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	before := time.Now().Truncate(time.Millisecond)
	if err := json.Unmarshal(c.Body(1000), &evs); err != nil {
		t.Fatal(err)
	}
	views := 0
	for _, ev := range evs {
		at, err := time.Parse(time.RFC3339, ev["event_time"].(string))
		if err != nil || at.Before(before) || at.After(time.Now()) {
			t.Fatalf("event_time %v (%v), want now", ev["event_time"], err)
		}
		if ev["event"] == "page_view" {
			views++
		}
	}
	// The rollup counts page views: they must be a good share of the load.
	if views < len(evs)/3 {
		t.Errorf("%d page views in %d events", views, len(evs))
	}
}

func TestTimeQueries(t *testing.T) {
	qs := AnalyticalQueries()
	if len(qs) != 10 {
		t.Fatalf("%d analytical queries, want 10", len(qs))
	}
	slow := func(d time.Duration, n int) Runner {
		return func(context.Context, string) (int, error) { time.Sleep(d); return n, nil }
	}
	got, err := TimeQueries(context.Background(), qs[:2], slow(4*time.Millisecond, 3), slow(2*time.Millisecond, 3), 3)
	if err != nil || len(got) != 2 || got[0].Rows != 3 || got[0].API < got[0].Direct || got[0].Overhead() <= 0 {
		t.Fatalf("%+v %v", got, err)
	}
	// Different answers are an error, not a timing.
	if _, err := TimeQueries(context.Background(), qs[:1], slow(0, 3), slow(0, 4), 1); err == nil {
		t.Error("3 rows against 4 were not reported")
	}
}
