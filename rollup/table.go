package rollup

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Table is a rollup's rows: one per time bucket and group of dimension
// values, each with the state of every metric. It is safe for concurrent
// use: ingestion adds while queries read.
//
// The rows are kept by interval, as Druid keeps segments: an hour (a day
// when the grain does not divide an hour, or once history is re-rolled
// coarser than an hour). Each interval has a version, which a rebuild or a
// re-roll raises when it swaps in a whole new interval at once, and a
// grain: the rollup's granularity, or a coarser one for old history.
type Table struct {
	Granularity time.Duration
	Dimensions  []string
	Metrics     []Metric

	mu        sync.RWMutex
	intervals map[int64]*interval // by start (Unix ns)
	last      *interval           // the interval of the last Add
	saves     uint64              // segment files written (they are named by it); only save uses it
	key       []byte              // Add's group key, reused
}

// interval is one interval's rows.
type interval struct {
	start   int64 // Unix ns
	length  time.Duration
	grain   time.Duration
	version int
	buckets map[int64]map[string]*Row // bucket start (Unix ns) → group key → row
	// gen counts changes; saved is the gen its segment file holds.
	gen, saved uint64
	file       string
	// merged caches the rows merged over the whole interval, for queries
	// at least as coarse as the interval.
	merged atomic.Pointer[mergedRows]
	// partials caches queries' results over the whole interval, by the
	// query's shape (queryShape), until it changes.
	pmu      sync.Mutex
	partials map[string]*partialRows
}

// partialRows is a query's result over one whole interval: a row per
// group, with its values.
type partialRows struct {
	gen  uint64
	rows []partialRow
}

type partialRow struct {
	dims []string
	row  *Row
	vals []any
}

// maxPartials bounds the query shapes an interval caches results for.
const maxPartials = 32

// partial is the result of a query of the given shape over the whole
// interval (keep: its filter; dims: a row's group), from the cache when
// the interval has not changed since; the caller holds the read lock.
func (iv *interval) partial(t *Table, shape string, keep func([]string) bool, dims func(*Row) []string) (*partialRows, error) {
	iv.pmu.Lock()
	p := iv.partials[shape]
	iv.pmu.Unlock()
	if p != nil && p.gen == iv.gen {
		return p, nil
	}
	rows, err := iv.mergedRows()
	if err != nil {
		return nil, err
	}
	p = &partialRows{gen: iv.gen}
	byKey := map[string]int{}
	for _, r := range rows {
		if !keep(r.Dims) {
			continue
		}
		d := dims(r)
		k := groupKey(d)
		i, ok := byKey[k]
		if !ok {
			byKey[k] = len(p.rows)
			p.rows = append(p.rows, partialRow{dims: d, row: r.clone()})
			continue
		}
		if err := p.rows[i].row.accumulate(r); err != nil {
			return nil, err
		}
	}
	for i := range p.rows {
		p.rows[i].vals = t.Values(p.rows[i].row)
	}
	iv.pmu.Lock()
	if iv.partials == nil || len(iv.partials) >= maxPartials {
		iv.partials = map[string]*partialRows{}
	}
	iv.partials[shape] = p
	iv.pmu.Unlock()
	return p, nil
}

type mergedRows struct {
	gen  uint64
	rows []*Row
}

func (iv *interval) end() int64 { return iv.start + int64(iv.length) }

// Row is one bucket and group.
type Row struct {
	Time   time.Time
	Dims   []string // by Dimensions; "" for a missing value
	states []state
}

// NewTable returns an empty table.
func NewTable(granularity time.Duration, dims []string, metrics []Metric) *Table {
	return &Table{Granularity: granularity, Dimensions: dims, Metrics: metrics, intervals: map[int64]*interval{}}
}

// intervalLength is the interval that holds buckets of grain g: an hour
// when g divides an hour, else a day (every grain divides a day).
func intervalLength(g time.Duration) time.Duration {
	if time.Hour%g == 0 {
		return time.Hour
	}
	return 24 * time.Hour
}

func groupKey(dims []string) string { return strings.Join(dims, "\x00") }

// intervalAt is the interval holding at (created when create is set);
// callers hold the write lock when create is set, else at least the read
// lock.
func (t *Table) intervalAt(ns int64, create bool) *interval {
	if l := t.last; l != nil && ns >= l.start && ns < l.end() {
		return l
	}
	at := time.Unix(0, ns)
	for _, length := range []time.Duration{time.Hour, 24 * time.Hour} {
		if iv := t.intervals[at.Truncate(length).UnixNano()]; iv != nil && ns < iv.end() {
			if create {
				t.last = iv
			}
			return iv
		}
	}
	if !create {
		return nil
	}
	length := intervalLength(t.Granularity)
	iv := &interval{start: at.Truncate(length).UnixNano(), length: length, grain: t.Granularity, buckets: map[int64]map[string]*Row{}}
	t.intervals[iv.start] = iv
	t.last = iv
	return iv
}

// Add counts one event: its time, its dimension values, and the values of
// the metrics' fields (by Metrics; nil for count). It keeps none of them:
// they may be views of a message. A value a metric cannot
// take (text where a number is due) is an error, and nothing is added. It
// returns the start of the bucket that changed.
func (t *Table) Add(at time.Time, dims []string, values []any) (time.Time, error) {
	// Check every value first, so that a bad one adds nothing.
	for i, m := range t.Metrics {
		if m.Func == "count" || m.Func == "distinct" || values[i] == nil {
			continue
		}
		if _, _, err := number(values[i]); err != nil {
			return time.Time{}, fmt.Errorf("metric %s: %w", m.Name, err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	iv := t.intervalAt(at.UnixNano(), true)
	b := at.Truncate(iv.grain)
	bn := b.UnixNano()
	rows := iv.buckets[bn]
	if rows == nil {
		rows = map[string]*Row{}
		iv.buckets[bn] = rows
	}
	t.key = t.key[:0]
	for i, d := range dims {
		if i > 0 {
			t.key = append(t.key, 0)
		}
		t.key = append(t.key, d...)
	}
	r := rows[string(t.key)]
	if r == nil {
		// The dimensions may be views of the message they came from.
		r = &Row{Time: b.UTC(), Dims: make([]string, len(dims)), states: make([]state, len(t.Metrics))}
		for i, d := range dims {
			r.Dims[i] = strings.Clone(d)
		}
		for i, m := range t.Metrics {
			r.states[i] = newState(m)
		}
		rows[string(t.key)] = r
	}
	iv.gen++
	for i, s := range r.states {
		if err := s.add(values[i]); err != nil {
			return b, fmt.Errorf("metric %s: %w", t.Metrics[i].Name, err)
		}
	}
	return b.UTC(), nil
}

// sortedIntervals are the intervals overlapping [from, to), in time order;
// callers hold the lock.
func (t *Table) sortedIntervals(from, to int64) []*interval {
	var out []*interval
	for _, iv := range t.intervals {
		if iv.end() > from && iv.start < to {
			out = append(out, iv)
		}
	}
	slices.SortFunc(out, func(a, b *interval) int { return int(min(max(a.start-b.start, -1), 1)) })
	return out
}

// Rows returns copies of the rows whose bucket starts in [from, to), in
// time and group order.
func (t *Table) Rows(from, to time.Time) []*Row {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*Row
	for _, iv := range t.sortedIntervals(from.UnixNano(), to.UnixNano()) {
		for _, b := range slices.Sorted(maps.Keys(iv.buckets)) {
			if b < from.UnixNano() || b >= to.UnixNano() {
				continue
			}
			rows := iv.buckets[b]
			for _, k := range slices.Sorted(maps.Keys(rows)) {
				out = append(out, rows[k].clone())
			}
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

// accumulate merges o into r as a query does (see distinct.accumulate).
func (r *Row) accumulate(o *Row) error {
	for i, s := range r.states {
		var err error
		if d, ok := s.(*distinct); ok {
			err = d.accumulate(o.states[i].(*distinct))
		} else {
			err = s.merge(o.states[i])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Column is a column of the rollup's SQL table.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

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

// BucketRows are the SQL rows of the given buckets (those that start at
// one of them), by Columns.
func (t *Table) BucketRows(buckets []time.Time) [][]any {
	// The write lock: a sketch's estimate compacts it.
	t.mu.Lock()
	defer t.mu.Unlock()
	var out [][]any
	for _, b := range buckets {
		iv := t.intervalAt(b.UnixNano(), false)
		if iv == nil {
			continue
		}
		rows := iv.buckets[b.UnixNano()]
		for _, k := range slices.Sorted(maps.Keys(rows)) {
			r := rows[k]
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
	t.intervals, t.last = map[int64]*interval{}, nil
	t.mu.Unlock()
}

// bucketTimes are the starts of the buckets held, in order.
func (t *Table) bucketTimes() []time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []time.Time
	for _, iv := range t.sortedIntervals(0, 1<<63-1) {
		for _, b := range slices.Sorted(maps.Keys(iv.buckets)) {
			out = append(out, time.Unix(0, b).UTC())
		}
	}
	return out
}

// span widens [from, to) to whole intervals: those held, or the natural
// ones of the rollup's grain.
func (t *Table) span(from, to time.Time) (time.Time, time.Time) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	natural := intervalLength(t.Granularity)
	start := from.Truncate(natural).UnixNano()
	if iv := t.intervalAt(from.UnixNano(), false); iv != nil {
		start = iv.start
	}
	last := to.UnixNano() - 1
	end := time.Unix(0, last).Truncate(natural).Add(natural).UnixNano()
	if iv := t.intervalAt(last, false); iv != nil {
		end = iv.end()
	}
	return time.Unix(0, start).UTC(), time.Unix(0, end).UTC()
}

// replaceRange swaps the intervals of [from, to) (whole intervals) for
// those of fresh, at once, each as the next version, re-rolled to the
// grain the interval had; it returns the buckets that changed (old and
// new), how many the range holds now, and the newest version.
func (t *Table) replaceRange(from, to time.Time, fresh *Table) ([]time.Time, int, int) {
	fresh.mu.RLock()
	defer fresh.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, e := from.UnixNano(), to.UnixNano()
	changed := map[int64]bool{}
	version := 0
	var old []*interval
	for _, iv := range t.sortedIntervals(f, e) {
		old = append(old, iv)
		version = max(version, iv.version)
		for b := range iv.buckets {
			changed[b] = true
		}
		t.drop(iv)
	}
	version++
	// The new intervals: the old ones' shapes, else the natural ones.
	shapes := map[int64]*interval{}
	for _, iv := range old {
		shapes[iv.start] = &interval{start: iv.start, length: iv.length, grain: iv.grain, version: version, buckets: map[int64]map[string]*Row{}}
	}
	n := 0
	for _, src := range fresh.sortedIntervals(f, e) {
		for b, rows := range src.buckets {
			dst := t.intervalAt(b, false)
			if dst == nil {
				for _, s := range shapes {
					if b >= s.start && b < s.end() {
						dst = s
					}
				}
			}
			if dst == nil {
				length := intervalLength(t.Granularity)
				s := &interval{start: time.Unix(0, b).Truncate(length).UnixNano(), length: length, grain: t.Granularity, version: version, buckets: map[int64]map[string]*Row{}}
				shapes[s.start] = s
				dst = s
			}
			nb := time.Unix(0, b).Truncate(dst.grain)
			changed[nb.UnixNano()] = true
			if err := mergeInto(dst.buckets, nb, rows); err != nil {
				// Rows of one definition always merge.
				panic(err)
			}
		}
	}
	for _, s := range shapes {
		s.gen = 1
		t.intervals[s.start] = s
		n += len(s.buckets)
	}
	t.last = nil
	return sortedTimes(changed), n, version
}

// drop removes an interval (under the write lock); its segment file goes
// once the manifest no longer names it.
func (t *Table) drop(iv *interval) {
	delete(t.intervals, iv.start)
	if t.last == iv {
		t.last = nil
	}
}

// mergeInto adds rows (of one bucket) into the bucket b of buckets, as
// rows of their own (the originals are left alone).
func mergeInto(buckets map[int64]map[string]*Row, b time.Time, rows map[string]*Row) error {
	dst := buckets[b.UnixNano()]
	if dst == nil {
		dst = map[string]*Row{}
		buckets[b.UnixNano()] = dst
	}
	for k, r := range rows {
		if have := dst[k]; have != nil {
			if err := have.merge(r); err != nil {
				return err
			}
			continue
		}
		c := r.clone()
		c.Time = b.UTC()
		dst[k] = c
	}
	return nil
}

func sortedTimes(set map[int64]bool) []time.Time {
	var out []time.Time
	for _, b := range slices.Sorted(maps.Keys(set)) {
		out = append(out, time.Unix(0, b).UTC())
	}
	return out
}

// expire drops the intervals that end by cutoff; it returns their buckets.
func (t *Table) expire(cutoff time.Time) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := map[int64]bool{}
	for _, iv := range t.sortedIntervals(0, 1<<63-1) {
		if iv.end() <= cutoff.UnixNano() {
			for b := range iv.buckets {
				gone[b] = true
			}
			t.drop(iv)
		}
	}
	return sortedTimes(gone)
}

// coarsen re-rolls the intervals that end by cutoff, at a grain finer
// than g, to g: their buckets merged into buckets of g (and hour intervals
// into a day's when g does not divide an hour), as a new version. A day
// whose hours are not all past cutoff waits. It returns the buckets that
// changed (the fine ones, gone, and the coarse ones).
func (t *Table) coarsen(cutoff time.Time, g time.Duration) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	length := intervalLength(g)
	changed := map[int64]bool{}
	// The target intervals and what goes into each.
	groups := map[int64][]*interval{}
	for _, iv := range t.sortedIntervals(0, 1<<63-1) {
		if iv.grain >= g || iv.end() > cutoff.UnixNano() {
			continue
		}
		start := time.Unix(0, iv.start).Truncate(length).UnixNano()
		if start+int64(length) > cutoff.UnixNano() {
			continue
		}
		groups[start] = append(groups[start], iv)
	}
	for start, ivs := range groups {
		nv := &interval{start: start, length: max(length, ivs[0].length), grain: g, buckets: map[int64]map[string]*Row{}, gen: 1}
		for _, iv := range ivs {
			nv.version = max(nv.version, iv.version)
			for b, rows := range iv.buckets {
				changed[b] = true
				nb := time.Unix(0, b).Truncate(g)
				changed[nb.UnixNano()] = true
				if err := mergeInto(nv.buckets, nb, rows); err != nil {
					panic(err)
				}
			}
			t.drop(iv)
		}
		nv.version++
		t.intervals[start] = nv
	}
	return sortedTimes(changed)
}

// mergedRows are the interval's rows merged by group over all its buckets
// (at the interval's start); the caller holds the read lock.
func (iv *interval) mergedRows() ([]*Row, error) {
	if m := iv.merged.Load(); m != nil && m.gen == iv.gen {
		return m.rows, nil
	}
	byKey := map[string]*Row{}
	start := time.Unix(0, iv.start).UTC()
	for _, rows := range iv.buckets {
		for k, r := range rows {
			if have := byKey[k]; have != nil {
				if err := have.merge(r); err != nil {
					return nil, err
				}
				continue
			}
			c := r.clone()
			c.Time = start
			byKey[k] = c
		}
	}
	m := &mergedRows{gen: iv.gen, rows: slices.Collect(maps.Values(byKey))}
	iv.merged.Store(m)
	return m.rows, nil
}

// prepare merges the rows of each closed interval (ended by now) whose
// merged rows are not cached, so that a query never waits for it (the
// runner calls it after each save, and so after a restart or a rebuild).
func (t *Table) prepare(now time.Time) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, iv := range t.intervals {
		if iv.end() > now.UnixNano() {
			continue
		}
		if m := iv.merged.Load(); m == nil || m.gen != iv.gen {
			iv.mergedRows()
		}
	}
}

// IntervalInfo describes one interval of a table.
type IntervalInfo struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Grain   string    `json:"grain"`
	Version int       `json:"version"`
	Buckets int       `json:"buckets"`
	Rows    int       `json:"rows"`
}

// Intervals describe the table's intervals, in time order.
func (t *Table) Intervals() []IntervalInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []IntervalInfo
	for _, iv := range t.sortedIntervals(0, 1<<63-1) {
		info := IntervalInfo{Start: time.Unix(0, iv.start).UTC(), End: time.Unix(0, iv.end()).UTC(), Grain: iv.grain.String(), Version: iv.version, Buckets: len(iv.buckets)}
		for _, rows := range iv.buckets {
			info.Rows += len(rows)
		}
		out = append(out, info)
	}
	return out
}

// Description is what GET /api/v1/rollups/{name} says of a rollup.
type Description struct {
	Name        string         `json:"name"`
	Granularity string         `json:"granularity"`
	Dimensions  []string       `json:"dimensions"`
	Metrics     []MetricInfo   `json:"metrics"`
	Columns     []Column       `json:"columns"`
	Intervals   []IntervalInfo `json:"intervals"`
}

// MetricInfo describes a metric.
type MetricInfo struct {
	Name      string  `json:"name"`
	Aggregate string  `json:"aggregate"`
	Field     string  `json:"field,omitempty"`
	Quantile  float64 `json:"quantile,omitempty"`
}

// Describe says what the table is and holds.
func (t *Table) Describe(name string) Description {
	d := Description{Name: name, Granularity: t.Granularity.String(), Dimensions: t.Dimensions, Columns: t.Columns(), Intervals: t.Intervals()}
	for _, m := range t.Metrics {
		d.Metrics = append(d.Metrics, MetricInfo{Name: m.Name, Aggregate: m.Func, Field: m.Field, Quantile: m.Q})
	}
	if d.Intervals == nil {
		d.Intervals = []IntervalInfo{}
	}
	return d
}
