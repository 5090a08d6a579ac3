package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/server"
)

// The web UI in a real browser (Debian's chromium, headless): a node with a
// token, a rollup, a pipeline, jobs and some bad rows; the browser logs in,
// opens every page at desktop and phone size without console errors, sees
// the flow, the charts, the DAG and the bad rows, runs SQL and gets the
// API's numbers, explores the semantic layer (a pivot too), shows a
// dashboard over a range of dates, tails a stream and runs a job.
//
// SLUICE_SCREENSHOTS=DIR writes each page at 1280×800 and 390×844 as
// DIR/<page>-desktop.png and DIR/<page>-phone.png (docs/screenshots holds
// the ones the docs show).

const uiToken = "ui-test-token"

const uiConfig = `
rollups:
  pageviews_1m:
    from: events
    filter: 'event == "page_view"'
    granularity: 1m
    dimensions: [page_url]
    metrics: {views: count(), visitors: distinct(user_id)}
pipelines:
  purchases:
    from: events
    steps:
      - filter: 'event == "purchase"'
    to: {stream: purchases}
jobs:
  daily_views:
    params: {date: date}
    requires: [{lake: events}]
    sql: SELECT DATE '{{.date}}' AS dt, count(*) AS views FROM events WHERE event = 'page_view'
    output: {table: daily_views, partition_by: dt}
  hello:
    shell: {command: 'echo hello from the UI test; touch "$SLUICE_OUTPUT"'}
    output: {file: 'DIR/hello.done'}
  slow:
    retries: 0
    shell: {command: 'sleep 120; touch "$SLUICE_OUTPUT"'}
    output: {file: 'DIR/slow.done'}
  report:
    params: {date: date}
    requires: [{job: daily_views}]
    shell: {command: 'echo "report {{.date}}" > "$SLUICE_OUTPUT"'}
    output: {file: 'DIR/reports/{{.date}}.txt'}
`

// uiModel is the explore page's model: the test's events.
const uiModel = `
views:
  events:
    label: Events
    table: events
    dimensions:
      event_id: {primary_key: true, hidden: true}
      event: {label: Event}
      page_url: {label: Page URL}
      user_id: {hidden: true}
      event_time: {type: time, label: Time, timeframes: [hour, day]}
    measures:
      events: {type: count, label: Events}
      users: {type: count_distinct, field: user_id, label: Users}
explores:
  events: {label: Events}
`

// uiDashboard is a dashboard of uiModel with every kind of tile.
const uiDashboard = `
title: Test shop
refresh: 1s
date_filter: {default: 24 hours, options: [7 days]}
tiles:
  - {title: Events, type: number, width: 3, query: {explore: events, fields: [events.events]}}
  - {title: Users, type: number, width: 3, query: {explore: events, fields: [events.users]}}
  - {title: Events by hour, type: area, width: 6, query: {explore: events, fields: [events.event_time_hour, events.events]}}
  - {title: Pages, type: bar, width: 6, query: {explore: events, fields: [events.page_url, events.events], limit: 5}}
  - {title: Funnel, type: funnel, width: 6, query: {explore: events, fields: [events.event, events.users], sorts: [{field: events.users, desc: true}]}}
  - {title: Events by type, type: table, width: 12, query: {explore: events, fields: [events.event, events.events]}}
  - {title: Pages by event, type: pivot, width: 12, query: {explore: events, fields: [events.page_url, events.event, events.events], pivots: [events.event]}}
`

// uiPage is a page and what shows that it has done its work.
type uiPage struct {
	name, path string
	ready      string // a JavaScript condition
}

var uiPages = []uiPage{
	{"overview", "/", `document.querySelectorAll('#flow svg g.node').length >= 8 && document.querySelectorAll('#flow svg path.edge').length >= 6 && document.querySelector('#flow g[data-id="c:enrich"] text.stats').textContent.includes('total') && ['c:enrich', 'c:purchases', 'c:archive events', 'c:rollup pageviews_1m'].every(id => /^lag \d/.test(document.querySelector('#flow g[data-id="' + id + '"] text.stats:last-of-type').textContent)) && !!document.querySelector('#rate-chart canvas')`},
	{"explore", "/explore?explore=events&fields=events.page_url,events.event,events.events,events.users&pivots=events.event&sort=events.page_url&f=" + url.QueryEscape("events.page_url|is not null|"),
		`document.querySelectorAll('#explore-table.pivot tbody tr').length >= 3 && document.querySelectorAll('#explore-chart svg.bars rect').length >= 3`},
	{"dashboards", "/dashboards", `document.querySelectorAll('#dashboards tbody tr a').length === 1`},
	{"dashboard", "/dashboards/test", `document.querySelectorAll('#tiles .tile').length === 7 && document.querySelectorAll('#tiles .big-number').length === 2 && document.querySelectorAll('#tiles svg.bars rect').length >= 4 && !!document.querySelector('#tiles .tile-area canvas') && document.querySelectorAll('#tiles .tile-table tbody tr').length >= 2 && document.querySelectorAll('#tiles .tile-pivot table.pivot tbody tr').length >= 2`},
	{"sql", "/sql?q=" + url.QueryEscape("SELECT event, count(*) AS events, count(DISTINCT user_id) AS users, sum(revenue) AS revenue\nFROM events GROUP BY event ORDER BY events DESC"), `document.querySelectorAll('#sql-grid tbody tr').length >= 2`},
	{"streams", "/streams", `document.querySelectorAll('#streams tbody tr').length >= 5 && document.querySelector('#tail-stream').options.length >= 5`},
	{"jobs", "/jobs", `document.querySelectorAll('#dag svg g.node').length >= 4 && document.querySelectorAll('#dag svg path.edge').length >= 2 && document.querySelectorAll('#jobs tbody tr').length === 4`},
	{"bad", "/bad", `document.querySelectorAll('#bad tbody tr').length >= 1`},
	{"rollups", "/rollups", `document.querySelectorAll('#rollups tbody tr').length === 1 && /buckets/.test(document.querySelector('#rollup-status').textContent)`},
}

// seriesPixels counts the strongly coloured pixels of a chart's canvas:
// the series' lines (axes and grid are grey, the fill is pale), so more than
// a few mean uPlot drew data, not only the axes.
const seriesPixels = `(sel => {
	const c = document.querySelector(sel + ' canvas');
	if (!c || !c.width) return 0;
	const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
	let n = 0;
	for (let i = 0; i < d.length; i += 4) if (d[i+3] > 200 && Math.max(d[i], d[i+1], d[i+2]) - Math.min(d[i], d[i+1], d[i+2]) > 100) n++;
	return n;
})`

func TestWebUI(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	need(t, "chromium", err)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(strings.ReplaceAll(uiConfig, "DIR", dir)), 0o644)
	os.Mkdir(filepath.Join(dir, "models"), 0o755)
	os.WriteFile(filepath.Join(dir, "models", "events.yml"), []byte(uiModel), 0o644)
	os.Mkdir(filepath.Join(dir, "dashboards"), 0o755)
	os.WriteFile(filepath.Join(dir, "dashboards", "test.yml"), []byte(uiDashboard), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), withConfigFile(t, cfgFile), func(cfg *config.Config) {
		cfg.Auth.Token = uiToken
		cfg.Semantic.Models = filepath.Join(dir, "models")
		cfg.Dashboards.Dir = filepath.Join(dir, "dashboards")
	})
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	client := &server.Client{URL: api, Token: uiToken}

	// Page views over the last hour and a half (so that the rollup has several
	// buckets), purchases on two of the pages by users who viewed them (so
	// that a page's users are fewer than its viewers plus its buyers), and
	// a value that is not an event (a bad row).
	now := time.Now().UTC()
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, `{"event_id":"pv%d","event":"page_view","event_time":%q,"user_id":"u%d","page_url":"/p%d"}`+"\n",
			i, now.Add(-time.Duration(i)*90*time.Second).Format(time.RFC3339Nano), i%7, i%3)
	}
	for i := range 5 {
		fmt.Fprintf(&b, `{"event_id":"buy%d","event":"purchase","event_time":%q,"revenue":%d,"page_url":"/p%d","user_id":"u%d"}`+"\n", i, now.Format(time.RFC3339Nano), 10+i, i%2, i)
	}
	// A month ago, for the dashboard's range of dates: the first day's
	// first instant and the second day's last second are in the range, the
	// instants either side of it are not.
	day1 := now.AddDate(0, 0, -30).Truncate(24 * time.Hour)
	for i, at := range []time.Duration{-time.Second, 0, 12 * time.Hour, 47*time.Hour + 59*time.Minute + 59*time.Second + 500*time.Millisecond, 48 * time.Hour} {
		fmt.Fprintf(&b, `{"event_id":"old%d","event":"old_%c","event_time":%q,"user_id":"old%d"}`+"\n", i, 'a'+i%2, day1.Add(at).Format(time.RFC3339Nano), i%3)
	}
	if code, body := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	if code, body := post(t, coll, "application/json", []byte(`[42, {"event":"ok","event_id":"ok1"}]`)); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	waitForWith(t, client, "SELECT count(*) FROM events", "[[71]]")
	waitForWith(t, client, "SELECT count(*) FROM bad", "[[1]]")

	br := newBrowser(t, chromium)
	ctx, run, wait, eval, checkConsole := br.ctx, br.run, br.wait, br.eval, br.checkConsole

	// Without a session every page leads to the login page; a wrong token
	// is refused; the right one lands where the user was going.
	run("open jobs", chromedp.Navigate(api+"/jobs"))
	var loc string
	eval(`location.pathname + location.search`, &loc)
	if loc != "/login?next="+url.QueryEscape("/jobs") {
		t.Fatalf("without a session /jobs went to %s", loc)
	}
	run("wrong token", chromedp.Steps(chromedp.SetValue(`input[name=token]`, "nope"), chromedp.Click(`button[type=submit]`)))
	wait("wrong token", `!!document.querySelector('.login .error')`)
	br.mu.Lock()
	br.problems = nil // the browser logs the 401 of the wrong login
	br.mu.Unlock()
	run("log in", chromedp.Steps(chromedp.SetValue(`input[name=token]`, uiToken), chromedp.Click(`button[type=submit]`)))
	wait("log in", `location.pathname === '/jobs' && !!document.querySelector('#dag')`)
	checkConsole("login")

	for _, size := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		run("viewport", chromedp.EmulateViewport(size.width, size.height))
		for _, p := range uiPages {
			where := p.name + " (" + size.name + ")"
			run(where, chromedp.Navigate(api+p.path))
			wait(where, p.ready)
			var overflow int
			eval(`document.documentElement.scrollWidth - window.innerWidth`, &overflow)
			if overflow > 1 {
				t.Errorf("%s: the page is %d px wider than the window", where, overflow)
			}
			br.screenshot(p.name + "-" + size.name)
			checkConsole(where)
		}
	}
	run("viewport", chromedp.EmulateViewport(1280, 800))

	// The charts draw their series; events flow meanwhile, so that the
	// overview's rates are more than 0.
	traffic, stopTraffic := context.WithCancel(ctx)
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for i := 0; traffic.Err() == nil; i++ {
			post(t, coll, "application/json", []byte(fmt.Sprintf(`{"event":"page_view","event_id":"live%d","page_url":"/live"}`, i)))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// The dashboard refreshes itself: its numbers move with the traffic.
	run("dashboard", chromedp.Navigate(api+"/dashboards/test"))
	wait("dashboard", uiPages[3].ready)
	var first string
	eval(`document.querySelector('#tiles .big-number').firstChild.textContent`, &first)
	wait("dashboard refresh", `document.querySelector('#tiles .big-number').firstChild.textContent !== '`+first+`'`)
	for _, c := range []struct{ path, sel string }{{"/dashboards/test", ".tile-area"}, {"/", "#rate-chart"}, {"/rollups", "#rollup-chart"}} {
		run(c.path, chromedp.Navigate(api+c.path))
		wait(c.path+" chart", seriesPixels+`('`+c.sel+`') > 20`)
	}
	stopTraffic()
	<-trafficDone
	// A longer range asks for coarser buckets, a multiple of the grain.
	for _, secs := range []string{"86400", "604800"} {
		eval(`(() => { document.querySelector('#rollup-status').textContent = ''; const r = document.querySelector('#rollup-range'); r.value = '`+secs+`'; r.dispatchEvent(new Event('change')) })()`, new(string))
		wait("rollup range "+secs, `/buckets/.test(document.querySelector('#rollup-status').textContent) && !document.querySelector('#rollup-status').classList.contains('error')`)
	}

	// Explore: a selection made in the form answers what SQL over the lake
	// answers, draws its chart, and comes back from its URL.
	run("explore", chromedp.Navigate(api+"/explore"))
	wait("explore", `document.querySelectorAll('#explore-fields input[type=checkbox]').length >= 5`)
	eval(exploreForm([]string{"events.page_url", "events.events", "events.users"}, nil), new(string))
	exploreTable := `[...document.querySelectorAll('#explore-table tbody tr')].map(r => [...r.cells].map(c => c.textContent).join(' ')).join('\n')`
	wait("explore run", `document.querySelectorAll('#explore-table tbody tr').length === 3 && document.querySelectorAll('#explore-chart svg.bars rect').length === 3`)
	res, err := client.SQL(context.Background(), "SELECT page_url, count(*), count(DISTINCT user_id) FROM events WHERE page_url <> '/live' GROUP BY 1 ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var wantExplore []string
	for _, r := range res.Rows {
		wantExplore = append(wantExplore, fmt.Sprintf("%v %v %v", r[0], r[1], r[2]))
	}
	var got string
	eval(exploreTable, &got)
	if got != strings.Join(wantExplore, "\n") {
		t.Errorf("explore table:\n%s\nSQL:\n%s", got, strings.Join(wantExplore, "\n"))
	}
	var shared string
	eval(`location.href`, &shared)
	run("explore reload", chromedp.Navigate(shared))
	wait("explore reload", `document.querySelectorAll('#explore-table tbody tr').length === 3`)
	var restored string
	eval(`[...document.querySelectorAll('#explore-fields input:checked')].map(c => c.value).join(',') + ' ' + document.querySelector('#explore-filters .filter-value').value + ' ' + document.querySelector('#explore-sort').value`, &restored)
	if restored != "events.page_url,events.events,events.users /live events.page_url" {
		t.Errorf("%s restored %q", shared, restored)
	}
	eval(exploreTable, &got)
	if got != strings.Join(wantExplore, "\n") {
		t.Errorf("explore table after a reload:\n%s", got)
	}
	// Over time, as lines and as areas: uPlot draws the series.
	for _, viz := range []string{"line", "area"} {
		run("explore "+viz, chromedp.Navigate(api+"/explore?explore=events&fields=events.event_time_hour,events.events&viz="+viz))
		wait("explore "+viz, seriesPixels+`('#explore-chart') > 20`)
	}
	eval(`document.querySelector('#explore-sql').textContent`, &got)
	if !strings.Contains(got, "SELECT") {
		t.Errorf("explore SQL: %q", got)
	}
	checkConsole("explore")

	// A pivot: the events of each page by event, each event a column group
	// of the measures, empty where a page has none, and the pages' totals:
	// what SQL over the lake answers. It comes back from its URL.
	run("pivot", chromedp.Navigate(api+"/explore"))
	wait("pivot", `document.querySelectorAll('#explore-fields input[type=checkbox]').length >= 5`)
	eval(exploreForm([]string{"events.page_url", "events.event", "events.events", "events.users"}, []string{"events.event"}), new(string))
	pivotTable := `[...document.querySelectorAll('#explore-table.pivot tr')].map(r => [...r.cells].map(c => c.textContent).join('|')).join('\n')`
	wait("pivot run", `document.querySelectorAll('#explore-table.pivot tbody tr').length === 3`)
	wantPivot := pivotFromSQL(t, client, "page_url <> '/live'")
	eval(pivotTable, &got)
	if got != wantPivot {
		t.Errorf("pivot table:\n%s\nSQL:\n%s", got, wantPivot)
	}
	eval(`location.href`, &shared)
	if !strings.Contains(shared, "pivots=events.event") {
		t.Errorf("the pivot is not in the URL: %s", shared)
	}
	run("pivot reload", chromedp.Navigate(shared))
	wait("pivot reload", `document.querySelectorAll('#explore-table.pivot tbody tr').length === 3`)
	eval(`[...document.querySelectorAll('#explore-pivots input:checked')].map(c => c.value).join(',') + ' ' + [...document.querySelectorAll('#explore-fields input:checked')].map(c => c.value).join(',')`, &restored)
	if restored != "events.event events.event,events.page_url,events.events,events.users" {
		t.Errorf("%s restored %q", shared, restored)
	}
	eval(pivotTable, &got)
	if got != wantPivot {
		t.Errorf("pivot table after a reload:\n%s\nSQL:\n%s", got, wantPivot)
	}
	// Over time, a line per event.
	run("pivot lines", chromedp.Navigate(api+"/explore?explore=events&fields=events.event_time_hour,events.event,events.events&pivots=events.event"))
	wait("pivot lines", seriesPixels+`('#explore-chart') > 20 && document.querySelectorAll('#explore-chart .u-legend .u-series').length >= 3`)
	checkConsole("pivot")

	// A dashboard over a range of dates, from the first day's first instant
	// to the second day's last: its numbers and rows are SQL's over that
	// range, its charts draw, and the range comes back from the URL.
	from, to := day1.Format(time.DateOnly), day1.AddDate(0, 0, 1).Format(time.DateOnly)
	inRange := fmt.Sprintf("event_time >= TIMESTAMP '%s' AND event_time < TIMESTAMP '%s'", from, day1.AddDate(0, 0, 2).Format(time.DateOnly))
	res, err = client.SQL(context.Background(), "SELECT count(*), count(DISTINCT user_id) FROM events WHERE "+inRange)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Rows) != "[[3 3]]" {
		t.Fatalf("the events of %s to %s: %v", from, to, res.Rows)
	}
	byType, err := client.SQL(context.Background(), "SELECT event, count(*) FROM events WHERE "+inRange+" GROUP BY 1 ORDER BY 2 DESC, 1")
	if err != nil {
		t.Fatal(err)
	}
	var wantTypes []string
	for _, r := range byType.Rows {
		wantTypes = append(wantTypes, fmt.Sprint(r[0], " ", r[1]))
	}
	numbers := `[...document.querySelectorAll('#tiles .big-number')].map(n => n.firstChild.textContent).join(' ')`
	typesTile := `[...document.querySelectorAll('#tiles .tile-table tbody tr')].map(r => [...r.cells].map(c => c.textContent).join(' ')).join('\n')`
	inDates := numbers + ` === '` + fmt.Sprint(res.Rows[0][0], " ", res.Rows[0][1]) + `' && ` + typesTile + ` === '` + strings.Join(wantTypes, `\n`) + `' && ` +
		seriesPixels + `('.tile-area') > 20 && document.querySelectorAll('#tiles .tile-pivot table.pivot tbody tr').length === 1 && !document.querySelector('#tiles .failed')`
	run("dates", chromedp.Navigate(api+"/dashboards/test"))
	wait("dates", uiPages[3].ready)
	eval(`(() => {
		const r = document.querySelector('#dash-range');
		r.value = 'dates';
		r.dispatchEvent(new Event('change'));
		document.querySelector('#dash-from').value = '`+from+`';
		const to = document.querySelector('#dash-to');
		to.value = '`+to+`';
		to.dispatchEvent(new Event('change'));
	})()`, new(string))
	wait("dashboard over dates", inDates)
	var search string
	eval(`location.search`, &search)
	if search != "?from="+from+"&to="+to {
		t.Errorf("dashboard over dates: the URL's query is %q", search)
	}
	run("dates reload", chromedp.Navigate(api+"/dashboards/test"+search))
	wait("dashboard over dates, reloaded", inDates+` && document.querySelector('#dash-range').value === 'dates' && document.querySelector('#dash-from').value === '`+from+`' && document.querySelector('#dash-to').value === '`+to+`'`)
	checkConsole("dashboard over dates")

	// The SQL console shows what the API answers.
	q := "SELECT event, count(*) AS n, sum(revenue) AS revenue FROM events WHERE event_id NOT LIKE 'live%' GROUP BY event ORDER BY event"
	run("sql", chromedp.Steps(chromedp.Navigate(api+"/sql"), chromedp.SetValue(`#sql-editor`, q), chromedp.Click(`#sql-run`)))
	wait("sql", `!!document.querySelector('#sql-grid')`)
	var grid string
	eval(`[...document.querySelectorAll('#sql-grid tbody tr')].map(r => [...r.cells].map(c => c.textContent || 'null').join(' ')).join('\n')`, &grid)
	res, err = client.SQL(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range res.Rows {
		var cells []string
		for _, v := range r {
			if v == nil {
				v = "null"
			}
			cells = append(cells, fmt.Sprint(v))
		}
		want = append(want, strings.Join(cells, " "))
	}
	if grid != strings.Join(want, "\n") {
		t.Errorf("SQL console grid:\n%s\nAPI:\n%s", grid, strings.Join(want, "\n"))
	}
	var history string
	eval(`document.querySelector('#sql-history li code').textContent`, &history)
	if history != q {
		t.Errorf("query history: %q", history)
	}

	// A live tail shows an event posted after it started.
	run("tail", chromedp.Steps(chromedp.Navigate(api+"/streams")))
	wait("streams", uiPages[5].ready)
	run("tail", chromedp.Steps(chromedp.SetValue(`#tail-stream`, "events"), chromedp.Click(`#tail-start`)))
	wait("tail", `/waiting for events/.test(document.querySelector('#tail-status').textContent)`)
	if code, body := post(t, coll, "application/json", []byte(`{"event":"tailed","event_id":"tail-me"}`)); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	wait("tail", `document.querySelector('#tail').textContent.includes('"tail-me"')`)
	run("tail", chromedp.Click(`#tail-stop`))

	// Run a job from its button; the run shows up with its log.
	run("jobs", chromedp.Navigate(api+"/jobs"))
	wait("jobs", uiPages[6].ready)
	eval(`[...document.querySelectorAll('#jobs tbody tr')].find(r => r.cells[0].textContent === 'hello').querySelector('button').click()`, new(string))
	wait("job run", `[...document.querySelectorAll('#runs tbody tr')].some(r => r.cells[1].textContent === 'hello' && r.cells[3].textContent === 'succeeded')`)
	eval(`[...document.querySelectorAll('#runs tbody tr')].find(r => r.cells[1].textContent === 'hello').querySelector('a').click()`, new(string))
	wait("run log", `document.querySelector('#run-attempts').textContent.includes('hello from the UI test')`)

	// A job with a parameter runs with the value typed next to its button;
	// a backfill reports its dates; a running run can be cancelled.
	eval(`(() => { const r = document.querySelector('#jobs tr[data-job="report"]'); r.querySelector('input[data-param="date"]').value = '2026-11-20'; r.querySelector('button').click() })()`, new(string))
	wait("run with a parameter", `[...document.querySelectorAll('#runs tbody tr')].some(r => r.cells[1].textContent === 'report' && r.cells[2].textContent === 'date=2026-11-20')`)
	eval(`document.querySelector('#bf-from').value = '2026-11-01'; document.querySelector('#bf-to').value = '2026-11-02'; [...document.querySelectorAll('#jobs tr[data-job="daily_views"] button')].find(b => b.textContent === 'Backfill').click()`, new(string))
	wait("backfill", `/backfill daily_views: \d+ of 2 dates done/.test(document.querySelector('#jobs-status').textContent)`)
	eval(`document.querySelector('#jobs tr[data-job="slow"] button').click()`, new(string))
	wait("slow run", `[...document.querySelectorAll('#runs tbody tr')].some(r => r.cells[1].textContent === 'slow' && r.cells[3].textContent === 'running' && r.querySelector('button'))`)
	eval(`[...document.querySelectorAll('#runs tbody tr')].find(r => r.cells[1].textContent === 'slow').querySelector('button').click()`, new(string))
	wait("cancel", `[...document.querySelectorAll('#runs tbody tr')].some(r => r.cells[1].textContent === 'slow' && r.cells[3].textContent === 'cancelled')`)

	// Bad rows: a group's sample payloads; a dry run of the replay goes
	// through the API (a POST with the CSRF token).
	run("bad", chromedp.Navigate(api+"/bad"))
	wait("bad", uiPages[7].ready)
	eval(`document.querySelector('#bad tbody td a').click()`, new(string))
	wait("bad row samples", `[...document.querySelectorAll('#bad-payloads pre.payload')].some(p => p.textContent === '42')`)
	eval(`document.querySelector('#bad tbody button').click()`, new(string))
	wait("replay dry run", `/would replay/.test(document.querySelector('#bad-status').textContent)`)
	checkConsole("actions")

	// Logging out ends the session: the pages lead to the login page again.
	run("log out", chromedp.Click(`form.logout button`))
	wait("log out", `location.pathname === '/login'`)
	run("after logging out", chromedp.Navigate(api+"/sql"))
	wait("after logging out", `location.pathname === '/login' && !!document.querySelector('input[name=token]')`)
	checkConsole("log out")
}

// pivotFromSQL is the Explore page's pivot table of the test's events
// (pages by event: events and users) as SQL over the lake answers it: the
// header rows, then a row per page with each event's two numbers (empty
// where the page has none) and the page's totals, cells separated by |.
func pivotFromSQL(t *testing.T, c *server.Client, where string) string {
	t.Helper()
	ctx := context.Background()
	cells, err := c.SQL(ctx, "SELECT page_url, event, count(*), count(DISTINCT user_id) FROM events WHERE "+where+" GROUP BY 1, 2")
	if err != nil {
		t.Fatal(err)
	}
	totals, err := c.SQL(ctx, "SELECT page_url, count(*), count(DISTINCT user_id) FROM events WHERE "+where+" GROUP BY 1 ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	cell := map[string]string{}
	for _, r := range cells.Rows {
		e := fmt.Sprint(r[1])
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
		cell[fmt.Sprint(r[0], "|", e)] = fmt.Sprint(r[2], "|", r[3])
	}
	sort.Strings(events)
	lines := []string{"Events Event|" + strings.Join(events, "|") + "|Total", "Events Page URL" + strings.Repeat("|Events Events|Events Users", len(events)+1)}
	for _, r := range totals.Rows {
		line := fmt.Sprint(r[0])
		for _, e := range events {
			v, ok := cell[fmt.Sprint(r[0], "|", e)]
			if !ok {
				v = "|"
			}
			line += "|" + v
		}
		lines = append(lines, line+fmt.Sprint("|", r[1], "|", r[2]))
	}
	return strings.Join(lines, "\n")
}

// browser is a headless chromium driven by chromedp that records every
// console error and uncaught exception of its pages.
type browser struct {
	t        testing.TB
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t testing.TB, chromium string) *browser {
	ctx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 800), chromedp.UserDataDir(t.TempDir()))
	t.Cleanup(cancel)
	ctx, cancel = chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// checkConsole fails the test for every console problem since the last check.
func (b *browser) checkConsole(where string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s: console: %s", where, p)
	}
	b.problems = nil
}

func (b *browser) run(what string, a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, a); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait waits until the JavaScript condition cond holds.
func (b *browser) wait(what, cond string) {
	b.t.Helper()
	// Evaluated again and again rather than polled in the page: a
	// navigation (a form's submit) ends a poll.
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var ok bool
		if ok, err = chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+cond+`) } catch (e) { return false } })()`)); err == nil && ok {
			return
		}
	}
	html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText`))
	b.t.Fatalf("%s: waiting for %s (%v)\npage:\n%s", what, cond, err, html)
}

// eval evaluates expr into out (a *string or an *int).
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	s := fmt.Sprint(v)
	switch o := out.(type) {
	case *string:
		*o = s
	case *int:
		fmt.Sscan(s, o)
	}
}

// screenshot writes the page as DIR/name.png when SLUICE_SCREENSHOTS=DIR.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("SLUICE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// waitForWith polls a query through c until it returns want.
func waitForWith(t *testing.T, c *server.Client, q, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := c.SQL(context.Background(), q)
		if err != nil {
			got = "error: " + err.Error()
			continue
		}
		if got = fmt.Sprint(res.Rows); got == want {
			return
		}
	}
	t.Fatalf("%s: got %s, want %s", q, got, want)
}

// exploreForm is the JavaScript that fills the Explore page's form as a
// person would: the fields and pivots ticked, pages other than /live,
// sorted by page, and runs it.
func exploreForm(fields, pivots []string) string {
	list := func(xs []string) string {
		b, _ := json.Marshal(append([]string{}, xs...))
		return string(b)
	}
	return `(() => {
		for (const f of ` + list(fields) + `) document.querySelector('#explore-fields input[value="' + f + '"]').click();
		for (const f of ` + list(pivots) + `) document.querySelector('#explore-pivots input[value="' + f + '"]').click();
		document.querySelector('#explore-add-filter').click();
		const r = document.querySelector('#explore-filters .filter-row');
		r.querySelector('.filter-field').value = 'events.page_url';
		r.querySelector('.filter-op').value = '!=';
		r.querySelector('.filter-value').value = '/live';
		document.querySelector('#explore-sort').value = 'events.page_url';
		document.querySelector('#explore-run').click();
	})()`
}
