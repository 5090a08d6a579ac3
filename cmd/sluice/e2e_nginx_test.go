package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/nginxtest"
)

// A real nginx writes its access log while sluice tails it; the log is
// rotated by rename (while sluice is down) and by copy-truncate (while it
// runs), and sluice is killed with SIGKILL in between, mid-stream. Every
// request line that nginx wrote must be in logs exactly once.
func TestTailNginxThroughRotationsAndKills(t *testing.T) {
	dir := t.TempDir()
	ngx := nginxtest.Start(t, filepath.Join(dir, "nginx"))
	logs := filepath.Dir(ngx.AccessLog)
	data := t.TempDir()
	collector, api := freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "sluice.yaml")
	cfg := fmt.Sprintf("lake:\n  flush_interval: 150ms\nsources:\n  nginx: {type: file, paths: [%q], parse: nginx_combined}\n", filepath.Join(logs, "*.log"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startSluice(t, data, collector, api, "-c", cfgFile)

	// Requests flow in the background, each with its own path.
	var next atomic.Int64
	var paused sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			paused.Lock()
			if resp, err := client.Get(fmt.Sprintf("http://%s/r/%d", ngx.Addr, next.Add(1))); err == nil {
				resp.Body.Close()
			}
			paused.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	pause := func(d time.Duration) { time.Sleep(d) }

	pause(500 * time.Millisecond)
	p.kill(t) // mid-stream
	t.Logf("kill -9 #1 after %d requests", next.Load())
	pause(300 * time.Millisecond)
	// Rotated by rename while sluice is down; nginx goes on in the new file.
	ngx.RotateByRename(t, filepath.Join(logs, "access.log.1"), func() { pause(100 * time.Millisecond) })
	pause(300 * time.Millisecond)
	p = startSluice(t, data, collector, api, "-c", cfgFile)
	pause(700 * time.Millisecond)
	p.kill(t)
	t.Logf("kill -9 #2 after %d requests", next.Load())
	p = startSluice(t, data, collector, api, "-c", cfgFile)

	// Copy-truncate while sluice runs. Lines written between the copy and
	// the truncation would be lost from the files themselves, so requests
	// wait, and sluice is given the time to read to the end first.
	paused.Lock()
	written := countLines(t, ngx.AccessLog)
	waitRows(t, p, data, "SELECT count(*) FROM logs", written+countLines(t, filepath.Join(logs, "access.log.1")))
	ngx.RotateByCopyTruncate(t, filepath.Join(dir, "access.log.copy"))
	paused.Unlock()
	pause(500 * time.Millisecond)
	p.kill(t)
	t.Logf("kill -9 #3 after %d requests", next.Load())
	pause(200 * time.Millisecond)
	p = startSluice(t, data, collector, api, "-c", cfgFile)
	pause(500 * time.Millisecond)
	close(stop)
	<-done

	// What nginx wrote: the renamed file, the copy, and what is in the log now.
	want := map[string]bool{}
	for _, f := range []string{filepath.Join(logs, "access.log.1"), filepath.Join(dir, "access.log.copy"), ngx.AccessLog} {
		for _, path := range requestPaths(t, f) {
			if want[path] {
				t.Fatalf("%s is in two log files", path)
			}
			want[path] = true
		}
	}
	t.Logf("nginx logged %d requests", len(want))
	waitRows(t, p, data, "SELECT count(*) FROM logs", len(want))
	rows := sql(t, data, "SELECT fields->>'path' AS path, count(*) FROM logs GROUP BY path HAVING count(*) > 1")
	if len(rows) > 0 {
		t.Errorf("requests in logs more than once: %v", rows)
	}
	got := map[string]bool{}
	for _, r := range sql(t, data, "SELECT fields->>'path' FROM logs") {
		got[fmt.Sprint(r[0])] = true
	}
	var missing []string
	for path := range want {
		if !got[path] {
			missing = append(missing, path)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(got) != len(want) {
		t.Errorf("logs has %d distinct requests, nginx logged %d; missing %v", len(got), len(want), missing)
	}
	if bad := sql(t, data, "SELECT count(*) FROM bad"); fmt.Sprint(bad) != "[[0]]" {
		t.Errorf("bad rows: %v", bad)
	}
	p.stop(t)
}

var requestPath = regexp.MustCompile(`"GET (/r/\d+) HTTP`)

func requestPaths(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range requestPath.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

func countLines(t *testing.T, file string) int { return len(requestPaths(t, file)) }

// waitRows waits until a count query returns n.
func waitRows(t *testing.T, p *proc, data, q string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows := sql(t, data, q)
		if fmt.Sprint(rows) == fmt.Sprintf("[[%d]]", n) {
			return
		}
		if time.Now().After(deadline) {
			m := p.metrics()
			t.Fatalf("%s: %v, want %d\n%s", q, rows, n, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
