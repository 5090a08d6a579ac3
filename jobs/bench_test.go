package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/warehouse"
)

// memWarehouse is a warehouse whose partitions are done once a job
// "writes" them: the SQL body costs nothing, so what a run costs is the
// scheduler's own work (completeness checks, leases, run records).
type memWarehouse struct {
	mu     sync.Mutex
	done   map[string]time.Time
	runs   int
	checks int // PartitionDone calls
	// block, when set, holds every write until it is closed.
	block chan struct{}
}

func (w *memWarehouse) ReplacePartition(ctx context.Context, out warehouse.JobOutput, query string) (int64, error) {
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done[out.Table+"/"+out.Partition] = time.Now()
	w.runs++
	return 1, nil
}

func (w *memWarehouse) PartitionDone(ctx context.Context, table, partitionBy, partition string) (time.Time, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checks++
	at, ok := w.done[table+"/"+partition]
	return at, ok, nil
}

// dagJobs is a DAG of four jobs per day: extract → clean → daily (which
// also needs the day before's clean) → report. Days days of reports make
// 4·days+2 tasks.
func dagJobs(t testing.TB) map[string]config.Job {
	t.Helper()
	c, err := config.Parse("sluice.yaml", []byte(`
jobs:
  extract:
    params: {date: date}
    sql: SELECT DATE '{{.date}}' AS dt
    output: extract
  clean:
    params: {date: date}
    requires: [{job: extract}]
    sql: SELECT DATE '{{.date}}' AS dt
    output: clean
  daily:
    params: {date: date}
    requires: [{job: clean}, {job: clean, params: {date: '{{add_days .date -1}}'}}]
    sql: SELECT DATE '{{.date}}' AS dt
    output: daily
  report:
    params: {date: date}
    requires: [{job: daily}]
    sql: SELECT DATE '{{.date}}' AS dt
    output: report
`))
	if err != nil {
		t.Fatal(err)
	}
	return c.Jobs
}

// BenchmarkScheduling builds a DAG of 10,002 tasks whose bodies do nothing,
// on a fresh embedded bus (fsync before every acknowledgement), with the
// scheduler's default parallelism: the scheduling overhead of issue 6's
// acceptance (under 10 s); then builds it again, when nothing runs.
// SLUICE_BENCH_DAYS changes the size.
//
//	go test ./jobs -run - -bench Scheduling -benchtime 1x
func BenchmarkScheduling(b *testing.B) {
	days := 2500
	if s := os.Getenv("SLUICE_BENCH_DAYS"); s != "" {
		days, _ = strconv.Atoi(s)
	}
	for b.Loop() {
		b.StopTimer()
		ctx := context.Background()
		bs, err := bus.Open(ctx, bus.Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		wh := &memWarehouse{done: map[string]time.Time{}}
		s := New(Options{Jobs: dagJobs(b), Bus: bs, Warehouse: wh, Logger: slog.New(slog.DiscardHandler)})
		first := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		var tasks []Task
		for d := range days {
			tasks = append(tasks, Task{Job: "report", Params: map[string]string{"date": first.AddDate(0, 0, d).Format(time.DateOnly)}})
		}
		b.StartTimer()
		start := time.Now()
		results := s.Build(ctx, tasks, "backfill", 0, nil)
		took := time.Since(start)
		b.StopTimer()
		for k, err := range results {
			if err != nil {
				b.Fatalf("%s: %v", k, err)
			}
		}
		if want := 4*days + 2; wh.runs != want {
			b.Fatalf("%d tasks ran, want %d", wh.runs, want)
		}
		b.ReportMetric(float64(wh.runs), "tasks")
		b.ReportMetric(took.Seconds(), "s/build")
		b.ReportMetric(float64(took.Microseconds())/float64(wh.runs), "µs/task")
		// Again: everything is complete, nothing runs.
		start = time.Now()
		s.Build(ctx, tasks, "backfill", 0, nil)
		b.ReportMetric(time.Since(start).Seconds(), "s/rebuild")
		s.Close()
		bs.Close()
		b.StartTimer()
	}
}

// The DAG builds once, its shared requirements once, and a second build
// runs nothing.
func TestBuildDAG(t *testing.T) {
	ctx := context.Background()
	bs, err := bus.Open(ctx, bus.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	wh := &memWarehouse{done: map[string]time.Time{}}
	s := New(Options{Jobs: dagJobs(t), Bus: bs, Warehouse: wh, Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()
	var tasks []Task
	for d := range 30 {
		tasks = append(tasks, Task{Job: "report", Params: map[string]string{"date": fmt.Sprintf("2026-11-%02d", d+1)}})
	}
	for i, want := range []int{4*30 + 2, 0} {
		before := wh.runs
		for k, err := range s.Build(ctx, tasks, "backfill", 0, nil) {
			if err != nil {
				t.Fatalf("build %d: %s: %v", i+1, k, err)
			}
		}
		if got := wh.runs - before; got != want {
			t.Fatalf("build %d ran %d tasks, want %d", i+1, got, want)
		}
	}
	runs, err := s.Runs(ctx, "", 0)
	if err != nil || len(runs) != 4*30+2 {
		t.Fatalf("%d runs recorded (%v), want %d", len(runs), err, 4*30+2)
	}
	for _, r := range runs {
		if r.State != StateSucceeded || len(r.Attempts) != 1 {
			t.Fatalf("run %s of %s: %s, %d attempts", r.ID, r.Task(), r.State, len(r.Attempts))
		}
	}
}

// A year of a weekly job, each day's requiring the seven days before,
// builds once; a second build runs nothing and checks each task's output
// about once, not each day's for each of its seven weeks.
func TestBuildWeekly(t *testing.T) {
	ctx := context.Background()
	bs, err := bus.Open(ctx, bus.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	week := ""
	for d := range 7 {
		week += fmt.Sprintf("{job: daily, params: {date: '{{add_days .date -%d}}'}}, ", d)
	}
	c, err := config.Parse("sluice.yaml", []byte(`
jobs:
  extract:
    params: {date: date}
    sql: SELECT DATE '{{.date}}' AS dt
    output: extract
  daily:
    params: {date: date}
    requires: [{job: extract}]
    sql: SELECT DATE '{{.date}}' AS dt
    output: daily
  weekly:
    params: {date: date}
    requires: [`+week+`]
    sql: SELECT DATE '{{.date}}' AS dt
    output: weekly
`))
	if err != nil {
		t.Fatal(err)
	}
	wh := &memWarehouse{done: map[string]time.Time{}}
	s := New(Options{Jobs: c.Jobs, Bus: bs, Warehouse: wh, Logger: slog.New(slog.DiscardHandler)})
	defer s.Close()
	var tasks []Task
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := range 365 {
		tasks = append(tasks, Task{Job: "weekly", Params: map[string]string{"date": first.AddDate(0, 0, d).Format(time.DateOnly)}})
	}
	all := 365 + 2*(365+6)
	for i, want := range []int{all, 0} {
		before, checks := wh.runs, wh.checks
		for k, err := range s.Build(ctx, tasks, "backfill", 0, nil) {
			if err != nil {
				t.Fatalf("build %d: %s: %v", i+1, k, err)
			}
		}
		if got := wh.runs - before; got != want {
			t.Fatalf("build %d ran %d tasks, want %d", i+1, got, want)
		}
		t.Logf("build %d: %d tasks ran, %d checks of an output", i+1, want, wh.checks-checks)
		if i == 1 && wh.checks-checks > 2*all {
			t.Errorf("build %d checked outputs %d times for %d tasks", i+1, wh.checks-checks, all)
		}
	}
}
