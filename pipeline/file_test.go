package pipeline_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/pipeline"
)

// startFilePipeline runs pipeline p from YAML with fast file polls until
// the returned stop is called (it saves the checkpoint, as sluice's
// shutdown does).
func startFilePipeline(t *testing.T, b *bus.Bus, yamlText string) (stop func()) {
	t.Helper()
	return startPipeline(t, b, yamlText, func(o *pipeline.Options) {
		o.FilePoll, o.FileRotateWait = 20*time.Millisecond, 300*time.Millisecond
	})
}

// appendTo appends lines to path.
func appendTo(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// outputLines waits until the NDJSON file at path holds want lines, then a
// moment more to catch any extra, and returns them decoded.
func outputLines(t *testing.T, path string, want int) []map[string]any {
	t.Helper()
	read := func() []map[string]any {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		var out []map[string]any
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: %v: %s", path, err, sc.Text())
			}
			out = append(out, ev)
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(read()) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	out := read()
	if len(out) != want {
		t.Fatalf("%s: %d lines, want %d: %v", path, len(out), want, out)
	}
	return out
}

// checkOnce checks that out holds the events n from..to-1 once each, in
// order (one file is read in order).
func checkOnce(t *testing.T, out []map[string]any, from, to int) {
	t.Helper()
	if len(out) != to-from {
		t.Fatalf("%d events, want %d", len(out), to-from)
	}
	for i, ev := range out {
		if n, _ := ev["n"].(float64); int(n) != from+i {
			t.Fatalf("event %d is n=%v, want %d: %v", i, ev["n"], from+i, out)
		}
	}
}

func numbered(from, to int) []string {
	var out []string
	for n := from; n < to; n++ {
		out = append(out, fmt.Sprintf(`{"n":%d,"kind":"a"}`, n))
	}
	return out
}

// A pipeline reads NDJSON files directly: steps apply, a line that is not
// JSON becomes a bad row naming the file, and stopped and started again it
// goes on from its checkpoint: every line once.
func TestFileInput(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in", "a.ndjson"), filepath.Join(dir, "out.ndjson")
	os.MkdirAll(filepath.Dir(in), 0o755)
	yamlText := fmt.Sprintf(`    from: {file: {paths: [%q]}}
    steps:
      - filter: 'kind != "skip"'
      - set: {twice: 'n * 2'}
    to: {file: %q}
`, filepath.Join(dir, "in", "*.ndjson"), out)
	appendTo(t, in, numbered(0, 50)...)
	appendTo(t, in, `{"n":-1,"kind":"skip"}`, `not json`)
	stop := startFilePipeline(t, b, yamlText)
	got := outputLines(t, out, 50)
	checkOnce(t, got, 0, 50)
	if got[7]["twice"] != 14.0 {
		t.Errorf("set: %v", got[7])
	}
	bad := badRows(t, b, 1)
	if !strings.Contains(bad[0].Message, "decode, on file "+in+" bytes 0-") || bad[0].Payload != "not json" {
		t.Errorf("bad row: %+v", bad[0])
	}
	stop()
	appendTo(t, in, numbered(50, 80)...)
	startFilePipeline(t, b, yamlText)
	checkOnce(t, outputLines(t, out, 80), 0, 80)
	badRows(t, b, 1) // still the one
}

// Files rotated by rename are read to their end, also when rotated while
// the pipeline was stopped; the new file at the path is read from its start.
func TestFileInputRotation(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "app.log"), filepath.Join(dir, "out.ndjson")
	yamlText := fmt.Sprintf("    from: {file: {paths: [%q]}}\n    to: {file: %q}\n", in, out)
	appendTo(t, in, numbered(0, 20)...)
	stop := startFilePipeline(t, b, yamlText)
	outputLines(t, out, 20)
	// Rotated while running: more lines go to the old file after the
	// rename (a writer that reopens late), then to the new one.
	if err := os.Rename(in, in+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, in+".1", numbered(20, 30)...)
	time.Sleep(100 * time.Millisecond)
	appendTo(t, in, numbered(30, 40)...)
	checkOnce(t, outputLines(t, out, 40), 0, 40)
	stop()
	// Rotated while stopped.
	appendTo(t, in, numbered(40, 50)...)
	if err := os.Rename(in, in+".2"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, in, numbered(50, 60)...)
	startFilePipeline(t, b, yamlText)
	got := outputLines(t, out, 60)
	seen := map[float64]int{}
	for _, ev := range got {
		seen[ev["n"].(float64)]++
	}
	for n := range 60 {
		if seen[float64(n)] != 1 {
			t.Fatalf("event %d written %d times: %v", n, seen[float64(n)], got)
		}
	}
}

// parse: plain makes each line the message of an event; start: now skips
// what the files held when the pipeline first started.
func TestFileInputPlainFromNow(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "app.log"), filepath.Join(dir, "out.ndjson")
	appendTo(t, in, "old line")
	startFilePipeline(t, b, fmt.Sprintf("    from: {file: {paths: [%q], parse: plain}}\n    start: now\n    to: {file: %q}\n", in, out))
	time.Sleep(200 * time.Millisecond)
	appendTo(t, in, "new line", "")
	got := outputLines(t, out, 2)
	if got[0]["message"] != "new line" || got[1]["message"] != "" || len(got[0]) != 1 {
		t.Errorf("events %v, want the new line and the empty one", got)
	}
}

// A window over a file is exactly-once across a restart: the checkpoint
// goes back to the first chunk an open window depends on, so the open
// window is rebuilt whole, and the closed one is not written again.
func TestFileInputWindowRestart(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "clicks.ndjson"), filepath.Join(dir, "out.ndjson")
	yamlText := fmt.Sprintf(`    from: {file: {paths: [%q]}}
    steps:
      - window: {type: tumbling, size: 1m, aggregates: {n: count()}}
    to: {file: %q}
`, in, out)
	click := func(at string) string { return fmt.Sprintf(`{"event_time":"2026-11-25T10:%sZ"}`, at) }
	appendTo(t, in, click("00:05"), click("00:10"), click("00:50"), click("01:10"))
	time.Sleep(50 * time.Millisecond)
	appendTo(t, in, click("01:20"))
	stop := startFilePipeline(t, b, yamlText)
	if got := outputLines(t, out, 1); got[0]["n"] != 3.0 {
		t.Fatalf("first window: %v", got)
	}
	stop()
	appendTo(t, in, click("01:30"), click("02:01"))
	startFilePipeline(t, b, yamlText)
	got := outputLines(t, out, 2)
	if got[1]["n"] != 3.0 || got[1]["window_start"] != "2026-11-25T10:01:00.000000Z" {
		t.Errorf("windows: %v", got)
	}
}

// A crash after the outputs of a batch were written and before the
// checkpoint was saved: the pipeline reads those lines again, and cuts its
// file output back to the size the checkpoint recorded first, so each line
// is in the file once. (The crash is made by putting an older checkpoint
// back; cmd/sluice's TestFileInputSurvivesKillNine kills a real process.)
func TestFileInputCrashBeforeCheckpoint(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "out.ndjson")
	yamlText := fmt.Sprintf("    from: {file: {paths: [%q]}}\n    to: {file: %q}\n", in, out)
	appendTo(t, in, numbered(0, 50)...)
	stop := startFilePipeline(t, b, yamlText)
	outputLines(t, out, 50)
	stop()
	older, _, err := b.GetState(t.Context(), "pipeline.p")
	if err != nil || older == nil {
		t.Fatalf("checkpoint: %s, %v", older, err)
	}
	appendTo(t, in, numbered(50, 80)...)
	stop = startFilePipeline(t, b, yamlText)
	outputLines(t, out, 80)
	stop()
	_, rev, err := b.GetState(t.Context(), "pipeline.p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutState(t.Context(), "pipeline.p", older, rev); err != nil {
		t.Fatal(err)
	}
	appendTo(t, in, numbered(80, 90)...)
	startFilePipeline(t, b, yamlText)
	checkOnce(t, outputLines(t, out, 90), 0, 90)
}

// The leading filters run on the fields they read before an event is
// decoded whole: they keep and drop the same events, a filter's error and
// a line that is not JSON are bad rows as before.
func TestLeadingFiltersOnTheirFields(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "out.ndjson")
	appendTo(t, in,
		`{"n":0,"kind":"a"}`,
		`{"n":1,"x":null,"kind":"b"}`,
		`{"n":2,"x":"many","kind":"a"}`,
		`{"n":3,"x":5,"kind":"a","more":{"deep":[1,2]}}`,
		`{"n":4,"x":0,`,
		`{"n":5,"x":1,"kind":"a"}`,
		`{"n":6,"kind":"a","x":9,"x":null}`,
	)
	startFilePipeline(t, b, fmt.Sprintf(`    from: {file: {paths: [%q]}}
    steps:
      - filter: 'x == nil || int(x) > 1'
      - filter: 'kind == "a"'
      - set: {y: 'x ?? -1'}
    to: {file: %q}
`, in, out))
	got := outputLines(t, out, 3)
	if fmt.Sprint(got) != "[map[kind:a n:0 y:-1] map[kind:a more:map[deep:[1 2]] n:3 x:5 y:5] map[kind:a n:6 x:<nil> y:-1]]" {
		t.Errorf("output %v", got)
	}
	bad := badRows(t, b, 2)
	if !strings.Contains(bad[0].Message, "steps[0]") || !strings.Contains(bad[1].Message, "decode") {
		t.Errorf("bad rows %+v", bad)
	}
}

// A file of several chunks: they are processed in parallel lanes (on a
// machine with more than one CPU), and written in the file's order.
func TestFileInputChunksInOrder(t *testing.T) {
	b := testBus(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "out.ndjson")
	lines := numbered(0, 40000)
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "}") + fmt.Sprintf(`,"pad":%q}`, strings.Repeat("p", i%200))
	}
	appendTo(t, in, lines...) // about 5 MiB: several chunks
	startFilePipeline(t, b, fmt.Sprintf(`    from: {file: {paths: [%q]}}
    steps:
      - filter: 'n %% 2 == 0'
      - drop: [pad]
    to: {file: %q}
`, in, out))
	got := outputLines(t, out, 20000)
	for i, ev := range got {
		if ev["n"] != float64(2*i) || len(ev) != 2 {
			t.Fatalf("line %d is %v, want n=%d", i, ev, 2*i)
		}
	}
}
