package rollup

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
)

// benchRollup has 10 dimensions and 5 metrics (issue 7's benchmark shape).
func benchRollup(b *testing.B) *Runner {
	c := config.Rollup{From: "events", Granularity: config.Duration(time.Minute), Time: "event_time",
		Dimensions: []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"},
		Metrics:    map[string]string{"n": "count()", "rev": "sum(price)", "top": "max(price)", "users": "distinct(user_id)", "p99": "quantile(latency, 0.99)"},
		Retention:  config.Duration(48 * time.Hour)}
	r, err := New(Options{Name: "bench", Config: c, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkIngest: events/s into a rollup of 10 dimensions and 5 metrics,
// from the stream's NDJSON messages (decode, dimensions, metrics), on one
// core. go test ./rollup -run - -bench Ingest
func BenchmarkIngest(b *testing.B) {
	r := benchRollup(b)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var msgs []bus.Msg
	const perMsg = 500
	for m := range 40 {
		var s strings.Builder
		for i := range perMsg {
			n := m*perMsg + i
			fmt.Fprintf(&s, `{"event_id":"e%d","event_time":%q,"user_id":"u%d","price":%d.5,"latency":%d`, n,
				base.Add(time.Duration(n)*5*time.Millisecond).Format(time.RFC3339Nano), rng.IntN(100000), rng.IntN(200), 20+rng.IntN(500))
			for d := range 10 {
				fmt.Fprintf(&s, `,"d%d":"v%d"`, d, rng.IntN(2+d))
			}
			s.WriteString("}\n")
		}
		msgs = append(msgs, bus.Msg{Seq: uint64(m + 1), Data: []byte(s.String())})
	}
	changed := map[int64]bool{}
	b.ResetTimer()
	events := 0
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		r.count(r.Table, msgs[i%len(msgs)], changed, time.Time{}, time.Time{})
		events += perMsg
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	// Per CPU second of the process (the garbage collector's included):
	// events/s per core, also on a machine busy with other work.
	b.ReportMetric(float64(events)/(cpuTime()-cpu).Seconds(), "events/cpu-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkQuery: a day of minute buckets (1,440 × about 40 groups);
// p99 latency of timeseries (by hour), topN and groupBy: warm (the closed
// hours' results cached, as when a dashboard asks again), new-shape (a
// query not asked before) and cold (nothing cached).
// go test ./rollup -run - -bench Query
func BenchmarkQuery(b *testing.B) {
	names := []string{"n", "users"}
	m, _ := ParseMetrics(names, map[string]string{"n": "count()", "users": "distinct(user_id)"})
	tb := NewTable(time.Minute, []string{"country", "page"}, m)
	rng := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for i := range 500_000 {
		at := day.Add(time.Duration(rng.IntN(86400)) * time.Second)
		tb.Add(at, []string{fmt.Sprintf("c%d", rng.IntN(8)), fmt.Sprintf("/p%d", rng.IntN(5))}, []any{nil, fmt.Sprintf("u%d", i%20000)})
	}
	// new-shape drops the queries' results cached per interval, as for a
	// query never asked before: the closed intervals' merged rows are
	// there (a rollup prepares them after each save). cold drops those
	// too: right after a restart, before the first save.
	tb.prepare(day.Add(48 * time.Hour))
	drop := func(caches string) {
		for _, iv := range tb.intervals {
			if caches == "cold" {
				iv.merged.Store(nil)
			}
			iv.partials = nil
		}
	}
	for _, q := range []Query{
		{QueryType: "timeseries", Granularity: "hour"},
		{QueryType: "topN", Dimension: "page", Metric: "n", Threshold: 3, Granularity: "all"},
		{QueryType: "groupBy", Dimensions: []string{"country"}, Granularity: "hour"},
	} {
		for _, caches := range []string{"warm", "new-shape", "cold"} {
			b.Run(q.QueryType+"/"+caches, func(b *testing.B) {
				var lat []time.Duration
				var cpu time.Duration
				for b.Loop() {
					if caches != "warm" {
						drop(caches)
					}
					c := cpuTime()
					start := time.Now()
					if _, err := tb.Run(q); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(start))
					cpu += cpuTime() - c
				}
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
