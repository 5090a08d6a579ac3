package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/bus"
)

// Run states.
const (
	StateRunning   = "running"
	StateRetrying  = "retrying" // waiting for the next attempt
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
	StateDead      = "dead" // an attempt whose process died (its lease expired)
)

// maxLog bounds the log kept per attempt (its end is kept).
const maxLog = 64 << 10

// Run is the durable record of one run of a task (jobs.run.<id> in the
// bus's state bucket): every attempt with its times, error and log. A run
// the scheduler starts itself (a requirement, a backfill's date) is
// recorded when its first attempt ends; until then its lease stands for
// it (Scheduler.Run and Runs show it).
type Run struct {
	ID       string            `json:"id"`
	Job      string            `json:"job"`
	Params   map[string]string `json:"params,omitempty"`
	State    string            `json:"state"`
	Trigger  string            `json:"trigger"` // api, schedule, backfill, requirement
	Owner    string            `json:"owner"`   // the process running it
	Created  time.Time         `json:"created"`
	Ended    time.Time         `json:"ended,omitzero"`
	Attempts []Attempt         `json:"attempts"`
	Error    string            `json:"error,omitempty"`
	// Cancel asks the process running it to stop it.
	Cancel bool `json:"cancel,omitempty"`
	rev    uint64
}

// Attempt is one try of a run.
type Attempt struct {
	N       int       `json:"n"`
	State   string    `json:"state"`
	Owner   string    `json:"owner"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Error   string    `json:"error,omitempty"`
	// Backoff is the wait before the next attempt, after this one failed.
	Backoff string `json:"backoff,omitempty"`
	Log     string `json:"log,omitempty"`
}

// Task is the run's task.
func (r *Run) Task() Task { return Task{Job: r.Job, Params: r.Params} }

// newRunID is time-ordered: runs list in the order they started.
func newRunID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102-150405.000000") + "-" + hex.EncodeToString(b)
}

func runKey(id string) string { return "jobs.run." + strings.ReplaceAll(id, ".", "_") }

// runs keeps run records in the bus's state bucket.
type runs struct {
	bus *bus.Bus
	mu  sync.Mutex // orders one process's writes of one record
}

// ErrNoRun is a run id that has no record.
var ErrNoRun = errors.New("no such run")

func (rs *runs) get(ctx context.Context, id string) (*Run, error) {
	data, rev, err := rs.bus.GetState(ctx, runKey(id))
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoRun, id)
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	r.rev = rev
	return &r, nil
}

// save writes a run; the revision check makes a writer that lost the run
// (another process took it over) fail instead of overwriting.
func (rs *runs) save(ctx context.Context, r *Run) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i := range r.Attempts {
		if l := r.Attempts[i].Log; len(l) > maxLog {
			r.Attempts[i].Log = "…" + l[len(l)-maxLog:]
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	rev, err := rs.bus.PutState(ctx, runKey(r.ID), data, r.rev)
	if err != nil {
		return fmt.Errorf("run %s: %w", r.ID, err)
	}
	r.rev = rev
	return nil
}

// update applies change to the stored run until it sticks (other writers
// only set Cancel, or take over a dead run).
func (rs *runs) update(ctx context.Context, id string, change func(*Run) error) (*Run, error) {
	for range 20 {
		r, err := rs.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := change(r); err != nil {
			return r, err
		}
		err = rs.save(ctx, r)
		if errors.Is(err, bus.ErrConflict) {
			continue
		}
		return r, err
	}
	return nil, fmt.Errorf("run %s: too many concurrent updates", id)
}

// list returns the runs, newest first; job "" lists every job's.
func (rs *runs) list(ctx context.Context, job string, limit int) ([]*Run, error) {
	keys, err := rs.bus.StateKeys(ctx, "jobs.run")
	if err != nil {
		return nil, err
	}
	slices.Reverse(keys)
	var out []*Run
	for _, k := range keys {
		if limit > 0 && len(out) >= limit {
			break
		}
		data, rev, err := rs.bus.GetState(ctx, k)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		var r Run
		if err := json.Unmarshal(data, &r); err != nil {
			continue
		}
		if job != "" && r.Job != job {
			continue
		}
		r.rev = rev
		out = append(out, &r)
	}
	return out, nil
}
