package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/bus"
)

// A pipeline with workers: N is split into N partitions, each a Pipeline
// with its own checkpoint (pipeline.<name>.<i>of<N>). Events go to a
// partition by a hash of the pipeline's key, or whole messages by their
// sequence number, so each window group, dedupe key and throttle key lives
// in one partition and one key's events keep their order.
//
// The partitions are shared out between the processes on one bus through
// leases in the bus's state bucket, as a Kafka consumer group shares a
// topic's partitions:
//
//   - pipeline.<name>.members: the processes running the pipeline, each with
//     the time its membership expires; each renews its own every TTL/4.
//   - pipeline.<name>.lease.<i>: who runs partition i, until when.
//
// Each process runs up to its share, ceil(N / live members), and hands back
// what it holds beyond that (stopping the worker first, so its checkpoint
// is saved); a lease not renewed within the TTL (its process died) is taken
// over by another process, which goes on from the checkpoint. A worker whose
// lease was lost stops at once, and the checkpoint's revision check stops a
// worker that did not notice in time from saving over the new owner's.
// Leases compare wall clocks: the processes' clocks must agree to well
// within the TTL.

// Group runs the partitions of one pipeline that fall to this process.
type Group struct {
	o     Options
	parts int
	ttl   time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	workers map[int]*worker
	// stopping are the workers stopped but not yet done, by partition:
	// their leases are renewed until they are done (a stop saves the
	// checkpoint, which may take a while), and the partition is not
	// started again here meanwhile.
	stopping map[int]*worker
}

// worker is a partition this process runs.
type worker struct {
	rev    uint64 // of its lease
	cancel context.CancelFunc
	done   chan struct{}
}

// lease is a partition's owner.
type lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// NewGroup checks the pipeline (building one worker) and returns the group
// that runs it.
func NewGroup(o Options) (*Group, error) {
	if _, err := New(o); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Member == "" {
		b := make([]byte, 8)
		rand.Read(b)
		o.Member = hex.EncodeToString(b)
	}
	g := &Group{o: o, parts: max(o.Config.Workers, 1), ttl: o.LeaseTTL, workers: map[int]*worker{},
		stopping: map[int]*worker{}, log: o.Logger.With("pipeline", o.Name)}
	if g.ttl <= 0 {
		g.ttl = 10 * time.Second
	}
	return g, nil
}

// Running lists the partitions this process runs now.
func (g *Group) Running() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.workers))
}

func (g *Group) base() string          { return "pipeline." + g.o.Name }
func (g *Group) membersKey() string    { return g.base() + ".members" }
func (g *Group) leaseKey(i int) string { return fmt.Sprintf("%s.lease.%d", g.base(), i) }

// Run takes, runs and renews this process's share of the partitions until
// ctx ends; then it stops its workers (each saves its checkpoint) and hands
// their leases back, so that another process takes over at once.
func (g *Group) Run(ctx context.Context) error {
	tick := time.NewTicker(g.ttl / 4)
	defer tick.Stop()
	renewCtx, stopRenewing := context.WithCancel(ctx)
	renewing := make(chan struct{})
	go func() {
		defer close(renewing)
		g.renewLoop(renewCtx)
	}()
	defer func() {
		stopRenewing()
		<-renewing
		g.leave()
	}()
	for {
		if err := g.balance(ctx); err != nil && ctx.Err() == nil {
			g.log.Error("pipeline workers: balancing failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// renewLoop renews the leases of the running workers every TTL/4 until ctx
// ends, apart from balance: a hand-back waits for its worker to stop, and
// that must not let the other leases expire under workers still running
// (another process would take them and run them too). A worker whose lease
// could not be renewed is stopped at once.
func (g *Group) renewLoop(ctx context.Context) {
	tick := time.NewTicker(g.ttl / 4)
	defer tick.Stop()
	for {
		for _, i := range g.Running() {
			if err := g.renew(ctx, g.running(i), i); err != nil && ctx.Err() == nil {
				g.log.Warn("pipeline worker lost its lease; stopping it", "worker", i, "err", err)
				g.cancel(i)
			}
		}
		g.mu.Lock()
		stopping := maps.Clone(g.stopping)
		g.mu.Unlock()
		for i, w := range stopping {
			g.renew(ctx, w, i) // a lease lost meanwhile: the worker stops anyway
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// balance renews the membership, hands back leases beyond the share, and
// takes free ones up to it.
func (g *Group) balance(ctx context.Context) error {
	live, err := g.heartbeat(ctx)
	if err != nil {
		return err
	}
	share := (g.parts + live - 1) / live
	running := g.Running()
	for len(running) > share {
		// The last ones go back: other processes take from the start of
		// their own order, which differs.
		i := running[len(running)-1]
		running = running[:len(running)-1]
		g.log.Info("pipeline worker handed to another process", "worker", i, "share", share, "members", live)
		g.stop(i, true)
	}
	if len(running) >= share {
		return nil
	}
	now := time.Now()
	for _, i := range g.order() {
		if len(g.Running()) >= share {
			break
		}
		if slices.Contains(running, i) || g.isStopping(i) {
			continue
		}
		data, rev, err := g.o.Bus.GetState(ctx, g.leaseKey(i))
		if err != nil {
			return err
		}
		var l lease
		if data != nil {
			if err := json.Unmarshal(data, &l); err != nil {
				return fmt.Errorf("lease %d: %w", i, err)
			}
			// A lease of this member's from before a restart is its own.
			if l.Owner != g.o.Member && now.Before(l.Expires) {
				continue
			}
		}
		rev, err = g.putLease(ctx, i, rev)
		if errors.Is(err, bus.ErrConflict) {
			continue // another process took it first
		}
		if err != nil {
			return err
		}
		g.start(i, rev)
	}
	return nil
}

// order is the order in which this member tries partitions: from a place
// of its own, so that processes starting together rarely race for one.
func (g *Group) order() []int {
	h := fnv.New32a()
	h.Write([]byte(g.o.Member))
	first := int(h.Sum32() % uint32(g.parts))
	out := make([]int, g.parts)
	for k := range out {
		out[k] = (first + k) % g.parts
	}
	return out
}

// heartbeat renews this member and returns how many members are live.
func (g *Group) heartbeat(ctx context.Context) (int, error) {
	for range 10 {
		data, rev, err := g.o.Bus.GetState(ctx, g.membersKey())
		if err != nil {
			return 0, err
		}
		members := map[string]time.Time{}
		if data != nil {
			if err := json.Unmarshal(data, &members); err != nil {
				return 0, fmt.Errorf("%s: %w", g.membersKey(), err)
			}
		}
		now := time.Now()
		maps.DeleteFunc(members, func(_ string, exp time.Time) bool { return now.After(exp) })
		members[g.o.Member] = now.Add(g.ttl).UTC()
		data, _ = json.Marshal(members)
		_, err = g.o.Bus.PutState(ctx, g.membersKey(), data, rev)
		if errors.Is(err, bus.ErrConflict) {
			continue // another member's heartbeat came first
		}
		if err != nil {
			return 0, err
		}
		return len(members), nil
	}
	return 0, fmt.Errorf("%s: too many concurrent updates", g.membersKey())
}

// putLease writes this member's lease on partition i over revision rev.
func (g *Group) putLease(ctx context.Context, i int, rev uint64) (uint64, error) {
	data, _ := json.Marshal(lease{Owner: g.o.Member, Expires: time.Now().Add(g.ttl).UTC()})
	return g.o.Bus.PutState(ctx, g.leaseKey(i), data, rev)
}

// running is partition i's worker, or nil.
func (g *Group) running(i int) *worker {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.workers[i]
}

// renew extends the lease of w, partition i's worker.
func (g *Group) renew(ctx context.Context, w *worker, i int) error {
	if w == nil {
		return nil
	}
	select {
	case <-w.done:
		return errors.New("the worker stopped")
	default:
	}
	rev, err := g.putLease(ctx, i, w.rev)
	if err != nil {
		return err
	}
	g.mu.Lock()
	w.rev = rev
	g.mu.Unlock()
	return nil
}

// start runs partition i until stopped; a failed worker restarts from its
// checkpoint.
func (g *Group) start(i int, rev uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{rev: rev, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.workers[i] = w
	g.mu.Unlock()
	o := g.o
	o.Partition, o.Partitions = i, g.parts
	g.log.Info("pipeline worker running", "worker", i, "of", g.parts, "member", g.o.Member)
	go func() {
		defer close(w.done)
		for {
			err := func() error {
				p, err := New(o)
				if err != nil {
					return err
				}
				return p.Run(ctx)
			}()
			if err == nil || ctx.Err() != nil {
				return
			}
			// A failure (the bus away, a checkpoint race) restarts the
			// worker from its checkpoint; a lake schema another worker
			// changed, at once.
			wait := 5 * time.Second
			if errors.Is(err, errSchemaConflict) {
				wait = 0
			}
			g.log.Error("pipeline failed; restarting from its checkpoint", "worker", i, "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// cancel tells partition i's worker to stop (it saves its checkpoint) and
// returns it, or nil when none runs; it is no longer Running, and is
// stopping until it is done.
func (g *Group) cancel(i int) *worker {
	g.mu.Lock()
	w := g.workers[i]
	delete(g.workers, i)
	if w != nil {
		g.stopping[i] = w
	}
	g.mu.Unlock()
	if w == nil {
		return nil
	}
	w.cancel()
	go func() {
		<-w.done
		g.mu.Lock()
		if g.stopping[i] == w {
			delete(g.stopping, i)
		}
		g.mu.Unlock()
	}()
	return w
}

// isStopping tells whether partition i's worker here is stopped but not
// yet done.
func (g *Group) isStopping(i int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.stopping[i]
	return ok
}

// stop stops partition i's worker and waits until it is done; when
// handBack, it then deletes its lease so that another process can take it
// now.
func (g *Group) stop(i int, handBack bool) {
	w := g.cancel(i)
	if w == nil {
		return
	}
	<-w.done
	if handBack {
		g.mu.Lock()
		rev := w.rev // renewed meanwhile, maybe
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.o.Bus.DeleteState(ctx, g.leaseKey(i), rev); err != nil {
			g.log.Warn("pipeline worker lease not handed back; it expires", "worker", i, "err", err)
		}
	}
}

// leave stops every worker, hands their leases back and leaves the members.
func (g *Group) leave() {
	for _, i := range g.Running() {
		g.stop(i, true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 10 {
		data, rev, err := g.o.Bus.GetState(ctx, g.membersKey())
		if err != nil || data == nil {
			return
		}
		members := map[string]time.Time{}
		if json.Unmarshal(data, &members) != nil {
			return
		}
		delete(members, g.o.Member)
		data, _ = json.Marshal(members)
		if _, err := g.o.Bus.PutState(ctx, g.membersKey(), data, rev); !errors.Is(err, bus.ErrConflict) {
			return
		}
	}
}

// otherCheckpoints are the pipeline's checkpoints for another number of
// workers than this one's.
func (p *Pipeline) otherCheckpoints(ctx context.Context) ([]string, error) {
	base := "pipeline." + p.o.Name
	var out []string
	if p.parts > 1 {
		data, _, err := p.o.Bus.GetState(ctx, base)
		if err != nil {
			return nil, err
		}
		if data != nil {
			out = append(out, base)
		}
	}
	keys, err := p.o.Bus.StateKeys(ctx, base)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		var i, n int
		suffix := strings.TrimPrefix(k, base+".")
		if _, err := fmt.Sscanf(suffix, "%dof%d", &i, &n); err != nil || fmt.Sprintf("%dof%d", i, n) != suffix {
			continue // a lease, the members
		}
		if n != p.parts {
			out = append(out, k)
		}
	}
	return out, nil
}

// inherit starts a worker without a checkpoint where the pipeline's
// workers were when their number changed: at the earliest of their
// positions, per stream. Messages between the earliest and the latest are
// processed again: stream outputs drop them by message id (within the
// stream's duplicate window); other outputs get them twice. Window state
// cannot move between workers, so a window pipeline refuses.
func (p *Pipeline) inherit(ctx context.Context, cp *checkpoint) error {
	others, err := p.otherCheckpoints(ctx)
	if err != nil || len(others) == 0 {
		return err
	}
	if p.win != nil {
		return fmt.Errorf("pipeline %s: its workers changed to %d, but it has checkpoints for another number (%s) and window state cannot move between workers: put workers back, or give the pipeline a new name to start it over", p.o.Name, p.parts, strings.Join(others, ", "))
	}
	first := map[string]uint64{}
	for _, k := range others {
		data, _, err := p.o.Bus.GetState(ctx, k)
		if err != nil {
			return err
		}
		if data == nil {
			continue
		}
		var o checkpoint
		if err := json.Unmarshal(data, &o); err != nil {
			return fmt.Errorf("pipeline %s: checkpoint %s: %w", p.o.Name, k, err)
		}
		for s, q := range o.Positions {
			if f, ok := first[s]; !ok || q < f {
				first[s] = q
			}
		}
	}
	maps.Copy(cp.Positions, first)
	p.others = others
	p.log.Info("pipeline workers changed; starting from the earliest position of the checkpoints before", "checkpoints", others, "positions", first)
	return nil
}

// dropOthers deletes the checkpoints of the former number of workers once
// every worker of the new number saved its own.
func (p *Pipeline) dropOthers(ctx context.Context) {
	for i := range p.parts {
		data, _, err := p.o.Bus.GetState(ctx, checkpointKey(p.o.Name, i, p.parts))
		if err != nil || data == nil {
			return // not yet
		}
	}
	for _, k := range p.others {
		if err := p.o.Bus.DeleteState(ctx, k, 0); err != nil {
			p.log.Warn("old pipeline checkpoint not deleted", "key", k, "err", err)
			return
		}
	}
	p.log.Info("pipeline: checkpoints of the former number of workers deleted", "checkpoints", p.others)
	p.others = nil
}
