package rollup

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Table is a rollup's rows: one per time bucket and group of dimension
// values, each with the state of every metric. It is safe for concurrent
// use: ingestion adds while queries read.
type Table struct {
	Granularity time.Duration
	Dimensions  []string
	Metrics     []Metric

	mu      sync.RWMutex
	buckets map[int64]map[string]*Row // bucket start (Unix ns) → group key → row
	// versions counts the rebuilds of intervals, by their start.
	versions map[int64]int
}

// Row is one bucket and group.
type Row struct {
	Time   time.Time
	Dims   []string // by Dimensions; "" for a missing value
	states []state
}

// NewTable returns an empty table.
func NewTable(granularity time.Duration, dims []string, metrics []Metric) *Table {
	return &Table{Granularity: granularity, Dimensions: dims, Metrics: metrics, buckets: map[int64]map[string]*Row{}}
}

// Bucket is the start of the bucket holding t.
func (t *Table) Bucket(at time.Time) time.Time { return at.UTC().Truncate(t.Granularity) }

func groupKey(dims []string) string { return strings.Join(dims, "\x00") }

// Add counts one event: its time, its dimension values, and the values of
// the metrics' fields (by Metrics; nil for count). A value a metric cannot
// take (text where a number is due) is an error, and nothing is added.
func (t *Table) Add(at time.Time, dims []string, values []any) error {
	b := t.Bucket(at)
	key := groupKey(dims)
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := t.buckets[b.UnixNano()]
	if rows == nil {
		rows = map[string]*Row{}
		t.buckets[b.UnixNano()] = rows
	}
	r := rows[key]
	fresh := r == nil
	if fresh {
		r = &Row{Time: b, Dims: slices.Clone(dims), states: make([]state, len(t.Metrics))}
		for i, m := range t.Metrics {
			r.states[i] = newState(m)
		}
	}
	// Check every value first, so that a bad one adds nothing.
	for i, m := range t.Metrics {
		if m.Func == "count" || m.Func == "distinct" || values[i] == nil {
			continue
		}
		if _, _, err := number(values[i]); err != nil {
			return fmt.Errorf("metric %s: %w", m.Name, err)
		}
	}
	for i, s := range r.states {
		if err := s.add(values[i]); err != nil {
			return fmt.Errorf("metric %s: %w", t.Metrics[i].Name, err)
		}
	}
	if fresh {
		rows[key] = r
	}
	return nil
}

// Rows returns copies of the rows whose bucket starts in [from, to), in
// time and group order.
func (t *Table) Rows(from, to time.Time) []*Row {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*Row
	for _, b := range slices.Sorted(maps.Keys(t.buckets)) {
		bt := time.Unix(0, b).UTC()
		if bt.Before(from) || !bt.Before(to) {
			continue
		}
		rows := t.buckets[b]
		for _, k := range slices.Sorted(maps.Keys(rows)) {
			out = append(out, rows[k].clone())
		}
	}
	return out
}

func (r *Row) clone() *Row {
	c := &Row{Time: r.Time, Dims: slices.Clone(r.Dims), states: make([]state, len(r.states))}
	for i, s := range r.states {
		c.states[i] = s.clone()
	}
	return c
}

// Values are the metrics' values of a row, by the table's Metrics.
func (t *Table) Values(r *Row) []any {
	out := make([]any, len(t.Metrics))
	for i, m := range t.Metrics {
		out[i] = r.states[i].value(m)
	}
	return out
}

// merge adds o's states into r's.
func (r *Row) merge(o *Row) error {
	for i, s := range r.states {
		if err := s.merge(o.states[i]); err != nil {
			return err
		}
	}
	return nil
}

// Column is a column of the rollup's SQL table.
type Column struct{ Name, Type string }

// Columns are the rollup's SQL columns: time, the dimensions, the metrics.
func (t *Table) Columns() []Column {
	cols := []Column{{"time", "TIMESTAMP"}}
	for _, d := range t.Dimensions {
		cols = append(cols, Column{d, "VARCHAR"})
	}
	for _, m := range t.Metrics {
		typ := "DOUBLE"
		if m.Func == "count" || m.Func == "distinct" {
			typ = "BIGINT"
		}
		cols = append(cols, Column{m.Name, typ})
	}
	// The sketches, for SQL that groups coarser than the stored grain:
	// sluice_distinct(list(visitors_sketch)), sluice_quantile(list(…), q).
	for _, m := range t.Metrics {
		if m.Sketch() {
			cols = append(cols, Column{m.Name + "_sketch", "BLOB"})
		}
	}
	return cols
}

// BucketRows are the SQL rows of the given buckets, by Columns.
func (t *Table) BucketRows(buckets []time.Time) [][]any {
	var out [][]any
	for _, b := range buckets {
		for _, r := range t.Rows(b, b.Add(t.Granularity)) {
			row := []any{r.Time}
			for _, d := range r.Dims {
				row = append(row, d)
			}
			row = append(row, t.Values(r)...)
			for i, m := range t.Metrics {
				if m.Sketch() {
					row = append(row, r.states[i].(codec).encode())
				}
			}
			out = append(out, row)
		}
	}
	return out
}

// reset empties the table.
func (t *Table) reset() {
	t.mu.Lock()
	t.buckets = map[int64]map[string]*Row{}
	t.mu.Unlock()
}

// bucketTimes are the starts of the buckets held, in order.
func (t *Table) bucketTimes() []time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []time.Time
	for _, b := range slices.Sorted(maps.Keys(t.buckets)) {
		out = append(out, time.Unix(0, b).UTC())
	}
	return out
}

// replaceRange swaps the buckets of [from, to) for those of fresh, at
// once, and returns how many buckets the interval holds now and its new
// version.
func (t *Table) replaceRange(from, to time.Time, fresh *Table) (int, int) {
	fresh.mu.RLock()
	defer fresh.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	for b := range t.buckets {
		if b >= from.UnixNano() && b < to.UnixNano() {
			delete(t.buckets, b)
		}
	}
	n := 0
	for b, rows := range fresh.buckets {
		if b >= from.UnixNano() && b < to.UnixNano() {
			t.buckets[b] = rows
			n++
		}
	}
	if t.versions == nil {
		t.versions = map[int64]int{}
	}
	t.versions[from.UnixNano()]++
	return n, t.versions[from.UnixNano()]
}

// each calls fn, under the read lock, with the rows whose bucket starts in
// [from, to), until it returns false. fn must not keep or change them.
func (t *Table) each(from, to time.Time, fn func(*Row) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for b, rows := range t.buckets {
		if b < from.UnixNano() || b >= to.UnixNano() {
			continue
		}
		for _, r := range rows {
			if !fn(r) {
				return
			}
		}
	}
}
