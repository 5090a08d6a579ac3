package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Event is one event as the steps see it: its top-level fields. Numbers are
// int64 when they are whole and fit, else float64; times read from the bus
// stay strings until a step needs them as times.
type Event = map[string]any

// decode reads one NDJSON line into an Event.
func decode(line []byte) (Event, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var ev Event
	if err := d.Decode(&ev); err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	for k, v := range ev {
		ev[k] = normalize(v)
	}
	return ev, nil
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

// encode writes an Event as one NDJSON line; times as RFC 3339 in UTC with
// microseconds, as enrich writes them.
func encode(buf []byte, ev Event) ([]byte, error) {
	out := make(map[string]any, len(ev))
	for k, v := range ev {
		switch x := v.(type) {
		case time.Time:
			out[k] = x.UTC().Format("2006-01-02T15:04:05.000000Z")
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				out[k] = nil
			} else {
				out[k] = x
			}
		default:
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return buf, err
	}
	buf = append(buf, b...)
	return append(buf, '\n'), nil
}

// asTime reads an event-time value: RFC 3339 text, a time, or epoch
// milliseconds.
func asTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	case int64:
		return time.UnixMilli(x).UTC(), true
	case float64:
		return time.UnixMicro(int64(x * 1000)).UTC(), true
	}
	return time.Time{}, false
}

// asFloat reads a number.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}
