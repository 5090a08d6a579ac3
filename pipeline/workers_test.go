package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/pipeline"
)

// runGroup runs the pipeline p of yamlText as member; stop ends it cleanly
// (its workers save and hand back their leases).
func runGroup(t *testing.T, b *bus.Bus, member, yamlText string) (g *pipeline.Group, stop func()) {
	t.Helper()
	c, err := config.Parse("sluice.yaml", []byte("pipelines:\n  p:\n"+yamlText))
	if err != nil {
		t.Fatal(err)
	}
	g, err = pipeline.NewGroup(pipeline.Options{Name: "p", Config: c.Pipelines["p"], Bus: b, Logger: testLogger(t),
		MaxBatch: 3, Member: member, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return g, stop
}

// publishEvents publishes msgs messages of 5 events each to stream events:
// users u0…u(users-1) in turn, n counting up from from.
func publishEvents(t *testing.T, b *bus.Bus, from, msgs, users int) int {
	t.Helper()
	n := from
	for range msgs {
		var buf bytes.Buffer
		for range 5 {
			fmt.Fprintf(&buf, `{"user":"u%d","n":%d}`+"\n", n%users, n)
			n++
		}
		if _, err := b.Publish(t.Context(), "events", buf.Bytes(), ""); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// readOut reads stream out until it holds want events (or 20 s pass), then
// a moment more, and returns them in stream order.
func readOut(t *testing.T, b *bus.Bus, want int) []map[string]any {
	t.Helper()
	var out []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out = out[:0]
		info, err := b.Info(t.Context(), "out")
		if err == nil && info.LastSeq > 0 {
			r, err := b.ReadFrom(t.Context(), "out", 1)
			if err != nil {
				t.Fatal(err)
			}
			for m := range r.C() {
				sc := bufio.NewScanner(bytes.NewReader(m.Data))
				for sc.Scan() {
					var ev map[string]any
					if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
						t.Fatal(err)
					}
					out = append(out, ev)
				}
				if m.Seq == info.LastSeq {
					break
				}
			}
			r.Close()
		}
		if len(out) >= want {
			time.Sleep(300 * time.Millisecond)
			if info2, _ := b.Info(t.Context(), "out"); info2.LastSeq == info.LastSeq {
				return out
			}
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("out has %d events, want %d", len(out), want)
	return nil
}

// checkOnceInOrder checks that out holds events 0…n-1 once each, doubled,
// and each user's in the order they were published.
func checkOnceInOrder(t *testing.T, out []map[string]any, n int) {
	t.Helper()
	seen := map[int]bool{}
	last := map[string]int{}
	for _, ev := range out {
		k := int(ev["n"].(float64))
		if seen[k] {
			t.Fatalf("event %d written twice", k)
		}
		seen[k] = true
		if ev["n2"].(float64) != float64(2*k) {
			t.Fatalf("event %d: n2 = %v", k, ev["n2"])
		}
		u := ev["user"].(string)
		if l, ok := last[u]; ok && k < l {
			t.Fatalf("user %s: event %d after %d", u, k, l)
		}
		last[u] = k
	}
	if len(seen) != n {
		t.Fatalf("%d distinct events, want %d", len(seen), n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const workersYAML = `    from: events
    workers: 4
    key: user
    steps:
      - set: {n2: 'n * 2'}
    to: {stream: out}
`

// Two members share a pipeline's four workers; when the second comes and
// goes, the work moves without an event lost, doubled or out of order for
// its user.
func TestWorkersShareAPipeline(t *testing.T) {
	b := testBus(t)
	ctx := t.Context()
	for _, s := range []string{"events", "out"} {
		if err := b.EnsureStream(ctx, s, bus.StreamConfig{Retention: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	n := publishEvents(t, b, 0, 50, 7)
	ga, _ := runGroup(t, b, "a", workersYAML)
	waitFor(t, "member a to run all 4 workers", func() bool { return len(ga.Running()) == 4 })
	n = publishEvents(t, b, n, 50, 7)

	gb, stopB := runGroup(t, b, "b", workersYAML)
	waitFor(t, "the workers to be shared 2 and 2", func() bool { return len(ga.Running()) == 2 && len(gb.Running()) == 2 })
	if a, bb := ga.Running(), gb.Running(); slices.ContainsFunc(a, func(i int) bool { return slices.Contains(bb, i) }) {
		t.Fatalf("a worker runs twice: a %v, b %v", a, bb)
	}
	n = publishEvents(t, b, n, 50, 7)
	readOut(t, b, n) // b's workers did their part
	stopB()
	waitFor(t, "member a to take all 4 back", func() bool { return len(ga.Running()) == 4 })
	n = publishEvents(t, b, n, 50, 7)
	checkOnceInOrder(t, readOut(t, b, n), n)

	// The checkpoints are per worker.
	keys, err := b.StateKeys(ctx, "pipeline.p")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if !slices.Contains(keys, fmt.Sprintf("pipeline.p.%dof4", i)) {
			t.Errorf("no checkpoint for worker %d: %v", i, keys)
		}
	}
}

// A member that died holds its leases until they expire; then the others
// take its workers over.
func TestWorkersOfADeadMemberAreTakenOver(t *testing.T) {
	b := testBus(t)
	ctx := t.Context()
	for _, s := range []string{"events", "out"} {
		if err := b.EnsureStream(ctx, s, bus.StreamConfig{Retention: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	// A member "ghost" that stopped renewing 0 and 1 a moment ago.
	exp := time.Now().Add(1500 * time.Millisecond).UTC()
	for _, k := range []string{"pipeline.p.lease.0", "pipeline.p.lease.1"} {
		data, _ := json.Marshal(map[string]any{"owner": "ghost", "expires": exp})
		if _, err := b.PutState(ctx, k, data, 0); err != nil {
			t.Fatal(err)
		}
	}
	members, _ := json.Marshal(map[string]time.Time{"ghost": exp})
	if _, err := b.PutState(ctx, "pipeline.p.members", members, 0); err != nil {
		t.Fatal(err)
	}
	n := publishEvents(t, b, 0, 40, 5)
	ga, _ := runGroup(t, b, "a", workersYAML)
	waitFor(t, "a to run the 2 free workers", func() bool { return len(ga.Running()) == 2 })
	if got := ga.Running(); !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("a runs %v, want the free ones [2 3]", got)
	}
	waitFor(t, "a to take the ghost's workers", func() bool { return len(ga.Running()) == 4 })
	checkOnceInOrder(t, readOut(t, b, n), n)
}

// Changing the number of workers of a pipeline without windows goes on
// from where the old workers were, and drops their checkpoints; a window
// pipeline refuses, as its state cannot move.
func TestWorkersChange(t *testing.T) {
	b := testBus(t)
	ctx := t.Context()
	for _, s := range []string{"events", "out"} {
		if err := b.EnsureStream(ctx, s, bus.StreamConfig{Retention: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	one := strings.Replace(workersYAML, "workers: 4", "workers: 1", 1)
	n := publishEvents(t, b, 0, 30, 3)
	_, stop := runGroup(t, b, "a", one)
	readOut(t, b, n)
	stop()
	n = publishEvents(t, b, n, 30, 3)
	ga, _ := runGroup(t, b, "a", strings.Replace(workersYAML, "workers: 4", "workers: 3", 1))
	checkOnceInOrder(t, readOut(t, b, n), n)
	waitFor(t, "the one-worker checkpoint to be dropped", func() bool {
		data, _, _ := b.GetState(ctx, "pipeline.p")
		return data == nil
	})
	if len(ga.Running()) != 3 {
		t.Fatalf("running %v", ga.Running())
	}

	// A window pipeline with checkpoints of another number of workers
	// does not start.
	if _, err := b.PutState(ctx, "pipeline.w.0of2", []byte(`{"positions":{"events":5}}`), 0); err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("sluice.yaml", []byte(`pipelines:
  w:
    from: events
    workers: 3
    steps:
      - window: {type: tumbling, size: 1m, time: t, group_by: [user], aggregates: {c: count()}}
    to: {stream: out}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{Name: "w", Config: c.Pipelines["w"], Bus: b, Logger: testLogger(t), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Run(rctx); err == nil || !strings.Contains(err.Error(), "window state cannot move between workers") {
		t.Fatalf("window pipeline with another number of workers: %v", err)
	}
}
