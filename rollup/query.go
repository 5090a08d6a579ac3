package rollup

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Query is one of Druid's three query shapes over a rollup:
//
//   - timeseries: the metrics per time bucket of the query's granularity;
//   - topN: per bucket, the Threshold values of Dimension with the highest
//     Metric;
//   - groupBy: the metrics per bucket and group of Dimensions.
//
// Rows coarser than the stored grain are merged, sketches included.
type Query struct {
	QueryType string `json:"queryType"` // timeseries, topN or groupBy
	// Intervals: [from, to) in RFC 3339; empty: everything.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Granularity: "all" (one bucket; the default), "none" (the stored
	// grain), or a duration such as 1m, 1h, 24h (a multiple of the grain).
	Granularity string   `json:"granularity,omitempty"`
	Filter      *Filter  `json:"filter,omitempty"`
	Metrics     []string `json:"metrics,omitempty"` // default: all
	// topN
	Dimension string `json:"dimension,omitempty"`
	Metric    string `json:"metric,omitempty"`
	Threshold int    `json:"threshold,omitempty"`
	// groupBy
	Dimensions []string `json:"dimensions,omitempty"`
	Limit      int      `json:"limit,omitempty"`
}

// Filter selects rows by their dimensions (Druid's filter shapes).
type Filter struct {
	Type      string    `json:"type"` // selector, in, and, or, not
	Dimension string    `json:"dimension,omitempty"`
	Value     string    `json:"value,omitempty"`
	Values    []string  `json:"values,omitempty"`
	Fields    []*Filter `json:"fields,omitempty"` // and, or
	Field     *Filter   `json:"field,omitempty"`  // not
}

// Result is a query's answer: one entry per bucket (and group).
type Result struct {
	Time   time.Time        `json:"timestamp"`
	Event  map[string]any   `json:"event,omitempty"`  // groupBy, timeseries
	Result []map[string]any `json:"result,omitempty"` // topN
}

func (t *Table) dimIndex(name string) (int, error) {
	i := slices.Index(t.Dimensions, name)
	if i < 0 {
		return 0, fmt.Errorf("no dimension %q (the dimensions are %s)", name, strings.Join(t.Dimensions, ", "))
	}
	return i, nil
}

func (t *Table) metricIndex(name string) (int, error) {
	i := slices.IndexFunc(t.Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		var names []string
		for _, m := range t.Metrics {
			names = append(names, m.Name)
		}
		return 0, fmt.Errorf("no metric %q (the metrics are %s)", name, strings.Join(names, ", "))
	}
	return i, nil
}

// compile turns a filter into a test of a row's dimensions.
func (t *Table) compile(f *Filter) (func(dims []string) bool, error) {
	if f == nil {
		return func([]string) bool { return true }, nil
	}
	switch f.Type {
	case "selector", "in":
		i, err := t.dimIndex(f.Dimension)
		if err != nil {
			return nil, err
		}
		vals := f.Values
		if f.Type == "selector" {
			vals = []string{f.Value}
		}
		return func(d []string) bool { return slices.Contains(vals, d[i]) }, nil
	case "and", "or":
		if len(f.Fields) == 0 {
			return nil, fmt.Errorf("filter %s needs fields", f.Type)
		}
		var subs []func([]string) bool
		for _, s := range f.Fields {
			c, err := t.compile(s)
			if err != nil {
				return nil, err
			}
			subs = append(subs, c)
		}
		and := f.Type == "and"
		return func(d []string) bool {
			for _, s := range subs {
				if s(d) != and {
					return !and
				}
			}
			return and
		}, nil
	case "not":
		c, err := t.compile(f.Field)
		if err != nil {
			return nil, err
		}
		return func(d []string) bool { return !c(d) }, nil
	}
	return nil, fmt.Errorf("filter type %q: use selector, in, and, or or not", f.Type)
}

// bucketer is the query's bucket of a row's time, and whether buckets of
// the query hold whole intervals of a length (so that an interval's rows
// can be merged over it first).
func (t *Table) bucketer(granularity string) (func(time.Time) time.Time, func(time.Duration) bool, error) {
	switch granularity {
	case "", "all":
		return func(time.Time) time.Time { return time.Time{} }, func(time.Duration) bool { return true }, nil
	case "none":
		return func(x time.Time) time.Time { return x }, nil, nil
	}
	d, err := time.ParseDuration(granularity)
	if err != nil {
		named := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
		var ok bool
		if d, ok = named[granularity]; !ok {
			return nil, nil, fmt.Errorf("granularity %q: use all, none, second, minute, hour, day or a duration such as 5m", granularity)
		}
	}
	if d < t.Granularity || d%t.Granularity != 0 {
		return nil, nil, fmt.Errorf("granularity %s is not a multiple of the rollup's %s", d, t.Granularity)
	}
	return func(x time.Time) time.Time { return x.Truncate(d) }, func(length time.Duration) bool { return d%length == 0 }, nil
}

// Run answers a query.
func (t *Table) Run(q Query) ([]Result, error) { return t.run(q, true) }

// run answers a query; merged lets it use intervals' merged rows.
func (t *Table) run(q Query, merged bool) ([]Result, error) {
	keep, err := t.compile(q.Filter)
	if err != nil {
		return nil, err
	}
	bucket, whole, err := t.bucketer(q.Granularity)
	if err != nil {
		return nil, err
	}
	if !merged {
		whole = nil
	}
	metrics := q.Metrics
	if len(metrics) == 0 {
		for _, m := range t.Metrics {
			metrics = append(metrics, m.Name)
		}
	}
	var mi []int
	for _, m := range metrics {
		i, err := t.metricIndex(m)
		if err != nil {
			return nil, err
		}
		mi = append(mi, i)
	}
	var group []int
	switch q.QueryType {
	case "timeseries":
	case "topN":
		i, err := t.dimIndex(q.Dimension)
		if err != nil {
			return nil, err
		}
		group = []int{i}
		if _, err := t.metricIndex(q.Metric); err != nil {
			return nil, err
		}
		if q.Threshold <= 0 {
			return nil, fmt.Errorf("topN needs a threshold above 0")
		}
	case "groupBy":
		for _, d := range q.Dimensions {
			i, err := t.dimIndex(d)
			if err != nil {
				return nil, err
			}
			group = append(group, i)
		}
	default:
		return nil, fmt.Errorf("queryType %q: use timeseries, topN or groupBy", q.QueryType)
	}
	to := q.To
	if to.IsZero() {
		to = time.Unix(0, math.MaxInt64)
	}
	// Merge the stored rows into the query's buckets and groups. A part is
	// a stored row (owned by the table) or an interval's partial result
	// (owned by its cache, values known); an aggregate copies its first
	// part only when a second one comes.
	type agg struct {
		time  time.Time
		dims  []string
		first *Row
		vals  []any // the first part's values, when known
		row   *Row  // owned: the parts merged, from the second on
	}
	aggs := map[string]*agg{}
	var order []string
	add := func(b time.Time, dims []string, r *Row, vals []any) error {
		key := strconv.FormatInt(b.UnixNano(), 10) + "\x00" + groupKey(dims)
		a := aggs[key]
		if a == nil {
			aggs[key] = &agg{time: b, dims: dims, first: r, vals: vals}
			order = append(order, key)
			return nil
		}
		if a.row == nil {
			a.row = a.first.clone()
		}
		return a.row.accumulate(r)
	}
	var first time.Time
	seen := func(at time.Time) {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	groupDims := func(r *Row) []string {
		dims := make([]string, len(group))
		for k, i := range group {
			dims[k] = r.Dims[i]
		}
		return dims
	}
	shape := queryShape(q.Filter, group)
	err = func() error {
		t.mu.RLock()
		defer t.mu.RUnlock()
		f, e := q.From.UnixNano(), to.UnixNano()
		// The whole intervals in one of the query's buckets give their
		// partial results, cached until the interval changes; those not
		// cached are made on all cores at once.
		partials := map[*interval]*partialRows{}
		var todo []*interval
		for _, iv := range t.intervals {
			if whole != nil && whole(iv.length) && iv.start >= f && iv.end() <= e {
				partials[iv] = nil
				todo = append(todo, iv)
			}
		}
		var pmu sync.Mutex
		var perr error
		work := make(chan *interval)
		var wg sync.WaitGroup
		for range min(runtime.GOMAXPROCS(0), len(todo)) {
			wg.Go(func() {
				for iv := range work {
					p, err := iv.partial(t, shape, keep, groupDims)
					pmu.Lock()
					partials[iv] = p
					if err != nil {
						perr = err
					}
					pmu.Unlock()
				}
			})
		}
		for _, iv := range todo {
			work <- iv
		}
		close(work)
		wg.Wait()
		if perr != nil {
			return perr
		}
		for _, iv := range t.intervals {
			if iv.end() <= f || iv.start >= e {
				continue
			}
			if p, ok := partials[iv]; ok {
				if len(p.rows) > 0 {
					seen(time.Unix(0, iv.start).UTC())
				}
				b := bucket(time.Unix(0, iv.start).UTC())
				for _, pr := range p.rows {
					if err := add(b, pr.dims, pr.row, pr.vals); err != nil {
						return err
					}
				}
				continue
			}
			for bn, rows := range iv.buckets {
				if bn < f || bn >= e {
					continue
				}
				for _, r := range rows {
					seen(r.Time)
					if !keep(r.Dims) {
						continue
					}
					if err := add(bucket(r.Time), groupDims(r), r, nil); err != nil {
						return err
					}
				}
			}
		}
		// Values of stored rows that stood alone, on copies: a sketch's
		// estimate compacts it, and stored rows are shared.
		for _, a := range aggs {
			if a.row == nil && a.vals == nil {
				a.row = a.first.clone()
			}
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	if q.Granularity == "" || q.Granularity == "all" {
		// One bucket: it starts where the query does, or at the first row.
		at := q.From.UTC()
		if at.IsZero() {
			at = first
		}
		for _, a := range aggs {
			a.time = at
		}
	}
	sorted := make([]*agg, 0, len(order))
	for _, k := range order {
		a := aggs[k]
		if a.row != nil {
			a.vals = t.Values(a.row)
		}
		sorted = append(sorted, a)
	}
	event := func(a *agg) map[string]any {
		e := map[string]any{}
		for k, i := range mi {
			e[metrics[k]] = a.vals[i]
		}
		for k, i := range group {
			e[t.Dimensions[i]] = a.dims[k]
		}
		return e
	}
	slices.SortStableFunc(sorted, func(a, b *agg) int {
		if c := a.time.Compare(b.time); c != 0 {
			return c
		}
		return cmp.Compare(groupKey(a.dims), groupKey(b.dims))
	})
	var out []Result
	switch q.QueryType {
	case "timeseries", "groupBy":
		for _, a := range sorted {
			out = append(out, Result{Time: a.time, Event: event(a)})
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
		}
	case "topN":
		mIdx, _ := t.metricIndex(q.Metric)
		for i := 0; i < len(sorted); {
			j := i
			for j < len(sorted) && sorted[j].time.Equal(sorted[i].time) {
				j++
			}
			part := sorted[i:j]
			slices.SortStableFunc(part, func(a, b *agg) int {
				return -compareValues(a.vals[mIdx], b.vals[mIdx])
			})
			res := Result{Time: part[0].time}
			for _, a := range part[:min(q.Threshold, len(part))] {
				res.Result = append(res.Result, event(a))
			}
			out = append(out, res)
			i = j
		}
	}
	return out, nil
}

// compareValues orders metric values; nulls first.
func compareValues(a, b any) int {
	fa, oka, _ := number(a)
	fb, okb, _ := number(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return -1
	case !okb:
		return 1
	}
	return cmp.Compare(fa, fb)
}

// queryShape names what an interval's partial result depends on besides
// the interval: the filter and the grouping.
func queryShape(f *Filter, group []int) string {
	b, _ := json.Marshal(struct {
		F *Filter
		G []int
	}{f, group})
	return string(b)
}
