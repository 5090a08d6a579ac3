package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-data/sluice/server"
)

// GET /api/v1/status reports each stage's lag from the real positions: a
// pipeline whose output stalls falls behind by every message of its input,
// and catches up to 0 when the output comes back; enrich, the archiver and
// the rollup, which are not held up, go to 0; each reports its totals.
func TestStatusLag(t *testing.T) {
	dir := t.TempDir()
	hook := newStallingHook(t)
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
pipelines:
  status_out:
    from: events
    to: {webhook: %q}
rollups:
  status_views:
    from: events
    granularity: 1m
    metrics: {n: count()}
`, hook.srv.URL)), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), withConfigFile(t, cfgFile))
	defer n.Stop()
	api := n.APIURL()

	// One request each: a message each on the streams.
	const events = 20
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range events {
		ev := fmt.Sprintf(`{"event":"page_view","event_id":"e%d","event_time":%q}`, i, now)
		if code, body := post(t, n.CollectorURL(), "application/json", []byte(ev)); code != 200 {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", events))

	status := func() (*server.Status, map[string]server.ComponentStatus) {
		t.Helper()
		resp, err := http.Get(api + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st server.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status: %d %v", resp.StatusCode, err)
		}
		comps := map[string]server.ComponentStatus{}
		for _, c := range st.Components {
			comps[c.Name] = c
		}
		return &st, comps
	}
	lagOf := func(c server.ComponentStatus) float64 {
		if c.Lag == nil {
			return -1
		}
		return *c.Lag
	}
	var head uint64
	waitUntil(t, "enrich, the archiver and the rollup to catch up, the stalled pipeline not", func() string {
		st, c := status()
		for _, s := range st.Streams {
			if s.Name == "events" {
				head = s.LastSeq
			}
		}
		got := fmt.Sprintf("enrich %v, archive %v, rollup %v (%v events), pipeline %v; events last_seq %d",
			lagOf(c["enrich"]), lagOf(c["archive events"]), lagOf(c["rollup status_views"]), c["rollup status_views"].Total, lagOf(c["status_out"]), head)
		if head >= events && lagOf(c["enrich"]) == 0 && lagOf(c["archive events"]) == 0 && lagOf(c["rollup status_views"]) == 0 &&
			c["rollup status_views"].Total == events && lagOf(c["status_out"]) == float64(head) {
			return ""
		}
		return got
	})
	hook.stalled.Store(false)
	waitUntil(t, "the pipeline to catch up", func() string {
		_, c := status()
		got, _ := hook.counts()
		if lagOf(c["status_out"]) == 0 && got == events && c["status_out"].Total == events {
			return ""
		}
		return fmt.Sprintf("pipeline lag %v, %v events in, %d delivered", lagOf(c["status_out"]), c["status_out"].Total, got)
	})
}

// waitUntil polls check until it answers "" (or 60 s pass: the machine may
// be busy); what it answered last says what was wrong.
func waitUntil(t *testing.T, what string, check func() string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if last = check(); last == "" {
			return
		}
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}
