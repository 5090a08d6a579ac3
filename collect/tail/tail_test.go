package tail

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// These tests follow real files in temporary directories and store on a
// real embedded bus; nothing is mocked except, where a test says so, a bus
// that forgets its last message.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openBus(t testing.TB, dir string, maxPayload int32) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{
		Dir: dir, MaxPayload: maxPayload, Logger: quiet,
		Streams: map[string]bus.StreamConfig{sluice.StreamRaw: {Retention: time.Hour}},
	})
	if err != nil {
		t.Fatalf("open bus on %s: %v", dir, err)
	}
	return b
}

func newBus(t testing.TB) *bus.Bus {
	t.Helper()
	b := openBus(t, t.TempDir(), 0)
	t.Cleanup(func() { b.Close() })
	return b
}

// options are the test defaults: fast polls and a short rotate wait.
func options(b Bus, dir string, globs ...string) Options {
	return Options{
		Source: "test", Paths: globs, Parse: "plain", Bus: b, StateDir: filepath.Join(dir, "state"),
		PollInterval: 20 * time.Millisecond, RotateWait: 300 * time.Millisecond, FlushAfter: 300 * time.Millisecond,
		Logger: quiet,
	}
}

// start runs a Tailer until the returned stop is called (or the test ends).
func start(t testing.TB, o Options) (stop func()) {
	t.Helper()
	tl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type record struct {
	text      string
	truncated bool
	path      string
}

// stored decodes every record on raw.
func stored(t testing.TB, b *bus.Bus) []record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := b.Info(ctx, sluice.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	if info.LastSeq == 0 {
		return nil
	}
	r, err := b.ReadFrom(ctx, sluice.StreamRaw, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []record
	for {
		select {
		case m := <-r.C():
			payloads, err := sluice.DecodeFrame(m.Data)
			if err != nil {
				t.Fatalf("raw seq %d: %v", m.Seq, err)
			}
			for _, p := range payloads {
				if p.Collector != Collector || p.ContentType != sluice.ContentTypeRecords || p.Headers[HeaderSource] == "" {
					t.Fatalf("raw seq %d: payload %+v", m.Seq, p)
				}
				err := sluice.ReadRecords(p.Body, func(rec []byte, truncated bool) error {
					out = append(out, record{string(rec), truncated, p.Path})
					return nil
				})
				if err != nil {
					t.Fatalf("raw seq %d: %v", m.Seq, err)
				}
			}
			if m.Seq == info.LastSeq {
				return out
			}
		case <-ctx.Done():
			t.Fatalf("reading raw up to seq %d: %v", info.LastSeq, ctx.Err())
		}
	}
}

func texts(recs []record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.text
	}
	return out
}

// waitStored waits until raw holds at least n records and returns them.
func waitStored(t testing.TB, b *bus.Bus, n int) []record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := stored(t, b)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw holds %d records after 20s, want %d; last: %q", len(got), n, texts(got[max(0, len(got)-5):]))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exactlyOnce fails unless got holds each of want once and nothing else.
func exactlyOnce(t testing.TB, got, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	var problems []string
	for _, w := range want {
		switch count[w] {
		case 0:
			problems = append(problems, fmt.Sprintf("missing %q", w))
		case 1:
		default:
			problems = append(problems, fmt.Sprintf("%d times %q", count[w], w))
		}
		delete(count, w)
	}
	for g, n := range count {
		problems = append(problems, fmt.Sprintf("unexpected %q (%d times)", g, n))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Fatalf("%d of %d records wrong (got %d): %s", len(problems), len(want), len(got), strings.Join(problems[:min(len(problems), 10)], "; "))
	}
}

// storedOnce waits for want on the bus, each record exactly once, and checks
// that nothing more arrives.
func storedOnce(t testing.TB, b *bus.Bus, want []string) []record {
	t.Helper()
	got := waitStored(t, b, len(want))
	exactlyOnce(t, texts(got), want)
	settle(t, b, want)
	return got
}

// settle checks that nothing more than want arrives.
func settle(t testing.TB, b *bus.Bus, want []string) {
	t.Helper()
	time.Sleep(400 * time.Millisecond)
	exactlyOnce(t, texts(stored(t, b)), want)
}

// appendLines appends lines "<prefix> <i>" for i in [from, to) and returns them.
func appendLines(t testing.TB, path, prefix string, from, to int) []string {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var buf []byte
	for i := from; i < to; i++ {
		l := fmt.Sprintf("%s %06d", prefix, i)
		lines = append(lines, l)
		buf = append(append(buf, l...), '\n')
	}
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	return lines
}

func writeString(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestNewChecksOptions(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	for name, mod := range map[string]func(*Options){
		"bad source":     func(o *Options) { o.Source = "a.b" },
		"empty source":   func(o *Options) { o.Source = "" },
		"no paths":       func(o *Options) { o.Paths = nil },
		"bad glob":       func(o *Options) { o.Paths = []string{"[x"} },
		"bad multiline":  func(o *Options) { o.Multiline = "(" },
		"no state dir":   func(o *Options) { o.StateDir = "" },
		"huge MaxRecord": func(o *Options) { o.MaxRecord = 4 << 20 },
	} {
		o := options(b, dir, filepath.Join(dir, "*.log"))
		mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestAppendsAndNewFiles(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.log")
	want := appendLines(t, a, "a", 0, 100)
	writeString(t, filepath.Join(dir, "ignored.txt"), "not matched\n")
	start(t, options(b, dir, filepath.Join(dir, "*.log")))
	waitStored(t, b, 100)
	want = append(want, appendLines(t, a, "a", 100, 200)...)
	// A half-written line waits for its newline; CRLF is cut too.
	writeString(t, a, "partial")
	waitStored(t, b, 200)
	time.Sleep(200 * time.Millisecond)
	writeString(t, a, " line\r\n")
	want = append(want, "partial line")
	want = append(want, appendLines(t, filepath.Join(dir, "b.log"), "b", 0, 50)...)
	got := storedOnce(t, b, want)
	for _, r := range got {
		base := "a.log"
		if strings.HasPrefix(r.text, "b ") {
			base = "b.log"
		}
		if !filepath.IsAbs(r.path) || filepath.Base(r.path) != base {
			t.Fatalf("record %q from path %q", r.text, r.path)
		}
	}
	// Each file's records are stored in order.
	var as []string
	for _, r := range got {
		if r.path == a {
			as = append(as, r.text)
		}
	}
	if !slices.Equal(as, want[:201]) {
		t.Fatalf("a.log out of order: %q", as)
	}
}

func TestPayloadHeaders(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	appendLines(t, filepath.Join(dir, "x.log"), "x", 0, 3)
	o := options(b, dir, filepath.Join(dir, "*.log"))
	o.Parse, o.Pattern = "regex", `(?P<message>.*)`
	start(t, o)
	waitStored(t, b, 3)
	m, ok, err := b.LastMsg(t.Context(), sluice.StreamRaw, "file.test")
	if err != nil || !ok {
		t.Fatalf("LastMsg: %v %v", ok, err)
	}
	payloads, err := sluice.DecodeFrame(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	h := payloads[len(payloads)-1].Headers
	if h[HeaderSource] != "test" || h[HeaderParse] != "regex" || h[HeaderPattern] != o.Pattern || h[HeaderStream] != "logs" {
		t.Fatalf("headers %v", h)
	}
	var st State
	if err := json.Unmarshal([]byte(h[HeaderCheckpoint]), &st); err != nil || len(st.Files) != 1 || st.Files[0].Offset != int64(3*len("x 000000\n")) {
		t.Fatalf("checkpoint %s: %v", h[HeaderCheckpoint], err)
	}
}

func TestRenameRotation(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	want := appendLines(t, path, "first", 0, 100)
	start(t, options(b, dir, path))
	waitStored(t, b, 100)
	// logrotate: mv, then the writer keeps writing to the old file until it
	// reopens; its last line has no newline.
	old, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendLines(t, path, "second", 0, 100)...)
	time.Sleep(100 * time.Millisecond)
	if _, err := old.WriteString("late 1\nlate 2 without newline"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "late 1", "late 2 without newline")
	storedOnce(t, b, want)
}

func TestCopyTruncate(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	want := appendLines(t, path, "before", 0, 100)
	start(t, options(b, dir, path))
	waitStored(t, b, 100)
	// logrotate copytruncate: copy (not followed: another name), truncate.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendLines(t, path, "after", 0, 10)...)
	waitStored(t, b, len(want))
	// Truncated again and regrown past the old offset before a poll sees it:
	// the fingerprint of its first bytes tells.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	want = append(want, appendLines(t, path, "again", 0, 300)...)
	storedOnce(t, b, want)
}

func TestMultiline(t *testing.T) {
	b := newBus(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "java.log")
	writeString(t, path, "orphan continuation\n"+
		"2024-05-01 10:00:00 ERROR boom\n\tat a.B(C.java:1)\r\n\tat d.E(F.java:2)\n"+
		"2024-05-01 10:00:01 INFO ok\n"+
		"2024-05-01 10:00:02 ERROR last\n\tat x.Y(Z.java:3)\n")
	o := options(b, dir, path)
	o.Multiline = `^\d{4}-\d\d-\d\d `
	start(t, o)
	want := []string{
		"orphan continuation",
		"2024-05-01 10:00:00 ERROR boom\n\tat a.B(C.java:1)\n\tat d.E(F.java:2)",
		"2024-05-01 10:00:01 INFO ok",
	}
	// The last record is complete once the file has been quiet for FlushAfter.
	want = append(want, "2024-05-01 10:00:02 ERROR last\n\tat x.Y(Z.java:3)")
	got := waitStored(t, b, len(want))
	if !slices.Equal(texts(got), want) {
		t.Fatalf("records %q, want %q", texts(got), want)
	}
	writeString(t, path, "2024-05-01 10:00:03 INFO next\n")
	want = append(want, "2024-05-01 10:00:03 INFO next")
	got = waitStored(t, b, len(want))
	if !slices.Equal(texts(got), want) {
		t.Fatalf("records %q, want %q", texts(got), want)
	}
}

func TestLongRecordsAreTruncated(t *testing.T) {
	// A small bus message size makes the read window small too, so lines
	// longer than the window are exercised.
	b := openBus(t, t.TempDir(), 64<<10)
	t.Cleanup(func() { b.Close() })
	dir := t.TempDir()
	path := filepath.Join(dir, "big.log")
	long := strings.Repeat("x", 1000)
	huge := strings.Repeat("y", 200<<10) // several windows
	writeString(t, path, "short\n"+long+"\n"+huge+"\nafter\n")
	o := options(b, dir, path)
	o.MaxRecord = 100
	start(t, o)
	got := waitStored(t, b, 4)
	want := []record{{"short", false, path}, {long[:100], true, path}, {huge[:100], true, path}, {"after", false, path}}
	if !slices.Equal(got, want) {
		t.Fatalf("records %+v", got)
	}

	mdir := t.TempDir()
	mpath := filepath.Join(mdir, "m.log")
	writeString(t, mpath, "START a\n"+strings.Repeat("cont\n", 100)+"START b\n"+strings.Repeat("z", 150<<10)+"\nmore\nSTART c\n")
	mo := options(b, mdir, mpath)
	mo.Source, mo.MaxRecord, mo.Multiline = "multi", 100, "^START"
	start(t, mo)
	got = waitStored(t, b, 4+3)[4:]
	a := ("START a" + strings.Repeat("\ncont", 100))[:100]
	bb := ("START b\n" + strings.Repeat("z", 200))[:100]
	want = []record{{a, true, mpath}, {bb, true, mpath}, {"START c", false, mpath}}
	if !slices.Equal(got, want) {
		t.Fatalf("multi-line records %+v", got)
	}
}
