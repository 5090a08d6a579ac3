// Package demo makes realistic synthetic web-shop traffic and sends it through
// Sluice's real HTTP collector, so that `sluice demo` shows every stage of the
// pipeline working on data that looks like a shop's: a pool of visitors (most
// anonymous, some registered) from weighted countries, devices and browsers,
// arriving from search engines, social sites, campaigns (utm_* parameters) or
// directly; sessions that browse Zipf-popular pages, search, add to cart and,
// in about 3% of sessions, buy. Activity follows a daily rhythm in UTC.
//
// Generator makes the events and needs no network; Run sends them: first past
// traffic (History) with past event times, then live traffic at a steady rate.
//
// Delivery: Run posts batches to POST /v1/events and counts a batch as sent
// only when the collector answers 200, which it does only once the batch is
// durably stored. An unavailable collector (503, network errors) is retried
// with the same body until it accepts or the context ends. Every event carries
// a unique event_id, so a retried batch that had in fact been stored is
// deduplicated by enrich: each event arrives exactly once.
//
// Ordering: history is sent in event-time order; live events are sent when
// their event time has come, within about a second.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of Options, also used by `sluice demo` for its flags.
const (
	DefaultRate                 = 20.0
	DefaultHistory              = 72 * time.Hour
	DefaultHistoryEventsPerHour = 1500
	DefaultBatchSize            = 100
)

// Options configures Run. Only CollectorURL is required; the zero value of
// every other field gives its default, except History, where zero means no
// history (the `sluice demo` command asks for DefaultHistory).
type Options struct {
	// CollectorURL is the base URL of Sluice's HTTP collector, e.g.
	// http://127.0.0.1:8080. Events go to its /v1/events.
	CollectorURL string
	// Rate is the number of live events per second (default 20).
	Rate float64
	// History is how much past traffic to send before going live, with past
	// event times following the daily rhythm; 0 sends none.
	History time.Duration
	// HistoryEventsPerHour is the average number of events per simulated hour
	// of history (default 1500).
	HistoryEventsPerHour int
	// BatchSize is the number of events per POST (default 100).
	BatchSize int
	// Seed makes the traffic reproducible; 0 takes one from the clock. The
	// same seed gives the same visitors and sessions, but event, session and
	// order ids still differ between runs, so that a second run's events are
	// not dropped as duplicates of the first run's.
	Seed int64
	// Duration stops live traffic after this long; 0 runs until ctx is done.
	Duration time.Duration
	// Progress is where to show progress: a progress bar for the history when
	// it is a terminal, a line every few seconds otherwise. Nil is silent.
	Progress io.Writer
	// Client sends the requests (default: a client with a 30s timeout).
	Client *http.Client
}

// Stats is what Run sent. Only events the collector acknowledged count.
type Stats struct {
	Sent    int64 // events acknowledged
	Batches int64 // POSTs acknowledged
	Retries int64 // attempts that failed and were retried
	// FirstEventTime and LastEventTime span the event times of the sent events.
	FirstEventTime, LastEventTime time.Time
}

// Run sends History, then live traffic at Rate until ctx is done or Duration
// has passed, and returns what was sent. Failures to reach the collector and
// 503s are retried with capped exponential backoff and the same body, so
// event ids are stable, until ctx is done. Run returns an error only for bad
// Options or an answer that must not be retried (a 4xx, with the collector's
// message); when ctx ends Run stops and returns nil, dropping the batch it
// was trying to send.
func Run(ctx context.Context, o Options) (Stats, error) {
	o, endpoint, err := o.normalize()
	if err != nil {
		return Stats{}, err
	}
	seed := o.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	start := time.Now().UTC().Truncate(time.Millisecond)
	g := NewGenerator(seed)
	g.namespaceRun(seed, start)
	s := &sender{
		c:    &collectorClient{url: endpoint, client: o.Client},
		size: o.BatchSize,
		rep:  newReporter(o.Progress, endpoint),
	}
	s.c.onRetry = func(reason string, wait time.Duration) {
		s.stats.Retries++
		s.rep.retry(reason, wait)
	}
	err = s.run(ctx, g, o, start)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
	}
	return s.stats, err
}

func (o Options) normalize() (Options, string, error) {
	u, err := url.Parse(o.CollectorURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, "", fmt.Errorf("demo: collector URL %q: want http://host:port, e.g. http://127.0.0.1:8080", o.CollectorURL)
	}
	switch {
	case o.Rate < 0:
		return o, "", fmt.Errorf("demo: rate %g events/s is negative", o.Rate)
	case o.History < 0:
		return o, "", fmt.Errorf("demo: history %s is negative", o.History)
	case o.Duration < 0:
		return o, "", fmt.Errorf("demo: duration %s is negative", o.Duration)
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.HistoryEventsPerHour <= 0 {
		o.HistoryEventsPerHour = DefaultHistoryEventsPerHour
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	base := strings.TrimSuffix(strings.TrimSuffix(u.String(), "/"), "/v1/events")
	return o, base + "/v1/events", nil
}

// flushInterval bounds how long a live event waits for its batch to fill.
const flushInterval = time.Second

// tick is how often live traffic is generated and sent.
const tick = 100 * time.Millisecond

// sender batches events and posts them, keeping the stats.
type sender struct {
	c        *collectorClient
	size     int
	batch    []timedEvent
	stats    Stats
	rep      *reporter
	lastPost time.Time
}

func (s *sender) run(ctx context.Context, g *Generator, o Options, start time.Time) error {
	var rest eventQueue
	if o.History > 0 {
		from := start.Add(-o.History)
		s.rep.historyStart(from, start, o.HistoryEventsPerHour)
		var err error
		rest, err = g.history(from, start, o.HistoryEventsPerHour, func(e timedEvent) error { return s.add(ctx, e) })
		if err == nil {
			err = s.flush(ctx)
		}
		s.rep.historyDone(s.stats, err)
		if err != nil {
			return err
		}
	}
	s.rep.liveStart(o.Rate, o.Duration)
	// The history's sessions go on live: their next events are sent when
	// their time comes.
	err := s.live(ctx, g, o, rest)
	s.rep.liveDone(s.stats)
	return err
}

// live makes events at o.Rate and sends each when its time has come.
func (s *sender) live(ctx context.Context, g *Generator, o Options, q eventQueue) error {
	var deadline time.Time
	begin := time.Now()
	if o.Duration > 0 {
		deadline = begin.Add(o.Duration)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	emit := func(e timedEvent) error { return s.add(ctx, e) }
	jitter := rand.New(rand.NewPCG(uint64(begin.UnixNano()), 0))
	last, credit := begin, 0.0
	s.lastPost = begin
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			// The sessions' last few events, due in the next seconds, go too:
			// every event made is sent.
			if err := q.drain(emit); err != nil {
				return err
			}
			return s.flush(ctx)
		}
		// After a stall (the collector was down) the missed traffic is not
		// made up in a burst: those visitors went elsewhere.
		elapsed := now.Sub(last)
		credit = min(credit+o.Rate*elapsed.Seconds(), max(2*o.Rate, 1))
		last = now
		for credit >= 1 {
			at := now.Add(-time.Duration(jitter.Int64N(int64(elapsed) + 1))).UTC()
			evs := g.step(at)
			credit -= float64(len(evs))
			q.push(evs...)
		}
		if err := q.release(now.UTC(), emit); err != nil {
			return err
		}
		if len(s.batch) > 0 && now.Sub(s.lastPost) >= flushInterval {
			if err := s.flush(ctx); err != nil {
				return err
			}
		}
		s.rep.progress(s.stats)
	}
}

func (s *sender) add(ctx context.Context, e timedEvent) error {
	s.batch = append(s.batch, e)
	if len(s.batch) >= s.size {
		return s.send(ctx, s.size)
	}
	return nil
}

func (s *sender) flush(ctx context.Context) error {
	for len(s.batch) > 0 {
		if err := s.send(ctx, min(len(s.batch), s.size)); err != nil {
			return err
		}
	}
	return nil
}

// send posts the first n events of the batch.
func (s *sender) send(ctx context.Context, n int) error {
	part := s.batch[:n]
	evs := make([]map[string]any, n)
	for i, e := range part {
		evs[i] = e.ev
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // "Home & Kitchen" stays readable in raw payloads
	if err := enc.Encode(evs); err != nil {
		return fmt.Errorf("demo: encode events: %w", err)
	}
	if err := s.c.post(ctx, body.Bytes(), n, part[0].ev["event_id"].(string)); err != nil {
		return err
	}
	for _, e := range part {
		if s.stats.FirstEventTime.IsZero() || e.t.Before(s.stats.FirstEventTime) {
			s.stats.FirstEventTime = e.t
		}
		if e.t.After(s.stats.LastEventTime) {
			s.stats.LastEventTime = e.t
		}
	}
	s.stats.Sent += int64(n)
	s.stats.Batches++
	s.batch = append(s.batch[:0], s.batch[n:]...)
	s.lastPost = time.Now()
	s.rep.progress(s.stats)
	return nil
}
