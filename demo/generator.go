package demo

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// timeLayout is how event_time is written: RFC 3339, milliseconds, UTC ("Z").
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// sessionTimeout ends a session whose next page would come later than this,
// the usual web-analytics definition of a session.
const sessionTimeout = 30 * time.Minute

var (
	shop = newCatalog()
	// idSpace is the UUID namespace from which every generated id is derived.
	idSpace = uuid.MustParse("6f1c8a52-3c0e-4d59-9a57-5b1f0f6c2e11")
)

// Generator simulates the visitors of a web shop: a growing pool of users (most
// anonymous, some registered) who start sessions, browse pages whose
// popularity follows a Zipf law, search, add to cart, and sometimes buy.
//
// It is deterministic: two Generators made with the same seed and asked for the
// same times produce the same events, event ids included. It is not safe for
// concurrent use.
type Generator struct {
	rng      *rand.Rand
	products *rand.Zipf   // index into shop.products
	inCat    []*rand.Zipf // per category, index into shop.byCategory[c]
	terms    *rand.Zipf   // index into shop.terms
	ids      uuid.UUID    // namespace of this generator's event, session and order ids

	sessions  sessionHeap // active sessions, the next one due first
	users     []*user
	events    uint64 // counters that name the next id of each kind
	nsessions uint64
	orders    uint64
	userIDs   int
}

// NewGenerator returns a Generator whose output is determined by seed.
func NewGenerator(seed int64) *Generator {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15))
	g := &Generator{
		rng:      rng,
		products: rand.NewZipf(rng, 1.1, 2, uint64(len(shop.products)-1)),
		terms:    rand.NewZipf(rng, 1.2, 1, uint64(len(shop.terms)-1)),
		ids:      uuid.NewSHA1(idSpace, fmt.Appendf(nil, "seed:%d", seed)),
	}
	for _, idx := range shop.byCategory {
		g.inCat = append(g.inCat, rand.NewZipf(rng, 1.1, 2, uint64(len(idx)-1)))
	}
	return g
}

// namespaceRun makes the event, session and order ids of this Generator
// distinct from those of any other run with the same seed. Run uses it so that
// starting the demo twice with one seed does not produce events that enrich
// would drop as duplicates of the first run's.
func (g *Generator) namespaceRun(seed int64, start time.Time) {
	g.ids = uuid.NewSHA1(idSpace, fmt.Appendf(nil, "seed:%d/run:%d", seed, start.UnixNano()))
}

// Next returns the events of one step of simulated activity at time at: a new
// session's landing page, or the next page of a session that is due. A step
// is one page view plus what happens on that page (a product_view, a search, an
// add_to_cart, a purchase with its items, ...). Those follow the page view by
// milliseconds, or by up to 30 seconds for an add_to_cart, so a step's events
// are not all at exactly at. Sessions move on when their next page is due by
// at, so at should not go backwards by more than a moment.
func (g *Generator) Next(at time.Time) []map[string]any {
	evs := g.step(at)
	out := make([]map[string]any, len(evs))
	for i, e := range evs {
		out[i] = e.ev
	}
	return out
}

// History produces the traffic of the period [from, to) and hands each event to
// emit in event-time order, stopping at emit's first error. The number of
// events per hour follows a daily rhythm (quiet at night, busiest in the
// evening, UTC; weekends differ) and averages perHour over a week. A session
// still open at to may end with events up to half a minute after to.
func (g *Generator) History(from, to time.Time, perHour int, emit func(ev map[string]any) error) error {
	each := func(e timedEvent) error { return emit(e.ev) }
	rest, err := g.history(from, to, perHour, each)
	if err != nil {
		return err
	}
	return rest.drain(each)
}

// history hands emit the events before to, and returns those of sessions
// still open at to, due later: sent at once, their event times would run
// ahead of the clock (and of the live traffic after them), and close
// windows of event time early.
func (g *Generator) history(from, to time.Time, perHour int, emit func(timedEvent) error) (eventQueue, error) {
	if perHour <= 0 {
		return nil, fmt.Errorf("demo: history needs a positive number of events per hour, got %d", perHour)
	}
	var q eventQueue
	steps, events := 0, 0
	at := from.UTC()
	for {
		// Steps are a Poisson process thinned by the daily curve; the step
		// rate is set from the events per step seen so far so that the
		// event rate comes out at perHour.
		perStep := 1.5
		if steps >= 100 {
			perStep = float64(events) / float64(steps)
		}
		stepsPerSecond := float64(perHour) * peakIntensity / perStep / 3600
		at = at.Add(time.Duration(g.rng.ExpFloat64() / stepsPerSecond * float64(time.Second)))
		if !at.Before(to) {
			break
		}
		if g.rng.Float64()*peakIntensity >= intensity(at) {
			continue
		}
		t := at.Truncate(time.Millisecond)
		if err := q.release(t, emit); err != nil {
			return nil, err
		}
		evs := g.step(t)
		steps++
		events += len(evs)
		q.push(evs...)
	}
	if err := q.release(to.UTC(), emit); err != nil {
		return nil, err
	}
	return q, nil
}

// The daily rhythm: relative activity at each full hour (UTC); between full
// hours it is interpolated.
var (
	weekdayCurve = [24]float64{0.30, 0.20, 0.15, 0.12, 0.12, 0.16, 0.28, 0.45, 0.62, 0.75, 0.85, 0.92, 1.00, 1.05, 1.08, 1.12, 1.20, 1.32, 1.45, 1.52, 1.50, 1.32, 0.95, 0.55}
	weekendCurve = [24]float64{0.40, 0.28, 0.20, 0.15, 0.13, 0.14, 0.20, 0.30, 0.48, 0.70, 0.92, 1.08, 1.18, 1.22, 1.22, 1.20, 1.22, 1.30, 1.40, 1.45, 1.42, 1.28, 0.98, 0.62}

	curveMean, peakIntensity = func() (mean, peak float64) {
		for h := range 24 {
			mean += 5*weekdayCurve[h] + 2*weekendCurve[h]
			peak = max(peak, weekdayCurve[h], weekendCurve[h])
		}
		mean /= 7 * 24
		return mean, peak / mean
	}()
)

// intensity is the activity at t relative to the weekly average (mean 1).
func intensity(t time.Time) float64 {
	t = t.UTC()
	curve := &weekdayCurve
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		curve = &weekendCurve
	}
	h := t.Hour()
	f := (float64(t.Minute()) + float64(t.Second())/60) / 60
	return (curve[h]*(1-f) + curve[(h+1)%24]*f) / curveMean
}

// expectedEvents is about how many events History makes in [from, to).
func expectedEvents(from, to time.Time, perHour int) int {
	sum := 0.0
	for t := from; t.Before(to); t = t.Add(time.Minute) {
		sum += intensity(t) * min(to.Sub(t), time.Minute).Hours()
	}
	return int(math.Round(sum * float64(perHour)))
}

// step runs one step of simulated activity at at (see Next).
func (g *Generator) step(at time.Time) []timedEvent {
	at = at.UTC().Truncate(time.Millisecond)
	for len(g.sessions) > 0 && g.sessions[0].nextAt.Before(at.Add(-sessionTimeout)) {
		heap.Pop(&g.sessions)
	}
	var s *session
	var p page
	if len(g.sessions) > 0 && !g.sessions[0].nextAt.After(at) {
		s = heap.Pop(&g.sessions).(*session)
		p = g.nextPage(s)
	} else {
		s = g.newSession()
		p = g.landingPage(s)
	}
	evs, end := g.visit(s, p, at)
	if !end {
		heap.Push(&g.sessions, s)
	}
	return evs
}

// timedEvent is an event with its time and creation order, so that events
// can be put back in time order without parsing event_time.
type timedEvent struct {
	t   time.Time
	seq uint64
	ev  map[string]any
}

// sessionHeap orders the active sessions by when their next page is due.
type sessionHeap []*session

func (h sessionHeap) Len() int { return len(h) }
func (h sessionHeap) Less(i, j int) bool {
	if !h[i].nextAt.Equal(h[j].nextAt) {
		return h[i].nextAt.Before(h[j].nextAt)
	}
	return h[i].n < h[j].n
}
func (h sessionHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sessionHeap) Push(x any)   { *h = append(*h, x.(*session)) }
func (h *sessionHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// eventQueue puts events back in time order: a step's later events (an
// add_to_cart half a minute after its page view) wait here until time reaches
// them.
type eventQueue []timedEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].t.Equal(q[j].t) {
		return q[i].t.Before(q[j].t)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(timedEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = timedEvent{}
	*q = old[:len(old)-1]
	return e
}

func (q *eventQueue) push(evs ...timedEvent) {
	for _, e := range evs {
		heap.Push(q, e)
	}
}

// drain hands every queued event to emit.
func (q *eventQueue) drain(emit func(timedEvent) error) error {
	for q.Len() > 0 {
		if err := emit(heap.Pop(q).(timedEvent)); err != nil {
			return err
		}
	}
	return nil
}

// release hands every queued event up to and including time upTo to emit.
func (q *eventQueue) release(upTo time.Time, emit func(timedEvent) error) error {
	for q.Len() > 0 && !(*q)[0].t.After(upTo) {
		if err := emit(heap.Pop(q).(timedEvent)); err != nil {
			return err
		}
	}
	return nil
}
