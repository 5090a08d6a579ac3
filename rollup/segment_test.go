package rollup

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fill adds n random events over [base, base+span) to tb.
func fill(t *testing.T, tb *Table, rng *rand.Rand, base time.Time, span time.Duration, n int) {
	t.Helper()
	for i := range n {
		at := base.Add(time.Duration(rng.Int64N(int64(span))))
		ev := map[string]any{"user_id": fmt.Sprintf("u%d", rng.IntN(5000)), "price": float64(rng.IntN(10000)) / 100, "latency": float64(10 + rng.IntN(900))}
		if _, err := tb.Add(at, []string{[]string{"DE", "FR", "US"}[rng.IntN(3)], fmt.Sprintf("/p%d", i%7)}, values(tb, ev)); err != nil {
			t.Fatal(err)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	slices.Sort(m)
	return m
}

func readManifest(t *testing.T, dir string) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func dump(t *testing.T, tb *Table) string {
	t.Helper()
	res, err := tb.Run(Query{QueryType: "groupBy", Granularity: "none", Dimensions: tb.Dimensions})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(res)
}

// Segments: a save writes only the intervals that changed, the manifest
// names a file per interval, a load brings back every row and metric
// state, and files the manifest does not name are removed.
func TestSegmentsSaveLoad(t *testing.T) {
	dir := t.TempDir()
	tb := testTable(t)
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	fill(t, tb, rng, base, 3*time.Hour, 5000)
	if err := tb.save(dir, 42); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("segment files %v, want one per hour", files)
	}
	// Only the 10:00 interval changes; a crash's leftover goes.
	fill(t, tb, rng, base.Add(time.Hour), time.Hour, 10)
	os.WriteFile(filepath.Join(dir, "20261125T07-v0-99.seg"), []byte("half written"), 0o644)
	if err := tb.save(dir, 50); err != nil {
		t.Fatal(err)
	}
	after := segFiles(t, dir)
	if len(after) != 3 || after[0] != files[0] || after[2] != files[2] || after[1] == files[1] {
		t.Fatalf("after a change of one interval: %v (before %v)", after, files)
	}
	m := readManifest(t, dir)
	if m.Next != 50 || len(m.Intervals) != 3 || m.Intervals[1].Start != base.Add(time.Hour) || m.Intervals[1].Grain != "1m0s" {
		t.Fatalf("manifest: %+v", m)
	}

	back := testTable(t)
	next, err := back.load(dir, "")
	if err != nil || next != 50 {
		t.Fatalf("load: %d %v", next, err)
	}
	if got, want := dump(t, back), dump(t, tb); got != want {
		t.Fatalf("loaded table differs:\n%.300s\n%.300s", got, want)
	}
	// Another definition is refused, by name.
	other := NewTable(time.Minute, []string{"country"}, tb.Metrics)
	if _, err := other.load(dir, ""); err == nil || !strings.Contains(err.Error(), "another definition") {
		t.Fatalf("load of another definition: %v", err)
	}
	// A manifest naming a missing segment is an error, not an empty table.
	os.Remove(filepath.Join(dir, after[0]))
	if _, err := testTable(t).load(dir, ""); err == nil || !strings.Contains(err.Error(), after[0]) {
		t.Fatalf("load with a segment gone: %v", err)
	}
}

// A table kept in the first format (one snapshot file) is read when there
// is no manifest.
func TestSegmentsLegacySnapshot(t *testing.T) {
	dir := t.TempDir()
	tb := testTable(t)
	fill(t, tb, rand.New(rand.NewPCG(5, 6)), time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), 2*time.Hour, 2000)
	snap := legacySnapshot{Format: 1, Next: 77}
	for _, r := range tb.Rows(time.Time{}, time.Unix(0, 1<<62)) {
		sr := snapRow{Time: r.Time.UnixNano(), Dims: r.Dims}
		for _, s := range r.states {
			sr.States = append(sr.States, s.(codec).encode())
		}
		snap.Rows = append(snap.Rows, sr)
	}
	legacy := filepath.Join(dir, "r.snapshot")
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(snap); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(legacy, []byte(buf.String()), 0o644)
	back := testTable(t)
	next, err := back.load(filepath.Join(dir, "r"), legacy)
	if err != nil || next != 77 {
		t.Fatalf("legacy load: %d %v", next, err)
	}
	if got, want := dump(t, back), dump(t, tb); got != want {
		t.Fatal("the legacy snapshot's table differs")
	}
}

// Re-rolling history: intervals older than the cutoff go to coarser
// buckets; counts and sums are unchanged, distinct counts merged (equal to
// the query API's merge of the fine buckets), and the fine buckets are
// gone. Hours merge into days when the grain does not divide an hour. A
// late event lands in the coarse bucket. All of it survives a save.
func TestCoarsen(t *testing.T) {
	tb := testTable(t)
	rng := rand.New(rand.NewPCG(7, 8))
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	fill(t, tb, rng, base, 72*time.Hour, 30000)
	byHour := func() []Result {
		res, err := tb.Run(Query{QueryType: "groupBy", Granularity: "hour", Dimensions: []string{"country"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	byDay := func() []Result {
		res, err := tb.Run(Query{QueryType: "groupBy", Granularity: "day", Dimensions: []string{"country", "page"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	wantHour, wantDay := byHour(), byDay()
	// Everything before the third day to hours.
	cutoff := base.Add(48 * time.Hour)
	changed := tb.coarsen(cutoff, time.Hour)
	if len(changed) < 2000 {
		t.Fatalf("%d buckets changed", len(changed))
	}
	if err := sameResults(byHour(), wantHour); err != nil {
		t.Fatalf("by hour after re-rolling to hours: %v", err)
	}
	for _, iv := range tb.Intervals() {
		old := iv.End.Compare(cutoff) <= 0
		if old != (iv.Grain == "1h0m0s") || old != (iv.Version == 1) || (old && iv.Buckets != 1) {
			t.Fatalf("interval %+v", iv)
		}
	}
	if rows := tb.BucketRows([]time.Time{base.Add(time.Minute)}); len(rows) != 0 {
		t.Fatalf("a fine bucket is still there: %v", rows)
	}
	if rows := tb.BucketRows([]time.Time{base}); len(rows) == 0 {
		t.Fatal("no coarse rows at the hour")
	}
	// The first day to one bucket of a day: hour intervals merge into a day's.
	tb.coarsen(base.Add(24*time.Hour), 24*time.Hour)
	if err := sameResults(byDay(), wantDay); err != nil {
		t.Fatalf("by day after re-rolling to days: %v", err)
	}
	ivs := tb.Intervals()
	if ivs[0].Start != base || ivs[0].End != base.Add(24*time.Hour) || ivs[0].Grain != "24h0m0s" || ivs[0].Version != 2 || ivs[1].Start != base.Add(24*time.Hour) {
		t.Fatalf("intervals %+v", ivs[:2])
	}
	// A late event for the first day counts into its day bucket.
	b, err := tb.Add(base.Add(5*time.Hour+17*time.Minute), []string{"DE", "/late"}, values(tb, map[string]any{"user_id": "late"}))
	if err != nil || !b.Equal(base) {
		t.Fatalf("late event: bucket %v %v", b, err)
	}
	res, _ := tb.Run(Query{QueryType: "timeseries", From: base, To: base.Add(24 * time.Hour), Granularity: "day", Filter: &Filter{Type: "selector", Dimension: "page", Value: "/late"}})
	if len(res) != 1 || res[0].Event["views"] != int64(1) || !res[0].Time.Equal(base) {
		t.Fatalf("the late event: %+v", res)
	}
	// Saved and loaded, grains and versions kept.
	dir := t.TempDir()
	if err := tb.save(dir, 9); err != nil {
		t.Fatal(err)
	}
	back := testTable(t)
	if _, err := back.load(dir, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(back.Intervals()), fmt.Sprint(tb.Intervals()); got != want {
		t.Fatalf("intervals after load:\n%s\nwant\n%s", got, want)
	}
	if got, want := dump(t, back), dump(t, tb); got != want {
		t.Fatal("the loaded table differs")
	}
}

// Queries at least as coarse as an interval merge each interval once and
// keep the result until the interval changes: they answer as the row by
// row merge does, before and after a change.
func TestQueryMergedIntervals(t *testing.T) {
	tb := testTable(t)
	rng := rand.New(rand.NewPCG(9, 10))
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	fill(t, tb, rng, base, 24*time.Hour, 20000)
	slow := func(q Query) []Result {
		res, err := tb.run(q, false)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	queries := []Query{
		{QueryType: "timeseries", Granularity: "hour"},
		{QueryType: "timeseries", Granularity: "all", From: base.Add(3 * time.Hour), To: base.Add(20*time.Hour + 30*time.Minute)},
		{QueryType: "groupBy", Granularity: "6h", Dimensions: []string{"country"}, Filter: &Filter{Type: "not", Field: &Filter{Type: "selector", Dimension: "page", Value: "/p3"}}},
		{QueryType: "topN", Granularity: "day", Dimension: "page", Metric: "visitors", Threshold: 3},
	}
	check := func() {
		for _, q := range queries {
			got, err := tb.Run(q)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameResults(got, slow(q)); err != nil {
				t.Fatalf("%+v: %v", q, err)
			}
		}
	}
	check()
	check() // from the cache
	fill(t, tb, rng, base.Add(5*time.Hour), time.Hour, 50)
	check() // the changed interval merged again
	// "all" starts where the query does, or at the first row.
	res, _ := tb.Run(Query{QueryType: "timeseries", Granularity: "all"})
	if !res[0].Time.Equal(base) {
		t.Fatalf("all: timestamp %v, want %v", res[0].Time, base)
	}
}

// sameResults compares query results: sums to 1e-9 relative (merged in
// another order, floating-point sums differ in the last bits), distinct
// counts to 1 % (a sketch merged from other parts, or held dense rather
// than sparse, estimates within its error, not to the unit), the rest
// exactly.
func sameResults(got, want []Result) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d results, want %d", len(got), len(want))
	}
	same := func(a, b map[string]any) bool {
		if len(a) != len(b) {
			return false
		}
		for k, v := range a {
			switch x := v.(type) {
			case float64:
				y, ok := b[k].(float64)
				if !ok || math.Abs(x-y) > 1e-9*math.Max(math.Abs(x), 1) {
					return false
				}
			case int64:
				y, ok := b[k].(int64)
				if !ok || (k != "visitors" && x != y) || math.Abs(float64(x-y)) > 0.01*float64(max(x, 1)) {
					return false
				}
			default:
				if fmt.Sprint(v) != fmt.Sprint(b[k]) {
					return false
				}
			}
		}
		return true
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || !same(g.Event, w.Event) || len(g.Result) != len(w.Result) {
			return fmt.Errorf("result %d: %v, want %v", i, g, w)
		}
		for j := range g.Result {
			if !same(g.Result[j], w.Result[j]) {
				return fmt.Errorf("result %d: %v, want %v", i, g, w)
			}
		}
	}
	return nil
}

// Ingest, queries (cached and not), the SQL refresh and saves at once: go
// test -race finds what they share unguarded; the counts must add up.
func TestConcurrentUse(t *testing.T) {
	tb := testTable(t)
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	const writers, per = 2, 3000
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			fill(t, tb, rng, base, 6*time.Hour, per)
		})
	}
	var readers sync.WaitGroup
	for k := range 3 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				switch k {
				case 0:
					if _, err := tb.Run(Query{QueryType: "timeseries", Granularity: "hour"}); err != nil {
						t.Error(err)
					}
					tb.Run(Query{QueryType: "topN", Dimension: "page", Metric: "visitors", Threshold: 2})
				case 1:
					tb.BucketRows([]time.Time{base, base.Add(time.Minute)})
					tb.Run(Query{QueryType: "groupBy", Granularity: "none", Dimensions: []string{"country"}})
				case 2:
					if err := tb.save(dir, 1); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	res, err := tb.Run(Query{QueryType: "timeseries"})
	if err != nil || len(res) != 1 || res[0].Event["views"] != int64(writers*per) {
		t.Fatalf("after it all: %+v %v", res, err)
	}
}
