package bench

// Rollup freshness (issue 7): how soon after the collector acknowledges an
// event it is visible in its rollup's SQL table, under background traffic.
// Every MarkEvery a marked page view, whose page_url is its own, goes
// through the collector; the table is polled through the SQL API until each
// marker shows, and the rollup's memory through the rollup query API, which
// splits the time into counting and reaching SQL.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/rollup"
	"github.com/sluice-data/sluice/server"
)

// FreshnessRollup is the rollup freshness is measured on.
const FreshnessRollup = "pageviews_1m"

// freshnessRollupYAML is pageviews_1m of examples/realtime/sluice.yaml (a
// test keeps the two the same).
const freshnessRollupYAML = `rollups:
  pageviews_1m:
    from: events
    filter: 'event == "page_view"'
    granularity: 1m
    dimensions: [country, page_url]
    metrics:
      views: count()
      visitors: distinct(user_id)
    retention: 30d
    coarsen:
      - {after: 48h, granularity: 1h}
`

// AddFreshnessRollup gives cfg the rollup pageviews_1m of
// examples/realtime/sluice.yaml, unless it has a rollup of that name.
func AddFreshnessRollup(cfg *config.Config) error {
	if _, ok := cfg.Rollups[FreshnessRollup]; ok {
		return nil
	}
	ex, err := config.Parse("examples/realtime/sluice.yaml", []byte(freshnessRollupYAML))
	if err != nil {
		return err
	}
	if cfg.Rollups == nil {
		cfg.Rollups = map[string]config.Rollup{}
	}
	cfg.Rollups[FreshnessRollup] = ex.Rollups[FreshnessRollup]
	return nil
}

// FreshnessOptions configure a freshness measurement.
type FreshnessOptions struct {
	Collector string         // collector URL
	API       *server.Client // SQL and rollup query API
	// Rate is the background traffic in events/s, sent by Clients clients
	// in requests of Batch events.
	Rate           float64
	Clients, Batch int
	// Duration is how long markers are sent.
	Duration time.Duration
	// Corpus is how many distinct events the background cycles through
	// (default 200,000): the more, the more groups (country, page_url) a
	// minute's bucket has, as under real traffic.
	Corpus int
	// MarkEvery is how often a marker is sent (default 100 ms), PollEvery
	// how often the table is polled (default 20 ms), Timeout how long after
	// its acknowledgement a marker may take to show before it counts as
	// lost (default 30 s).
	MarkEvery, PollEvery, Timeout time.Duration
}

// Marker is one marked page view.
type Marker struct {
	URL   string
	Sent  time.Time // request sent
	Acked time.Time // HTTP 200: durably on the bus
	// Counted is when the rollup query API first answered with it (the
	// rollup's memory), Visible when the SQL table first did; zero: never.
	Counted, Visible time.Time
	// Views is its views in the SQL table at the end: 1 when counted right.
	Views int64
}

// FreshnessResult is what a freshness measurement saw.
type FreshnessResult struct {
	Rollup  string
	Markers []Marker
	// Offered is the background rate asked for; Background the background
	// events acknowledged in Elapsed.
	Offered    float64
	Background int64
	Elapsed    time.Duration
	// SQLPolls and RollupPolls are how long each poll took.
	SQLPolls, RollupPolls []time.Duration
}

// BackgroundPerSec is acknowledged background events per second.
func (r FreshnessResult) BackgroundPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Background) / r.Elapsed.Seconds()
}

// Lost are the markers never seen in the SQL table.
func (r FreshnessResult) Lost() []Marker {
	var out []Marker
	for _, m := range r.Markers {
		if m.Visible.IsZero() {
			out = append(out, m)
		}
	}
	return out
}

// Ack is the spread of send to acknowledgement.
func (r FreshnessResult) Ack() Spread {
	return r.spread(func(m Marker) (time.Time, time.Time) { return m.Sent, m.Acked })
}

// Counted is the spread of acknowledgement to seen in the rollup's memory.
func (r FreshnessResult) Counted() Spread {
	return r.spread(func(m Marker) (time.Time, time.Time) { return m.Acked, m.Counted })
}

// Visible is the spread of acknowledgement to seen in the SQL table: the
// freshness issue 7 sets a target for.
func (r FreshnessResult) Visible() Spread {
	return r.spread(func(m Marker) (time.Time, time.Time) { return m.Acked, m.Visible })
}

func (r FreshnessResult) spread(span func(Marker) (time.Time, time.Time)) Spread {
	var ds []time.Duration
	for _, m := range r.Markers {
		if from, to := span(m); !to.IsZero() {
			ds = append(ds, to.Sub(from))
		}
	}
	return SpreadOf(ds)
}

// Spread summarises durations by percentiles (nearest rank).
type Spread struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// SpreadOf summarises ds.
func SpreadOf(ds []time.Duration) Spread {
	if len(ds) == 0 {
		return Spread{}
	}
	s := slices.Sorted(slices.Values(ds))
	rank := func(p float64) time.Duration {
		return s[max(0, int(math.Ceil(p*float64(len(s))))-1)]
	}
	return Spread{N: len(s), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: s[len(s)-1]}
}

// Freshness sends background traffic and markers for o.Duration, waits
// until every marker is visible (or o.Timeout has passed since the last
// acknowledgement), and checks that each was counted once. A lost or
// miscounted marker is an error, returned with the result.
func Freshness(ctx context.Context, o FreshnessOptions) (FreshnessResult, error) {
	if o.MarkEvery <= 0 {
		o.MarkEvery = 100 * time.Millisecond
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 20 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Corpus <= 0 {
		o.Corpus = 200000
	}
	o.Clients, o.Batch = max(o.Clients, 1), max(o.Batch, 1)
	res := FreshnessResult{Rollup: FreshnessRollup, Offered: o.Rate}
	corpus, err := NewLiveCorpus(o.Corpus, 1)
	if err != nil {
		return res, err
	}
	marker, err := markerTail()
	if err != nil {
		return res, err
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	f := &freshness{o: o, run: run, prefix: "/sluice-fresh/" + run + "/", runStart: time.Now()}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, o.Clients+2)
	if o.Rate > 0 {
		for range o.Clients {
			wg.Go(func() {
				if err := f.background(ctx, corpus); err != nil {
					errc <- fmt.Errorf("background traffic: %w", err)
				}
			})
		}
	}
	sending := make(chan struct{})
	wg.Go(func() {
		defer close(sending)
		if err := f.sendMarkers(ctx, marker); err != nil {
			errc <- fmt.Errorf("marker: %w", err)
		}
	})
	wg.Go(func() { f.pollRollup(ctx) })

	var pollErr error
	tick := time.NewTicker(o.PollEvery)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-errc:
			stop()
			wg.Wait()
			return f.result(res), err
		case <-ctx.Done():
			wg.Wait()
			return f.result(res), ctx.Err()
		case <-sending:
			sending = nil
		case <-tick.C:
		}
		pending, _, lastAck := f.pending(func(m *Marker) bool { return m.Visible.IsZero() })
		if len(pending) > 0 {
			t0 := time.Now()
			seen, err := f.sqlSeen(ctx)
			at := time.Now()
			f.mu.Lock()
			f.sqlPolls = append(f.sqlPolls, at.Sub(t0))
			for i := range f.markers {
				if m := &f.markers[i]; m.Visible.IsZero() && seen[m.URL] > 0 {
					m.Visible = at
				}
			}
			f.mu.Unlock()
			// The table is created by the first refresh: until then, and
			// on a busy server, a poll may fail; a marker still missing at
			// the end reports it.
			pollErr = err
		}
		if sending == nil {
			pending, _, _ = f.pending(func(m *Marker) bool { return m.Visible.IsZero() })
			done = len(pending) == 0 || time.Since(lastAck) > o.Timeout
		}
	}
	stop()
	wg.Wait()
	res = f.result(res)

	if lost := res.Lost(); len(lost) > 0 {
		err := fmt.Errorf("%d of %d markers never visible in %s within %s of their acknowledgement, e.g. %s", len(lost), len(res.Markers), FreshnessRollup, o.Timeout, lost[0].URL)
		if pollErr != nil {
			err = fmt.Errorf("%w (last poll: %v)", err, pollErr)
		}
		return res, err
	}
	// Each marker is one page view: count its views in the table.
	views, err := f.sqlSeen(context.WithoutCancel(ctx))
	if err != nil {
		return res, fmt.Errorf("%s: %w", FreshnessRollup, err)
	}
	var wrong []string
	for i := range res.Markers {
		m := &res.Markers[i]
		if m.Views = views[m.URL]; m.Views != 1 {
			wrong = append(wrong, fmt.Sprintf("%s (%d views)", m.URL, m.Views))
		}
	}
	if len(wrong) > 0 {
		return res, fmt.Errorf("%d markers not counted once in %s: %s", len(wrong), FreshnessRollup, strings.Join(wrong, ", "))
	}
	return res, nil
}

// freshness is a measurement's shared state.
type freshness struct {
	o        FreshnessOptions
	run      string
	prefix   string // of the markers' page_url: /sluice-fresh/<run>/
	runStart time.Time
	acked    atomic.Int64 // background events
	sent     atomic.Int64
	bgEnd    atomic.Int64 // unix nanos of the last background answer

	mu          sync.Mutex
	markers     []Marker
	sqlPolls    []time.Duration
	rollupPolls []time.Duration
}

func (f *freshness) result(res FreshnessResult) FreshnessResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	res.Markers = slices.Clone(f.markers)
	res.SQLPolls = slices.Clone(f.sqlPolls)
	res.RollupPolls = slices.Clone(f.rollupPolls)
	res.Background = f.acked.Load()
	if end := f.bgEnd.Load(); end > 0 {
		res.Elapsed = time.Unix(0, end).Sub(f.runStart)
	}
	return res
}

// pending are the URLs of the acknowledged markers that match, when the
// first of them was sent, and when the last marker was acknowledged.
func (f *freshness) pending(match func(*Marker) bool) (urls []string, first, lastAck time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.markers {
		m := &f.markers[i]
		if match(m) {
			if urls == nil {
				first = m.Sent
			}
			urls = append(urls, m.URL)
		}
		lastAck = m.Acked
	}
	return urls, first, lastAck
}

// background posts the live corpus, paced by the schedule (event k is due
// at k/Rate after the start), until ctx ends; behind the schedule, it sends
// as fast as it is answered.
func (f *freshness) background(ctx context.Context, c *Corpus) error {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	url := f.o.Collector + c.Path()
	for ctx.Err() == nil {
		k := f.sent.Add(int64(f.o.Batch)) - int64(f.o.Batch)
		due := f.runStart.Add(time.Duration(float64(k) / f.o.Rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(c.Body(f.o.Batch)))
		req.Header.Set("Content-Type", "application/json")
		if err := do(hc, req); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		f.acked.Add(int64(f.o.Batch))
		f.bgEnd.Store(time.Now().UnixNano())
	}
	return nil
}

// sendMarkers posts a marker every MarkEvery for Duration, one at a time
// on a connection of its own.
func (f *freshness) sendMarkers(ctx context.Context, tail []byte) error {
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	tick := time.NewTicker(f.o.MarkEvery)
	defer tick.Stop()
	for n := 1; time.Since(f.runStart) < f.o.Duration; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		m := Marker{URL: f.prefix + strconv.Itoa(n), Sent: time.Now()}
		b := fmt.Appendf(nil, `{"event_id":"sluice-fresh-%s-%d","event_time":"%s","page_url":"%s",`,
			f.run, n, m.Sent.UTC().Format(timeLayout), m.URL)
		b = append(b, tail...)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.o.Collector+"/v1/events", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if err := do(hc, req); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", m.URL, err)
		}
		m.Acked = time.Now()
		f.mu.Lock()
		f.markers = append(f.markers, m)
		f.mu.Unlock()
	}
	return nil
}

// do sends req and reads the answer; any answer but 200 is an error.
func do(hc *http.Client, req *http.Request) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// markerTail is a demo page view without its id, time and page_url, as a
// JSON object's fields after the opening brace.
func markerTail() ([]byte, error) {
	g := demo.NewGenerator(7)
	for at := time.Now(); ; at = at.Add(time.Second) {
		for _, ev := range g.Next(at) {
			if ev["event"] != "page_view" {
				continue
			}
			delete(ev, "event_id")
			delete(ev, "event_time")
			delete(ev, "page_url")
			b, err := json.Marshal(ev)
			if err != nil {
				return nil, err
			}
			return b[1:], nil
		}
	}
}

// sqlSeen asks the SQL table for the markers so far and their views.
func (f *freshness) sqlSeen(ctx context.Context) (map[string]int64, error) {
	res, err := f.o.API.SQL(ctx, fmt.Sprintf("SELECT page_url, CAST(sum(views) AS BIGINT) FROM %s WHERE page_url LIKE '%s%%' GROUP BY page_url", FreshnessRollup, f.prefix))
	if err != nil {
		return nil, err
	}
	seen := map[string]int64{}
	for _, row := range res.Rows {
		url, _ := row[0].(string)
		n, _ := strconv.ParseInt(fmt.Sprint(row[1]), 10, 64)
		seen[url] = n
	}
	return seen, nil
}

// pollRollup asks the rollup query API, every PollEvery, which of the
// markers not yet seen there it has counted, until ctx ends.
func (f *freshness) pollRollup(ctx context.Context) {
	tick := time.NewTicker(f.o.PollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pending, first, _ := f.pending(func(m *Marker) bool { return m.Counted.IsZero() })
		if len(pending) == 0 {
			continue
		}
		// Only the minutes the pending markers can be in (their event_time
		// is when they were sent): the query reads every row it covers.
		q := rollup.Query{QueryType: "groupBy", From: first.Truncate(time.Minute), Dimensions: []string{"page_url"}, Metrics: []string{"views"},
			Filter: &rollup.Filter{Type: "in", Dimension: "page_url", Values: pending}}
		var out []rollup.Result
		t0 := time.Now()
		err := f.o.API.Post(ctx, "/api/v1/rollups/"+FreshnessRollup+"/query", q, &out)
		at := time.Now()
		if err != nil {
			continue
		}
		f.mu.Lock()
		f.rollupPolls = append(f.rollupPolls, at.Sub(t0))
		for _, r := range out {
			url, _ := r.Event["page_url"].(string)
			for i := range f.markers {
				if m := &f.markers[i]; m.URL == url && m.Counted.IsZero() {
					m.Counted = at
				}
			}
		}
		f.mu.Unlock()
	}
}

// WriteTable writes the result as markdown: the spread of each stage, then
// the markers lost, loudly.
func (r FreshnessResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "background: %.0f events/s offered, %.0f acknowledged (%d events in %s)\n\n",
		r.Offered, r.BackgroundPerSec(), r.Background, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintln(w, "| from → to | n | p50 | p90 | p99 | max |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	row := func(name string, s Spread) {
		ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", name, s.N, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max))
	}
	row("sent → acknowledged (on the bus)", r.Ack())
	row("acknowledged → counted (rollup query API)", r.Counted())
	row(fmt.Sprintf("**acknowledged → visible in SQL (%s)**", r.Rollup), r.Visible())
	row("one SQL poll", SpreadOf(r.SQLPolls))
	row("one rollup API poll", SpreadOf(r.RollupPolls))
	lost := r.Lost()
	fmt.Fprintf(w, "\nmarkers: %d sent, %d visible in SQL, %d lost\n", len(r.Markers), len(r.Markers)-len(lost), len(lost))
	for _, m := range lost {
		fmt.Fprintf(w, "LOST: %s, acknowledged %s, never visible in %s\n", m.URL, m.Acked.UTC().Format(timeLayout), r.Rollup)
	}
}
