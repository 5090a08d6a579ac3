package jobs

import (
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
)

func testScheduler(t *testing.T, b *bus.Bus, member string, wh *memWarehouse) *Scheduler {
	t.Helper()
	s := New(Options{Jobs: dagJobs(t), Bus: b, Warehouse: wh, Member: member, LeaseTTL: 600 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(s.Close)
	return s
}

func testBus(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Open(t.Context(), bus.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// waitState polls a run until it is in state.
func waitState(t *testing.T, s *Scheduler, id, state string) *Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := s.Run(t.Context(), id)
		if err == nil && r.State == state {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %+v, %v; want %s", id, r, err, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A run of a dead process that had no record yet (in its first attempt)
// is taken over from its expired lease: the same run, its first attempt
// dead; one whose output exists is recorded as succeeded, without running
// again. Either way the lease is gone.
func TestDeadRunTakenOver(t *testing.T) {
	ctx := t.Context()
	b := testBus(t)
	wh := &memWarehouse{done: map[string]time.Time{}}
	s := testScheduler(t, b, "b", wh)
	started := time.Now().Add(-time.Minute).UTC().Round(time.Millisecond)
	dead := func(id, date string) Task {
		task := Task{Job: "extract", Params: map[string]string{"date": date}}
		data, _ := json.Marshal(lease{Owner: "a", RunID: id, Task: task, Trigger: "backfill", Started: started, Expires: started.Add(time.Second)})
		if _, err := b.PutState(ctx, leaseKey(task), data, 0); err != nil {
			t.Fatal(err)
		}
		return task
	}
	t1 := dead("20261101-000000.000000-dead01", "2026-11-01")
	t2 := dead("20261101-000000.000000-dead02", "2026-11-02")
	wh.done["extract/2026-11-02"] = time.Now()
	// A run submitted through the API, its process dead while the run
	// waited for its requirements (no attempt yet).
	t3 := Task{Job: "report", Params: map[string]string{"date": "2026-11-03"}}
	waiting := &Run{ID: "20261101-000000.000000-dead03", Job: t3.Job, Params: t3.Params, State: StateRunning, Trigger: "api", Owner: "a", Created: started}
	if err := s.runs.save(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(lease{Owner: "a", RunID: waiting.ID, Task: t3, Trigger: "api", Started: started, Expires: started.Add(time.Second)})
	if _, err := b.PutState(ctx, leaseKey(t3), data, 0); err != nil {
		t.Fatal(err)
	}
	s.watch(ctx)

	r := waitState(t, s, "20261101-000000.000000-dead01", StateSucceeded)
	if len(r.Attempts) != 2 || r.Attempts[0].State != StateDead || r.Attempts[0].Owner != "a" || !r.Attempts[0].Started.Equal(started) ||
		r.Attempts[1].State != StateSucceeded || r.Attempts[1].Owner != "b" || r.Trigger != "backfill" || r.Owner != "b" {
		t.Fatalf("the dead run taken over: %+v", r)
	}
	r = waitState(t, s, "20261101-000000.000000-dead02", StateSucceeded)
	if len(r.Attempts) != 1 || r.Attempts[0].State != StateDead {
		t.Fatalf("the dead run whose output exists: %+v", r)
	}
	r = waitState(t, s, waiting.ID, StateSucceeded)
	if len(r.Attempts) != 1 || r.Attempts[0].State != StateSucceeded || r.Owner != "b" || r.Trigger != "api" {
		t.Fatalf("the dead run that waited for its requirements: %+v", r)
	}
	s.wg.Wait()
	// extract of the 1st; for the report of the 3rd: extract and clean of
	// the 3rd, clean of the 2nd (its extract is done), daily and report.
	if wh.runs != 6 {
		t.Fatalf("%d tasks ran, want 6", wh.runs)
	}
	for _, task := range []Task{t1, t2, t3} {
		if l, _, err := s.readLease(ctx, task); l != nil || err != nil {
			t.Fatalf("lease of %s left: %+v, %v", task, l, err)
		}
	}
}

// A run the scheduler started itself shows in Runs and Run from its lease
// before it has a record, and can be cancelled, by its process or another.
func TestUnrecordedRun(t *testing.T) {
	ctx := t.Context()
	b := testBus(t)
	wh := &memWarehouse{done: map[string]time.Time{}, block: make(chan struct{})}
	s := testScheduler(t, b, "a", wh)
	other := testScheduler(t, b, "b", &memWarehouse{done: map[string]time.Time{}})
	for i, canceller := range []*Scheduler{s, other} {
		date := []string{"2026-11-01", "2026-11-02"}[i]
		built := make(chan error, 1)
		go func() {
			built <- s.Build(ctx, []Task{{Job: "extract", Params: map[string]string{"date": date}}}, "backfill", 0, nil)["extract(date="+date+")"]
		}()
		var id string
		for deadline := time.Now().Add(10 * time.Second); id == ""; time.Sleep(20 * time.Millisecond) {
			runs, err := other.Runs(ctx, "extract", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.State == StateRunning && r.Params["date"] == date {
					id = r.ID
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the running run of %s is not listed: %+v", date, runs)
			}
		}
		if _, err := s.runs.get(ctx, id); err == nil {
			t.Fatalf("run %s has a record while in its first attempt", id)
		}
		r, err := other.Run(ctx, id)
		if err != nil || r.Owner != "a" || len(r.Attempts) != 1 || r.Attempts[0].State != StateRunning || r.Trigger != "backfill" {
			t.Fatalf("run %s from its lease: %+v, %v", id, r, err)
		}
		if _, err := canceller.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := <-built; err == nil {
			t.Fatalf("cancelled run %s succeeded", id)
		}
		r = waitState(t, other, id, StateCancelled)
		if len(r.Attempts) != 1 || r.Attempts[0].State != StateCancelled {
			t.Fatalf("cancelled by %s: %+v", canceller.o.Member, r)
		}
	}
	close(wh.block)
}

// A submitted run holds its task's lease while its requirements run: the
// task is running for every process, and a cancel stops the run at once.
func TestSubmitHoldsLease(t *testing.T) {
	ctx := t.Context()
	b := testBus(t)
	wh := &memWarehouse{done: map[string]time.Time{}, block: make(chan struct{})}
	s := testScheduler(t, b, "a", wh)
	other := testScheduler(t, b, "b", &memWarehouse{done: map[string]time.Time{}})
	task := Task{Job: "report", Params: map[string]string{"date": "2026-11-01"}}
	run, err := s.Submit(ctx, task, SubmitOptions{Trigger: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if l, _, err := s.readLease(ctx, task); err != nil || l == nil || l.RunID != run.ID {
		t.Fatalf("lease of the submitted task: %+v, %v", l, err)
	}
	if _, err := other.Submit(ctx, task, SubmitOptions{Trigger: "api"}); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second submit in another process: %v", err)
	}
	time.Sleep(3 * 600 * time.Millisecond) // past the first lease's expiry: it is renewed
	if _, err := other.Submit(ctx, task, SubmitOptions{Trigger: "api"}); !errors.Is(err, ErrRunning) {
		t.Fatalf("a second submit after the lease's first term: %v", err)
	}
	if _, err := other.Cancel(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	r := waitState(t, s, run.ID, StateCancelled)
	if len(r.Attempts) != 0 || r.Error != "cancelled" {
		t.Fatalf("cancelled while waiting for its requirements: %+v", r)
	}
	close(wh.block)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if done, _ := s.Complete(ctx, Task{Job: "daily", Params: task.Params}); done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled run's requirements did not go on")
		}
	}
}
