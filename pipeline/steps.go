package pipeline

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/sluice-data/sluice/config"
)

// step is a step that looks at one event at a time. It returns the event to
// go on with (nil: dropped), or the outputs a route sends it to instead.
type step interface {
	apply(ev Event, now time.Time) (Event, config.Outputs, error)
}

// stepError is an event a step could not process.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }

// newStep builds a step; o is what a step may need of the pipeline's
// options (a lookup: its warehouse and logger).
func newStep(s config.Step, o Options) (step, error) {
	switch {
	case s.Filter != "":
		p, err := config.CompileExpr(s.Filter, true)
		if err != nil {
			return nil, err
		}
		return filterStep{p, &vm.VM{}}, nil
	case s.Set != nil:
		st := setStep{vm: &vm.VM{}}
		for _, k := range sortedKeys(s.Set) {
			p, err := config.CompileExpr(s.Set[k], false)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", k, err)
			}
			st.fields = append(st.fields, k)
			st.progs = append(st.progs, p)
		}
		return st, nil
	case s.Drop != nil:
		return dropStep(s.Drop), nil
	case s.Keep != nil:
		return keepStep(s.Keep), nil
	case s.Rename != nil:
		return renameStep(s.Rename), nil
	case s.Parse != nil:
		return newParse(*s.Parse)
	case s.Route != nil:
		r := routeStep{vm: &vm.VM{}}
		for _, c := range s.Route {
			p, err := config.CompileExpr(c.If, true)
			if err != nil {
				return nil, err
			}
			r.conds = append(r.conds, p)
			r.to = append(r.to, c.To)
		}
		return r, nil
	case s.Dedupe != nil:
		w := s.Dedupe.Window.D()
		if w <= 0 {
			w = 10 * time.Minute
		}
		return &dedupeStep{key: s.Dedupe.Key, window: w, seen: map[string]time.Time{}}, nil
	case s.Sample != nil:
		return sampleStep{rate: s.Sample.Rate, key: s.Sample.Key}, nil
	case s.Lookup != nil:
		return newLookup(*s.Lookup, o)
	case s.Throttle != nil:
		return newThrottle(*s.Throttle), nil
	}
	return nil, fmt.Errorf("empty step")
}

// run evaluates p over ev in m: a step's machine, reused from event to
// event (a pipeline's steps run on one goroutine), so that an evaluation
// allocates nothing of its own.
func run(m *vm.VM, p *vm.Program, ev Event) (any, error) {
	return m.Run(p, map[string]any(ev))
}

type filterStep struct {
	p  *vm.Program
	vm *vm.VM
}

func (s filterStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	v, err := run(s.vm, s.p, ev)
	if err != nil {
		return nil, nil, err
	}
	if v == true {
		return ev, nil, nil
	}
	return nil, nil, nil
}

type setStep struct {
	fields []string
	progs  []*vm.Program
	vm     *vm.VM
}

func (s setStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	for i, p := range s.progs {
		v, err := run(s.vm, p, ev)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.fields[i], err)
		}
		switch x := v.(type) {
		case int:
			v = int64(x)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, nil, fmt.Errorf("%s is %v", s.fields[i], x)
			}
		}
		ev[s.fields[i]] = v
	}
	return ev, nil, nil
}

type dropStep []string

func (s dropStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	for _, f := range s {
		delete(ev, f)
	}
	return ev, nil, nil
}

type keepStep []string

func (s keepStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	out := make(Event, len(s))
	for _, f := range s {
		if v, ok := ev[f]; ok {
			out[f] = v
		}
	}
	return out, nil, nil
}

type renameStep map[string]string

func (s renameStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	for from, to := range s {
		if v, ok := ev[from]; ok {
			delete(ev, from)
			ev[to] = v
		}
	}
	return ev, nil, nil
}

type routeStep struct {
	conds []*vm.Program
	to    []config.Outputs
	vm    *vm.VM
}

func (s routeStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	for i, p := range s.conds {
		v, err := run(s.vm, p, ev)
		if err != nil {
			return nil, nil, err
		}
		if v == true {
			return ev, s.to[i], nil
		}
	}
	return ev, nil, nil
}

// dedupeStep drops an event whose key was seen within the window (of
// processing time); memory holds the keys of one window.
type dedupeStep struct {
	key    []string
	window time.Duration
	seen   map[string]time.Time
	pruned time.Time
}

func (s *dedupeStep) apply(ev Event, now time.Time) (Event, config.Outputs, error) {
	k, err := keyOf(ev, s.key)
	if err != nil {
		return nil, nil, err
	}
	if now.Sub(s.pruned) > s.window/4 {
		for key, at := range s.seen {
			if now.Sub(at) > s.window {
				delete(s.seen, key)
			}
		}
		s.pruned = now
	}
	if at, ok := s.seen[k]; ok && now.Sub(at) <= s.window {
		return nil, nil, nil
	}
	s.seen[k] = now
	return ev, nil, nil
}

// keyOf is the JSON of the values of fields, the identity of an event or a
// group.
func keyOf(ev Event, fields []string) (string, error) {
	vals := make([]any, len(fields))
	for i, f := range fields {
		vals[i] = ev[f]
	}
	b, err := json.Marshal(vals)
	return string(b), err
}

type sampleStep struct {
	rate float64
	key  []string
}

func (s sampleStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	var x float64
	if len(s.key) == 0 {
		x = rand.Float64()
	} else {
		k, err := keyOf(ev, s.key)
		if err != nil {
			return nil, nil, err
		}
		h := fnv.New64a()
		h.Write([]byte(k))
		x = float64(h.Sum64()>>11) / (1 << 53)
	}
	if x < s.rate {
		return ev, nil, nil
	}
	return nil, nil, nil
}

type parseStep struct {
	c  config.ParseStep
	re *regexp.Regexp
}

func newParse(c config.ParseStep) (step, error) {
	p := parseStep{c: c}
	if c.Format == "regex" {
		re, err := regexp.Compile(c.Pattern)
		if err != nil {
			return nil, err
		}
		p.re = re
	}
	return p, nil
}

func (s parseStep) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	raw, ok := ev[s.c.Field]
	if !ok || raw == nil {
		return ev, nil, nil
	}
	if s.c.Format == "timestamp" {
		t, err := parseTime(raw, s.c.Layout)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.c.Field, err)
		}
		into := s.c.Into
		if into == "" {
			into = s.c.Field
		}
		ev[into] = t.UTC()
		return ev, nil, nil
	}
	text, ok := raw.(string)
	if !ok {
		return nil, nil, fmt.Errorf("%s is %T, not text", s.c.Field, raw)
	}
	fields := Event{}
	switch s.c.Format {
	case "json":
		obj, err := decode([]byte(text))
		if err != nil {
			return nil, nil, fmt.Errorf("%s is not a JSON object: %w", s.c.Field, err)
		}
		fields = obj
	case "regex":
		m := s.re.FindStringSubmatch(text)
		if m == nil {
			return nil, nil, fmt.Errorf("%s does not match %s", s.c.Field, s.c.Pattern)
		}
		for i, name := range s.re.SubexpNames() {
			if name != "" {
				fields[name] = m[i]
			}
		}
	case "kv":
		for k, v := range parseKV(text) {
			fields[k] = v
		}
	}
	if s.c.Into != "" {
		ev[s.c.Into] = map[string]any(fields)
		return ev, nil, nil
	}
	for k, v := range fields {
		ev[k] = v
	}
	return ev, nil, nil
}

func parseTime(v any, layout string) (time.Time, error) {
	switch layout {
	case "unix", "unix_ms":
		f, ok := asFloat(v)
		if !ok {
			if s, isStr := v.(string); isStr {
				if _, err := fmt.Sscan(s, &f); err != nil {
					return time.Time{}, fmt.Errorf("%q is not a number", s)
				}
			} else {
				return time.Time{}, fmt.Errorf("%v is not a number", v)
			}
		}
		if layout == "unix" {
			return time.UnixMicro(int64(f * 1e6)), nil
		}
		return time.UnixMicro(int64(f * 1e3)), nil
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("%v is not text", v)
	}
	if layout == "" {
		layout = time.RFC3339Nano
	}
	return time.Parse(layout, s)
}

// parseKV reads key=value pairs separated by spaces; a value may be
// double-quoted.
func parseKV(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t,;")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && (s[end] != '"' || s[end-1] == '\\') {
				end++
			}
			val = strings.ReplaceAll(s[1:min(end, len(s))], `\"`, `"`)
			s = s[min(end+1, len(s)):]
		} else {
			end := strings.IndexAny(s, " \t,;")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		if key != "" && !strings.ContainsAny(key, " \t") {
			out[key] = val
		}
	}
	return out
}
