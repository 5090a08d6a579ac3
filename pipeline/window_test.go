package pipeline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func mustWindow(t *testing.T, c config.WindowStep) *window {
	t.Helper()
	w, err := newWindow(c)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// feed adds an event at offset d and moves event time on as Run does.
func feed(t *testing.T, w *window, d time.Duration, fields Event) {
	t.Helper()
	ev := Event{"event_time": t0.Add(d).Format(time.RFC3339Nano)}
	for k, v := range fields {
		ev[k] = v
	}
	w.advanceTo(t0.Add(d - w.delay))
	if err := w.add(ev, "events", 1); err != nil {
		t.Fatal(err)
	}
}

func rows(out []Event) string {
	s := make([]string, len(out))
	for i, r := range out {
		s[i] = fmt.Sprintf("%s %v %v", r["window_start"].(time.Time).Format("15:04:05"), r["g"], r["n"])
	}
	return fmt.Sprint(s)
}

func TestTumblingWindowCloses(t *testing.T) {
	w := mustWindow(t, config.WindowStep{Type: "tumbling", Size: config.Duration(time.Minute), GroupBy: []string{"g"},
		Aggregates: map[string]string{"n": "count()"}})
	feed(t, w, 10*time.Second, Event{"g": "a"})
	feed(t, w, 20*time.Second, Event{"g": "b"})
	feed(t, w, 50*time.Second, Event{"g": "a"})
	if out := w.emit(); len(out) != 0 {
		t.Fatalf("emitted before the window closed: %v", rows(out))
	}
	feed(t, w, 61*time.Second, Event{"g": "a"})
	if got := rows(w.emit()); got != "[10:00:00 a 2 10:00:00 b 1]" {
		t.Fatalf("first window: %s", got)
	}
	// A late event (no allowed lateness) is ignored and counted.
	feed(t, w, 30*time.Second, Event{"g": "a"})
	if out := w.emit(); len(out) != 0 || w.late != 1 {
		t.Fatalf("late event: %v, late %d", rows(out), w.late)
	}
	w.advanceTo(t0.Add(2 * time.Minute))
	if got := rows(w.emit()); got != "[10:01:00 a 1]" {
		t.Fatalf("second window: %s", got)
	}
	if len(w.open) != 0 {
		t.Fatalf("%d windows still held", len(w.open))
	}
}

func TestWatermarkAndLateness(t *testing.T) {
	w := mustWindow(t, config.WindowStep{Type: "tumbling", Size: config.Duration(time.Minute), Watermark: config.Duration(10 * time.Second),
		Lateness: config.Duration(time.Minute), Aggregates: map[string]string{"n": "count()"}})
	feed(t, w, 30*time.Second, nil)
	feed(t, w, 65*time.Second, nil) // watermark 55 s: the first window is still open
	if out := w.emit(); len(out) != 0 {
		t.Fatalf("emitted within the watermark: %v", rows(out))
	}
	feed(t, w, 59*time.Second, nil) // out of order, in time
	feed(t, w, 71*time.Second, nil) // watermark 61 s: closes
	if got := rows(w.emit()); got != "[10:00:00 <nil> 2]" {
		t.Fatalf("closed: %s", got)
	}
	feed(t, w, 5*time.Second, nil) // late, within the allowed lateness: an update
	if got := rows(w.emit()); got != "[10:00:00 <nil> 3]" {
		t.Fatalf("update: %s", got)
	}
	if out := w.emit(); len(out) != 0 {
		t.Fatalf("re-emitted without a change: %v", rows(out))
	}
	feed(t, w, 2*time.Minute+11*time.Second, nil) // watermark 2:01: the first window is final
	w.emit()
	feed(t, w, 6*time.Second, nil)
	if w.late != 1 {
		t.Fatalf("an event after the lateness counted: late %d", w.late)
	}
	if !w.final.Equal(t0.Add(time.Minute + time.Second)) {
		t.Fatalf("final %v", w.final)
	}
}

func TestHoppingWindows(t *testing.T) {
	w := mustWindow(t, config.WindowStep{Type: "hopping", Size: config.Duration(3 * time.Minute), Every: config.Duration(time.Minute),
		Aggregates: map[string]string{"n": "count()"}})
	feed(t, w, 150*time.Second, nil) // 10:02:30 is in the windows starting 10:00, 10:01, 10:02
	w.advanceTo(t0.Add(10 * time.Minute))
	if got := rows(w.emit()); got != "[10:00:00 <nil> 1 10:01:00 <nil> 1 10:02:00 <nil> 1]" {
		t.Fatalf("hopping: %s", got)
	}
}

// After a restart, events of windows that were final are skipped.
func TestFinalWindowsAreSkipped(t *testing.T) {
	w := mustWindow(t, config.WindowStep{Type: "tumbling", Size: config.Duration(time.Minute), Aggregates: map[string]string{"n": "count()"}})
	w.final, w.resumed = t0.Add(time.Minute), t0.Add(time.Minute)
	feed(t, w, 30*time.Second, nil)
	feed(t, w, 90*time.Second, nil)
	w.advanceTo(t0.Add(5 * time.Minute))
	if got := rows(w.emit()); got != "[10:01:00 <nil> 1]" || w.late != 0 {
		t.Fatalf("after a restart: %s, late %d", got, w.late)
	}
}

func TestAggregates(t *testing.T) {
	w := mustWindow(t, config.WindowStep{Type: "tumbling", Size: config.Duration(time.Hour), Aggregates: map[string]string{
		"n": "count()", "s": "sum(x)", "a": "avg(x)", "lo": "min(x)", "hi": "max(x)", "first": "min(name)", "d": "distinct(user)", "p": "quantile(x, 0.9)",
	}})
	r := rand.New(rand.NewPCG(1, 2))
	var xs []float64
	for i := range 20000 {
		x := r.Float64() * 1000
		xs = append(xs, x)
		feed(t, w, time.Duration(i)*time.Millisecond, Event{"x": x, "name": fmt.Sprintf("n%05d", 20000-i), "user": fmt.Sprintf("u%d", i%5000)})
	}
	feed(t, w, 0, Event{"x": nil}) // absent values count for count() only
	w.advanceTo(t0.Add(2 * time.Hour))
	out := w.emit()
	if len(out) != 1 {
		t.Fatalf("%d rows", len(out))
	}
	row := out[0]
	sort.Float64s(xs)
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	if row["n"] != int64(20001) || math.Abs(row["s"].(float64)-sum) > 1e-6 || math.Abs(row["a"].(float64)-sum/20000) > 1e-9 ||
		row["lo"] != xs[0] || row["hi"] != xs[len(xs)-1] || row["first"] != "n00001" {
		t.Fatalf("exact aggregates: %v", row)
	}
	if d := row["d"].(int64); math.Abs(float64(d)-5000)/5000 > 0.05 {
		t.Errorf("distinct(user) = %d, want about 5000", d)
	}
	if p, want := row["p"].(float64), xs[17999]; math.Abs(p-want)/want > 0.02 {
		t.Errorf("quantile 0.9 = %g, want about %g", p, want)
	}
}

func TestWindowRejectsBadValues(t *testing.T) {
	w := mustWindow(t, config.WindowStep{Type: "tumbling", Size: config.Duration(time.Minute), Aggregates: map[string]string{"s": "sum(x)"}})
	if err := w.add(Event{"event_time": "yesterday"}, "events", 1); err == nil {
		t.Error("an unreadable event time was accepted")
	}
	if err := w.add(Event{"event_time": t0.Format(time.RFC3339), "x": "ten"}, "events", 1); err == nil {
		t.Error("sum of text was accepted")
	}
	if err := w.add(Event{"event_time": t0.UnixMilli(), "x": 2.5}, "events", 7); err != nil {
		t.Errorf("epoch milliseconds: %v", err)
	}
	if m := w.minSeq(); m["events"] != 1 && m["events"] != 7 {
		t.Errorf("minSeq %v", m)
	}
}
