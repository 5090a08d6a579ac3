package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
)

// duckMerge is the warehouse's merge (warehouse.MergeParquet, which this
// package cannot import) done the same way.
func duckMerge(t *testing.T) MergeFunc {
	return func(ctx context.Context, inputs []string, output, orderBy string) (int64, error) {
		db := openDuckDB(t)
		quoted := make([]string, len(inputs))
		for i, p := range inputs {
			quoted[i] = sqlString(p)
		}
		res, err := db.ExecContext(ctx, fmt.Sprintf("COPY (SELECT * FROM read_parquet([%s], hive_partitioning = false, union_by_name = true) ORDER BY %s) TO %s (FORMAT parquet)",
			strings.Join(quoted, ", "), orderBy, sqlString(output)))
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
}

// liveDB is DuckDB over the live files of table, as the warehouse reads them.
func liveDB(t *testing.T, d *Dir, table string) *sql.DB {
	t.Helper()
	files, err := LiveFiles(context.Background(), d, table)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = sqlString(d.path(f.Key))
	}
	db := openDuckDB(t)
	if _, err := db.Exec(`CREATE VIEW ` + table + ` AS SELECT * FROM read_parquet([` + strings.Join(paths, ", ") + `], hive_partitioning = true, union_by_name = true, filename = true)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// countSum is the row count and the sum of qty that every reader must see.
func countSum(t *testing.T, d *Dir) string {
	t.Helper()
	var n int
	var s sql.NullInt64
	if err := liveDB(t, d, "events").QueryRow(`SELECT count(*), sum(qty) FROM events`).Scan(&n, &s); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(n, " ", s.Int64)
}

func filesIn(t *testing.T, d *Dir, prefix string) []string {
	t.Helper()
	var out []string
	for _, k := range keys(t, d, prefix) {
		if strings.HasSuffix(k, ".parquet") {
			out = append(out, k)
		}
	}
	return out
}

const hr10 = "dt=2026-11-25/hr=10"

// smallFiles archives 20 messages one flush each: 20 files in hr=10 and 20
// in hr=11.
func smallFiles(t *testing.T) (*bus.Bus, *Dir, []string) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, ownColumns...)
	ar := startArchiver(t, b, d, EventsTable, time.Hour, 2)
	ids := publishPairs(t, b, 1, 20)
	ar.waitCommitted(t, 20)
	ar.stop(t)
	if n := len(filesIn(t, d, "events/"+hr10+"/")); n != 20 {
		t.Fatalf("%d files in hr=10, want 20", n)
	}
	return b, d, ids
}

func TestCompactPartition(t *testing.T) {
	ctx := context.Background()
	b, d, ids := smallFiles(t)
	before := countSum(t, d)
	swaps := 0
	c := NewCompactor(CompactorOptions{Store: d, Tables: []Table{EventsTable}, Merge: duckMerge(t), Grace: time.Hour, Logger: quiet,
		OnSwap: func(string) { swaps++ }})

	r, err := c.CompactPartition(ctx, EventsTable, hr10)
	if err != nil {
		t.Fatal(err)
	}
	if r.Partitions != 1 || r.Inputs != 20 || r.Outputs != 1 || r.Rows != 20 || swaps != 1 {
		t.Fatalf("report %+v, swaps %d", r, swaps)
	}
	// Swapped: the output is live, the inputs are not, but they stay for
	// the grace period (a query that began before may still read them).
	live, err := LiveFiles(ctx, d, "events")
	if err != nil {
		t.Fatal(err)
	}
	var inHr10 []DataFile
	for _, f := range live {
		if strings.Contains(f.Key, hr10) {
			inHr10 = append(inHr10, f)
		}
	}
	if len(live) != 21 || len(inHr10) != 1 || !inHr10[0].Compacted || inHr10[0].Key != "events/"+hr10+"/events-1-20.compacted.parquet" {
		t.Fatalf("live files after the swap: %d, in hr=10 %+v", len(live), inHr10)
	}
	if n := len(filesIn(t, d, "events/"+hr10+"/")); n != 21 {
		t.Fatalf("%d files in hr=10 during the grace period, want the 20 inputs and the output", n)
	}
	if got := countSum(t, d); got != before {
		t.Fatalf("count and sum %s after the swap, %s before", got, before)
	}
	if _, problems, err := Verify(ctx, d); err != nil || len(problems) != 0 {
		t.Fatalf("verify during the grace period: %v %v", problems, err)
	}
	// The output is sorted by event time.
	rows, err := liveDB(t, d, "events").Query(`SELECT event_time FROM read_parquet(` + sqlString(d.path(inHr10[0].Key)) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	var prev time.Time
	for rows.Next() {
		var ts time.Time
		if err := rows.Scan(&ts); err != nil {
			t.Fatal(err)
		}
		if ts.Before(prev) {
			t.Fatalf("output not sorted: %v after %v", ts, prev)
		}
		prev = ts
	}
	rows.Close()

	// Nothing more to do in that partition until the grace period ends.
	if r, err := c.CompactPartition(ctx, EventsTable, hr10); err != nil || r.Inputs != 0 {
		t.Fatalf("second compaction during the grace period: %+v %v", r, err)
	}
	if n, err := c.Recover(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("recover within the grace period settled %d (%v)", n, err)
	}
	if n, err := c.Recover(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("recover after the grace period settled %d (%v)", n, err)
	}
	if got := filesIn(t, d, "events/"+hr10+"/"); len(got) != 1 {
		t.Fatalf("hr=10 after the grace period: %v", got)
	}
	if k := keys(t, d, "_sluice/compactions/"); len(k) != 0 {
		t.Fatalf("records left: %v", k)
	}
	if got := countSum(t, d); got != before {
		t.Fatalf("count and sum %s after the inputs went, %s before", got, before)
	}
	checkOnce(t, liveDB(t, d, "events"), "events", ids)

	// The archiver restarts over a compacted lake without replaying or
	// removing anything, and goes on; a late event lands beside the
	// compacted file and a second compaction merges both.
	ar := startArchiver(t, b, d, EventsTable, time.Hour, 2)
	ids = append(ids, publishPairs(t, b, 21, 22)...)
	ar.waitCommitted(t, 22)
	ar.stop(t)
	checkOnce(t, liveDB(t, d, "events"), "events", ids)
	if _, problems, err := Verify(ctx, d); err != nil || len(problems) != 0 {
		t.Fatalf("verify after more flushes: %v %v", problems, err)
	}
	c.o.Grace = -1 // nobody reads: delete inputs at once
	after := countSum(t, d)
	rep, err := c.Compact(ctx, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Partitions != 2 || rep.Inputs != 3+22 { // hr=10: the compacted file and 2 new; hr=11: 20 and 2 new
		t.Fatalf("compacting both partitions: %+v", rep)
	}
	for _, p := range []string{"events/" + hr10 + "/", "events/dt=2026-11-25/hr=11/"} {
		if got := filesIn(t, d, p); len(got) != 1 {
			t.Errorf("%s: %v", p, got)
		}
	}
	if got := countSum(t, d); got != after {
		t.Fatalf("count and sum %s, %s before", got, after)
	}
	checkOnce(t, liveDB(t, d, "events"), "events", ids)
}

// Open partitions are left alone; a partition counts as closed After its hour.
func TestCompactSkipsOpenPartitions(t *testing.T) {
	_, d, _ := smallFiles(t)
	c := NewCompactor(CompactorOptions{Store: d, Tables: []Table{EventsTable}, Merge: duckMerge(t), Grace: -1, After: time.Hour, Logger: quiet})
	// 11:30 + 1h: hr=10 ended 1h30 ago, hr=11 only 30 min ago.
	r, err := c.Compact(context.Background(), time.Date(2026, 11, 25, 12, 30, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if r.Partitions != 1 || r.Inputs != 20 {
		t.Fatalf("report %+v", r)
	}
	if n := len(filesIn(t, d, "events/dt=2026-11-25/hr=11/")); n != 20 {
		t.Fatalf("open partition hr=11 has %d files, want its 20 untouched", n)
	}
}

// A merge that fails, or writes the wrong number of rows, swaps nothing and
// leaves nothing behind.
func TestCompactFailedMergeChangesNothing(t *testing.T) {
	ctx := context.Background()
	_, d, _ := smallFiles(t)
	before := strings.Join(keys(t, d, ""), "\n")
	sum := countSum(t, d)
	for name, merge := range map[string]MergeFunc{
		"error": func(ctx context.Context, in []string, out, by string) (int64, error) {
			os.WriteFile(out, []byte("half"), 0o644)
			return 0, errors.New("disk full")
		},
		"a row short": func(ctx context.Context, in []string, out, by string) (int64, error) {
			return duckMerge(t)(ctx, in[1:], out, by)
		},
	} {
		c := NewCompactor(CompactorOptions{Store: d, Tables: []Table{EventsTable}, Merge: merge, Grace: -1, Logger: quiet})
		if _, err := c.CompactPartition(ctx, EventsTable, hr10); err == nil {
			t.Errorf("%s: no error", name)
		}
		if after := strings.Join(keys(t, d, ""), "\n"); after != before {
			t.Errorf("%s: the lake changed:\n%s\nwas\n%s", name, after, before)
		}
		if got := countSum(t, d); got != sum {
			t.Errorf("%s: count and sum %s, want %s", name, got, sum)
		}
	}
}

// A crash between writing the output and the swap: the output is not live,
// and Recover removes it with its record. A crash after the swap: the inputs
// are not live, and Recover deletes them once the grace period has passed.
func TestCompactionCrashes(t *testing.T) {
	ctx := context.Background()
	_, d, _ := smallFiles(t)
	sum := countSum(t, d)
	c := NewCompactor(CompactorOptions{Store: d, Tables: []Table{EventsTable}, Merge: duckMerge(t), Grace: time.Minute, Logger: quiet})
	if _, err := c.CompactPartition(ctx, EventsTable, hr10); err != nil {
		t.Fatal(err)
	}
	recKey := keys(t, d, "_sluice/compactions/events/")[0]
	data, err := d.Get(ctx, recKey)
	if err != nil {
		t.Fatal(err)
	}
	// Back to the moment before the swap.
	started := strings.Replace(string(data), `"state": "swapped"`, `"state": "started"`, 1)
	if err := d.Put(ctx, recKey, []byte(started)); err != nil {
		t.Fatal(err)
	}
	if got := countSum(t, d); got != sum {
		t.Fatalf("before the swap readers see %s, want %s", got, sum)
	}
	if n, err := c.Recover(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("recover: %d %v", n, err)
	}
	if got := filesIn(t, d, "events/"+hr10+"/"); len(got) != 20 || strings.Contains(strings.Join(got, " "), "compacted") {
		t.Fatalf("after undoing: %v", got)
	}
	if got := countSum(t, d); got != sum {
		t.Fatalf("after undoing readers see %s, want %s", got, sum)
	}
	if _, problems, err := Verify(ctx, d); err != nil || len(problems) != 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}

	// Swapped, then "crashed" before the grace period ended.
	if _, err := c.CompactPartition(ctx, EventsTable, hr10); err != nil {
		t.Fatal(err)
	}
	c2 := NewCompactor(CompactorOptions{Store: d, Tables: []Table{EventsTable}, Merge: duckMerge(t), Grace: time.Minute, Logger: quiet})
	if n, _ := c2.Recover(ctx, time.Now()); n != 0 {
		t.Fatal("settled a compaction within its grace period")
	}
	if got := countSum(t, d); got != sum {
		t.Fatalf("readers see %s, want %s", got, sum)
	}
	if n, _ := c2.Recover(ctx, time.Now().Add(time.Minute)); n != 1 {
		t.Fatal("did not settle a compaction after its grace period")
	}
	if got := filesIn(t, d, "events/"+hr10+"/"); len(got) != 1 {
		t.Fatalf("after settling: %v", got)
	}
}
