// Package bench is Sluice's load generator (`sluice bench`). It measures what
// the issues set targets for, through the real HTTP collector: ingest
// throughput to the durable bus for a matrix of concurrent clients and batch
// sizes, end-to-end throughput from ingest to rows queryable in the lake, and
// how soon an event is visible in a rollup under load (freshness.go).
//
// Bodies are realistic web-shop events from package demo, each with a unique
// event_id, built before the clock starts so the generator measures the server
// rather than itself.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/demo"
)

// timeLayout is how event_time is written, as package demo writes it.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Protocols are the request formats the load generator speaks.
var Protocols = []string{"json", "tp2"}

// Corpus is a pool of encoded events without their event id, ready to be
// stamped with fresh ids, in one protocol: plain JSON for /v1/events, or the
// Snowplow tracker protocol (tp2 POST, every value a string).
type Corpus struct {
	tails    [][]byte // each event's JSON after its opening brace
	run      string
	protocol string
	live     bool // event_time is when the body is built
	next     atomic.Uint64
}

// NewCorpus encodes n realistic events in protocol (json or tp2).
func NewCorpus(n int, seed int64, protocol string) (*Corpus, error) {
	return newCorpus(n, seed, protocol, false)
}

// NewLiveCorpus encodes n realistic events in JSON whose event_time is the
// time their body is built, as a tracker sending as things happen does.
func NewLiveCorpus(n int, seed int64) (*Corpus, error) {
	return newCorpus(n, seed, "json", true)
}

func newCorpus(n int, seed int64, protocol string, live bool) (*Corpus, error) {
	if protocol == "" {
		protocol = "json"
	}
	if !slices.Contains(Protocols, protocol) {
		return nil, fmt.Errorf("unknown protocol %q (json, tp2)", protocol)
	}
	g := demo.NewGenerator(seed)
	c := &Corpus{run: fmt.Sprintf("bench-%d", time.Now().UnixNano()), protocol: protocol, live: live}
	at := time.Now().UTC().Add(-time.Hour)
	for len(c.tails) < n {
		for _, ev := range g.Next(at) {
			delete(ev, "event_id")
			if live {
				delete(ev, "event_time")
			}
			var v any = ev
			if protocol == "tp2" {
				v = trackerEvent(ev, at)
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			c.tails = append(c.tails, b[1:])
		}
		at = at.Add(100 * time.Millisecond)
	}
	return c, nil
}

// trackerEvent writes a demo event as a JavaScript tracker would send it:
// page views as e=pv, the rest as structured events, with the country and
// device in a context.
func trackerEvent(ev map[string]any, at time.Time) map[string]string {
	str := func(k string) string { s, _ := ev[k].(string); return s }
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	out := map[string]string{
		"tv": "js-4.1.0", "tna": "sp", "aid": str("app_id"), "p": str("platform"), "duid": str("anonymous_id"),
		"sid": str("session_id"), "vid": "1", "url": str("page_url"), "page": str("page_title"), "refr": str("referrer"),
		"uid": str("user_id"), "ua": str("useragent"), "ip": str("ip"), "dtm": ms, "stm": ms,
		"res": "1920x1080", "vp": "1280x720", "lang": "en-US", "tz": "Europe/Berlin", "cs": "UTF-8",
	}
	if name := str("event"); name == "page_view" {
		out["e"] = "pv"
	} else {
		out["e"], out["se_ca"], out["se_ac"] = "se", "shop", name
		if r, ok := ev["revenue"]; ok {
			out["se_va"] = fmt.Sprint(r)
		}
	}
	ctx, _ := json.Marshal(map[string]any{
		"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
		"data": []any{map[string]any{"schema": "iglu:com.acme/visitor/jsonschema/1-0-0",
			"data": map[string]any{"country": ev["country"], "device": ev["device"]}}},
	})
	out["cx"] = base64.RawURLEncoding.EncodeToString(ctx)
	for k, v := range out {
		if v == "" {
			delete(out, k)
		}
	}
	return out
}

// Path is where the corpus's requests go.
func (c *Corpus) Path() string {
	if c.protocol == "tp2" {
		return "/com.snowplowanalytics.snowplow/tp2"
	}
	return "/v1/events"
}

// Body builds a request body of n events with fresh event ids: a JSON array,
// or a tp2 payload_data envelope.
func (c *Corpus) Body(n int) []byte { return c.AppendBody(make([]byte, 0, n*600+128), n) }

// AppendBody is Body appended to b: a client that sends one body at a time
// reuses its buffer, so that the load generator, in the server's process,
// does not make the server's garbage collector work for it.
func (c *Corpus) AppendBody(b []byte, n int) []byte {
	idKey := "event_id"
	if c.protocol == "tp2" {
		b = append(b, `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":`...)
		idKey = "eid"
	}
	var now []byte
	if c.live {
		now = time.Now().UTC().AppendFormat(nil, timeLayout)
	}
	b = append(b, '[')
	for i := 0; i < n; i++ {
		k := c.next.Add(1)
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"%s":"%s-%d",`, idKey, c.run, k)
		if c.live {
			b = append(b, `"event_time":"`...)
			b = append(b, now...)
			b = append(b, `",`...)
		}
		b = append(b, c.tails[int(k)%len(c.tails)]...)
	}
	b = append(b, ']')
	if c.protocol == "tp2" {
		b = append(b, '}')
	}
	return b
}

// IngestResult is one cell of the ingest matrix.
type IngestResult struct {
	Clients, Batch   int
	Requests, Events int64
	Bytes            int64
	Elapsed          time.Duration
	P50, P99         time.Duration
}

// EventsPerSec is acknowledged events per second.
func (r IngestResult) EventsPerSec() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// MBPerSec is acknowledged body megabytes (10^6) per second.
func (r IngestResult) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

// Ingest posts batches from clients concurrent clients for d and counts what
// was acknowledged (HTTP 200). Each client sends its next request only after
// the previous answer, as trackers do.
func Ingest(ctx context.Context, collectorURL string, c *Corpus, clients, batch int, d time.Duration) (IngestResult, error) {
	// Prebuild enough bodies that building them is not what is measured.
	perClient := 64
	bodies := make([][][]byte, clients)
	for i := range bodies {
		for j := 0; j < perClient; j++ {
			bodies[i] = append(bodies[i], c.Body(batch))
		}
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := collectorURL + c.Path()

	var res IngestResult
	res.Clients, res.Batch = clients, batch
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			var reqs, evs, bytesSent int64
			for j := 0; ctx.Err() == nil; j++ {
				body := bodies[i][j%perClient]
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
					}
					break
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("status %d: %s", resp.StatusCode, msg))
					mu.Unlock()
					break
				}
				local = append(local, time.Since(t0))
				reqs++
				evs += int64(batch)
				bytesSent += int64(len(body))
			}
			mu.Lock()
			lat = append(lat, local...)
			res.Requests += reqs
			res.Events += evs
			res.Bytes += bytesSent
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[len(lat)*99/100]
	}
	return res, firstErr
}

func cmpErr(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

// LakeResult is the end-to-end measurement.
type LakeResult struct {
	Events       int64
	IngestTime   time.Duration // first request to last acknowledgement
	LakeTime     time.Duration // first request to the last row queryable
	CatchUp      time.Duration // last acknowledgement to the last row queryable
	Samples      []LagSample   // events acknowledged but not yet in the lake, over time
	IngestPerSec float64
	LakePerSec   float64
}

// LagSample is one observation of how far the lake is behind ingest.
type LagSample struct {
	At          time.Duration
	Acked, Rows int64
	LagEvents   int64
	LagFraction float64
}

// Counter reports how many rows a table holds (through SQL, as a user sees it).
type Counter func(ctx context.Context) (int64, error)

// Lake posts total events from clients clients, at full speed or paced to
// rate events/s (0: unpaced), and measures how long until all of them are
// rows in the lake, sampling the lag every second.
func Lake(ctx context.Context, collectorURL string, c *Corpus, clients, batch int, total int64, rate float64, count Counter) (LakeResult, error) {
	baseline, err := count(ctx)
	if err != nil {
		return LakeResult{}, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	var acked atomic.Int64
	var sent atomic.Int64
	start := time.Now()
	if rate > 0 {
		start = start.Add(10 * time.Millisecond)
	}
	errc := make(chan error, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			for {
				k := sent.Add(int64(batch))
				if k > total {
					return
				}
				if rate > 0 {
					// Pace by the schedule: event k is due at k/rate.
					due := start.Add(time.Duration(float64(k-int64(batch)) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				// The collector reads a body whole before it answers, so
				// the buffer is free again once the answer is read.
				body = c.AppendBody(body[:0], batch)
				resp, err := hc.Post(collectorURL+c.Path(), "application/json", bytes.NewReader(body))
				if err != nil {
					errc <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errc <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
				acked.Add(int64(batch))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var res LakeResult
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	ingestDone := false
	for {
		select {
		case err := <-errc:
			return res, err
		case <-done:
			if !ingestDone {
				ingestDone = true
				res.IngestTime = time.Since(start)
			}
			done = nil
		case <-ticker.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		rows, err := count(ctx)
		if err != nil {
			return res, err
		}
		rows -= baseline
		a := acked.Load()
		s := LagSample{At: time.Since(start).Round(time.Second), Acked: a, Rows: rows, LagEvents: a - rows}
		if a > 0 {
			s.LagFraction = float64(a-rows) / float64(a)
		}
		res.Samples = append(res.Samples, s)
		if ingestDone && rows >= a {
			res.Events = a
			res.LakeTime = time.Since(start)
			res.CatchUp = res.LakeTime - res.IngestTime
			res.IngestPerSec = float64(a) / res.IngestTime.Seconds()
			res.LakePerSec = float64(a) / res.LakeTime.Seconds()
			return res, nil
		}
	}
}
