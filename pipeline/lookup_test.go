package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
)

func TestLookupAndReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "countries.csv")
	os.WriteFile(file, []byte("code,name,region\nDE,Germany,EU\nUS,\"United States\",NA\n"), 0o644)
	s := mustStep(t, config.Step{Lookup: &config.LookupStep{File: file, Key: "country", Column: "code", Fields: []string{"name"}}})
	now := time.Now()
	out, _, _ := s.apply(ev(t, `{"country":"US"}`), now)
	if fmt.Sprint(out) != "map[country:US name:United States]" {
		t.Fatalf("lookup: %v", out)
	}
	if out, _, _ = s.apply(ev(t, `{"country":"FR"}`), now); fmt.Sprint(out) != "map[country:FR]" {
		t.Fatalf("no match: %v", out)
	}
	// A changed file is read again; a broken one keeps the table.
	os.WriteFile(file, []byte("code,name\nFR,France\n"), 0o644)
	if out, _, _ = s.apply(ev(t, `{"country":"FR"}`), now.Add(6*time.Second)); fmt.Sprint(out) != "map[country:FR name:France]" {
		t.Fatalf("after a change: %v", out)
	}
	os.WriteFile(file, []byte("nothing here\n\"unterminated\n"), 0o644)
	if out, _, _ = s.apply(ev(t, `{"country":"FR"}`), now.Add(12*time.Second)); fmt.Sprint(out) != "map[country:FR name:France]" {
		t.Fatalf("after a broken file: %v", out)
	}
	if _, err := newStep(config.Step{Lookup: &config.LookupStep{File: file + ".missing", Key: "country"}}, Options{}); err == nil {
		t.Error("a missing file was accepted")
	}
}

func TestThrottle(t *testing.T) {
	s := mustStep(t, config.Step{Throttle: &config.ThrottleStep{Threshold: 3, Window: config.Duration(time.Second), Key: []string{"user"}}})
	now := time.Now().Truncate(time.Second)
	kept := map[string]int{}
	for i := range 10 {
		for _, u := range []string{"a", "b"} {
			if out, _, _ := s.apply(ev(t, fmt.Sprintf(`{"user":%q,"i":%d}`, u, i)), now.Add(time.Duration(i)*time.Millisecond)); out != nil {
				kept[u]++
			}
		}
	}
	if kept["a"] != 3 || kept["b"] != 3 {
		t.Fatalf("kept %v in one window, want 3 each", kept)
	}
	if out, _, _ := s.apply(ev(t, `{"user":"a"}`), now.Add(time.Second)); out == nil {
		t.Fatal("the next window still throttled")
	}
}

// fakeTables is an in-memory warehouse of lookup tables.
type fakeTables struct {
	mu     sync.Mutex
	tables map[string]fakeTable
	err    error         // every read fails with it
	block  chan struct{} // when set, reads wait for it to close
	reads  int
}

type fakeTable struct {
	cols []string
	rows [][]any
}

func (f *fakeTables) set(name string, cols []string, rows ...[]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tables == nil {
		f.tables = map[string]fakeTable{}
	}
	f.tables[name] = fakeTable{cols, rows}
}

func (f *fakeTables) ReadTable(ctx context.Context, table string, columns []string, limit int) ([]string, [][]any, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return nil, nil, f.err
	}
	t, ok := f.tables[table]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoTable, table)
	}
	if columns == nil {
		columns = t.cols
	}
	var rows [][]any
	for _, r := range t.rows[:min(limit, len(t.rows))] {
		var out []any
		for _, c := range columns {
			i := slices.Index(t.cols, c)
			if i < 0 {
				return nil, nil, fmt.Errorf("no column %s", c)
			}
			out = append(out, r[i])
		}
		rows = append(rows, out)
	}
	return columns, rows, nil
}

func (f *fakeTables) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// settle applies events at now until the reload in progress is done.
func settle(t *testing.T, s step, now time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.(*lookupStep).loading != nil {
		if time.Now().After(deadline) {
			t.Fatal("the reload did not finish")
		}
		time.Sleep(time.Millisecond)
		s.apply(Event{}, now)
	}
}

var since = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func customers(f *fakeTables, plan string) {
	f.set("customers", []string{"id", "plan", "seats", "share", "since", "note"},
		[]any{int64(42), plan, int64(5), 0.25, since, nil},
		[]any{int64(7), "free", int64(1), 1.0, since, "x"},
		[]any{nil, "orphan", int64(0), 0.0, since, nil},
	)
}

// A table lookup keeps the warehouse's types; keys match as text, so the
// integer id 42 matches the event's 42 and "42"; NULL adds nothing.
func TestLookupTable(t *testing.T) {
	f := &fakeTables{}
	customers(f, "pro")
	s, err := newStep(config.Step{Lookup: &config.LookupStep{Table: "customers", Key: "user_id", Column: "id", Fields: []string{"plan", "seats", "share", "since", "note"}}}, Options{Lookups: f})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, in := range []string{`{"user_id":"42","note":"kept"}`, `{"user_id":42,"note":"kept"}`, `{"user_id":42.0,"note":"kept"}`} {
		out, _, err := s.apply(ev(t, in), now)
		if err != nil {
			t.Fatal(err)
		}
		want := Event{"user_id": out["user_id"], "plan": "pro", "seats": int64(5), "share": 0.25, "since": since, "note": "kept"}
		if !reflect.DeepEqual(out, want) {
			t.Errorf("%s: got %#v, want %#v", in, out, want)
		}
	}
	for _, in := range []string{`{"user_id":"43"}`, `{"user_id":null}`, `{}`} {
		if out, _, _ := s.apply(ev(t, in), now); len(out) > 1 {
			t.Errorf("%s matched: %v", in, out)
		}
	}
	// Without fields, all the other columns.
	s = mustLookup(t, config.LookupStep{Table: "customers", Key: "id"}, f)
	if out, _, _ := s.apply(ev(t, `{"id":7}`), now); fmt.Sprint(out) != "map[id:7 note:x plan:free seats:1 share:1 since:2025-03-01 12:00:00 +0000 UTC]" {
		t.Errorf("all columns: %v", out)
	}
}

func mustLookup(t *testing.T, c config.LookupStep, tables TableReader) step {
	t.Helper()
	s, err := newStep(config.Step{Lookup: &c}, Options{Lookups: tables})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A table is read again every reload interval, beside the events; a reload
// that fails keeps the rows, and its error is logged once.
func TestLookupTableReload(t *testing.T) {
	f := &fakeTables{}
	customers(f, "pro")
	var logs strings.Builder
	s, err := newStep(config.Step{Lookup: &config.LookupStep{Table: "customers", Key: "user_id", Column: "id", Fields: []string{"plan"}, Reload: config.Duration(10 * time.Second)}},
		Options{Lookups: f, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	plan := func(now time.Time) any {
		out, _, _ := s.apply(ev(t, `{"user_id":42}`), now)
		return out["plan"]
	}
	start := time.Now()
	customers(f, "enterprise")
	if p := plan(start.Add(5 * time.Second)); p != "pro" || f.readCount() != 1 {
		t.Fatalf("read again before the interval: %v, %d reads", p, f.readCount())
	}
	at := start.Add(11 * time.Second)
	plan(at)
	settle(t, s, at)
	if p := plan(at); p != "enterprise" {
		t.Fatalf("after a reload: %v", p)
	}

	f.mu.Lock()
	f.err = errors.New("connection refused")
	f.mu.Unlock()
	for i := 2; i <= 3; i++ {
		at = start.Add(time.Duration(i) * 11 * time.Second)
		plan(at)
		settle(t, s, at)
		if p := plan(at); p != "enterprise" {
			t.Fatalf("after a failed reload: %v", p)
		}
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs.String())
	}
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	customers(f, "team")
	at = start.Add(44 * time.Second)
	plan(at)
	settle(t, s, at)
	if p := plan(at); p != "team" || !strings.Contains(logs.String(), "lookup loaded") {
		t.Fatalf("after the warehouse came back: %v\n%s", p, logs.String())
	}

	// Events do not wait for a slow reload: they get the rows loaded before.
	block := make(chan struct{})
	f.mu.Lock()
	f.block = block
	f.mu.Unlock()
	customers(f, "slow")
	at = start.Add(55 * time.Second)
	for range 3 {
		if p := plan(at); p != "team" {
			t.Fatalf("during a reload: %v", p)
		}
	}
	close(block)
	settle(t, s, at)
	if p := plan(at); p != "slow" {
		t.Fatalf("after a slow reload: %v", p)
	}
}

// A table that does not exist yet (a pipeline that creates it has not
// written) starts the lookup empty, and a reload finds it; any other
// problem at start is an error.
func TestLookupTableMissing(t *testing.T) {
	f := &fakeTables{}
	s := mustLookup(t, config.LookupStep{Table: "customers", Key: "user_id", Column: "id"}, f)
	now := time.Now()
	if out, _, _ := s.apply(ev(t, `{"user_id":42}`), now); fmt.Sprint(out) != "map[user_id:42]" {
		t.Fatalf("without the table: %v", out)
	}
	customers(f, "pro")
	at := now.Add(31 * time.Second)
	s.apply(Event{}, at)
	settle(t, s, at)
	if out, _, _ := s.apply(ev(t, `{"user_id":42}`), at); out["plan"] != "pro" {
		t.Fatalf("once the table exists: %v", out)
	}

	for _, tc := range []struct {
		c    config.LookupStep
		want string
	}{
		{config.LookupStep{Table: "customers", Key: "user_id"}, `lookup table customers: no column "user_id" (the columns are [id plan seats share since note])`},
		{config.LookupStep{Table: "customers", Key: "id", Fields: []string{"plan", "tier"}}, "lookup table customers: no column tier"},
	} {
		if _, err := newStep(config.Step{Lookup: &tc.c}, Options{Lookups: f}); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: got %v, want %s", tc.c, err, tc.want)
		}
	}
	f.err = errors.New("connection refused")
	if _, err := newStep(config.Step{Lookup: &config.LookupStep{Table: "customers", Key: "id"}}, Options{Lookups: f}); err == nil || err.Error() != "lookup table customers: connection refused" {
		t.Errorf("unreachable warehouse: %v", err)
	}
}

// New hands the warehouse to lookup steps; without one a table lookup is
// an error, except in sluice test, where it matches nothing.
func TestLookupTableInPipeline(t *testing.T) {
	f := &fakeTables{}
	customers(f, "pro")
	pc := config.Pipeline{
		From:  config.Inputs{{Stream: "events"}},
		Steps: []config.Step{{Lookup: &config.LookupStep{Table: "customers", Key: "user_id", Column: "id", Fields: []string{"plan"}}}},
		To:    config.Outputs{{Stream: "out"}},
	}
	p, err := New(Options{Name: "p", Config: pc, Lookups: f, Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Simulate([]Event{{"user_id": "42"}, {"user_id": "7"}})
	if fmt.Sprint(res.Outputs["out"]) != "[map[plan:pro user_id:42] map[plan:free user_id:7]]" {
		t.Errorf("outputs: %v", res.Outputs)
	}
	if _, err := New(Options{Name: "p", Config: pc}); err == nil || !strings.Contains(err.Error(), "pipeline p: steps[0]: lookup table customers: no warehouse") {
		t.Errorf("without a warehouse: %v", err)
	}
	p, err = New(Options{Name: "p", Config: pc, Simulation: true})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Simulate([]Event{{"user_id": "42"}}); fmt.Sprint(res.Outputs["out"]) != "[map[user_id:42]]" {
		t.Errorf("sluice test: %v", res.Outputs)
	}
}
