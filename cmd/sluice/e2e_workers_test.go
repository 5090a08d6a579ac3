package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/internal/natstest"
)

// Two `sluice up` processes on one external NATS share a pipeline's four
// workers (docs/pipelines.md, "Several processes"), fed through both
// collectors. B is killed with SIGKILL mid-stream: after its leases expire,
// A runs all four workers from their checkpoints; B restarts on the same
// data dir and takes its share back. Killed and restarted at once, B takes
// its own leases back before A could. Every acknowledged event is in the
// pipeline's lake table exactly once, transformed, in both processes'
// lakes.
func TestPipelineWorkersAcrossProcesses(t *testing.T) {
	nats := natstest.Start(t)
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(cfgFile, fmt.Appendf(nil, `
bus: {url: %q}
http: {max_body: 524288} # half the server's default max_payload
lake: {flush_interval: 1s}
pipelines:
  copy:
    from: events
    workers: 4
    key: user_id
    steps:
      - set: {doubled: 'n * 2'}
    to: {lake: copied}
`, nats.URL()), 0o644)

	dataA, dataB := t.TempDir(), t.TempDir()
	collA, collB := freePort(t), freePort(t)
	a := startSluice(t, dataA, collA, freePort(t), "-c", cfgFile)
	defer a.cmd.Process.Kill() // after a failure; a no-op once stopped
	b := startSluice(t, dataB, collB, freePort(t), "-c", cfgFile)
	defer func() { b.cmd.Process.Kill() }()
	memberA, memberB := memberOf(t, dataA), memberOf(t, dataB)

	state, err := bus.Open(t.Context(), bus.Options{URL: nats.URL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open the bus at %s: %v", nats.URL(), err)
	}
	defer state.Close()
	copyLeases := func() []lease { return leases(t, state, "copy", 4) }
	shared := func() bool { h := held(copyLeases()); return h[memberA] == 2 && h[memberB] == 2 }
	waitUntil(t, 30*time.Second, "A and B to hold two workers each", shared, a, b)

	toA := startSenders(collA, "a", 2, 10)
	toB := startSenders(collB, "b", 2, 10)
	defer toA.abort()
	defer toB.abort()
	waitUntil(t, 30*time.Second, "both processes' workers to read events", func() bool {
		return eventsIn(a, "copy") > 0 && eventsIn(b, "copy") > 0
	}, a, b)
	time.Sleep(2 * time.Second)

	inB := eventsIn(b, "copy")
	b.kill(t)
	logWorkers(t, "B, killed", b)
	killed := time.Now()
	t.Logf("kill -9 B after %d+%d acknowledged events; B's workers had read %.0f", toA.acked.Load(), toB.acked.Load(), inB)
	waitUntil(t, 30*time.Second, "A to take over B's workers", func() bool { return held(copyLeases())[memberA] == 4 }, a)
	t.Logf("A runs all 4 workers %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	// An event of every user, while B is down: those of B's workers reach
	// the lake only through A.
	var marks bytes.Buffer
	for u := range users {
		marks.WriteString(tick(fmt.Sprintf("takeover-u%d", u), u, u, 0))
	}
	if ok, err := postCtx(t.Context(), &http.Client{Timeout: 10 * time.Second}, a.collector, marks.Bytes()); !ok || err != nil {
		t.Fatalf("post to A: %v %v", ok, err)
	}
	waitSQL(t, a.data, "SELECT count(*) FROM copied WHERE event_id LIKE 'takeover-%'", fmt.Sprintf("[[%d]]", users))

	restartB := func() {
		b = startSluice(t, dataB, collB, strings.TrimPrefix(b.api, "http://"), "-c", cfgFile)
		if got := memberOf(t, dataB); got != memberB {
			t.Fatalf("B came back as member %q, was %q", got, memberB)
		}
	}
	restartB()
	waitUntil(t, 30*time.Second, "the restarted B to take two workers back", shared, a, b)
	waitUntil(t, 30*time.Second, "the restarted B's workers to read events", func() bool { return eventsIn(b, "copy") > 0 }, a, b)
	time.Sleep(2 * time.Second)

	b.kill(t)
	killed = time.Now()
	logWorkers(t, "B restarted, killed again", b)
	before := copyLeases()
	restartB()
	up := time.Since(killed)
	mostA := 0
	waitUntil(t, 30*time.Second, "B to run its workers again after a quick restart", func() bool {
		ls := copyLeases()
		h := held(ls)
		mostA = max(mostA, h[memberA])
		renewed := 0 // by the new process: the killed one renews nothing
		for i, l := range ls {
			if l.Owner == memberB && l.rev != before[i].rev {
				renewed++
			}
		}
		return h[memberA] == 2 && renewed == 2
	}, a, b)
	t.Logf("kill -9 B and restart: up again in %s, holding its two workers %s after the kill; A held at most %d meanwhile",
		up.Round(100*time.Millisecond), time.Since(killed).Round(100*time.Millisecond), mostA)
	// Its leases (10 s) expire 7.5 s after the kill at the earliest.
	if up < 5*time.Second && mostA > 2 {
		t.Errorf("B was up %s after the kill, but A took over its workers meanwhile", up.Round(100*time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	nA, errA := toA.stop()
	nB, errB := toB.stop()
	if errA != nil || errB != nil {
		t.Fatalf("a client got an answer it must not retry: %v %v", errA, errB)
	}
	want := nA + nB + users
	sent := time.Now()
	t.Logf("%d events acknowledged (%d+%d through A, %d through B)", want, nA, users, nB)

	// Each process archives the whole stream to its own lake.
	for name, p := range map[string]*proc{"A": a, "B": b} {
		waitSQL(t, p.data, "SELECT count(*), count(DISTINCT event_id) FROM events", fmt.Sprintf("[[%d %d]]", want, want))
		waitSQL(t, p.data, "SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE doubled = 2 * n) FROM copied",
			fmt.Sprintf("[[%d %d %d]]", want, want, want))
		if got := fmt.Sprint(sql(t, p.data, "SELECT count(*) FROM copied JOIN events USING (event_id) WHERE copied.n = events.n")); got != fmt.Sprintf("[[%d]]", want) {
			t.Errorf("%s: rows of copied that match an event: %s, want %d", name, got, want)
		}
		t.Logf("%s: events and copied hold all %d acknowledged events once, %s after the last", name, want, time.Since(sent).Round(100*time.Millisecond))
	}
	a.stop(t)
	b.stop(t)
	logWorkers(t, "A", a)
	logWorkers(t, "B after the second restart", b)
}

// logWorkers logs what a process that ended said about its workers, and
// its warnings and errors.
func logWorkers(t *testing.T, name string, p *proc) {
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, "pipeline worker") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Logf("%s: %s", name, l)
		}
	}
}

// memberOf is the name under which the process on data shares workers.
func memberOf(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "member"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// lease is a pipeline worker's lease in the bus's state bucket.
type lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
	rev     uint64
}

// leases reads the leases on a pipeline's workers (zero: none).
func leases(t *testing.T, b *bus.Bus, pipeline string, workers int) []lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out := make([]lease, workers)
	for i := range out {
		data, rev, err := b.GetState(ctx, fmt.Sprintf("pipeline.%s.lease.%d", pipeline, i))
		if err != nil {
			t.Fatalf("lease %d of %s: %v", i, pipeline, err)
		}
		if data == nil {
			continue
		}
		if err := json.Unmarshal(data, &out[i]); err != nil {
			t.Fatalf("lease %d of %s: %v: %s", i, pipeline, err, data)
		}
		out[i].rev = rev
	}
	return out
}

// held counts the unexpired leases per member.
func held(ls []lease) map[string]int {
	n := map[string]int{}
	for _, l := range ls {
		if time.Now().Before(l.Expires) {
			n[l.Owner]++
		}
	}
	return n
}

// eventsIn is sluice_pipeline_events_in_total of a pipeline on p's
// /metrics: the events its workers in that process read as their own.
func eventsIn(p *proc, pipeline string) float64 {
	prefix := fmt.Sprintf("sluice_pipeline_events_in_total{pipeline=%q} ", pipeline)
	for _, l := range strings.Split(p.metrics(), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// waitUntil polls cond; on timeout it fails with the processes' metrics.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool, procs ...*proc) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			var m strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&m, "\n%s:\n%s", p.api, p.metrics())
			}
			t.Fatalf("waited %s for %s%s", d, what, m.String())
		}
	}
}

// senders post events to a collector from several clients, each batch
// retried until acknowledged, as a tracker would.
type senders struct {
	acked    atomic.Int64
	stopping chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	failed   atomic.Value
}

// users is how many users the events spread over: enough that every
// worker has some.
const users = 16

// tick is an event: user u%d, number n, at an event time from n and i.
func tick(id string, user, n, i int) string {
	return fmt.Sprintf(`{"event_id":%q,"event":"tick","event_time":"2026-11-25T10:%02d:%02d.%03dZ","user_id":"u%d","n":%d}`+"\n",
		id, n/60%60, n%60, i%1000, user, n)
}

// startSenders runs n clients posting batches of size events, about 20 a
// second each; event ids are distinct per prefix, client and batch.
func startSenders(collector, prefix string, n, size int) *senders {
	ctx, cancel := context.WithCancel(context.Background())
	s := &senders{stopping: make(chan struct{}), cancel: cancel}
	for c := range n {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-s.stopping:
					return
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
				var body bytes.Buffer
				for j := range size {
					k := i*size + j
					body.WriteString(tick(fmt.Sprintf("%s-c%d-%d-%d", prefix, c, i, j), k%users, k, i))
				}
				for {
					ok, err := postCtx(ctx, client, "http://"+collector, body.Bytes())
					if ctx.Err() != nil {
						return
					}
					if err != nil && !isConnErr(err) {
						s.failed.Store(err)
						return
					}
					if ok {
						s.acked.Add(int64(size))
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return s
}

// stop ends the clients once their batches in hand are acknowledged, and
// returns how many events were, or the first answer that must not be
// retried.
func (s *senders) stop() (int64, error) {
	close(s.stopping)
	s.wg.Wait()
	if err, ok := s.failed.Load().(error); ok {
		return 0, err
	}
	return s.acked.Load(), nil
}

// abort ends the clients at once, acknowledged or not: after a failure.
func (s *senders) abort() {
	s.cancel()
	s.wg.Wait()
}

// postCtx is postOnce, given up when ctx ends.
func postCtx(ctx context.Context, client *http.Client, url string, body []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusServiceUnavailable:
		return false, nil
	}
	return false, fmt.Errorf("status %d: %s", resp.StatusCode, msg)
}
