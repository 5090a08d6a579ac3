package tail

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
)

func TestRestartNeitherLosesNorRepeats(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	want := appendLines(t, path, "one", 0, 100)
	o := options(b, dir, path)
	stop := start(t, o)
	waitStored(t, b, 100)
	writeString(t, path, "half a line")
	time.Sleep(100 * time.Millisecond)
	stop()
	writeString(t, path, ", finished\n")
	want = append(want, "half a line, finished")
	want = append(want, appendLines(t, path, "two", 0, 100)...)
	start(t, o)
	storedOnce(t, b, want)
}

func TestRestartAfterRotationWhileStopped(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	want := appendLines(t, path, "first", 0, 100)
	o := options(b, dir, path) // the glob does not match access.log.N
	stop := start(t, o)
	waitStored(t, b, 100)
	stop()
	// While stopped: more lines and a last line without newline, rotation
	// (renamed twice: found by identity in its directory), a new file.
	// (A file both created and rotated away while stopped is never seen:
	// follow rotated names with the glob if that matters.)
	want = append(want, appendLines(t, path, "first", 100, 150)...)
	writeString(t, path, "first, unterminated")
	want = append(want, "first, unterminated")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".1", path+".2"); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendLines(t, path, "second", 0, 50)...)
	start(t, o)
	storedOnce(t, b, want)
}

// forgetful is a bus whose stream lost the tailer's last message (retention).
type forgetful struct{ *bus.Bus }

func (forgetful) LastMsg(context.Context, string, string) (bus.Msg, bool, error) {
	return bus.Msg{}, false, nil
}

func TestCheckpointOnTheBusWinsOverTheStateFile(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	o := options(b, dir, path)
	statePath := filepath.Join(o.StateDir, o.Source+".json")
	want := appendLines(t, path, "a", 0, 100)
	stop := start(t, o)
	waitStored(t, b, 100)
	// The state file is replaced just after the publish: wait for it.
	var old []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if old, err = os.ReadFile(statePath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want = append(want, appendLines(t, path, "b", 0, 100)...)
	waitStored(t, b, 200)
	stop()

	// A crash after a publish, before the state file was replaced: the
	// file is behind (or missing). The bus's last message wins.
	if err := os.WriteFile(statePath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendLines(t, path, "c", 0, 100)...)
	stop = start(t, o)
	waitStored(t, b, len(want))
	stop()
	if err := os.Remove(statePath); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendLines(t, path, "d", 0, 100)...)
	stop = start(t, o)
	waitStored(t, b, len(want))
	stop()
	settle(t, b, want)

	// With no message left on the bus, the state file carries on.
	want = append(want, appendLines(t, path, "e", 0, 100)...)
	fo := o
	fo.Bus = forgetful{b}
	start(t, fo)
	storedOnce(t, b, want)
}

// TestHelperProcess is the child of TestCrashAtAnyPoint: an embedded bus and
// a tailer on a shared directory, until SIGTERM (or SIGKILL).
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("SLUICE_TAIL_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestCrashAtAnyPoint")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := openBus(t, filepath.Join(dir, "bus"), 0)
	defer b.Close()
	o := options(b, dir, filepath.Join(dir, "logs", "access.log"))
	tl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAtAnyPoint kills a real process running the bus and a tailer
// (SIGKILL, at random moments) while lines are written and the log is
// rotated, and checks that every line is stored exactly once.
func TestCrashAtAnyPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills and restarts a process several times")
	}
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logs, "access.log")
	var childErr strings.Builder
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "SLUICE_TAIL_HELPER_DIR="+dir)
		cmd.Stderr, cmd.Stdout = &childErr, &childErr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// The writer: like nginx, it keeps writing to a renamed file for a
	// moment before it reopens the path.
	written := make(chan []string)
	go func() {
		var lines []string
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		rotations, reopenAt := 0, -1
		for i := range 24000 {
			l := fmt.Sprintf("line %06d %s", i, strings.Repeat("p", rand.IntN(80)))
			lines = append(lines, l)
			fmt.Fprintln(f, l)
			if i%40 == 39 {
				time.Sleep(5 * time.Millisecond)
			}
			if i%5000 == 4999 {
				rotations++
				_ = os.Rename(path, fmt.Sprintf("%s.%d", path, rotations))
				reopenAt = i + 50
			}
			if i == reopenAt {
				f.Close()
				f, _ = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			}
		}
		f.Close()
		written <- lines
	}()

	var lines []string
	kills := 0
	for lines == nil {
		cmd := child()
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		kills++
		select {
		case lines = <-written:
		default:
		}
	}
	t.Logf("killed the tailer %d times while %d lines were written", kills, len(lines))

	// Let a last run catch up: the state file shows the current file read
	// to its end and the rotated ones drained.
	ready := filepath.Join(dir, "ready")
	_ = os.Remove(ready)
	cmd := child()
	statePath := filepath.Join(dir, "state", "test.json")
	caughtUp := func() bool {
		if _, err := os.Stat(ready); err != nil {
			return false
		}
		data, err := os.ReadFile(statePath)
		fi, serr := os.Stat(path)
		if err != nil || serr != nil {
			return false
		}
		var st State
		if json.Unmarshal(data, &st) != nil || len(st.Files) != 1 {
			return false
		}
		id, _ := idOf(fi)
		return st.Files[0].id() == id && st.Files[0].Offset == fi.Size()
	}
	deadline := time.Now().Add(30 * time.Second)
	for !caughtUp() {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			data, _ := os.ReadFile(statePath)
			var sizes []string
			entries, _ := os.ReadDir(logs)
			for _, e := range entries {
				fi, _ := e.Info()
				id, _ := idOf(fi)
				sizes = append(sizes, fmt.Sprintf("%s ino %d: %d bytes", e.Name(), id.ino, fi.Size()))
			}
			t.Fatalf("the tailer did not catch up in 30s; state %s; files %s; child output:\n%s", data, sizes, childErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("last run: %v\n%s", err, childErr.String())
	}
	b := openBus(t, filepath.Join(dir, "bus"), 0)
	defer b.Close()
	exactlyOnce(t, texts(stored(t, b)), lines)
}
