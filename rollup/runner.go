package rollup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/pipeline"
)

// Options configure a Runner.
type Options struct {
	Name   string
	Config config.Rollup
	Bus    *bus.Bus
	// Dir holds the rollups' segments (<Dir>/<name>/).
	Dir    string
	Logger *slog.Logger
	// OnChange is told, after each batch, the buckets that changed (the
	// node refreshes the rollup's SQL view from them).
	OnChange func(buckets []time.Time)
	// SnapshotEvery is how often the changed intervals are saved, old ones
	// re-rolled coarser and expired ones dropped (default 5s).
	SnapshotEvery time.Duration
	// Now is the clock of expiry and re-rolls (default time.Now).
	Now func() time.Time
}

// Runner counts a stream's events into a rollup's table as they arrive.
type Runner struct {
	o      Options
	Table  *Table
	filter *vm.Program
	exprs  []*vm.Program
	// The event fields the rollup reads, each in a slot of an event's
	// values: only these are decoded (all when the filter or an
	// expression reads the whole event: wholeEvent).
	index      map[string]int
	wholeEvent bool
	timeSlot   int
	dimSlots   []int
	valueSlots []int    // by Table.Metrics; -1 for count()
	envNames   []string // what the filter and expressions read
	envSlots   []int    // their slots, by envNames
	log        *slog.Logger
	errors     atomic.Int64 // events skipped, live and in rebuilds

	// ingest is held while a batch is counted, and by a rebuild's swap;
	// next is the first message not counted (written under ingest; 0
	// until Run starts).
	ingest sync.Mutex
	next   atomic.Uint64
}

var (
	rollupEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rollup_events_total", Help: "Events of its stream a rollup read as they came (rebuilds aside).",
	}, []string{"rollup"})
	rollupSkipped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rollup_skipped_total", Help: "Events a rollup read as they came but could not count: undecodable, no time, a failing filter or metric.",
	}, []string{"rollup"})
)

// New builds a rollup and loads its snapshot.
func New(o Options) (*Runner, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := o.Config
	metrics, err := ParseMetrics(slices.Sorted(maps.Keys(c.Metrics)), c.Metrics)
	if err != nil {
		return nil, fmt.Errorf("rollup %s: %w", o.Name, err)
	}
	r := &Runner{o: o, Table: NewTable(c.Granularity.D(), c.DimensionNames(), metrics), log: o.Logger.With("rollup", o.Name)}
	if c.Filter != "" {
		if r.filter, err = config.CompileExpr(c.Filter, true); err != nil {
			return nil, fmt.Errorf("rollup %s: filter: %w", o.Name, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Expressions)) {
		p, err := config.CompileExpr(c.Expressions[k], false)
		if err != nil {
			return nil, fmt.Errorf("rollup %s: expressions.%s: %w", o.Name, k, err)
		}
		r.exprs = append(r.exprs, p)
	}
	r.index = map[string]int{}
	slot := func(name string) int {
		i, ok := r.index[name]
		if !ok {
			i = len(r.index)
			r.index[name] = i
		}
		return i
	}
	r.timeSlot = slot(c.Time)
	for _, d := range c.Dimensions {
		r.dimSlots = append(r.dimSlots, slot(d))
	}
	for _, m := range metrics {
		i := -1
		if m.Field != "" {
			i = slot(m.Field)
		}
		r.valueSlots = append(r.valueSlots, i)
	}
	for _, p := range append([]*vm.Program{r.filter}, r.exprs...) {
		if p == nil {
			continue
		}
		names, all := config.ExprFields(p)
		r.wholeEvent = r.wholeEvent || all
		for _, n := range names {
			if !slices.Contains(r.envNames, n) {
				r.envNames = append(r.envNames, n)
				r.envSlots = append(r.envSlots, slot(n))
			}
		}
	}
	return r, nil
}

// dir holds the rollup's manifest and segments.
func (r *Runner) dir() string { return filepath.Join(r.o.Dir, r.o.Name) }

// legacyPath is where the first format kept the whole table.
func (r *Runner) legacyPath() string { return filepath.Join(r.o.Dir, r.o.Name+".snapshot") }

// Run counts events until ctx ends; then it saves the table.
func (r *Runner) Run(ctx context.Context) error {
	next, err := r.Table.load(r.dir(), r.legacyPath())
	if err != nil {
		// Segments of another definition: count again from the start.
		r.log.Warn("rollup segments not usable; counting the stream again from its start", "err", err)
		r.Table.reset()
		next = 1
	}
	// What the segments brought back goes to the SQL table only once the
	// stream is read again up to where it ended at the start: the table
	// was refreshed up to the moment the last process stopped, ahead of
	// the segments, and would otherwise show older numbers for a moment.
	catchUp := map[int64]bool{}
	for _, b := range r.Table.bucketTimes() {
		catchUp[b.UnixNano()] = true
	}
	until := uint64(0)
	if info, err := r.o.Bus.Info(ctx, r.o.Config.From); err == nil {
		until = info.LastSeq
	}
	caughtUp := func() {
		if catchUp != nil && r.o.OnChange != nil {
			r.o.OnChange(sortedTimes(catchUp))
		}
		catchUp = nil
	}
	if next > until {
		caughtUp()
	}
	r.ingest.Lock()
	r.next.Store(next)
	r.ingest.Unlock()
	r.log.Info("rollup starting", "from_seq", next, "intervals", len(r.Table.Intervals()))
	rd, err := r.o.Bus.ReadFromBounded(ctx, r.o.Config.From, next, 64<<20)
	if err != nil {
		return fmt.Errorf("rollup %s: %w", r.o.Name, err)
	}
	defer rd.Close()
	saved := time.Now()
	defer func() {
		r.ingest.Lock()
		defer r.ingest.Unlock()
		r.maintain()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var batch []bus.Msg
		select {
		case <-ctx.Done():
			return nil
		case m := <-rd.C():
			batch = append(batch, m)
		fill:
			for len(batch) < 64 {
				select {
				case m := <-rd.C():
					batch = append(batch, m)
				default:
					break fill
				}
			}
		case <-tick.C:
		}
		changed := map[int64]bool{}
		r.ingest.Lock()
		events, skipped := 0, 0
		for _, m := range batch {
			n, s := r.count(r.Table, m, changed, time.Time{}, time.Time{})
			events, skipped = events+n, skipped+s
			r.next.Store(m.Seq + 1)
			rd.Release(m)
		}
		rollupEvents.WithLabelValues(r.o.Name).Add(float64(events))
		rollupSkipped.WithLabelValues(r.o.Name).Add(float64(skipped))
		if time.Since(saved) >= r.o.SnapshotEvery {
			r.maintain()
			saved = time.Now()
		}
		r.ingest.Unlock()
		if catchUp != nil {
			maps.Copy(catchUp, changed)
			// Caught up, or nothing more to read (messages gone).
			if r.next.Load() > until || len(batch) == 0 {
				caughtUp()
			}
			continue
		}
		if len(changed) > 0 && r.o.OnChange != nil {
			r.o.OnChange(sortedTimes(changed))
		}
	}
}

// maintain re-rolls old intervals coarser, drops expired ones and saves
// what changed; the caller holds the ingest lock.
func (r *Runner) maintain() {
	now := r.o.Now()
	var changed []time.Time
	for _, step := range r.o.Config.Coarsen {
		changed = append(changed, r.Table.coarsen(now.Add(-step.After.D()), step.Granularity.D())...)
	}
	changed = append(changed, r.Table.expire(now.Add(-r.o.Config.Retention.D()))...)
	if len(changed) > 0 && r.o.OnChange != nil {
		r.o.OnChange(changed)
	}
	if err := r.Table.save(r.dir(), r.next.Load()); err != nil {
		r.log.Error("rollup segments not saved", "err", err)
		return
	}
	// The first format's file, now carried by the segments.
	os.Remove(r.legacyPath())
	r.Table.prepare(now)
}

// scratch is what counting one event reuses from the one before.
type scratch struct {
	slots   []any          // the event's fields, by Runner.index
	env     map[string]any // what the filter and expressions read
	dims    []string
	vals    []any
	skipped int // events skipped with it
}

func (r *Runner) newScratch() *scratch {
	return &scratch{slots: make([]any, len(r.index)), env: map[string]any{}, dims: make([]string, len(r.Table.Dimensions)), vals: make([]any, len(r.Table.Metrics))}
}

// count adds the events of one message to t (only those of [from, to)
// when to is set), and says how many the message held and how many of
// them it skipped.
func (r *Runner) count(t *Table, m bus.Msg, changed map[int64]bool, from, to time.Time) (events, skipped int) {
	sc := r.newScratch()
	for line := range bytes.Lines(m.Data) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		events++
		if r.wholeEvent {
			ev, err := pipeline.Decode(line)
			if err != nil {
				r.skip(sc, "decode", err)
				continue
			}
			r.countEvent(t, ev, changed, from, to, sc)
			continue
		}
		if err := pipeline.DecodeFields(line, r.index, sc.slots); err != nil {
			r.skip(sc, "decode", err)
			continue
		}
		clear(sc.env)
		for k, n := range r.envNames {
			if v := sc.slots[r.envSlots[k]]; v != nil {
				sc.env[n] = v
			}
		}
		r.countSlots(t, sc, changed, from, to)
	}
	return events, sc.skipped
}

// countEvent adds one event, whole, to t (only one of [from, to) when to
// is set).
func (r *Runner) countEvent(t *Table, ev map[string]any, changed map[int64]bool, from, to time.Time, sc *scratch) {
	for n, i := range r.index {
		sc.slots[i] = ev[n]
	}
	sc.env = ev
	r.countSlots(t, sc, changed, from, to)
}

// countSlots adds the event in sc to t.
func (r *Runner) countSlots(t *Table, sc *scratch, changed map[int64]bool, from, to time.Time) {
	c := r.o.Config
	tv := sc.slots[r.timeSlot]
	at, ok := eventTime(tv)
	if !to.IsZero() && (!ok || at.Before(from) || !at.Before(to)) {
		return
	}
	if r.filter != nil {
		ok, err := expr.Run(r.filter, sc.env)
		if err != nil {
			r.skip(sc, "filter", err)
			return
		}
		if ok != true {
			return
		}
	}
	if !ok {
		r.skip(sc, "time", fmt.Errorf("%s is %v", c.Time, tv))
		return
	}
	for k, i := range r.dimSlots {
		sc.dims[k] = dimValue(sc.slots[i])
	}
	for k, p := range r.exprs {
		v, err := expr.Run(p, sc.env)
		if err != nil {
			v = nil
		}
		sc.dims[len(r.dimSlots)+k] = dimValue(v)
	}
	for k, i := range r.valueSlots {
		sc.vals[k] = nil
		if i >= 0 {
			sc.vals[k] = sc.slots[i]
		}
	}
	b, err := t.Add(at, sc.dims, sc.vals)
	if !b.IsZero() {
		changed[b.UnixNano()] = true
	}
	if err != nil {
		r.skip(sc, "metric", err)
	}
}

// skip notes an event the rollup cannot count (logged now and then).
func (r *Runner) skip(sc *scratch, what string, err error) {
	sc.skipped++
	if n := r.errors.Add(1); n <= 10 || n%10000 == 0 {
		r.log.Warn("rollup skipped an event", "step", what, "err", err, "skipped", n)
	}
}

// Lag is how many messages of the rollup's stream it has not counted yet;
// ok is false before it started reading.
func (r *Runner) Lag(ctx context.Context) (lag uint64, ok bool, err error) {
	next := r.next.Load()
	if next == 0 {
		return 0, false, nil
	}
	info, err := r.o.Bus.Info(ctx, r.o.Config.From)
	if err != nil {
		return 0, false, fmt.Errorf("rollup %s: %w", r.o.Name, err)
	}
	if head, next := info.LastSeq+1, max(next, info.FirstSeq); next < head {
		return head - next, true, nil
	}
	return 0, true, nil
}

// dimValue is a dimension's text ("" for a missing value).
func dimValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func eventTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	case int64:
		return time.UnixMilli(x).UTC(), true
	}
	return time.Time{}, false
}
