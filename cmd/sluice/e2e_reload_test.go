package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hot reload: a pipeline changed in the config file and SIGHUP (then POST
// /api/v1/reload) swaps it while events flow: every event is in the output
// exactly once, the ones before the swap in the old form, after it in the
// new.
func TestReloadSwapsAPipeline(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	out := filepath.Join(dir, "out.ndjson")
	cfgFile := filepath.Join(dir, "sluice.yaml")
	write := func(version string) {
		os.WriteFile(cfgFile, fmt.Appendf(nil, `
pipelines:
  tagged:
    from: events
    steps:
      - set: {version: '%q'}
      - keep: [event_id, version]
    to: {file: %q}
`, version, out), 0o644)
	}
	write("v1")
	collector, api := freePort(t), freePort(t)
	p := startSluice(t, data, collector, api, "-c", cfgFile)
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(prefix string, n int) {
		for i := range n {
			if ok, err := postOnce(client, "http://"+collector, batch(prefix, i, 20)); !ok || err != nil {
				t.Fatalf("post: %v %v", ok, err)
			}
		}
	}
	lines := func() []string {
		b, _ := os.ReadFile(out)
		return strings.Fields(string(b))
	}
	waitLines := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			l := lines()
			if len(l) >= n {
				time.Sleep(300 * time.Millisecond) // anything more would be a duplicate
				return lines()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d lines in the output, want %d\n%s", len(l), n, p.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	send("a", 10)
	waitLines(200)
	write("v2")
	p.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.log.String(), "reloaded"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", p.log)
		}
	}
	send("b", 10)
	waitLines(400)
	write("v3")
	resp, err := http.Post("http://"+api+"/api/v1/reload", "application/json", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /api/v1/reload: %v %v", resp, err)
	}
	resp.Body.Close()
	send("c", 10)
	got := waitLines(600)
	count := map[string]int{}
	for _, l := range got {
		switch {
		case strings.Contains(l, `"event_id":"a-`) && strings.Contains(l, `"version":"v1"`),
			strings.Contains(l, `"event_id":"b-`) && strings.Contains(l, `"version":"v2"`),
			strings.Contains(l, `"event_id":"c-`) && strings.Contains(l, `"version":"v3"`):
			count[l]++
		default:
			t.Errorf("unexpected line %s", l)
		}
	}
	if len(got) != 600 || len(count) != 600 {
		t.Fatalf("%d lines, %d distinct; want 600 once each", len(got), len(count))
	}
	// A broken file is refused and the running pipeline stays.
	os.WriteFile(cfgFile, []byte("pipelines:\n  tagged: {from: nowhere, to: {file: x}}\n"), 0o644)
	resp, err = http.Post("http://"+api+"/api/v1/reload", "application/json", nil)
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("reload of a broken file: %v %v", resp, err)
	}
	resp.Body.Close()
	p.stop(t)
}
