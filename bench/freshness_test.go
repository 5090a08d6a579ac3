package bench

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/server"
)

func TestFreshnessRollupIsTheExamples(t *testing.T) {
	ex, err := config.Load("../examples/realtime/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := AddFreshnessRollup(cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Rollups[FreshnessRollup], ex.Rollups[FreshnessRollup]; !reflect.DeepEqual(got, want) {
		t.Errorf("rollup\n%+v, the example's\n%+v", got, want)
	}
	// A config's own pageviews_1m is kept.
	own := ex.Rollups[FreshnessRollup]
	own.Filter = `event == "screen_view"`
	cfg.Rollups[FreshnessRollup] = own
	if err := AddFreshnessRollup(cfg); err != nil || cfg.Rollups[FreshnessRollup].Filter != own.Filter {
		t.Errorf("the config's rollup replaced: %+v, %v", cfg.Rollups[FreshnessRollup], err)
	}
}

func TestSpreadOf(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := SpreadOf(ds)
	want := Spread{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("%+v, want %+v", got, want)
	}
	if one := SpreadOf(ds[:1]); one.P50 != one.Max || one.P99 != one.Max {
		t.Errorf("one value: %+v", one)
	}
	if (SpreadOf(nil) != Spread{}) {
		t.Error("no values, some spread")
	}
}

// freshnessNode is an in-process node with the example's rollup (unless
// bare).
func freshnessNode(t *testing.T, bare bool) *node.Node {
	t.Helper()
	cfg := config.Default()
	cfg.ApplyOverrides(t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	if !bare {
		if err := AddFreshnessRollup(cfg); err != nil {
			t.Fatal(err)
		}
	}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

func TestFreshnessSeesEveryMarkerOnce(t *testing.T) {
	n := freshnessNode(t, false)
	r, err := Freshness(context.Background(), FreshnessOptions{
		Collector: n.CollectorURL(), API: &server.Client{URL: n.APIURL()},
		Rate: 500, Clients: 2, Batch: 10, Duration: 2 * time.Second, Corpus: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A marker every 100 ms for 2 s, the first after 100 ms.
	if len(r.Markers) < 10 || len(r.Markers) > 20 {
		t.Fatalf("%d markers", len(r.Markers))
	}
	urls := map[string]bool{}
	for _, m := range r.Markers {
		if urls[m.URL] || !strings.HasPrefix(m.URL, "/sluice-fresh/") {
			t.Errorf("marker url %s", m.URL)
		}
		urls[m.URL] = true
		if m.Views != 1 || m.Acked.Before(m.Sent) || m.Visible.Before(m.Acked) || m.Counted.IsZero() {
			t.Errorf("marker %+v", m)
		}
	}
	if len(r.Lost()) != 0 || r.Background == 0 || r.Background%10 != 0 || r.BackgroundPerSec() <= 0 {
		t.Errorf("result: %d lost, %d background events, %.0f/s", len(r.Lost()), r.Background, r.BackgroundPerSec())
	}
	for _, s := range []Spread{r.Ack(), r.Counted(), r.Visible()} {
		if s.N != len(r.Markers) || s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.Max || s.P50 < 0 {
			t.Errorf("spread %+v", s)
		}
	}
	var out strings.Builder
	r.WriteTable(&out)
	if !strings.Contains(out.String(), "visible in SQL (pageviews_1m)") || strings.Contains(out.String(), "LOST") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestFreshnessReportsLostMarkers(t *testing.T) {
	// No rollup: no marker ever shows.
	n := freshnessNode(t, true)
	r, err := Freshness(context.Background(), FreshnessOptions{
		Collector: n.CollectorURL(), API: &server.Client{URL: n.APIURL()},
		Duration: 350 * time.Millisecond, Timeout: 300 * time.Millisecond, Corpus: 100,
	})
	if err == nil || !strings.Contains(err.Error(), "never visible") {
		t.Fatalf("error %v", err)
	}
	if len(r.Markers) == 0 || len(r.Lost()) != len(r.Markers) {
		t.Fatalf("%d markers, %d lost", len(r.Markers), len(r.Lost()))
	}
	var out strings.Builder
	r.WriteTable(&out)
	if strings.Count(out.String(), "LOST: /sluice-fresh/") != len(r.Markers) {
		t.Errorf("table:\n%s", out.String())
	}
}
