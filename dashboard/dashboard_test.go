package dashboard_test

import (
	"strings"
	"testing"

	"github.com/sluice-data/sluice/dashboard"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/semantic"
)

func demoModel(t *testing.T) *semantic.Model {
	t.Helper()
	m, err := semantic.LoadFS(demo.Models(), "models")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The demo's dashboard compiles against the demo's model, each tile with
// the date filter on its explore's time dimension but those that opt out.
func TestDemoDashboard(t *testing.T) {
	ds, err := dashboard.LoadFS(demo.Dashboards(), "dashboards", demoModel(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Name != "webshop" || ds[0].Refresh != "10s" || ds[0].DateFilter.Default != "24 hours" {
		t.Fatalf("%+v", ds)
	}
	for _, tile := range ds[0].Tiles {
		q, err := tile.WithDates("7 days")
		if err != nil {
			t.Fatal(err)
		}
		last := q.Filters[len(q.Filters)-1]
		want := map[string]string{"events": "events.event_time", "bad_rows": "bad_rows.failed_at"}[tile.Query.Explore]
		if tile.DateFilter == nil && (last.Field != want || last.Op != "in the past" || last.Value != "7 days") {
			t.Errorf("%s: %+v", tile.Title, q.Filters)
		}
	}
}

// Every problem comes with the file, line and column, and what to do.
func TestErrors(t *testing.T) {
	src := `title: Broken
refresh: soon
date_filter: {default: last week}
tiles:
  - title: A
    type: pie
    width: 13
    query:
      explore: events
      fields: [events.visitors, events.nope]
  - title: B
    query: {explore: nope, fields: [x]}
  - title: C
    query:
      explore: events
      fields: [events.event]
      sorts: [{field: events.visitors}]
`
	_, err := dashboard.Parse("dash/broken.yml", []byte(src), demoModel(t))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`dash/broken.yml:2:10: refresh: refresh "soon": give a duration of 1s or more, e.g. 30s or 5m`,
		`dash/broken.yml:3:24: date_filter.default: date_filter.default "last week": give a span such as "7 days" or "24 hours"`,
		`dash/broken.yml:6:11: tiles[0].type: tile type "pie": use one of number, line, area, bar, table, funnel`,
		`dash/broken.yml:7:12: tiles[0].width: width 13: give 1 to 12 (of 12 columns)`,
		`dash/broken.yml:10:33: tiles[0].query.fields[1]: `,
		`dash/broken.yml:12:22: tiles[1].query.explore: no explore "nope": the model has events, sessions, bad_rows`,
		`dash/broken.yml:17:23: tiles[2].query.sorts[0].field: "events.visitors" is not among the selected fields`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got\n%s", err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got  %s\n want %s…", i, got[i], want[i])
		}
	}

	if _, err := dashboard.Parse("d.yml", []byte("title: x\ntiles: [{query: {explore: events, fields: [events.visitors]}, colour: red}]\n"), demoModel(t)); err == nil || !strings.HasPrefix(err.Error(), "d.yml:2:") {
		t.Errorf("unknown key: %v", err)
	}
}
