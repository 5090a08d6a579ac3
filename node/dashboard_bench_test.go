package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/node"
)

// BenchmarkDashboardRender is issue 8's time-to-render: the demo's web-shop
// dashboard in Chromium, from navigation until every tile is drawn, with
// the date filter over all the data (7 days). Three figures:
//
//   - cached: ns/op is a load whose explore answers are in the server's
//     cache (the dashboard opened again, or by someone else, while the
//     data is unchanged); cold-ms is the first load after the start, with
//     nothing cached yet.
//   - uncached (semantic.cache.enabled: false): every load runs its ten
//     queries, on DuckDB's and the OS's warm caches.
//
// SLUICE_BENCH_DATA=DIR runs it on the data dir of an earlier
// `sluice demo --data DIR …` (docs/benchmarks.md makes one of 10 million
// events); without it, SLUICE_BENCH_EVENTS (default 200,000) events of the
// demo's last 24 hours are generated first.
//
//	go test ./node -run - -bench DashboardRender -benchtime 10x
func BenchmarkDashboardRender(b *testing.B) {
	chromium, err := exec.LookPath("chromium")
	need(b, "chromium", err)
	dir := b.TempDir()
	data := os.Getenv("SLUICE_BENCH_DATA")
	if data == "" {
		data = filepath.Join(dir, "data")
		generateShop(b, data)
	}
	models, dashboards := writeWebshop(b, dir)
	start := func(cache bool) *node.Node {
		return startNode(b, data, func(cfg *config.Config) {
			cfg.Semantic.Models, cfg.Dashboards.Dir = models, dashboards
			cfg.Semantic.Cache.Enabled = cache
			cfg.Lake.Compaction.Enabled = false // no file swaps (new data versions) while it runs
		})
	}
	var events string
	br := newBrowser(b, chromium)
	load := func(n *node.Node) time.Duration {
		b.Helper()
		t0 := time.Now()
		br.run("dashboard", chromedp.Navigate(n.APIURL()+"/dashboards/webshop?range=7%20days"))
		if _, err := chromedp.Run(br.ctx, chromedp.Poll[bool](webshopDrawn, chromedp.WithPollingInterval(5*time.Millisecond), chromedp.WithPollingTimeout(5*time.Minute))); err != nil {
			b.Fatalf("dashboard: %v", err)
		}
		return time.Since(t0)
	}
	for _, cached := range []bool{true, false} {
		n := start(cached)
		if events == "" {
			events = fmt.Sprint(query(b, n.APIURL(), "SELECT count(*) FROM events").Rows[0][0])
			b.Logf("%s events in the lake", events)
		}
		var cold time.Duration
		name := map[bool]string{true: "cached", false: "uncached"}[cached]
		b.Run(name, func(b *testing.B) {
			if cold == 0 {
				cold = load(n)
			}
			b.ResetTimer()
			for range b.N {
				load(n)
			}
			b.StopTimer()
			b.ReportMetric(float64(cold.Milliseconds()), "first-ms")
		})
		br.checkConsole(name)
		if err := n.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}

// generateShop fills data dir with SLUICE_BENCH_EVENTS (default 200,000)
// events of the demo's last 24 hours, through a node's collector, and
// waits until the lake has them all.
func generateShop(b *testing.B, data string) {
	events := 200000
	if s := os.Getenv("SLUICE_BENCH_EVENTS"); s != "" {
		if _, err := fmt.Sscan(s, &events); err != nil {
			b.Fatalf("SLUICE_BENCH_EVENTS=%q: %v", s, err)
		}
	}
	n := startNode(b, data)
	defer n.Stop()
	st, err := demo.Run(context.Background(), demo.Options{CollectorURL: n.CollectorURL(), History: 24 * time.Hour,
		HistoryEventsPerHour: events / 24, BatchSize: 500, Rate: 1, Duration: time.Millisecond, Seed: 8})
	if err != nil {
		b.Fatal(err)
	}
	waitFor(b, n.APIURL(), "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", st.Sent))
}
