package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tapProc is a running `sluice tap`.
type tapProc struct {
	cmd    *exec.Cmd
	stdout lockedBuffer
	mu     sync.Mutex
	stderr strings.Builder
	done   chan error
}

// lockedBuffer is a bytes.Buffer a test may read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTap runs `sluice tap ARGS…` and returns once it has started reading
// (it said so on stderr).
func startTap(t *testing.T, args ...string) *tapProc {
	t.Helper()
	tp := &tapProc{cmd: exec.Command(binary, append([]string{"tap"}, args...)...), done: make(chan error, 1)}
	tp.cmd.Stdout = &tp.stdout
	errPipe, err := tp.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			tp.mu.Lock()
			tp.stderr.WriteString(sc.Text() + "\n")
			tp.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "tapping ") {
				close(started)
			}
		}
		tp.done <- tp.cmd.Wait()
	}()
	select {
	case <-started:
	case err := <-tp.done:
		t.Fatalf("sluice tap exited before it started (%v):\n%s", err, tp.errors())
	case <-time.After(30 * time.Second):
		tp.cmd.Process.Kill()
		t.Fatalf("sluice tap did not start within 30s:\n%s", tp.errors())
	}
	return tp
}

func (tp *tapProc) errors() string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.stderr.String()
}

// wait waits for the tap to exit by itself and returns its exit error.
func (tp *tapProc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-tp.done:
		return err
	case <-time.After(d):
		tp.cmd.Process.Kill()
		t.Fatalf("sluice tap still running after %v; printed:\n%s\nstderr:\n%s", d, tp.stdout.String(), tp.errors())
	}
	return nil
}

func TestTapPrintsLiveEventsOfTheRunningServer(t *testing.T) {
	// Without a server, tap says how to get one.
	out, err := exec.Command(binary, "tap", "events", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no sluice server is running") || !strings.Contains(string(out), "sluice up") {
		t.Errorf("tap without a server: %v\n%s", err, out)
	}

	data := t.TempDir()
	p := startSluice(t, data, freePort(t), freePort(t))
	defer p.stop(t)

	client := &http.Client{Timeout: 10 * time.Second}
	tp := startTap(t, "events", "--data", data, "--limit", "3", "--filter", `event == "purchase" && price * qty > 20`)
	for _, body := range []string{
		`[{"event":"purchase","event_id":"a","price":2.5,"qty":10},{"event":"purchase","event_id":"b","price":2.5,"qty":4},{"event":"page_view","event_id":"c","price":100}]`,
		`{"event":"purchase","event_id":"d","price":30}`, // no qty: skipped, reported on stderr
		`{"event":"purchase","event_id":"e","price":21,"qty":1,"coupon":"XMAS"}`,
		`{"event":"purchase","event_id":"f","price":7,"qty":3}`,
		`{"event":"purchase","event_id":"g","price":8,"qty":3}`,
	} {
		if ok, err := postOnce(client, p.collector, []byte(body)); !ok || err != nil {
			t.Fatalf("post %s: %v %v", body, ok, err)
		}
	}
	if err := tp.wait(t, 30*time.Second); err != nil {
		t.Fatalf("sluice tap --limit 3: %v\n%s", err, tp.errors())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(tp.stdout.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		if _, ok := ev["_seq"].(float64); !ok {
			t.Errorf("no _seq: %s", line)
		}
		got = append(got, ev["event_id"].(string))
		if ev["event_id"] == "e" && ev["coupon"] != "XMAS" {
			t.Errorf("event e lost its fields: %s", line)
		}
	}
	if strings.Join(got, " ") != "a e f" {
		t.Errorf("tap printed %v, want a e f", got)
	}
	if !strings.Contains(tp.errors(), "the filter failed on an event") {
		t.Errorf("the filter's failure on d is not reported:\n%s", tp.errors())
	}

	// --from beginning replays; Ctrl-C ends a tap cleanly.
	tp = startTap(t, "events", "--data", data, "--from", "beginning", "--filter", `event_id in ["b", "g"]`)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(tp.stdout.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	tp.cmd.Process.Signal(syscall.SIGINT)
	if err := tp.wait(t, 10*time.Second); err != nil {
		t.Errorf("sluice tap after Ctrl-C: %v\n%s", err, tp.errors())
	}
	if out := tp.stdout.String(); strings.Count(out, "\n") != 2 || !strings.Contains(out, `"event_id":"b"`) || !strings.Contains(out, `"event_id":"g"`) {
		t.Errorf("--from beginning printed:\n%s", out)
	}
}
