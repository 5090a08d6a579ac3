package node_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/demo"
)

// The demo's web-shop dashboard in a real browser, as `sluice demo` serves
// it: under the demo's live traffic every tile draws at desktop and phone
// size without console errors, and its numbers move between two refreshes.
// SLUICE_SCREENSHOTS=DIR writes DIR/demo-dashboard-{desktop,phone}.png.
func TestDemoDashboardUI(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	need(t, "chromium", err)
	dir := t.TempDir()
	models, dashboards := writeWebshop(t, dir)
	n := startNode(t, filepath.Join(dir, "data"), func(cfg *config.Config) {
		cfg.Semantic.Models, cfg.Dashboards.Dir = models, dashboards
	})
	defer n.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	traffic := make(chan error, 1)
	go func() {
		_, err := demo.Run(ctx, demo.Options{CollectorURL: n.CollectorURL(), History: 3 * time.Hour, HistoryEventsPerHour: 1500, Rate: 30, Seed: 5})
		traffic <- err
	}()
	defer func() {
		cancel()
		if err := <-traffic; err != nil && err != context.Canceled {
			t.Errorf("demo traffic: %v", err)
		}
	}()

	br := newBrowser(t, chromium)
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		br.run("viewport", chromedp.EmulateViewport(size.width, size.height))
		br.run("dashboard", chromedp.Navigate(n.APIURL()+"/dashboards/webshop"))
		br.wait("dashboard ("+size.name+")", webshopDrawn)
		var overflow int
		br.eval(`document.documentElement.scrollWidth - window.innerWidth`, &overflow)
		if overflow > 1 {
			t.Errorf("%s: the dashboard is %d px wider than the window", size.name, overflow)
		}
		br.screenshot("demo-dashboard-" + size.name)
		br.checkConsole("dashboard (" + size.name + ")")
	}
	// The numbers move with the live traffic from one refresh to the next.
	numbers := `[...document.querySelectorAll('#tiles .big-number')].map(n => n.firstChild.textContent).join(' ')`
	var first string
	br.eval(numbers, &first)
	br.wait("numbers move", numbers+` !== '`+first+`'`)
	br.checkConsole("refresh")
}

// webshopDrawn holds when every tile of the demo's web-shop dashboard is
// drawn: five numbers (bad rows too), the area's canvas, the funnel's and
// the countries' bars, the top pages.
const webshopDrawn = `document.querySelectorAll('#tiles .tile').length === 10 && document.querySelectorAll('#tiles .big-number').length === 5 &&
	!!document.querySelector('#tiles .tile-area canvas') && document.querySelectorAll('#tiles .tile-funnel svg.bars rect').length === 5 &&
	document.querySelectorAll('#tiles .tile-bar svg.bars rect').length >= 2 && document.querySelectorAll('#tiles .tile-table tbody tr').length >= 3 &&
	!document.querySelector('#tiles .failed')`

// writeWebshop writes the demo's web-shop model and dashboard into dir, as
// `sluice demo` does into its data dir, and returns their folders.
func writeWebshop(t testing.TB, dir string) (models, dashboards string) {
	models, dashboards = filepath.Join(dir, "models"), filepath.Join(dir, "dashboards")
	if err := demo.WriteModels(models); err != nil {
		t.Fatal(err)
	}
	if err := demo.WriteDashboards(dashboards); err != nil {
		t.Fatal(err)
	}
	return models, dashboards
}
