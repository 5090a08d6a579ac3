// Package rollup keeps real-time rollups (rollups.<name> in the config):
// events of a stream, filtered, counted into time buckets of a granularity
// and groups of dimensions, with metrics that merge across buckets and
// groups: count, sum, min, max, approximate distinct (HyperLogLog) and
// quantiles (DDSketch). This is what Druid does at ingestion, and what its
// queries do on the way out: a query that groups coarser than the stored
// grain merges the rows, sketches included, so a distinct count over a day
// is the union of its minutes, not their sum.
//
//   - metrics.go: the metrics and their state.
//   - table.go: buckets of rows, kept in memory.
//   - query.go: Druid's three query shapes: timeseries, topN, groupBy.
package rollup

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/axiomhq/hyperloglog"

	"github.com/sluice-data/sluice/config"
)

// quantileAccuracy is the relative accuracy of the quantile sketches.
const quantileAccuracy = 0.005

// Metric is one metric of a rollup: an aggregate of a field.
type Metric struct {
	Name string
	config.Aggregate
}

// Sketch says whether the metric is a sketch (distinct, quantile), whose
// values do not add up across rows; the SQL table carries the sketch too.
func (m Metric) Sketch() bool { return m.Func == "distinct" || m.Func == "quantile" }

// ParseMetrics reads a rollup's metrics (name → aggregate), in name order.
func ParseMetrics(names []string, specs map[string]string) ([]Metric, error) {
	var out []Metric
	for _, n := range names {
		a, err := config.ParseAggregate(specs[n])
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", n, err)
		}
		out = append(out, Metric{Name: n, Aggregate: a})
	}
	return out, nil
}

// state is a metric's value in one row.
type state interface {
	add(v any) error
	merge(o state) error
	value(m Metric) any // what queries and views show
	clone() state
}

func newState(m Metric) state {
	switch m.Func {
	case "count":
		return &count{}
	case "sum":
		return &sum{}
	case "min":
		return &extreme{min: true}
	case "max":
		return &extreme{}
	case "avg":
		return &avg{}
	case "distinct":
		return &distinct{sk: hyperloglog.New16()}
	case "quantile":
		sk, _ := ddsketch.NewDefaultDDSketch(quantileAccuracy)
		return &quantile{sk: sk}
	}
	panic("rollup: unknown aggregate " + m.Func)
}

type count struct{ n int64 }

func (c *count) add(any) error { c.n++; return nil }
func (c *count) merge(o state) error {
	c.n += o.(*count).n
	return nil
}
func (c *count) value(Metric) any { return c.n }
func (c *count) clone() state     { x := *c; return &x }

// number reads a numeric field (JSON numbers; text holding a number).
func number(v any) (float64, bool, error) {
	switch x := v.(type) {
	case nil:
		return 0, false, nil
	case float64:
		return x, true, nil
	case int64:
		return float64(x), true, nil
	case int:
		return float64(x), true, nil
	case int32:
		return float64(x), true, nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%q is not a number", x)
		}
		return f, true, nil
	case bool:
		return 0, false, fmt.Errorf("%v is not a number", x)
	}
	return 0, false, fmt.Errorf("a %T is not a number", v)
}

type sum struct {
	s float64
	n int64 // values summed: a sum of nothing is null
}

func (s *sum) add(v any) error {
	f, ok, err := number(v)
	if ok {
		s.s += f
		s.n++
	}
	return err
}
func (s *sum) merge(o state) error {
	x := o.(*sum)
	s.s += x.s
	s.n += x.n
	return nil
}
func (s *sum) value(Metric) any {
	if s.n == 0 {
		return nil
	}
	return s.s
}
func (s *sum) clone() state { x := *s; return &x }

type extreme struct {
	min bool
	v   float64
	set bool
}

func (e *extreme) add(v any) error {
	f, ok, err := number(v)
	if ok && (!e.set || (e.min && f < e.v) || (!e.min && f > e.v)) {
		e.v, e.set = f, true
	}
	return err
}
func (e *extreme) merge(o state) error {
	x := o.(*extreme)
	if x.set {
		return e.add(x.v)
	}
	return nil
}
func (e *extreme) value(Metric) any {
	if !e.set {
		return nil
	}
	return e.v
}
func (e *extreme) clone() state { x := *e; return &x }

type avg struct{ sum }

func (a *avg) merge(o state) error { return a.sum.merge(&o.(*avg).sum) }
func (a *avg) value(Metric) any {
	if a.n == 0 {
		return nil
	}
	return a.s / float64(a.n)
}
func (a *avg) clone() state { x := *a; return &x }

type distinct struct {
	sk *hyperloglog.Sketch
	// A query's accumulator goes dense after denseAfter parts: merging
	// many sparse sketches into a sparse one sorts its list again and
	// again, while into a dense one each merge is one pass over the other's
	// entries. A dense estimate costs a pass over 65,536 registers, so few
	// parts stay sparse.
	dense bool
	parts int
}

const denseAfter = 8

func (d *distinct) add(v any) error {
	if v == nil {
		return nil
	}
	d.sk.Insert(hashable(v))
	return nil
}
func (d *distinct) merge(o state) error { return d.sk.Merge(o.(*distinct).sk) }
func (d *distinct) value(Metric) any    { return int64(d.sk.Estimate()) }
func (d *distinct) clone() state        { return &distinct{sk: d.sk.Clone(), dense: d.dense, parts: d.parts} }

// accumulate merges o into d as a query's accumulator does: into a dense
// sketch once there are more than denseAfter parts.
func (d *distinct) accumulate(o *distinct) error {
	d.parts++
	if !d.dense && d.parts > denseAfter {
		acc := hyperloglog.New16NoSparse()
		if err := acc.Merge(d.sk); err != nil {
			return err
		}
		d.sk, d.dense = acc, true
	}
	return d.sk.Merge(o.sk)
}

// hashable is a value's bytes for the HyperLogLog: numbers by their value
// (1 and 1.0 are one value), text as it is.
func hashable(v any) []byte {
	switch x := v.(type) {
	case string:
		// The sketch only reads it.
		return unsafe.Slice(unsafe.StringData(x), len(x))
	case int64:
		return binary.LittleEndian.AppendUint64([]byte{'n'}, math.Float64bits(float64(x)))
	case float64:
		return binary.LittleEndian.AppendUint64([]byte{'n'}, math.Float64bits(x))
	case time.Time:
		return []byte(x.UTC().Format(time.RFC3339Nano))
	}
	var b bytes.Buffer
	fmt.Fprint(&b, v)
	return b.Bytes()
}

type quantile struct{ sk *ddsketch.DDSketch }

func (q *quantile) add(v any) error {
	f, ok, err := number(v)
	if ok {
		return q.sk.Add(f)
	}
	return err
}
func (q *quantile) merge(o state) error { return q.sk.MergeWith(o.(*quantile).sk) }
func (q *quantile) value(m Metric) any {
	if q.sk.IsEmpty() {
		return nil
	}
	v, err := q.sk.GetValueAtQuantile(m.Q)
	if err != nil {
		return nil
	}
	return v
}
func (q *quantile) clone() state { return &quantile{sk: q.sk.Copy()} }
