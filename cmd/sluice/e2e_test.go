package main

// End-to-end tests of the real binary as a separate process: built once in
// TestMain, started with `sluice up`, fed over HTTP, queried with `sluice sql`,
// killed with SIGKILL and restarted on the same data dir.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/natstest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build sluice: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	natstest.RemoveBinary()
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running `sluice up`.
type proc struct {
	cmd       *exec.Cmd
	collector string
	api       string
	data      string
	log       *bytes.Buffer
}

func startSluice(t *testing.T, data, collector, api string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"up", "--data", data, "--collector-addr", collector, "--api-addr", api}, extra...)
	cmd := exec.Command(binary, args...)
	var log bytes.Buffer
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, collector: "http://" + collector, api: "http://" + api, data: data, log: &log}
	// A test that failed before stopping it must not leave it running.
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get(p.api + "/healthz"); err == nil {
			r.Body.Close()
			if r2, err := http.Get(p.collector + "/healthz"); err == nil {
				r2.Body.Close()
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	t.Fatalf("sluice did not become healthy:\n%s", log.String())
	return nil
}

// metrics returns the sluice_ lines of /metrics, for failure messages.
func (p *proc) metrics() string {
	r, err := http.Get(p.api + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "sluice_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sluice exited with %v after SIGTERM:\n%s", err, p.log.String())
		}
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("sluice did not stop within 60s of SIGTERM:\n%s", p.log.String())
	}
}

// sql runs `sluice sql` (the real CLI) and returns its JSON result rows.
func sql(t *testing.T, data, q string) [][]any {
	t.Helper()
	out, err := exec.Command(binary, "sql", "--data", data, "--format", "json", q).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice sql %q: %v\n%s", q, err, out)
	}
	var res struct {
		Rows [][]any `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("sluice sql output: %v\n%s", err, out)
	}
	return res.Rows
}

func batch(prefix string, n, size int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"event_id":"%s-%d-%d","event":"page_view","event_time":"2026-11-25T10:%02d:00Z","page_url":"https://shop.example/p/%d","user_id":"u%d","price":%d.5}`,
			prefix, n, i, i%60, i, n%50, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// postOnce sends one batch and reports whether it was acknowledged.
func postOnce(client *http.Client, url string, body []byte) (bool, error) {
	resp, err := client.Post(url+"/v1/events", "application/json", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		return true, nil
	}
	if resp.StatusCode == 503 {
		return false, nil
	}
	return false, fmt.Errorf("status %d: %s", resp.StatusCode, msg)
}

func TestTenThousandEventsEndToEnd(t *testing.T) {
	data := t.TempDir()
	p := startSluice(t, data, freePort(t), freePort(t))
	defer p.stop(t)
	client := &http.Client{Timeout: 10 * time.Second}
	var lastAck time.Time
	for n := 0; n < 100; n++ {
		ok, err := postOnce(client, p.collector, batch("e2e", n, 100))
		if err != nil || !ok {
			t.Fatalf("batch %d: ok=%v err=%v", n, ok, err)
		}
		lastAck = time.Now()
	}
	for {
		rows := sql(t, data, "SELECT count(*), count(DISTINCT event_id) FROM events")
		if fmt.Sprint(rows) == "[[10000 10000]]" {
			t.Logf("10,000 events queryable %v after the last acknowledgement", time.Since(lastAck).Round(time.Millisecond))
			break
		}
		if time.Since(lastAck) > 60*time.Second {
			t.Fatalf("after 60s: %v\n%s", rows, p.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The lake layout is the contract: hive partitions by event hour, files
	// named by sequence range.
	files, _ := filepath.Glob(filepath.Join(data, "lake", "events", "dt=2026-11-25", "hr=10", "events-*-*.parquet"))
	if len(files) == 0 {
		t.Errorf("no files at lake/events/dt=2026-11-25/hr=10/events-<first>-<last>.parquet")
	}
	// sluice lake verify agrees, and counts the rows from the files' footers.
	out, err := exec.Command(binary, "lake", "verify", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10000 rows") {
		t.Errorf("sluice lake verify: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "lake", "ls", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "events") || !strings.Contains(string(out), "10000") {
		t.Errorf("sluice lake ls: %v\n%s", err, out)
	}
}

func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	data := t.TempDir()
	collector, api := freePort(t), freePort(t)
	// Small, frequent files, so that kills land in the middle of flushes too.
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(cfgFile, []byte("lake:\n  flush_interval: 150ms\n  max_rows: 5000\n"), 0o644)
	p := startSluice(t, data, collector, api, "-c", cfgFile)

	// Clients post continuously and retry each batch until it is
	// acknowledged, as a real tracker would.
	rc := startClients(collector, 4, 50, batch)
	for kill := 0; kill < 3; kill++ {
		time.Sleep(time.Duration(700+kill*400) * time.Millisecond)
		before := rc.acked.Load()
		p.kill(t)
		t.Logf("kill -9 #%d after %d acknowledged events", kill+1, before)
		time.Sleep(200 * time.Millisecond)
		p = startSluice(t, data, collector, api, "-c", cfgFile)
		time.Sleep(300 * time.Millisecond) // let recovery log what it found
		if strings.Contains(p.log.String(), "replaying an unfinished flush") {
			t.Logf("restart #%d found a flush cut short by the kill and rewrote its files", kill+1)
		}
	}
	time.Sleep(time.Second)
	want, err := rc.stop()
	if err != nil {
		t.Fatalf("client got a non-retryable answer: %v", err)
	}
	if want == 0 {
		t.Fatal("no events were acknowledged")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows := sql(t, data, "SELECT count(*), count(DISTINCT event_id) FROM events")
		if fmt.Sprint(rows) == fmt.Sprintf("[[%d %d]]", want, want) {
			break
		}
		if time.Now().After(deadline) {
			m := p.metrics()
			p.kill(t)
			t.Fatalf("acknowledged %d events; events holds %v\n%s", want, rows, m)
		}
		time.Sleep(250 * time.Millisecond)
	}
	files, _ := filepath.Glob(filepath.Join(data, "lake", "events", "*", "*", "*.parquet"))
	t.Logf("all %d acknowledged events are in the lake exactly once, in %d files", want, len(files))
	p.stop(t)
	// With the server stopped, sluice sql opens the data dir directly.
	rows := sql(t, data, "SELECT count(*) FROM events")
	if fmt.Sprint(rows) != fmt.Sprintf("[[%d]]", want) {
		t.Errorf("direct query: %v, want %d", rows, want)
	}
}

func isConnErr(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "EOF") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "Timeout") || strings.Contains(s, "broken pipe")
}

func TestCLI(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sluice ") {
		t.Errorf("version: %v %s", err, out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("http:\n  colector: 127.0.0.1:9\nstreams:\n  raw: {retention: soon}\n"), 0o644)
	out, err = exec.Command(binary, "validate", "-c", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad file:\n%s", out)
	}
	for _, want := range []string{bad + ":2:3", "collector", bad + ":4:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	// The semantic models are checked too, each problem at file:line:column.
	os.MkdirAll(filepath.Join(dir, "models"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "shop.yml"), []byte("views:\n  orders:\n    table: orders\n    measures:\n      revenue: {type: sum}\n"), 0o644)
	withModels := filepath.Join(dir, "models.yaml")
	os.WriteFile(withModels, []byte("semantic: {models: ./models}\n"), 0o644)
	out, err = exec.Command(binary, "validate", "-c", withModels).CombinedOutput()
	if want := filepath.Join(dir, "models", "shop.yml") + ":5:7: views.orders.measures.revenue: sum needs a sql or field"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("validate with a bad model: %v, output lacks %q:\n%s", err, want, out)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("data_dir: ${SLUICE_E2E_DIR:-./x}\nhttp: {collector: 127.0.0.1:18080}\n"), 0o644)
	if out, err := exec.Command(binary, "validate", "-c", good).CombinedOutput(); err != nil {
		t.Errorf("validate good file: %v\n%s", err, out)
	}
	// sql on an empty data dir works directly and shows the empty tables.
	rows := sql(t, filepath.Join(dir, "data"), "SELECT count(*) FROM events")
	if fmt.Sprint(rows) != "[[0]]" {
		t.Errorf("empty events: %v", rows)
	}
	out, err = exec.Command(binary, "sql", "--data", filepath.Join(dir, "data"), "DROP VIEW events").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "read-only") {
		t.Errorf("sql DROP: %v %s", err, out)
	}
}

// The README's main command, bounded: history plus a few seconds of live
// traffic through the real collector, then a clean stop with everything in
// the lake.
func TestDemo(t *testing.T) {
	data, api := t.TempDir(), freePort(t)
	cmd := exec.Command(binary, "demo", "--data", data, "--collector-addr", freePort(t), "--api-addr", api,
		"--history", "6h", "--history-per-hour", "1000", "--rate", "50", "--duration", "3s", "--seed", "7")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice demo: %v\n%s", err, out)
	}
	for _, want := range []string{"Open the web UI:\n\n  http://" + api + "/\n", "collector", "sluice sql"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The history follows the day's rhythm, so how many events 6 hours
	// hold depends on the hour: every event the demo says it sent is there.
	m := regexp.MustCompile(`(\d+) in all`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("demo output lacks its total:\n%s", out)
	}
	rows := sql(t, data, fmt.Sprintf("SELECT count(*) = %s AND count(*) > 1000, count(DISTINCT event) >= 4, count(*) FILTER (WHERE event = 'purchase' AND revenue > 0) > 0 FROM events", m[1]))
	if fmt.Sprint(rows) != "[[true true true]]" {
		t.Errorf("demo events: %v\n%s", rows, out)
	}
	// The default enrichments ran.
	rows = sql(t, data, "SELECT count(*) FILTER (WHERE browser IS NULL OR device_class IS NULL) = 0, count(DISTINCT device_class) >= 2, count(refr_medium) > 0, count(mkt_source) > 0 FROM events")
	if fmt.Sprint(rows) != "[[true true true true]]" {
		t.Errorf("enrichments: %v", rows)
	}
	if rows := sql(t, data, "SELECT count(*) FROM bad"); fmt.Sprint(rows) != "[[0]]" {
		t.Errorf("demo produced bad rows: %v", rows)
	}
	// The web shop's semantic model was served from the data dir.
	if !strings.Contains(string(out), "/api/v1/explores") {
		t.Errorf("demo output lacks the explores:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(data, "models", "webshop.yml")); err != nil {
		t.Errorf("demo models: %v", err)
	}
}

// retryingClients posts batches from n clients until stopped, each batch
// retried until acknowledged as a real tracker would: body(client, i)
// returns a batch of size events.
type retryingClients struct {
	acked  atomic.Int64
	stopCh chan struct{}
	wg     sync.WaitGroup
	failed atomic.Value
}

func startClients(collector string, n, size int, body func(client string, i, size int) []byte) *retryingClients {
	rc := &retryingClients{stopCh: make(chan struct{})}
	for c := range n {
		rc.wg.Add(1)
		go func() {
			defer rc.wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-rc.stopCh:
					return
				default:
				}
				b := body(fmt.Sprintf("c%d", c), i, size)
				for {
					ok, err := postOnce(client, "http://"+collector, b)
					if err != nil && !isConnErr(err) {
						rc.failed.Store(err)
						return
					}
					if ok {
						rc.acked.Add(int64(size))
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return rc
}

// stop ends the clients and returns what was acknowledged, or the first
// answer that must not be retried.
func (rc *retryingClients) stop() (int64, error) {
	close(rc.stopCh)
	rc.wg.Wait()
	if err, ok := rc.failed.Load().(error); ok {
		return 0, err
	}
	return rc.acked.Load(), nil
}
