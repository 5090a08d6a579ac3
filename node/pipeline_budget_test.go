package node_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 5, acceptance 4: the output stalls for a minute under load; the
// pipeline's memory stays within pipelines.<name>.memory (reading waits),
// and afterwards everything is delivered, nothing lost or doubled.
func TestPipelineMemoryBudgetUnderStall(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of stall")
	}
	dir := t.TempDir()
	hook := newStallingHook(t)
	const budget = 2 << 20
	cfgFile := dir + "/sluice.yaml"
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
pipelines:
  out:
    from: events
    memory: 2MiB
    steps:
      - set: {total: 'price * 2'}
    to: {webhook: %q}
`, hook.srv.URL)), 0o644)
	n := startNode(t, dir+"/data", withConfigFile(t, cfgFile))
	defer n.Stop()

	held := func() float64 {
		resp, err := http.Get(n.APIURL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, `sluice_pipeline_held_bytes{pipeline="out"}`) {
				v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
				return v
			}
		}
		return 0
	}
	sent, maxHeld, maxRSS := 0, 0.0, rss()
	startRSS := maxRSS
	pad := strings.Repeat("x", 300)
	for start := time.Now(); time.Since(start) < time.Minute; {
		for range 5 { // ~20,000 events (8 MB) a second... of which the budget holds 2 MiB
			var b strings.Builder
			b.WriteByte('[')
			for i := range 100 {
				if i > 0 {
					b.WriteByte(',')
				}
				sent++
				fmt.Fprintf(&b, `{"event":"e","event_id":"s%d","price":%d,"note":%q}`, sent, sent%50, pad)
			}
			b.WriteByte(']')
			if code, msg := post(t, n.CollectorURL(), "application/json", []byte(b.String())); code != 200 {
				t.Fatalf("post: %d %s", code, msg)
			}
		}
		maxHeld = max(maxHeld, held())
		maxRSS = max(maxRSS, rss())
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("stalled a minute: %d events (~%d MB) posted; the pipeline held at most %.0f bytes (budget %d); process RSS %d -> max %d MiB",
		sent, sent*400>>20, maxHeld, budget, startRSS>>20, maxRSS>>20)
	if maxHeld == 0 || maxHeld > budget {
		t.Errorf("the pipeline held %.0f bytes; the budget is %d", maxHeld, budget)
	}
	hook.stalled.Store(false)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		delivered, doubled := hook.counts()
		if delivered == sent && doubled == 0 {
			break
		}
		if time.Now().After(deadline) || doubled > 0 {
			t.Fatalf("after the stall: %d of %d events delivered, %d twice", delivered, sent, doubled)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rss is this process's resident memory in bytes.
func rss() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb << 10
		}
	}
	return 0
}

// stallingHook is a webhook that answers 503 while stalled and otherwise
// takes the NDJSON events posted to it, counting each event id.
type stallingHook struct {
	srv     *httptest.Server
	stalled atomic.Bool
	mu      sync.Mutex
	got     map[string]int
}

func newStallingHook(t *testing.T) *stallingHook {
	h := &stallingHook{got: map[string]int{}}
	h.stalled.Store(true)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.stalled.Load() {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "stalled", http.StatusServiceUnavailable)
			return
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		h.mu.Lock()
		defer h.mu.Unlock()
		for sc.Scan() {
			var ev struct {
				EventID string `json:"event_id"`
			}
			json.Unmarshal(sc.Bytes(), &ev)
			h.got[ev.EventID]++
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// counts are the event ids delivered, and how many of them came twice or more.
func (h *stallingHook) counts() (delivered, doubled int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.got {
		if c > 1 {
			doubled++
		}
	}
	return len(h.got), doubled
}
