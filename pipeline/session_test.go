package pipeline

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
)

func sessionWindow(t *testing.T, gap, watermark time.Duration, aggs map[string]string) *window {
	t.Helper()
	if aggs == nil {
		aggs = map[string]string{"n": "count()"}
	}
	return mustWindow(t, config.WindowStep{Type: "session", Gap: config.Duration(gap), Watermark: config.Duration(watermark),
		GroupBy: []string{"g"}, Aggregates: aggs})
}

// held is how many sessions of group g (of field g) w holds.
func held(w *window, g string) int { return len(w.sessions[`["`+g+`"]`]) }

// sessions prints session results as start-end group count.
func sessions(out []Event) string {
	s := make([]string, len(out))
	for i, r := range out {
		s[i] = fmt.Sprintf("%s-%s %v %v", r["window_start"].(time.Time).Format("15:04"), r["window_end"].(time.Time).Format("15:04"), r["g"], r["n"])
	}
	return fmt.Sprint(s)
}

func TestSessionsPerGroup(t *testing.T) {
	w := sessionWindow(t, 30*time.Minute, 0, nil)
	feed(t, w, 0, Event{"g": "a"})
	feed(t, w, 5*time.Minute, Event{"g": "b"})
	feed(t, w, 10*time.Minute, Event{"g": "a"})
	feed(t, w, 34*time.Minute, Event{"g": "b"}) // 29 minutes after b's last: the same session
	if out := w.emit(); len(out) != 0 {
		t.Fatalf("emitted before a session closed: %v", sessions(out))
	}
	feed(t, w, 50*time.Minute, Event{"g": "a"}) // 40 minutes after a's last: a new session; a's first one closed at 10:40
	if got := sessions(w.emit()); got != "[10:00-10:40 a 2]" {
		t.Fatalf("a's first session: %s", got)
	}
	w.advanceTo(t0.Add(2 * time.Hour))
	if got := sessions(w.emit()); got != "[10:05-11:04 b 2 10:50-11:20 a 1]" {
		t.Fatalf("the others: %s", got)
	}
	if w.idle() != 30*time.Minute {
		t.Errorf("idle defaults to %s, want the gap", w.idle())
	}
}

// Events exactly gap apart are two sessions; a nanosecond less is one.
func TestSessionGapBoundary(t *testing.T) {
	w := sessionWindow(t, 10*time.Minute, time.Hour, nil)
	feed(t, w, 0, Event{"g": "apart"})
	feed(t, w, 10*time.Minute, Event{"g": "apart"})
	feed(t, w, 0, Event{"g": "within"})
	feed(t, w, 10*time.Minute-time.Nanosecond, Event{"g": "within"})
	w.advanceTo(t0.Add(3 * time.Hour))
	if got := sessions(w.emit()); got != "[10:00-10:10 apart 1 10:00-10:19 within 2 10:10-10:20 apart 1]" {
		t.Fatalf("sessions: %s", got)
	}
}

// An out-of-order event that falls between two sessions joins them.
func TestSessionsMerge(t *testing.T) {
	w := sessionWindow(t, 30*time.Minute, time.Hour, map[string]string{
		"n": "count()", "s": "sum(x)", "a": "avg(x)", "lo": "min(x)", "hi": "max(x)", "users": "distinct(u)", "p": "quantile(x, 0.5)"})
	feed(t, w, 0, Event{"g": "a", "x": 1, "u": "u1"})
	feed(t, w, 40*time.Minute, Event{"g": "a", "x": 5, "u": "u2"})
	feed(t, w, 80*time.Minute, Event{"g": "a", "x": 9, "u": "u2"})
	if n := held(w, "a"); n != 3 {
		t.Fatalf("%d sessions before the merge, want 3", n)
	}
	feed(t, w, 20*time.Minute, Event{"g": "a", "x": 3, "u": "u1"}) // bridges the first two
	feed(t, w, 60*time.Minute, Event{"g": "a", "x": 7, "u": "u3"}) // and the result with the third
	if n := held(w, "a"); n != 1 {
		t.Fatalf("%d sessions after the merges, want 1", n)
	}
	w.advanceTo(t0.Add(5 * time.Hour))
	out := w.emit()
	if got := sessions(out); got != "[10:00-11:50 a 5]" {
		t.Fatalf("merged: %s", got)
	}
	r := out[0]
	if r["s"] != 25.0 || r["a"] != 5.0 || r["lo"] != 1.0 || r["hi"] != 9.0 || r["users"] != int64(3) {
		t.Errorf("merged aggregates: %v", r)
	}
	if p := r["p"].(float64); p < 4.9 || p > 5.1 {
		t.Errorf("median %g, want about 5", p)
	}
	if m := w.minSeq(); len(m) != 0 {
		t.Errorf("a written session is still held: %v", m)
	}
}

// An event whose values do not fit the sessions it would merge goes to bad
// and leaves them as they were.
func TestSessionMergeRejectsBadValues(t *testing.T) {
	w := sessionWindow(t, 30*time.Minute, time.Hour, map[string]string{"hi": "max(x)"})
	feed(t, w, 0, Event{"g": "a", "x": 1})
	feed(t, w, 40*time.Minute, Event{"g": "a", "x": "text"})
	err := w.add(Event{"event_time": t0.Add(20 * time.Minute).Format(time.RFC3339), "g": "a", "x": 2}, "events", 2)
	if err == nil || held(w, "a") != 2 {
		t.Fatalf("merging numbers and text: %v, %d sessions", err, held(w, "a"))
	}
}

// A session closes when the watermark reaches its end and is written once;
// then an event that would join it is late, and so is one whose own window
// [t, t+gap) ended.
func TestSessionWatermark(t *testing.T) {
	w := sessionWindow(t, 10*time.Minute, 5*time.Minute, nil)
	feed(t, w, 0, Event{"g": "a"})
	feed(t, w, 14*time.Minute, Event{"g": "b"}) // watermark 10:09: a's session [10:00, 10:10) is open
	feed(t, w, 5*time.Minute, Event{"g": "a"})  // out of order, in time: a's session ends at 10:15 now
	feed(t, w, 19*time.Minute, Event{"g": "b"}) // watermark 10:14
	if out := w.emit(); len(out) != 0 {
		t.Fatalf("emitted before the watermark: %v", sessions(out))
	}
	feed(t, w, 21*time.Minute, Event{"g": "b"}) // watermark 10:16: a's session closes
	if got := sessions(w.emit()); got != "[10:00-10:15 a 2]" {
		t.Fatalf("closed: %s", got)
	}
	feed(t, w, 12*time.Minute, Event{"g": "a"}) // would join a's closed session
	feed(t, w, 2*time.Minute, Event{"g": "c"})  // its own window [10:02, 10:12) ended
	feed(t, w, 3*time.Minute, Event{"g": "b"})  // ended too, though b's session [10:14, …) is open
	if out := w.emit(); len(out) != 0 || w.late != 3 {
		t.Fatalf("late events: %v, late %d", sessions(out), w.late)
	}
	feed(t, w, 8*time.Minute, Event{"g": "c"}) // [10:08, 10:18) is open: a new session
	w.advanceTo(t0.Add(time.Hour))
	if got := sessions(w.emit()); got != "[10:08-10:18 c 1 10:14-10:31 b 3]" {
		t.Fatalf("the rest: %s", got)
	}
}

// An event more than gap behind the watermark is late even inside a
// session that is still open: its own window [t, t+gap) ended.
func TestSessionOldEventIsLate(t *testing.T) {
	w := sessionWindow(t, 10*time.Minute, 0, nil)
	for _, d := range []time.Duration{0, 5, 10, 15, 20} {
		feed(t, w, d*time.Minute, Event{"g": "b"})
	}
	feed(t, w, 8*time.Minute, Event{"g": "b"})  // [10:08, 10:18) ended at the watermark 10:20
	feed(t, w, 12*time.Minute, Event{"g": "b"}) // [10:12, 10:22) did not
	w.advanceTo(t0.Add(time.Hour))
	if got := sessions(w.emit()); got != "[10:00-10:30 b 6]" || w.late != 1 {
		t.Fatalf("sessions %s, late %d", got, w.late)
	}
}

// A closed session is held, and holds the position, until the watermark is
// gap past its end; then the checkpoint's final time is the watermark.
func TestSessionHeldAfterClosing(t *testing.T) {
	w := sessionWindow(t, 10*time.Minute, 0, nil)
	add := func(d time.Duration, g string, seq uint64) {
		t.Helper()
		w.advanceTo(t0.Add(d))
		if err := w.add(Event{"event_time": t0.Add(d), "g": g}, "events", seq); err != nil {
			t.Fatal(err)
		}
	}
	add(0, "a", 1)
	add(11*time.Minute, "b", 2) // a's session closed at 10:10
	if got := sessions(w.emit()); got != "[10:00-10:10 a 1]" || w.minSeq()["events"] != 1 || !w.final.Equal(t0) {
		t.Fatalf("closed: %s, minSeq %v, final %s", got, w.minSeq(), w.final.Format("15:04"))
	}
	add(12*time.Minute, "a", 3) // 10:12 would not join a's session: a new one
	add(19*time.Minute, "b", 4)
	w.emit()
	if w.minSeq()["events"] != 1 {
		t.Fatalf("a's closed session was let go before 10:20: minSeq %v", w.minSeq())
	}
	add(20*time.Minute, "c", 5)
	w.emit()
	if w.minSeq()["events"] != 2 || !w.final.Equal(t0.Add(11*time.Minute)) {
		t.Fatalf("at 10:20: minSeq %v, final %s", w.minSeq(), w.final.Format("15:04"))
	}
	w.advanceTo(t0.Add(time.Hour))
	w.emit()
	if len(w.sessions) != 0 || len(w.minSeq()) != 0 || !w.final.Equal(t0.Add(time.Hour)) {
		t.Fatalf("at 11:00: %d groups held, final %s", len(w.sessions), w.final.Format("15:04"))
	}
}

// A pipeline with a session window, as sluice test runs it: 11:00 starts a
// session of its own, which 10:45, in time, joins to the first.
func TestSessionPipelineSimulate(t *testing.T) {
	p, err := New(Options{Name: "visits", Simulation: true, Config: config.Pipeline{
		From: config.Inputs{{Stream: "events"}},
		Steps: []config.Step{{Window: &config.WindowStep{Type: "session", Gap: config.Duration(30 * time.Minute), Watermark: config.Duration(30 * time.Minute),
			GroupBy: []string{"user_id"}, Aggregates: map[string]string{"pages": "count()"}}}},
		To: config.Outputs{{Table: "visits"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var in []Event
	for _, at := range []string{"10:00", "10:20", "11:00", "10:45"} {
		in = append(in, Event{"user_id": "u1", "event_time": "2026-11-25T" + at + ":00Z"})
	}
	res := p.Simulate(in)
	rows := res.Outputs["visits"]
	if len(rows) != 1 || len(res.Bad) != 0 {
		t.Fatalf("visits: %v, bad %v", rows, res.Bad)
	}
	want := Event{"window_start": t0, "window_end": t0.Add(90 * time.Minute), "user_id": "u1", "pages": int64(4)}
	if !reflect.DeepEqual(rows[0], want) {
		t.Errorf("visit: %v, want %v", rows[0], want)
	}
}

// After a restart the watermark resumes from the checkpoint, so an event
// read again is judged as it was, even when what moved the watermark is
// before the position read again (here an event a step dropped).
func TestSessionRestartResumesWatermark(t *testing.T) {
	var w *window
	read := func(seq uint64, d time.Duration, g string) {
		t.Helper()
		w.advanceTo(t0.Add(d))
		if g == "" {
			return // dropped before the window
		}
		if err := w.add(Event{"event_time": t0.Add(d), "g": g}, "events", seq); err != nil {
			t.Fatal(err)
		}
	}
	w = sessionWindow(t, 10*time.Minute, 0, nil)
	read(1, 50*time.Minute, "")
	read(2, 45*time.Minute, "b") // [10:45, 10:55) is open at 10:50
	read(3, 38*time.Minute, "b") // [10:38, 10:48) is not: late
	w.emit()
	pos, final := w.minSeq()["events"], w.final
	if pos != 2 || !final.Equal(t0.Add(50*time.Minute)) || w.late != 1 {
		t.Fatalf("checkpoint: position %d, final %s, late %d", pos, final.Format("15:04"), w.late)
	}
	w.advanceTo(t0.Add(time.Hour))
	first := sessions(w.emit())

	w = sessionWindow(t, 10*time.Minute, 0, nil)
	w.final, w.resumed = final, final
	read(2, 45*time.Minute, "b")
	read(3, 38*time.Minute, "b")
	w.advanceTo(t0.Add(time.Hour))
	if again := sessions(w.emit()); again != first || first != "[10:45-10:55 b 1]" || w.late != 1 {
		t.Fatalf("after the restart %s, late %d; before %s", again, w.late, first)
	}
}

// Exactly-once across restarts: a run that crashes (any number of times,
// after writing results it had not checkpointed) and resumes from its last
// checkpoint leaves the same table as a run that never crashed. The events
// are out of order, some late, and sessions merge.
func TestSessionRestartIsExactlyOnce(t *testing.T) {
	c := config.WindowStep{Type: "session", Gap: config.Duration(10 * time.Minute), Watermark: config.Duration(3 * time.Minute),
		GroupBy: []string{"g"}, Aggregates: map[string]string{"n": "count()", "s": "sum(x)", "hi": "max(x)"}}
	var late int64
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		msgs := sessionTraffic(r)
		want := map[string]Event{}
		w, _ := runSessions(t, c, msgs, sessionCheckpoint{pos: 1}, r, -1, want)
		total := 0
		for _, row := range want {
			total += int(row["n"].(int64))
		}
		if events := sessionEvents(msgs); int64(total)+w.late != int64(events) {
			t.Fatalf("seed %d: %d counted and %d late of %d events", seed, total, w.late, events)
		}
		late += w.late
		got := map[string]Event{}
		cp := sessionCheckpoint{pos: 1}
		for range 1 + r.IntN(4) {
			_, cp = runSessions(t, c, msgs, cp, r, r.IntN(30), got)
		}
		runSessions(t, c, msgs, cp, r, -1, got)
		if !reflect.DeepEqual(got, want) {
			for _, k := range slices.Sorted(maps.Keys(got)) {
				if !reflect.DeepEqual(got[k], want[k]) {
					t.Errorf("seed %d: %s: got %v, want %v", seed, k, got[k], want[k])
				}
			}
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if _, ok := got[k]; !ok {
					t.Errorf("seed %d: %s missing", seed, k)
				}
			}
			t.FailNow()
		}
	}
	if late == 0 {
		t.Error("no event was late: the traffic does not test lateness")
	}
}

// sessionTraffic makes messages of one to three events of three users,
// moving on by up to 4 minutes, sometimes pausing, a quarter of them up to
// 12 minutes out of order and one in eight up to 40 (beyond the 3 minutes of
// watermark and the 10 of gap, many are late).
func sessionTraffic(r *rand.Rand) [][]Event {
	var msgs [][]Event
	now := t0
	for range 60 + r.IntN(60) {
		var msg []Event
		for range 1 + r.IntN(3) {
			now = now.Add(time.Duration(r.IntN(240)) * time.Second)
			if r.IntN(15) == 0 {
				now = now.Add(25 * time.Minute)
			}
			at := now
			switch r.IntN(8) {
			case 0, 1:
				at = at.Add(-time.Duration(r.IntN(720)) * time.Second)
			case 2:
				at = at.Add(-time.Duration(r.IntN(2400)) * time.Second)
			}
			msg = append(msg, Event{"event_time": at.Format(time.RFC3339), "g": fmt.Sprint("u", r.IntN(3)), "x": int64(r.IntN(100))})
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

func sessionEvents(msgs [][]Event) int {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return n
}

type sessionCheckpoint struct {
	pos   uint64 // the next message to read
	final time.Time
}

// runSessions does what Run does with a window: from checkpoint cp, in
// batches of random size, it adds the events of each message (message i is
// sequence number i+1), writes the results into table by window_start and
// group, and now and then saves a checkpoint. After crashAfter batches it
// stops as a crash would, returning the last checkpoint saved; with
// crashAfter -1 it reads to the end and then lets time pass every session.
func runSessions(t *testing.T, c config.WindowStep, msgs [][]Event, cp sessionCheckpoint, r *rand.Rand, crashAfter int, table map[string]Event) (*window, sessionCheckpoint) {
	t.Helper()
	w := mustWindow(t, c)
	w.final, w.resumed = cp.final, cp.final
	write := func() {
		for _, row := range w.emit() {
			table[fmt.Sprint(row["window_start"], " ", row["g"])] = row
		}
	}
	saved := cp
	next := cp.pos
	for batches := 0; next <= uint64(len(msgs)); batches++ {
		if batches == crashAfter {
			return w, saved
		}
		for range 1 + r.IntN(5) {
			if next > uint64(len(msgs)) {
				break
			}
			for _, ev := range msgs[next-1] {
				ts, _ := asTime(ev["event_time"])
				w.advanceTo(ts.Add(-w.delay))
				if err := w.add(cloneEvent(ev), "events", next); err != nil {
					t.Fatal(err)
				}
			}
			next++
		}
		write()
		if r.IntN(2) == 0 {
			saved = sessionCheckpoint{pos: next, final: w.final}
			if q, ok := w.minSeq()["events"]; ok && q < next {
				saved.pos = q
			}
		}
	}
	if crashAfter >= 0 {
		return w, saved // crashed after reading everything
	}
	w.advanceTo(t0.Add(24 * time.Hour))
	write()
	return w, saved
}
