package pipeline

import "github.com/sluice-data/sluice/config"

// prefilter runs a pipeline's leading filter steps on the fields they read,
// decoded alone (DecodeFields), before the event is decoded whole: the
// events they drop are never built as maps. A filter keeps the same events
// either way, since it sees the same values (an absent field and a null
// are both nil to an expression); only the work differs. It applies when
// the pipeline has no window (whose event time moves on with every event
// read) and does not split events between workers by key.
type prefilter struct {
	n     int            // the leading filter steps
	index map[string]int // the fields they read, by slot in vals
	names []string
	vals  []any
	env   Event // the fields of one event, reused
}

// newPrefilter returns the prefilter of steps, nil when they do not start
// with a filter that names the fields it reads (one that reads $env needs
// the whole event).
func newPrefilter(steps []config.Step) *prefilter {
	pf := &prefilter{index: map[string]int{}}
	for _, s := range steps {
		if s.Filter == "" {
			break
		}
		prog, err := config.CompileExpr(s.Filter, true)
		if err != nil {
			break
		}
		fields, all := config.ExprFields(prog)
		if all {
			break
		}
		for _, f := range fields {
			if _, ok := pf.index[f]; !ok {
				pf.index[f] = len(pf.names)
				pf.names = append(pf.names, f)
			}
		}
		pf.n++
	}
	if pf.n == 0 {
		return nil
	}
	pf.vals = make([]any, len(pf.names))
	pf.env = make(Event, len(pf.names))
	return pf
}

// prefilter runs the leading filters on the fields of line, and returns
// the step the whole event goes on from: -1 when a filter dropped it or
// failed on it (then it is a bad row), 0 when the line is not an object
// DecodeFields reads (decode then says what is wrong with it).
func (p *Pipeline) prefilter(line []byte, src string, seq uint64, where func() string, out *outputs) int {
	pf := p.pf
	if err := DecodeFields(line, pf.index, pf.vals); err != nil {
		return 0
	}
	clear(pf.env)
	for i, v := range pf.vals {
		if v != nil {
			pf.env[pf.names[i]] = v
		}
	}
	// The values are views of line: the env is not kept past the filters.
	res, _, label, err := p.apply(p.pre[:pf.n], pf.env, 0)
	clear(pf.vals)
	switch {
	case err != nil:
		out.bad = append(out.bad, p.badLine(where(), src, seq, label, err, line))
		return -1
	case res == nil:
		return -1
	}
	return pf.n
}
