package pipeline

import (
	"fmt"
	"time"

	"github.com/sluice-data/sluice/config"
)

// SimResult is what a pipeline made of example events (Simulate).
type SimResult struct {
	// Outputs holds the rows each output got, by the output's name (its
	// stream, table, topic URL, file or webhook).
	Outputs map[string][]Event
	// Bad are the events a step could not process, with the error.
	Bad []string
}

// OutputName is how Simulate names an output.
func OutputName(o config.Output) string {
	for _, s := range []string{o.Stream, o.Lake, o.Table, o.Kafka, o.File, o.Webhook} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Simulate runs events through the pipeline's steps in memory, without a
// bus or outputs: what `sluice test` checks. At the end event time moves
// past every window, so all of them are emitted.
func (p *Pipeline) Simulate(events []Event) SimResult {
	res := SimResult{Outputs: map[string][]Event{}}
	collect := func(to config.Outputs, ev Event) {
		if to == nil {
			to = p.o.Config.To
		}
		for _, o := range to {
			res.Outputs[OutputName(o)] = append(res.Outputs[OutputName(o)], cloneEvent(ev))
		}
	}
	for i, ev := range events {
		if p.win != nil {
			if t, ok := asTime(ev[p.win.timeField]); ok {
				p.win.advanceTo(t.Add(-p.win.delay))
			}
		}
		out, to, label, err := p.apply(p.pre, cloneEvent(ev), 0)
		switch {
		case err != nil:
			res.Bad = append(res.Bad, fmt.Sprintf("input[%d]: %s: %v", i, label, err))
		case out == nil:
		case to == nil && p.win != nil:
			if err := p.win.add(out, "test", uint64(i+1)); err != nil {
				res.Bad = append(res.Bad, fmt.Sprintf("input[%d]: window: %v", i, err))
			}
		default:
			collect(to, out)
		}
	}
	if p.win != nil {
		p.win.advanceTo(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		for _, row := range p.win.emit() {
			out, to, label, err := p.apply(p.post, row, len(p.pre))
			switch {
			case err != nil:
				res.Bad = append(res.Bad, fmt.Sprintf("window result: %s: %v", label, err))
			case out != nil:
				collect(to, out)
			}
		}
	}
	return res
}

func cloneEvent(ev Event) Event {
	out := make(Event, len(ev))
	for k, v := range ev {
		out[k] = v
	}
	return out
}

// Normalize turns a value decoded from YAML or JSON into the form the
// steps produce, for comparisons (numbers as int64 or float64, times as
// RFC 3339 text).
func Normalize(ev map[string]any) (Event, error) {
	line, err := encode(nil, ev)
	if err != nil {
		return nil, err
	}
	return decode(line)
}
