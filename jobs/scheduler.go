package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/warehouse"
)

// Options configure a Scheduler.
type Options struct {
	Jobs      map[string]config.Job
	Bus       *bus.Bus
	Warehouse warehouse.JobWarehouse
	Lake      lake.Store
	// LakeAfter is how long after a day ends its lake partition counts as
	// complete (lake.compaction.after).
	LakeAfter time.Duration
	// Compact runs a compaction pass over tables (all when empty) and
	// describes what it did.
	Compact func(ctx context.Context, tables []string) (string, error)
	// Refresh makes what the lake committed of a table visible to the
	// warehouse's SQL (its view; PostgreSQL's copy) before an extract or
	// http job that wrote it counts as done.
	Refresh func(ctx context.Context, table string) error
	// Load copies a lake table into a PostgreSQL database (the body of
	// a load job) and describes what it did.
	Load func(ctx context.Context, job, table, url string) (string, error)
	// RebuildRollup counts [from, to) of a rollup again from the lake (the
	// body of rollup jobs), and reports what it did.
	RebuildRollup func(ctx context.Context, name string, from, to time.Time) (string, error)
	// Parallel bounds the runs of this process at once (default 4);
	// Resources are the units of named resources it has.
	Parallel  int
	Resources map[string]int
	// Member names this process in leases; LeaseTTL is how long a lease
	// lasts without renewal (default 30s): after a process dies, its runs
	// are taken over after this long.
	Member   string
	LeaseTTL time.Duration
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
}

// Scheduler runs tasks: their requirements first, each task at most once
// at a time across the processes sharing the bus.
type Scheduler struct {
	o      Options
	runs   runs
	log    *slog.Logger
	slots  chan struct{}
	jobsMu sync.Mutex
	jobSem map[string]chan struct{}

	resMu   sync.Mutex
	resCond *sync.Cond
	resFree map[string]int

	mu     sync.Mutex
	calls  map[string]*call                   // tasks being made complete in this process
	active map[string]context.CancelCauseFunc // run id -> its cancel
	held   map[string]string                  // lease key -> run id, of the leases this process holds
	wg     sync.WaitGroup
	base   context.Context // the scheduler's lifetime (Run)
	// buckets are the S3 buckets of object targets, by URL (under mu).
	buckets map[string]*lake.S3
	stop    context.CancelFunc
}

// call is one task being made complete; others that need it wait for it.
type call struct {
	done chan struct{}
	err  error
}

// errLostRun is a run another process took over.
var errLostRun = errors.New("lost the run")

// Errors the API maps to statuses.
var (
	// ErrRunning is a task that is running (here or in another process).
	ErrRunning = errors.New("already running")
	// ErrComplete is a task whose output exists (not forced).
	ErrComplete = errors.New("its output exists")
	// ErrDisabled is a job disabled after repeated failures.
	ErrDisabled = errors.New("disabled")
)

// New returns a scheduler; Run starts its clock and the watch for dead
// runs, and Close stops what it runs.
func New(o Options) *Scheduler {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Member == "" {
		b := make([]byte, 6)
		rand.Read(b)
		o.Member = hex.EncodeToString(b)
	}
	base, stop := context.WithCancel(context.Background())
	s := &Scheduler{o: o, runs: runs{bus: o.Bus}, log: o.Logger, slots: make(chan struct{}, o.Parallel),
		jobSem: map[string]chan struct{}{}, resFree: maps.Clone(o.Resources), calls: map[string]*call{},
		active: map[string]context.CancelCauseFunc{}, held: map[string]string{}, base: base, stop: stop}
	if s.resFree == nil {
		s.resFree = map[string]int{}
	}
	s.resCond = sync.NewCond(&s.resMu)
	return s
}

func (s *Scheduler) now() time.Time { return s.o.Now() }

// Close cancels the runs of this process (recorded as cancelled, their
// leases handed back) and waits for them.
func (s *Scheduler) Close() {
	s.stop()
	s.wg.Wait()
}

// Jobs are the configured jobs.
func (s *Scheduler) Jobs() map[string]config.Job { return s.o.Jobs }

// output is the task's output target, resolved.
func (s *Scheduler) output(t Task) (target, error) {
	j := s.o.Jobs[t.Job]
	out, err := resolve(j, j.Output, t.Params, "jobs."+t.Job+".output")
	if j.WritesLake() {
		out.task = &t
	}
	return out, err
}

// Complete tells whether a task is done: its output exists, and so do its
// required jobs' outputs, none made after it (as make decides): deleting a
// day's output makes that day, and what was made from it, run again. A
// job without output, such as compact, never is.
func (s *Scheduler) Complete(ctx context.Context, t Task) (bool, error) {
	_, ok, err := s.complete(ctx, t, 0)
	return ok, err
}

// completeMemo keeps the tasks a Build found complete, with their time: a
// DAG checks the same requirements for many tasks, and a chain (each day
// requiring the day before) would check the whole chain for every day.
// Only the requirements' checks use it; a task's own output is always
// looked at.
type completeMemo struct {
	mu   sync.Mutex
	done map[string]time.Time
}

type memoKey struct{}

// clockSlack is how much newer than a task's output a requirement's must be
// to count as made after it: a file's time comes from the kernel's coarse
// clock (a tick, up to 10 ms, behind), a table partition's from Go's, and a
// report written 2 ms after the table it reads would look older than it.
const clockSlack = 100 * time.Millisecond

func (s *Scheduler) complete(ctx context.Context, t Task, depth int) (time.Time, bool, error) {
	memo, _ := ctx.Value(memoKey{}).(*completeMemo)
	if memo != nil && depth > 0 {
		memo.mu.Lock()
		at, ok := memo.done[t.String()]
		memo.mu.Unlock()
		if ok {
			return at, true, nil
		}
	}
	out, err := s.output(t)
	if err != nil || out.Target.IsZero() {
		return time.Time{}, false, err
	}
	at, ok, err := s.state(ctx, out)
	if err != nil || !ok {
		return at, ok, err
	}
	if depth <= 100 {
		reqs, err := requires(s.o.Jobs, t)
		if err != nil {
			return at, false, err
		}
		for _, r := range reqs {
			if r.task == nil {
				continue // external targets: complete once, never newer
			}
			rat, rok, err := s.complete(ctx, *r.task, depth+1)
			if err != nil || !rok {
				return at, false, err
			}
			if !at.IsZero() && rat.Sub(at) > clockSlack {
				return at, false, nil // made from an older version of it
			}
		}
	}
	if memo != nil {
		memo.mu.Lock()
		memo.done[t.String()] = at
		memo.mu.Unlock()
	}
	return at, true, nil
}

// SubmitOptions qualify a submitted task.
type SubmitOptions struct {
	Force   bool   // run even if its output exists (its requirements are not forced)
	Trigger string // api, cli, schedule, backfill
}

// Submit starts making a task complete in the background, its
// requirements first, and returns its run. A task running anywhere is
// ErrRunning; one whose output exists is ErrComplete unless forced. The
// run holds the task's lease from the start, so that a process that dies
// while the run waits for its requirements is noticed as well.
func (s *Scheduler) Submit(ctx context.Context, t Task, o SubmitOptions) (*Run, error) {
	t, err := Normalize(s.o.Jobs, t)
	if err != nil {
		return nil, err
	}
	if !o.Force {
		if done, err := s.Complete(ctx, t); err != nil {
			return nil, err
		} else if done {
			return nil, fmt.Errorf("%s: %w", t, ErrComplete)
		}
	}
	if off, err := s.Disabled(ctx, t.Job); err != nil {
		return nil, err
	} else if off != "" {
		return nil, fmt.Errorf("job %s is %w: %s (enable it with sluice jobs enable %s)", t.Job, ErrDisabled, off, t.Job)
	}
	run := s.newRun(t, o.Trigger)
	ls, err := s.lead(s.base, t, o.Force, run, false)
	if err != nil {
		return nil, err
	}
	if ls.run == run { // else a dead run of the task goes on
		if err := s.runs.save(ctx, run); err != nil {
			s.release(ls)
			return nil, err
		}
		ls.record = true
	}
	s.wg.Go(func() {
		defer s.release(ls)
		if err := s.make(s.base, t, o.Force, ls); err != nil {
			s.log.Warn("job run failed", "task", t.String(), "run", ls.run.ID, "err", err)
		}
	})
	return ls.run, nil
}

func (s *Scheduler) newRun(t Task, trigger string) *Run {
	now := s.now().UTC()
	return &Run{ID: newRunID(now), Job: t.Job, Params: t.Params, State: StateRunning, Trigger: trigger,
		Owner: s.o.Member, Created: now}
}

// Build makes tasks complete, their requirements first, with at most
// parallel of them running at once (0: the scheduler's limit), and returns
// when all are done or failed: the error of each, by task. progress, when
// set, is told of every task that ends.
func (s *Scheduler) Build(ctx context.Context, tasks []Task, trigger string, parallel int, progress func(t Task, err error)) map[string]error {
	ctx = context.WithValue(ctx, memoKey{}, &completeMemo{done: map[string]time.Time{}})
	var sem chan struct{}
	if parallel > 0 {
		sem = make(chan struct{}, parallel)
	}
	var mu sync.Mutex
	results := map[string]error{}
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Go(func() {
			if sem != nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					mu.Lock()
					results[t.String()] = ctx.Err()
					mu.Unlock()
					return
				}
			}
			nt, err := Normalize(s.o.Jobs, t)
			if err == nil {
				err = s.ensure(ctx, nt, trigger)
			}
			mu.Lock()
			results[t.String()] = err
			mu.Unlock()
			if progress != nil {
				progress(t, err)
			}
		})
	}
	wg.Wait()
	return results
}

// ensure makes a task complete: nothing when its output exists, else its
// requirements first, then a run. Calls for one task in this process share
// one run.
func (s *Scheduler) ensure(ctx context.Context, t Task, trigger string) error {
	key := t.String()
	s.mu.Lock()
	if c, ok := s.calls[key]; ok {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &call{done: make(chan struct{})}
	s.calls[key] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, key)
		s.mu.Unlock()
		close(c.done)
	}()
	c.err = func() error {
		if done, err := s.Complete(ctx, t); err != nil || done {
			return err
		}
		if err := s.requirements(ctx, t); err != nil {
			return err
		}
		return s.execute(ctx, t, trigger, false, nil)
	}()
	return c.err
}

// make makes a task complete for the run that holds its lease: nothing
// when its output exists (unless forced), else its requirements first,
// then the run's attempts.
func (s *Scheduler) make(ctx context.Context, t Task, force bool, ls *leased) error {
	if !force {
		done, err := s.Complete(ctx, t)
		if err != nil {
			s.finish(ctx, ls.run, StateFailed, err)
			return err
		}
		if done {
			s.finish(ctx, ls.run, StateSucceeded, nil)
			return nil
		}
	}
	// The requirements go on when the run is cancelled meanwhile: other
	// tasks may need them too.
	errc := make(chan error, 1)
	s.wg.Go(func() { errc <- s.requirements(ctx, t) })
	select {
	case err := <-errc:
		if err != nil {
			s.finish(ctx, ls.run, StateFailed, err)
			return err
		}
	case <-ls.ctx.Done():
		cause := context.Cause(ls.ctx)
		s.finish(ctx, ls.run, StateCancelled, cause)
		return cause
	}
	return s.execute(ctx, t, ls.run.Trigger, force, ls)
}

// requirements makes a task's requirements complete, in parallel; a failed
// one fails the task.
func (s *Scheduler) requirements(ctx context.Context, t Task) error {
	reqs, err := requires(s.o.Jobs, t)
	if err != nil {
		return err
	}
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			if r.task != nil {
				if err := s.ensure(ctx, *r.task, "requirement"); err != nil {
					errs[i] = fmt.Errorf("requirement %s failed: %w", r.task, err)
				}
				return
			}
			tg, err := resolve(s.o.Jobs[t.Job], *r.target, t.Params, "jobs."+t.Job+".requires")
			if err != nil {
				errs[i] = err
				return
			}
			ok, err := s.exists(ctx, tg)
			switch {
			case err != nil:
				errs[i] = err
			case !ok:
				errs[i] = fmt.Errorf("requirement %s is missing", tg)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// finish records a run's end.
func (s *Scheduler) finish(ctx context.Context, run *Run, state string, err error) {
	run.State, run.Ended = state, s.now().UTC()
	if err != nil {
		run.Error = err.Error()
	}
	if serr := s.saveRun(context.WithoutCancel(ctx), run); serr != nil {
		s.log.Error("job run not recorded", "run", run.ID, "err", serr)
	}
}

// lease is who runs a task (jobs.lease.<task id>), and the run it
// carries out.
type lease struct {
	Owner   string    `json:"owner"`
	RunID   string    `json:"run_id"`
	Task    Task      `json:"task"`
	Trigger string    `json:"trigger"`
	Force   bool      `json:"force,omitempty"`
	Started time.Time `json:"started"` // the run's creation
	Expires time.Time `json:"expires"`
}

func leaseKey(t Task) string { return "jobs.lease." + t.id() }

// run is the run a lease names when it has no record yet: a run the
// scheduler started itself (a requirement, a backfill's date) is recorded
// with its first attempt's end, so that a task costs few writes to the bus.
func (l *lease) run() *Run {
	return &Run{ID: l.RunID, Job: l.Task.Job, Params: l.Task.Params, State: StateRunning, Trigger: l.Trigger,
		Owner: l.Owner, Created: l.Started, Attempts: []Attempt{{N: 1, State: StateRunning, Owner: l.Owner, Started: l.Started}}}
}

func (s *Scheduler) readLease(ctx context.Context, t Task) (*lease, uint64, error) {
	return s.readLeaseKey(ctx, leaseKey(t))
}

func (s *Scheduler) readLeaseKey(ctx context.Context, key string) (*lease, uint64, error) {
	data, rev, err := s.o.Bus.GetState(ctx, key)
	if err != nil || data == nil {
		return nil, 0, err
	}
	var l lease
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", key, err)
	}
	return &l, rev, nil
}

func (s *Scheduler) putLease(ctx context.Context, l lease, rev uint64) (uint64, error) {
	l.Expires = s.now().Add(s.o.LeaseTTL).UTC()
	data, _ := json.Marshal(l)
	return s.o.Bus.PutState(ctx, leaseKey(l.Task), data, rev)
}

// holds tells whether this process holds a task's lease: a lease of its
// member name that it does not hold is from before a restart.
func (s *Scheduler) holds(t Task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.held[leaseKey(t)]
	return ok
}

// takeLease takes a task's lease for a run: when free, expired, or this
// member's from before a restart. It returns the lease's revision and the
// lease it replaced (of a dead run, to go on with), or ErrRunning.
func (s *Scheduler) takeLease(ctx context.Context, l lease) (uint64, *lease, error) {
	var prev *lease
	var rev uint64 // first try to create it: a task's lease is mostly free
	for range 10 {
		nrev, err := s.putLease(ctx, l, rev)
		if err == nil {
			s.mu.Lock()
			s.held[leaseKey(l.Task)] = l.RunID
			s.mu.Unlock()
			return nrev, prev, nil
		}
		if !errors.Is(err, bus.ErrConflict) {
			return 0, nil, err
		}
		prev, rev, err = s.readLease(ctx, l.Task)
		if err != nil {
			return 0, nil, err
		}
		if prev != nil && s.now().Before(prev.Expires) && (prev.Owner != s.o.Member || s.holds(prev.Task)) {
			return 0, nil, fmt.Errorf("%s: %w (run %s in %s)", l.Task, ErrRunning, prev.RunID, prev.Owner)
		}
	}
	return 0, nil, fmt.Errorf("%s: %w", l.Task, ErrRunning)
}

// leased is a task's lease this process holds for a run, renewed until
// released.
type leased struct {
	run *Run
	// record: the run has a record, or must get one even when nothing
	// runs. A run the scheduler starts itself (a requirement, a backfill's
	// date) gets one when its first attempt ends: a task costs three writes
	// to the bus (lease, record, lease handed back).
	record bool
	l      lease
	rev    uint64 // under s.mu
	// ctx ends when the lease is lost, the run is cancelled, or released.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	renewed chan struct{}
}

// lead takes a task's lease for run and holds it until release, renewing
// it; a cancel asked through the run's record, or a lost lease, ends
// ls.ctx. A run the lease had whose process died (it stopped renewing it)
// is taken over: ls.run is that run, to go on with, and run, when
// recorded, ends as cancelled. Another holder is ErrRunning.
func (s *Scheduler) lead(ctx context.Context, t Task, force bool, run *Run, record bool) (*leased, error) {
	l := lease{Owner: s.o.Member, RunID: run.ID, Task: t, Trigger: run.Trigger, Force: force, Started: run.Created}
	rev, prev, err := s.takeLease(ctx, l)
	if err != nil {
		return nil, err
	}
	ls := &leased{run: run, record: record, l: l, rev: rev, renewed: make(chan struct{})}
	ls.ctx, ls.cancel = context.WithCancelCause(ctx)
	if prev != nil && prev.RunID != run.ID {
		r, err := s.runs.get(ctx, prev.RunID)
		if errors.Is(err, ErrNoRun) {
			r, err = prev.run(), nil
		}
		if err == nil && r.State != StateSucceeded && r.State != StateFailed && r.State != StateCancelled {
			if record {
				s.finish(ctx, run, StateCancelled, fmt.Errorf("run %s of the same task went on instead", r.ID))
			}
			s.log.Warn("job run taken over from a process that stopped renewing its lease", "run", r.ID, "task", t.String(), "from", r.Owner)
			r.Owner = s.o.Member
			for i := range r.Attempts {
				if a := &r.Attempts[i]; a.State == StateRunning {
					a.State, a.Ended = StateDead, s.now().UTC()
					a.Error = fmt.Sprintf("process %s stopped renewing its lease (it died or lost the bus)", a.Owner)
				}
			}
			ls.run, ls.record = r, true
			// The lease now names the run.
			ls.l.RunID, ls.l.Trigger, ls.l.Started = r.ID, r.Trigger, r.Created
			if ls.rev, err = s.putLease(ctx, ls.l, ls.rev); err != nil {
				close(ls.renewed)
				s.release(ls)
				return nil, err
			}
		}
	}
	s.mu.Lock()
	s.held[leaseKey(t)] = ls.run.ID
	s.active[ls.run.ID] = ls.cancel
	s.mu.Unlock()
	go func() {
		defer close(ls.renewed)
		tick := time.NewTicker(s.o.LeaseTTL / 3)
		defer tick.Stop()
		for {
			select {
			case <-ls.ctx.Done():
				return
			case <-tick.C:
			}
			s.mu.Lock()
			rev := ls.rev
			s.mu.Unlock()
			nrev, err := s.putLease(ls.ctx, ls.l, rev)
			if err != nil {
				if ls.ctx.Err() == nil {
					ls.cancel(fmt.Errorf("lost the lease: %w", err))
				}
				return
			}
			s.mu.Lock()
			ls.rev = nrev
			s.mu.Unlock()
			if r, err := s.runs.get(ls.ctx, ls.run.ID); err == nil && r.Cancel {
				ls.cancel(errors.New("cancelled"))
				return
			}
		}
	}()
	return ls, nil
}

// release stops renewing a lease and hands it back, so that another
// process need not wait for it to expire.
func (s *Scheduler) release(ls *leased) {
	ls.cancel(nil)
	<-ls.renewed
	key := leaseKey(ls.l.Task)
	s.mu.Lock()
	delete(s.active, ls.run.ID)
	rev := ls.rev
	s.mu.Unlock()
	_ = s.o.Bus.DeleteState(context.WithoutCancel(ls.ctx), key, rev)
	s.mu.Lock()
	if s.held[key] == ls.run.ID { // else another run took it meanwhile
		delete(s.held, key)
	}
	s.mu.Unlock()
}

// execute runs a task's attempts under its lease: ls, or one it takes
// (waiting while another process holds it) for a run of its own.
func (s *Scheduler) execute(ctx context.Context, t Task, trigger string, force bool, ls *leased) error {
	j := s.o.Jobs[t.Job]
	free, err := s.acquire(ctx, j, t.Job)
	if err != nil {
		if ls != nil {
			s.finish(ctx, ls.run, StateCancelled, err)
		}
		return err
	}
	defer func() { free() }()
	if ls == nil {
		run := s.newRun(t, trigger)
		for {
			ls, err = s.lead(ctx, t, force, run, false)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrRunning) {
				return err
			}
			// Another process runs the task; then it may be complete.
			// Meanwhile the slot goes to other tasks.
			free()
			free = func() {}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			if !force {
				if complete, err := s.Complete(ctx, t); err == nil && complete {
					return nil
				}
			}
			if free, err = s.acquire(ctx, j, t.Job); err != nil {
				free = func() {}
				return err
			}
		}
		defer s.release(ls)
	}
	run := ls.run
	done := func() error {
		if ls.record {
			s.finish(ctx, run, StateSucceeded, nil)
		}
		return nil
	}
	out, err := s.output(t)
	if err != nil {
		s.finish(ctx, run, StateFailed, err)
		return err
	}
	if !force {
		if complete, err := s.Complete(ctx, t); err != nil {
			return err
		} else if complete {
			return done()
		}
	}
	if off, err := s.Disabled(ctx, t.Job); err != nil {
		return err
	} else if off != "" {
		err := fmt.Errorf("job %s is %w: %s", t.Job, ErrDisabled, off)
		s.finish(ctx, run, StateFailed, err)
		return err
	}
	rctx := ls.ctx
	if cause := context.Cause(rctx); cause != nil {
		s.finish(ctx, run, StateCancelled, cause)
		return cause
	}
	run.Owner, run.State = s.o.Member, StateRunning
	maxAttempts := j.Retries + 1
	for {
		n := len(run.Attempts) + 1
		att := Attempt{N: n, State: StateRunning, Owner: s.o.Member, Started: s.now().UTC()}
		run.Attempts = append(run.Attempts, att)
		run.State = StateRunning
		if ls.record {
			if err := s.saveRun(ctx, run); err != nil {
				return err
			}
		}
		actx, acancel := context.WithTimeoutCause(rctx, j.Timeout.D(), fmt.Errorf("timed out after %s", j.Timeout))
		var logBuf bytes.Buffer
		err := s.body(actx, run, j, out, &logBuf)
		if err == nil && !out.Target.IsZero() {
			if ok, cerr := s.exists(actx, out); cerr != nil {
				err = cerr
			} else if !ok {
				err = fmt.Errorf("the run ended but its output (%s) does not exist", out)
			}
		}
		if err != nil && actx.Err() != nil {
			err = fmt.Errorf("%w: %v", err, context.Cause(actx))
		}
		acancel()
		a := &run.Attempts[len(run.Attempts)-1]
		a.Ended, a.Log = s.now().UTC(), logBuf.String()
		if err == nil {
			a.State = StateSucceeded
			s.finish(ctx, run, StateSucceeded, nil)
			s.log.Info("job run succeeded", "task", t.String(), "run", run.ID, "attempt", n)
			return nil
		}
		a.State, a.Error = StateFailed, err.Error()
		if cause := context.Cause(rctx); cause != nil {
			a.State = StateCancelled
			s.finish(ctx, run, StateCancelled, cause)
			return cause
		}
		if n >= maxAttempts {
			s.finish(ctx, run, StateFailed, err)
			s.failed(ctx, t.Job, j)
			return err
		}
		wait := min(j.RetryDelay.D()<<(n-1), time.Hour)
		a.Backoff = wait.String()
		run.State = StateRetrying
		if err := s.saveRun(ctx, run); err != nil {
			return err
		}
		ls.record = true
		s.log.Warn("job run attempt failed; retrying", "task", t.String(), "run", run.ID, "attempt", n, "in", wait, "err", err)
		select {
		case <-rctx.Done():
			cause := context.Cause(rctx)
			s.finish(ctx, run, StateCancelled, cause)
			return cause
		case <-time.After(wait):
		}
	}
}

// saveRun saves a run this process owns; a record another writer changed
// meanwhile (a cancel request) is merged: the request is kept.
func (s *Scheduler) saveRun(ctx context.Context, run *Run) error {
	err := s.runs.save(ctx, run)
	if !errors.Is(err, bus.ErrConflict) {
		return err
	}
	stored, gerr := s.runs.get(ctx, run.ID)
	if gerr != nil {
		return gerr
	}
	if stored.Owner != run.Owner {
		// Another process took the run over (this one's lease expired):
		// its record is the run's now.
		return fmt.Errorf("run %s: %w: process %s took it over", run.ID, errLostRun, stored.Owner)
	}
	run.rev = stored.rev
	run.Cancel = run.Cancel || stored.Cancel
	return s.runs.save(ctx, run)
}

// acquire takes a slot of the process, one of the job and its resources.
func (s *Scheduler) acquire(ctx context.Context, j config.Job, name string) (func(), error) {
	s.jobsMu.Lock()
	js, ok := s.jobSem[name]
	if !ok {
		js = make(chan struct{}, max(j.Concurrency, 1))
		s.jobSem[name] = js
	}
	s.jobsMu.Unlock()
	select {
	case js <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		<-js
		return nil, ctx.Err()
	}
	s.resMu.Lock()
	for !s.enough(j.Resources) {
		if ctx.Err() != nil {
			s.resMu.Unlock()
			<-s.slots
			<-js
			return nil, ctx.Err()
		}
		s.resCond.Wait()
	}
	for r, n := range j.Resources {
		s.resFree[r] -= n
	}
	s.resMu.Unlock()
	return func() {
		s.resMu.Lock()
		for r, n := range j.Resources {
			s.resFree[r] += n
		}
		s.resCond.Broadcast()
		s.resMu.Unlock()
		<-s.slots
		<-js
	}, nil
}

func (s *Scheduler) enough(need map[string]int) bool {
	for r, n := range need {
		if s.resFree[r] < n {
			return false
		}
	}
	return true
}

// disabled is a job's disabled record (jobs.disabled.<job>).
type disabled struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
}

// Disabled returns why a job is disabled ("" when it is not).
func (s *Scheduler) Disabled(ctx context.Context, job string) (string, error) {
	data, _, err := s.o.Bus.GetState(ctx, "jobs.disabled."+job)
	if err != nil || data == nil {
		return "", err
	}
	var d disabled
	if err := json.Unmarshal(data, &d); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (since %s)", d.Reason, d.Since.Format(time.RFC3339)), nil
}

// Enable clears a job's disabled state and its failures.
func (s *Scheduler) Enable(ctx context.Context, job string) error {
	if _, ok := s.o.Jobs[job]; !ok {
		return fmt.Errorf("no job %q", job)
	}
	if err := s.o.Bus.DeleteState(ctx, "jobs.disabled."+job, 0); err != nil {
		return err
	}
	return s.o.Bus.DeleteState(ctx, "jobs.failures."+job, 0)
}

// failed records a failed run; disable_after of them within
// disable_window disable the job (Luigi's disable window).
func (s *Scheduler) failed(ctx context.Context, job string, j config.Job) {
	ctx = context.WithoutCancel(ctx)
	key := "jobs.failures." + job
	for range 10 {
		data, rev, err := s.o.Bus.GetState(ctx, key)
		if err != nil {
			return
		}
		var times []time.Time
		if data != nil {
			json.Unmarshal(data, &times)
		}
		now := s.now().UTC()
		times = slices.DeleteFunc(append(times, now), func(t time.Time) bool { return now.Sub(t) > j.DisableWindow.D() })
		data, _ = json.Marshal(times)
		if _, err := s.o.Bus.PutState(ctx, key, data, rev); errors.Is(err, bus.ErrConflict) {
			continue
		}
		if len(times) >= j.DisableAfter {
			d, _ := json.Marshal(disabled{Since: now, Reason: fmt.Sprintf("%d failed runs within %s", len(times), j.DisableWindow)})
			if _, err := s.o.Bus.PutState(ctx, "jobs.disabled."+job, d, 0); err == nil {
				s.log.Error("job disabled after repeated failures", "job", job, "failures", len(times), "window", j.DisableWindow)
			}
		}
		return
	}
}

// Cancel stops a run: at once when this process runs it, else through its
// record, at the owner's next lease renewal.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*Run, error) {
	s.mu.Lock()
	cancel, ok := s.active[id]
	s.mu.Unlock()
	ask := func(r *Run) error {
		if r.State != StateRunning && r.State != StateRetrying {
			return fmt.Errorf("run %s is %s", id, r.State)
		}
		r.Cancel = true
		return nil
	}
	r, err := s.runs.update(ctx, id, ask)
	if errors.Is(err, ErrNoRun) {
		// A run in its first attempt without a record yet: the record is
		// made now, with the request.
		u, uerr := s.unrecorded(ctx, "")
		if uerr != nil {
			return nil, uerr
		}
		if r = u[id]; r == nil {
			return nil, err
		}
		r.Cancel = true
		if err = s.runs.save(ctx, r); errors.Is(err, bus.ErrConflict) {
			r, err = s.runs.update(ctx, id, ask)
		}
	}
	if err != nil {
		return r, err
	}
	if ok {
		cancel(errors.New("cancelled"))
	}
	return r, nil
}

// Run gets a run: its record, or the lease of a run without one yet.
func (s *Scheduler) Run(ctx context.Context, id string) (*Run, error) {
	r, err := s.runs.get(ctx, id)
	if !errors.Is(err, ErrNoRun) {
		return r, err
	}
	u, uerr := s.unrecorded(ctx, "")
	if uerr != nil {
		return nil, uerr
	}
	if r := u[id]; r != nil {
		return r, nil
	}
	return nil, err
}

// Runs lists runs, newest first (job "": all; limit 0: all), those that
// have no record yet included.
func (s *Scheduler) Runs(ctx context.Context, job string, limit int) ([]*Run, error) {
	out, err := s.runs.list(ctx, job, limit)
	if err != nil {
		return nil, err
	}
	u, err := s.unrecorded(ctx, job)
	if err != nil || len(u) == 0 {
		return out, err
	}
	out = slices.AppendSeq(out, maps.Values(u))
	slices.SortFunc(out, func(a, b *Run) int { return strings.Compare(b.ID, a.ID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// unrecorded are the runs that leases name and that have no record yet
// (of job, or of every job when ""), by id.
func (s *Scheduler) unrecorded(ctx context.Context, job string) (map[string]*Run, error) {
	keys, err := s.o.Bus.StateKeys(ctx, "jobs.lease")
	if err != nil {
		return nil, err
	}
	out := map[string]*Run{}
	for _, k := range keys {
		l, _, err := s.readLeaseKey(ctx, k)
		if err != nil {
			return nil, err
		}
		if l == nil || l.RunID == "" || (job != "" && l.Task.Job != job) {
			continue
		}
		data, _, err := s.o.Bus.GetState(ctx, runKey(l.RunID))
		if err != nil {
			return nil, err
		}
		if data == nil {
			out[l.RunID] = l.run()
		}
	}
	return out, nil
}

// Loop runs the clock (scheduled jobs) and takes over the runs of dead
// processes until ctx ends.
func (s *Scheduler) Loop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastWatch := time.Time{}
	for {
		s.clock(ctx)
		if time.Since(lastWatch) > s.o.LeaseTTL/3 {
			s.watch(ctx)
			lastWatch = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// clock starts the runs of scheduled jobs whose time came: each interval
// once across the processes (the clock record's revision decides), with
// the interval's first day as the date. Intervals missed while sluice was
// down run on start, up to 100 of them.
func (s *Scheduler) clock(ctx context.Context) {
	for _, name := range slices.Sorted(maps.Keys(s.o.Jobs)) {
		j := s.o.Jobs[name]
		if j.Schedule == "" {
			continue
		}
		sched, err := config.ParseSchedule(j.Schedule)
		if err != nil {
			continue
		}
		key := "jobs.clock." + name
		data, rev, err := s.o.Bus.GetState(ctx, key)
		if err != nil {
			return
		}
		now := s.now().UTC()
		var last time.Time
		if data == nil || json.Unmarshal(data, &last) != nil {
			b, _ := json.Marshal(now)
			s.o.Bus.PutState(ctx, key, b, rev)
			continue
		}
		for range 100 {
			next := sched.Next(last)
			if next.After(now) {
				break
			}
			b, _ := json.Marshal(next)
			nrev, err := s.o.Bus.PutState(ctx, key, b, rev)
			if err != nil {
				break // another process fired it
			}
			rev = nrev
			// The interval's start: its day, or its instant.
			t := Task{Job: name, Params: map[string]string{}}
			for p, typ := range j.Params {
				switch typ {
				case "date":
					t.Params[p] = last.Format(time.DateOnly)
				case "time":
					t.Params[p] = last.UTC().Format(time.RFC3339)
				}
			}
			last = next
			s.wg.Go(func() {
				if _, err := s.Submit(s.base, t, SubmitOptions{Trigger: "schedule"}); err != nil && !errors.Is(err, ErrComplete) {
					s.log.Warn("scheduled job not started", "task", t.String(), "err", err)
				}
			})
		}
	}
}

// watch finds leases that expired (their process died) and goes on with
// their runs.
func (s *Scheduler) watch(ctx context.Context) {
	keys, err := s.o.Bus.StateKeys(ctx, "jobs.lease")
	if err != nil {
		return
	}
	for _, k := range keys {
		data, _, err := s.o.Bus.GetState(ctx, k)
		if err != nil || data == nil {
			continue
		}
		var l lease
		if json.Unmarshal(data, &l) != nil {
			continue
		}
		if s.holds(l.Task) || (s.now().Before(l.Expires) && l.Owner != s.o.Member) {
			continue
		}
		if _, ok := s.o.Jobs[l.Task.Job]; !ok {
			continue
		}
		// The lease first, then the output's check: a dead run whose
		// output exists is recorded as succeeded, and its lease removed.
		s.wg.Go(func() {
			ls, err := s.lead(s.base, l.Task, l.Force, s.newRun(l.Task, l.Trigger), false)
			if err != nil {
				if !errors.Is(err, ErrRunning) {
					s.log.Warn("job run of a dead process not taken over", "task", l.Task.String(), "err", err)
				}
				return
			}
			defer s.release(ls)
			if !ls.record {
				return // its run had ended: only the lease was left
			}
			if err := s.make(s.base, l.Task, l.Force, ls); err != nil {
				s.log.Warn("job run of a dead process failed", "task", l.Task.String(), "run", ls.run.ID, "err", err)
			}
		})
	}
}

// JobStatus is a job's state for `sluice jobs list` and the API.
type JobStatus struct {
	Name     string   `json:"name"`
	Schedule string   `json:"schedule,omitempty"`
	Params   []string `json:"params,omitempty"`
	Requires []string `json:"requires,omitempty"`
	Output   string   `json:"output,omitempty"`
	Disabled string   `json:"disabled,omitempty"`
	Last     *Run     `json:"last,omitempty"`
}

// Status describes every job with its last run.
func (s *Scheduler) Status(ctx context.Context) ([]JobStatus, error) {
	all, err := s.Runs(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	var out []JobStatus
	for _, name := range slices.Sorted(maps.Keys(s.o.Jobs)) {
		j := s.o.Jobs[name]
		st := JobStatus{Name: name, Schedule: j.Schedule, Output: j.Output.String()}
		for _, p := range slices.Sorted(maps.Keys(j.Params)) {
			st.Params = append(st.Params, p+" "+j.Params[p])
		}
		for _, r := range j.Requires {
			if r.Job != "" {
				st.Requires = append(st.Requires, r.Job)
			} else {
				st.Requires = append(st.Requires, r.Target().String())
			}
		}
		if st.Disabled, err = s.Disabled(ctx, name); err != nil {
			return nil, err
		}
		for _, r := range all {
			if r.Job == name {
				st.Last = r
				break
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// ParseParams reads k=v pairs.
func ParseParams(kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("parameter %q is not name=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
