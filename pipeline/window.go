package pipeline

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/sluice-data/sluice/config"
)

// window aggregates events into windows of event time. A window [start,
// start+size) is emitted once the watermark (the newest event time seen,
// less the configured delay) passes its end, emitted again when a late event
// within the allowed lateness changes it, and forgotten once the watermark
// passes end+lateness: it is final. Results are keyed by window_start and
// the group, so writing one twice is harmless. Session windows, whose
// bounds follow the events, work differently: see session.go.
type window struct {
	c         config.WindowStep
	size      time.Duration
	every     time.Duration
	gap       time.Duration // session windows
	delay     time.Duration
	lateness  time.Duration
	timeField string
	aggs      []aggSpec
	open      map[winKey]*winState
	sessions  map[string][]*session // session windows: per group, by start
	watermark time.Time             // newest event time less delay
	// final: every window ending at or before it is final; events for
	// them are ignored (after a restart they were already emitted). For
	// session windows it is the watermark a restart resumes from.
	final time.Time
	// resumed is final as the checkpoint this run started from had it:
	// events of windows final by then were counted before the restart.
	resumed time.Time
	late    int64 // events dropped for arriving after their window was final
}

type aggSpec struct {
	name string
	config.Aggregate
}

type winKey struct {
	start int64 // unix microseconds
	group string
}

type winState struct {
	start  time.Time
	group  []any
	accs   []acc
	minSeq map[string]uint64 // per input stream, the first message that fed it
	dirty  bool              // changed since last emitted
}

func newWindow(c config.WindowStep) (*window, error) {
	w := &window{c: c, size: c.Size.D(), every: c.Every.D(), delay: c.Watermark.D(), lateness: c.Lateness.D(),
		timeField: c.Time, open: map[winKey]*winState{}}
	if w.timeField == "" {
		w.timeField = "event_time"
	}
	if c.Type == "tumbling" || w.every <= 0 {
		w.every = w.size
	}
	if c.Type == "session" {
		w.gap, w.sessions = c.Gap.D(), map[string][]*session{}
	}
	for _, name := range sortedKeys(c.Aggregates) {
		a, err := config.ParseAggregate(c.Aggregates[name])
		if err != nil {
			return nil, err
		}
		w.aggs = append(w.aggs, aggSpec{name, a})
	}
	return w, nil
}

// idle is how long without events before the clock moves time on.
func (w *window) idle() time.Duration {
	if d := w.c.Idle.D(); d > 0 {
		return d
	}
	if w.sessions != nil {
		return w.gap
	}
	return w.size
}

// add puts an event (from message seq of stream) into its windows.
func (w *window) add(ev Event, stream string, seq uint64) error {
	t, ok := asTime(ev[w.timeField])
	if !ok {
		return fmt.Errorf("window: field %s is %v, not a time", w.timeField, ev[w.timeField])
	}
	gvals := make([]any, len(w.c.GroupBy))
	for i, f := range w.c.GroupBy {
		gvals[i] = ev[f]
	}
	group, err := keyOf(ev, w.c.GroupBy)
	if err != nil {
		return err
	}
	// Every aggregate must take its value before any changes: an event is
	// counted whole or not at all.
	for _, a := range w.aggs {
		if err := newAcc(a.Aggregate).add(ev[a.Field]); err != nil {
			return fmt.Errorf("window: %s: %w", a.name, err)
		}
	}
	if w.sessions != nil {
		return w.addToSession(ev, t, group, gvals, stream, seq)
	}
	last := t.Truncate(w.every)
	for s := last; s.After(t.Add(-w.size)); s = s.Add(-w.every) {
		end := s.Add(w.size)
		if !end.After(w.resumed) {
			continue // final before this run began: already emitted
		}
		if !end.After(w.final) || (!w.watermark.IsZero() && !end.Add(w.lateness).After(w.watermark)) {
			w.late++
			continue
		}
		k := winKey{s.UnixMicro(), group}
		st := w.open[k]
		if st == nil {
			st = &winState{start: s, group: gvals, accs: make([]acc, len(w.aggs)), minSeq: map[string]uint64{}}
			for i, a := range w.aggs {
				st.accs[i] = newAcc(a.Aggregate)
			}
			w.open[k] = st
		}
		if m, ok := st.minSeq[stream]; !ok || seq < m {
			st.minSeq[stream] = seq
		}
		for i, a := range w.aggs {
			if err := st.accs[i].add(ev[a.Field]); err != nil {
				return fmt.Errorf("window: %s: %w", a.name, err)
			}
		}
		st.dirty = true
	}
	return nil
}

// advanceTo moves the watermark on to at least wm (the clock, when idle).
func (w *window) advanceTo(wm time.Time) {
	if wm.After(w.watermark) {
		w.watermark = wm
	}
}

// emit returns the results of closed windows that changed since they were
// last emitted, and forgets the final ones.
func (w *window) emit() []Event {
	if w.sessions != nil {
		return w.emitSessions()
	}
	var out []Event
	keys := make([]winKey, 0, len(w.open))
	for k := range w.open {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b winKey) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.group, b.group)) })
	for _, k := range keys {
		st := w.open[k]
		end := st.start.Add(w.size)
		if end.After(w.watermark) {
			continue
		}
		if st.dirty {
			row := Event{"window_start": st.start.UTC()}
			for i, f := range w.c.GroupBy {
				row[f] = st.group[i]
			}
			for i, a := range w.aggs {
				row[a.name] = st.accs[i].value()
			}
			out = append(out, row)
			st.dirty = false
		}
		if !end.Add(w.lateness).After(w.watermark) {
			delete(w.open, k)
		}
	}
	if f := w.watermark.Add(-w.lateness); f.After(w.final) {
		w.final = f
	}
	return out
}

// minSeq is, per stream, the first message any open window (or held
// session) depends on.
func (w *window) minSeq() map[string]uint64 {
	out := map[string]uint64{}
	for _, st := range w.open {
		lowerSeqs(out, st.minSeq)
	}
	for _, list := range w.sessions {
		for _, s := range list {
			lowerSeqs(out, s.minSeq)
		}
	}
	return out
}

// lowerSeqs lowers each stream's sequence number in to that of from.
func lowerSeqs(to, from map[string]uint64) {
	for s, q := range from {
		if m, ok := to[s]; !ok || q < m {
			to[s] = q
		}
	}
}

// acc accumulates one aggregate of one window.
type acc interface {
	add(v any) error
	// merge adds in another accumulator of the same aggregate (when
	// sessions merge); it fails, changing nothing, where add would.
	merge(o acc) error
	value() any
}

func newAcc(a config.Aggregate) acc {
	switch a.Func {
	case "count":
		return &countAcc{}
	case "sum":
		return &sumAcc{}
	case "avg":
		return &avgAcc{}
	case "min":
		return &extremeAcc{less: true}
	case "max":
		return &extremeAcc{}
	case "distinct":
		return newHLL()
	default:
		return newQuantile(a.Q)
	}
}

type countAcc struct{ n int64 }

func (a *countAcc) add(any) error     { a.n++; return nil }
func (a *countAcc) merge(o acc) error { a.n += o.(*countAcc).n; return nil }
func (a *countAcc) value() any        { return a.n }

// sumAcc sums numbers as DOUBLE (so a column's type does not depend on
// whether the first values were whole); absent fields count as nothing.
type sumAcc struct{ s float64 }

func (a *sumAcc) add(v any) error {
	if v == nil {
		return nil
	}
	f, ok := asFloat(v)
	if !ok {
		return fmt.Errorf("%v is not a number", v)
	}
	a.s += f
	return nil
}
func (a *sumAcc) merge(o acc) error { a.s += o.(*sumAcc).s; return nil }
func (a *sumAcc) value() any        { return a.s }

type avgAcc struct {
	s float64
	n int64
}

func (a *avgAcc) add(v any) error {
	if v == nil {
		return nil
	}
	f, ok := asFloat(v)
	if !ok {
		return fmt.Errorf("%v is not a number", v)
	}
	a.s += f
	a.n++
	return nil
}

func (a *avgAcc) merge(o acc) error {
	b := o.(*avgAcc)
	a.s += b.s
	a.n += b.n
	return nil
}

func (a *avgAcc) value() any {
	if a.n == 0 {
		return nil
	}
	return a.s / float64(a.n)
}

// extremeAcc is min or max of numbers (as DOUBLE) or of texts.
type extremeAcc struct {
	less bool
	num  *float64
	str  *string
}

func (a *extremeAcc) add(v any) error {
	switch x := v.(type) {
	case nil:
	case string:
		if a.num != nil {
			return fmt.Errorf("%q is text, earlier values were numbers", x)
		}
		if a.str == nil || (x < *a.str) == a.less && x != *a.str {
			a.str = &x
		}
	default:
		f, ok := asFloat(v)
		if !ok || a.str != nil {
			return fmt.Errorf("%v is neither a number nor text like the other values", v)
		}
		if a.num == nil || (f < *a.num) == a.less && f != *a.num {
			a.num = &f
		}
	}
	return nil
}

func (a *extremeAcc) merge(o acc) error { return a.add(o.value()) }

func (a *extremeAcc) value() any {
	switch {
	case a.num != nil:
		return *a.num
	case a.str != nil:
		return *a.str
	}
	return nil
}

// hll is a HyperLogLog counter (2^12 registers: ~1.6 % standard error).
type hll struct{ reg [1 << 12]uint8 }

func newHLL() *hll { return &hll{} }

func (h *hll) add(v any) error {
	if v == nil {
		return nil
	}
	f := fnv.New64a()
	fmt.Fprint(f, v)
	x := mix(f.Sum64())
	i := x >> 52
	rank := uint8(bits.LeadingZeros64(x<<12|1<<11)) + 1
	if rank > h.reg[i] {
		h.reg[i] = rank
	}
	return nil
}

func (h *hll) merge(o acc) error {
	for i, r := range o.(*hll).reg {
		h.reg[i] = max(h.reg[i], r)
	}
	return nil
}

// mix spreads FNV's bits (its high bits are weak for short inputs).
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func (h *hll) value() any {
	const m = float64(len(h.reg))
	sum, zeros := 0.0, 0
	for _, r := range h.reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 {
		est = m * math.Log(m/float64(zeros)) // small ranges: linear counting
	}
	return int64(math.Round(est))
}

// quantile is a relative-error sketch (logarithmic buckets, 1 % accuracy)
// of positive, zero and negative numbers.
type quantile struct {
	q        float64
	pos, neg map[int]int64
	zeros, n int64
}

const quantileGamma = 1.02 // (1+0.01)/(1-0.01), rounded

func newQuantile(q float64) *quantile {
	return &quantile{q: q, pos: map[int]int64{}, neg: map[int]int64{}}
}

func (a *quantile) add(v any) error {
	if v == nil {
		return nil
	}
	f, ok := asFloat(v)
	if !ok {
		return fmt.Errorf("%v is not a number", v)
	}
	a.n++
	switch {
	case f > 0:
		a.pos[int(math.Ceil(math.Log(f)/math.Log(quantileGamma)))]++
	case f < 0:
		a.neg[int(math.Ceil(math.Log(-f)/math.Log(quantileGamma)))]++
	default:
		a.zeros++
	}
	return nil
}

func (a *quantile) merge(o acc) error {
	b := o.(*quantile)
	for i, n := range b.pos {
		a.pos[i] += n
	}
	for i, n := range b.neg {
		a.neg[i] += n
	}
	a.zeros += b.zeros
	a.n += b.n
	return nil
}

func (a *quantile) value() any {
	if a.n == 0 {
		return nil
	}
	rank := int64(math.Ceil(a.q * float64(a.n)))
	rank = max(rank, 1)
	mid := func(i int) float64 { return 2 * math.Pow(quantileGamma, float64(i)) / (quantileGamma + 1) }
	negs := slices.Sorted(mapsKeys(a.neg))
	var seen int64
	for j := len(negs) - 1; j >= 0; j-- { // most negative first
		seen += a.neg[negs[j]]
		if seen >= rank {
			return -mid(negs[j])
		}
	}
	seen += a.zeros
	if seen >= rank {
		return 0.0
	}
	for _, i := range slices.Sorted(mapsKeys(a.pos)) {
		seen += a.pos[i]
		if seen >= rank {
			return mid(i)
		}
	}
	return nil
}
