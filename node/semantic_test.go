package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/semantic"
)

// The models are read at start and again on reload; a reload with a broken
// model is refused and the running models stay.
func TestSemanticModelsReload(t *testing.T) {
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	os.Mkdir(models, 0o755)
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(models, "events.yml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const model = "views:\n  events:\n    table: events\n    dimensions:\n      event: {}\n    measures:\n      count: {type: count}\nexplores:\n  events: {}\n"
	write(model)
	configure := func(cfg *config.Config) { cfg.Semantic.Models = models }
	n := startNode(t, filepath.Join(dir, "data"), configure)
	defer n.Stop()
	n.SetConfigLoader(func() (*config.Config, error) {
		cfg := config.Default()
		cfg.ApplyOverrides(filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0")
		configure(cfg)
		return cfg, nil
	})
	fields := func() string {
		var names []string
		for _, v := range n.Models().Describe()[0].Views {
			for _, f := range v.Fields {
				names = append(names, f.Name)
			}
		}
		return strings.Join(names, " ")
	}
	if got := fields(); got != "events.event events.count" {
		t.Fatalf("fields at start: %s", got)
	}
	write(strings.Replace(model, "      event: {}\n", "      event: {}\n      country: {}\n", 1))
	if _, err := n.ReloadConfig(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fields(); got != "events.event events.country events.count" {
		t.Errorf("fields after reload: %s", got)
	}
	write(strings.Replace(model, "{type: count}", "{type: sum}", 1))
	_, err := n.ReloadConfig(context.Background())
	if err == nil || !strings.Contains(err.Error(), "events.yml:7:7: views.events.measures.count: sum needs a sql or field") {
		t.Errorf("reload with a broken model: %v", err)
	}
	if got := fields(); got != "events.event events.country events.count" {
		t.Errorf("fields after a refused reload: %s", got)
	}
	if _, err := n.Models().Compile(semantic.Query{Explore: "events", Fields: []string{"events.country", "events.count"}}, semantic.DuckDB); err != nil {
		t.Error(err)
	}
}

// The dashboards are read with the models, at start and on reload: a reload
// with a dashboard the models cannot answer is refused, and the running
// models and dashboards stay.
func TestDashboardsReload(t *testing.T) {
	dir := t.TempDir()
	models, dashboards := filepath.Join(dir, "models"), filepath.Join(dir, "dashboards")
	os.Mkdir(models, 0o755)
	os.Mkdir(dashboards, 0o755)
	os.WriteFile(filepath.Join(models, "events.yml"), []byte("views:\n  events:\n    table: events\n    dimensions:\n      event: {}\n      event_time: {type: time}\n    measures:\n      count: {type: count}\nexplores:\n  events: {}\n"), 0o644)
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(dashboards, "main.yml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("title: Main\ntiles:\n  - {title: Events, type: number, query: {explore: events, fields: [events.count]}}\n")
	configure := func(cfg *config.Config) { cfg.Semantic.Models, cfg.Dashboards.Dir = models, dashboards }
	n := startNode(t, filepath.Join(dir, "data"), configure)
	defer n.Stop()
	n.SetConfigLoader(func() (*config.Config, error) {
		cfg := config.Default()
		cfg.ApplyOverrides(filepath.Join(dir, "data"), "127.0.0.1:0", "127.0.0.1:0")
		configure(cfg)
		return cfg, nil
	})
	tiles := func() string {
		var titles []string
		for _, d := range n.Dashboards() {
			for _, tile := range d.Tiles {
				titles = append(titles, d.Name+"/"+tile.Title+"@"+tile.TimeField)
			}
		}
		return strings.Join(titles, " ")
	}
	if got := tiles(); got != "main/Events@events.event_time" {
		t.Fatalf("tiles at start: %s", got)
	}
	write("title: Main\ntiles:\n  - {title: Events, type: number, query: {explore: events, fields: [events.count]}}\n  - {title: By event, type: bar, query: {explore: events, fields: [events.event, events.count]}}\n")
	if _, err := n.ReloadConfig(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tiles(); got != "main/Events@events.event_time main/By event@events.event_time" {
		t.Errorf("tiles after reload: %s", got)
	}
	write("title: Main\ntiles:\n  - {title: Events, type: number, query: {explore: events, fields: [events.nope]}}\n")
	_, err := n.ReloadConfig(context.Background())
	if err == nil || !strings.Contains(err.Error(), `main.yml:3:69: tiles[0].query.fields[0]: unknown field "events.nope"`) {
		t.Errorf("reload with a broken dashboard: %v", err)
	}
	if got := tiles(); got != "main/Events@events.event_time main/By event@events.event_time" {
		t.Errorf("tiles after a refused reload: %s", got)
	}
}
