package pipeline

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/sluice-data/sluice/config"
)

// Parallel lanes. When a pipeline's steps keep no state from one event to
// the next (filter, set, drop, keep, rename, parse, route), the messages of
// a batch are processed at once, one per lane, each lane with steps of its
// own; their outputs are merged in the messages' order, so what is written,
// and in what order, is what one lane would have written. Steps with state
// (window, dedupe, throttle, sample, lookup, whose table each lane would
// hold) and lake outputs (whose schema grows as rows come) keep the
// pipeline to one lane.

// maxLanes bounds the lanes whatever the CPUs.
const maxLanes = 8

// laneCount is how many lanes p gets: one per CPU, when its steps allow;
// else 0.
func (p *Pipeline) laneCount() int {
	n := min(runtime.GOMAXPROCS(0), maxLanes)
	if n < 2 || p.win != nil || !stateless(p.o.Config) {
		return 0
	}
	return n
}

// makeLanes sets p.lanes, copies of p (once its inputs are set up) with
// steps of their own.
func (p *Pipeline) makeLanes(n int) error {
	p.lanes = nil
	for range n {
		l := *p
		l.lanes, l.pre, l.pf = nil, nil, nil
		for _, s := range p.o.Config.Steps {
			st, err := newStep(s, p.o)
			if err != nil {
				return err
			}
			l.pre = append(l.pre, st)
		}
		if p.pf != nil {
			l.pf = newPrefilter(p.o.Config.Steps)
		}
		p.lanes = append(p.lanes, &l)
	}
	return nil
}

// stateless tells whether a pipeline's steps and outputs let its messages
// be processed in parallel.
func stateless(c config.Pipeline) bool {
	for _, s := range c.Steps {
		switch {
		case s.Filter != "", s.Set != nil, s.Drop != nil, s.Keep != nil, s.Rename != nil, s.Parse != nil, s.Route != nil:
		default:
			return false
		}
	}
	for _, o := range allOutputsOf(c) {
		if o.Lake != "" {
			return false
		}
	}
	return true
}

// processBatch processes the messages of a batch into out, moving last on
// past each; in parallel when the pipeline has lanes. On an error, last is
// past the messages before the failed one.
func (p *Pipeline) processBatch(ctx context.Context, batch []item, out *outputs, last *position) error {
	if len(p.lanes) < 2 || len(batch) < 2 {
		for _, it := range batch {
			if err := p.process(ctx, it, out); err != nil {
				return err
			}
			last.done(it)
		}
		return nil
	}
	parts := make([]*outputs, len(batch))
	errs := make([]error, len(batch))
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, l := range p.lanes[:min(len(p.lanes), len(batch))] {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(batch) {
					return
				}
				parts[i] = newOutputs()
				errs[i] = l.process(ctx, batch[i], parts[i])
			}
		})
	}
	wg.Wait()
	for i, it := range batch {
		if errs[i] != nil {
			return errs[i]
		}
		out.merge(parts[i])
		last.done(it)
	}
	return nil
}
