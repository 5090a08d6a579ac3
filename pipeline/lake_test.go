package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/config"
)

func TestLakeConform(t *testing.T) {
	l := &lakeOut{table: "t", time: "at", loaded: true}
	at := "2026-11-25T10:00:00.000000Z"
	row, err := l.conform(Event{"at": at, "n": int64(1), "x": 1.5, "s": "a", "b": true, "o": map[string]any{"k": 1}, "ts": at, "none": nil})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := row["at"].(time.Time); !ok {
		t.Errorf("the time column is %T, want a time", row["at"])
	}
	want := map[string]sluice.ColumnType{"at": sluice.TypeTimestamp, "n": sluice.TypeBigint, "x": sluice.TypeDouble,
		"s": sluice.TypeVarchar, "b": sluice.TypeBoolean, "o": sluice.TypeJSON, "ts": sluice.TypeTimestamp}
	if len(l.schema.Columns) != len(want) || !l.changed {
		t.Fatalf("columns %+v (changed %v)", l.schema.Columns, l.changed)
	}
	for _, c := range l.schema.Columns {
		if want[c.Name] != c.Type {
			t.Errorf("column %s is %s, want %s", c.Name, c.Type, want[c.Name])
		}
	}
	l.changed = false

	// Widening, the schema's spelling, a time column given text, nulls.
	row, err = l.conform(Event{"at": "2026-11-25T11:00:00Z", "N": 2.5, "ts": "2026-11-25T12:00:00+01:00", "s": nil, "b": false})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := l.schema.Lookup("n"); c.Type != sluice.TypeDouble || !l.changed {
		t.Errorf("n after 2.5: %+v", c)
	}
	if row["n"] != 2.5 || row["N"] != nil {
		t.Errorf("N is written as the column n: %v", row)
	}
	if ts, ok := row["ts"].(time.Time); !ok || !ts.Equal(time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("ts: %v", row["ts"])
	}

	// Conflicts leave the schema as it was.
	before := len(l.schema.Columns)
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{"at": at, "s": 3, "new": 1}, `field "s" is VARCHAR in lake table t, but this row has the integer 3`},
		{Event{"at": at, "b": "yes"}, `field "b" is BOOLEAN in lake table t, but this row has the text "yes"`},
		{Event{"at": at, "ts": "soon"}, `field "ts" is TIMESTAMP in lake table t, but this row has the text "soon"`},
		{Event{"at": "yesterday"}, `lake table t is partitioned by at, and this row's at is the text "yesterday"`},
		{Event{"n": 1}, `this row's at is missing (null)`},
		{Event{"at": at, "Q": 1, "q": 2}, "two columns of one name"},
	} {
		_, err := l.conform(tc.ev)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.ev, err, tc.want)
		}
	}
	if len(l.schema.Columns) != before {
		t.Errorf("a conflicting row changed the schema: %+v", l.schema.Columns)
	}
}

// flaky fails its first fails calls, and counts them all.
type flaky struct{ fails, calls int }

func (f *flaky) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	f.calls++
	ev["tries"] = f.calls
	if f.calls <= f.fails {
		return nil, nil, fmt.Errorf("attempt %d failed", f.calls)
	}
	return ev, nil, nil
}

// counting counts the events it sees (a stand-in for dedupe or throttle).
type counting struct{ n int }

func (c *counting) apply(ev Event, _ time.Time) (Event, config.Outputs, error) {
	c.n++
	return ev, nil, nil
}

// A failed step is tried again retries times, alone, on the event as it
// came to it; then the event is an error naming the tries.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		retries, fails int
		want           string
	}{
		{0, 1, "attempt 1 failed"},
		{2, 2, ""},
		{2, 3, "attempt 3 failed (tried 3 times)"},
	} {
		before, f := &counting{}, &flaky{fails: tc.fails}
		p := &Pipeline{o: Options{Config: config.Pipeline{Retries: tc.retries}}, pre: []step{before, f}, labels: []string{"steps[0]", "steps[1]"}}
		ev, _, label, err := p.apply(p.pre, Event{"a": 1}, 0)
		switch {
		case tc.want == "" && (err != nil || ev["tries"] != tc.fails+1 || ev["a"] != 1):
			t.Errorf("retries %d, fails %d: %v, %v", tc.retries, tc.fails, ev, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || label != "steps[1]"):
			t.Errorf("retries %d, fails %d: %v at %s, want %q", tc.retries, tc.fails, err, label, tc.want)
		}
		if before.n != 1 {
			t.Errorf("the step before ran %d times", before.n)
		}
	}
}
