package dashboard_test

import (
	"fmt"
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

// A pivot tile names the dimensions its query pivots on; they are checked
// like the rest of the query, with file:line.
func TestPivotTiles(t *testing.T) {
	src := `title: Pivots
tiles:
  - title: Events by country and device
    type: pivot
    query:
      explore: events
      fields: [events.country, events.device_class, events.events, events.visitors]
      pivots: [events.device_class]
  - title: Events per hour by type
    type: line
    query: {explore: events, fields: [events.event_time_hour, events.event, events.events], pivots: [events.event]}
`
	ds, err := dashboard.Parse("dash/pivots.yml", []byte(src), demoModel(t))
	if err != nil {
		t.Fatal(err)
	}
	q, err := ds.Tiles[0].WithDates("7 days")
	if err != nil || fmt.Sprint(q.Pivots) != "[events.device_class]" || q.Filters[0].Field != "events.event_time" {
		t.Errorf("%+v %v", q, err)
	}

	src = `title: Broken pivots
tiles:
  - title: No pivots
    type: pivot
    query: {explore: events, fields: [events.country, events.events]}
  - title: Bars do not pivot
    type: bar
    query: {explore: events, fields: [events.country, events.device, events.events], pivots: [events.device]}
  - title: Not selected
    type: pivot
    query:
      explore: events
      fields: [events.country, events.events]
      pivots: [events.device]
  - title: A measure
    type: pivot
    query:
      explore: events
      fields: [events.country, events.events]
      pivots: [events.country, events.events]
  - title: No measure
    type: pivot
    query: {explore: events, fields: [events.country, events.device], pivots: [events.device]}
`
	_, err = dashboard.Parse("dash/broken.yml", []byte(src), demoModel(t))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`dash/broken.yml:4:11: tiles[0].type: a pivot tile needs query.pivots: the selected dimensions whose values become its columns`,
		`dash/broken.yml:8:94: tiles[1].query.pivots: a bar tile does not draw pivots: use type pivot (a pivot table), line or area (a line per value)`,
		`dash/broken.yml:14:16: tiles[2].query.pivots[0]: "events.device" is not among the selected fields: pivot on one of the selected dimensions (events.country)`,
		`dash/broken.yml:20:32: tiles[3].query.pivots[1]: events.events is a measure: pivot on a dimension, whose values become the columns`,
		`dash/broken.yml:23:79: tiles[4].query.pivots: a pivot shows measures under each value of events.device: select a measure`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got\n%s", err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("error %d:\n got  %s\n want %s", i, got[i], want[i])
		}
	}
}
