package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A pipeline reading files directly (from: {file: …}) and writing a file,
// while a writer appends lines and rotates the input, and `sluice up` is
// killed with SIGKILL three times: every kept line is in the output once,
// with its computed field, and every line that is not JSON is in bad.
func TestFileInputSurvivesKillNine(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	in, out := filepath.Join(dir, "in", "app.ndjson"), filepath.Join(dir, "out.ndjson")
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `pipelines:
  kept:
    from: {file: {paths: [%q]}}
    steps:
      - filter: 'n %% 3 != 0'
      - set: {total: 'price * (quantity ?? 1)'}
    to: {file: %q}
`, filepath.Join(dir, "in", "*.ndjson"), out), 0o644); err != nil {
		t.Fatal(err)
	}
	collector, api := freePort(t), freePort(t)
	p := startSluice(t, data, collector, api, "-c", cfg)

	// The writer: 60,000 lines over ~12 s in batches, a bad line every
	// 5,000, the input rotated by rename at line 30,000.
	const lines = 60_000
	written := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(in, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			written <- err
			return
		}
		defer func() { f.Close() }()
		w := bufio.NewWriter(f)
		for n := range lines {
			if n == lines/2 {
				w.Flush()
				f.Close()
				if err := os.Rename(in, in+".1"); err != nil {
					written <- err
					return
				}
				if f, err = os.OpenFile(in, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
					written <- err
					return
				}
				w = bufio.NewWriter(f)
			}
			if n%5000 == 1 {
				fmt.Fprintf(w, "not json %d\n", n)
			}
			qty := ""
			if n%2 == 0 {
				qty = fmt.Sprintf(`,"quantity":%d`, n%7)
			}
			fmt.Fprintf(w, `{"n":%d,"price":%d.5%s,"pad":"%s"}`+"\n", n, n%100, qty, strings.Repeat("x", n%50))
			if n%500 == 499 {
				w.Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}
		written <- w.Flush()
	}()
	began := time.Now()
	for _, at := range []time.Duration{2 * time.Second, 5 * time.Second, 9 * time.Second} {
		// A moment within a second of at, so that kills fall at varied
		// points of a batch.
		time.Sleep(time.Until(began.Add(at + time.Duration(rand.IntN(1000))*time.Millisecond)))
		p.kill(t)
		t.Logf("kill -9 at %.1fs", time.Since(began).Seconds())
		p = startSluice(t, data, collector, api, "-c", cfg)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	want := 0
	for n := range lines {
		if n%3 != 0 {
			want++
		}
	}
	var got map[int]int
	deadline := time.Now().Add(60 * time.Second)
	for {
		got = readKept(t, out)
		total := 0
		for _, c := range got {
			total += c
		}
		if total >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // anything extra
	got = readKept(t, out)
	for n := range lines {
		switch c := got[n]; {
		case n%3 == 0 && c != 0:
			t.Fatalf("line %d passed the filter", n)
		case n%3 != 0 && c != 1:
			t.Fatalf("line %d is in the output %d times (%d distinct lines of %d)\n%s", n, c, len(got), want, p.log.String())
		}
	}
	if len(got) != want {
		t.Fatalf("%d distinct lines, want %d", len(got), want)
	}
	// Bad lines are in bad (at-least-once: a batch read again after a kill
	// writes its bad rows again).
	q := "SELECT count(DISTINCT payload) FROM bad WHERE path = 'pipeline kept decode' AND payload LIKE 'not json %'"
	deadline = time.Now().Add(60 * time.Second)
	for fmt.Sprint(sql(t, data, q)) != "[[12]]" {
		if time.Now().After(deadline) {
			t.Fatalf("bad rows: %v, want 12\n%v", sql(t, data, q), sql(t, data, "SELECT path, message, payload FROM bad"))
		}
		time.Sleep(time.Second)
	}
	p.stop(t)
}

// readKept reads the output: how often each line number is in it. It also
// checks each line's total. A last line still being written is left out.
func readKept(t *testing.T, path string) map[int]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		var ev struct {
			N        int      `json:"n"`
			Price    float64  `json:"price"`
			Quantity *float64 `json:"quantity"`
			Total    float64  `json:"total"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		want := ev.Price
		if ev.Quantity != nil {
			want *= *ev.Quantity
		}
		if ev.Total != want {
			t.Fatalf("line %d: total %v, want %v", ev.N, ev.Total, want)
		}
		out[ev.N]++
	}
	return out
}
