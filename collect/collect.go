// Package collect is where data enters Sluice: the public HTTP collector.
//
// A collector only frames and stores. It checks what it must to answer the
// client truthfully (size, content type, that the body is JSON and how many
// events it holds) and writes the body untouched, with its metadata, to the
// `raw` stream. Parsing, validation and enrichment happen later, in enrich.
//
// Promise: a 200 is sent only after the payload is durably on the bus.
// Concurrent requests are grouped into one bus message (group commit), so one
// fsync acknowledges many requests; when the bus cannot store, every waiting
// request gets a 503 with the reason and nothing is acknowledged.
package collect

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// Store is where the collector writes frames: the bus.
type Store interface {
	Publish(ctx context.Context, stream string, data []byte, msgID string) (uint64, error)
	MaxPayload() int64
}

// Options configure a Collector. Zero limits take the defaults.
type Options struct {
	Store     Store
	MaxBody   int64 // largest body after decompression; default 1 MiB
	MaxEvents int   // most events per request; default 10000
	// WriteKeys, when set, are the only Segment-style write keys accepted.
	WriteKeys []string
	// Cookie is the Snowplow routes' network user id cookie.
	Cookie Cookie
	Logger *slog.Logger
}

// Collector is the HTTP collector. Its zero value is not usable; call New.
type Collector struct {
	store     Store
	maxBody   int64
	maxEvents int
	maxFrame  int64
	writeKeys map[string]bool
	cookie    Cookie
	log       *slog.Logger

	queue   chan *pending
	stopped chan struct{}
	mu      sync.RWMutex // guards closed against sends on queue
	closed  bool
}

// pending is one request waiting for its frame to be stored.
type pending struct {
	payload sluice.Payload
	events  int
	done    chan error
}

// New returns a Collector and starts its writer. Call Close to stop it.
func New(o Options) *Collector {
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Cookie.Name == "" {
		o.Cookie.Name = "sp"
	}
	if o.Cookie.Expiration <= 0 {
		o.Cookie.Expiration = 365 * 24 * time.Hour
	}
	if o.Cookie.SameSite == 0 {
		o.Cookie.SameSite = http.SameSiteNoneMode
	}
	maxFrame := o.Store.MaxPayload() / 2
	c := &Collector{
		store:     o.Store,
		maxBody:   o.MaxBody,
		maxEvents: o.MaxEvents,
		maxFrame:  max(maxFrame, 1),
		writeKeys: keySet(o.WriteKeys),
		cookie:    o.Cookie,
		log:       o.Logger,
		queue:     make(chan *pending, 1024),
		stopped:   make(chan struct{}),
	}
	go c.write()
	return c
}

// Close stops the writer after every queued request got its answer. Call it
// after the HTTP server has stopped accepting requests.
func (c *Collector) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	<-c.stopped
}

// Handler serves the collector's routes.
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", c.handleEvents)
	mux.HandleFunc("POST /v1/batch", c.handleSegment)
	for _, t := range SegmentTypes {
		mux.HandleFunc("POST /v1/"+t, c.handleSegment)
	}
	c.snowplowRoutes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// acceptedTypes are the media types /v1/events reads as JSON. text/plain is
// what navigator.sendBeacon sends.
var acceptedTypes = map[string]bool{
	"":                        true,
	"application/json":        true,
	"application/x-ndjson":    true,
	"application/ndjson":      true,
	"application/jsonl":       true,
	"application/x-jsonlines": true,
	"text/plain":              true,
}

func (c *Collector) handleEvents(w http.ResponseWriter, r *http.Request) {
	c.accept(w, r, func(body []byte) (int, map[string]string, int, error) {
		n, err := countEvents(body)
		return n, nil, http.StatusBadRequest, err
	})
}

// counter checks a body and says how many events it holds, with extra
// headers to keep on the payload; on error, the status to answer.
type counter func(body []byte) (n int, headers map[string]string, status int, err error)

// accept is the common path of the JSON routes: check the request, count,
// store, answer.
func (c *Collector) accept(w http.ResponseWriter, r *http.Request, count counter) {
	p, ok := c.prepare(w, r, acceptedTypes, count)
	if !ok {
		return
	}
	if p.events == 0 {
		// An empty array: nothing to store.
		collectorRequests.WithLabelValues("200").Inc()
		writeJSON(w, http.StatusOK, map[string]int{"accepted": 0})
		return
	}
	if c.commit(w, r, p) {
		writeJSON(w, http.StatusOK, map[string]int{"accepted": p.events})
	}
}

// prepare checks a request's content type, reads and counts its body and
// returns what to store. On failure it has answered the client.
func (c *Collector) prepare(w http.ResponseWriter, r *http.Request, types map[string]bool, count counter) (*pending, bool) {
	received := time.Now().UTC()
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		mt, _, err = mime.ParseMediaType(ct)
		if err != nil {
			collectorRequests.WithLabelValues("415").Inc()
			fail(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q cannot be parsed: %v; send application/json or application/x-ndjson", ct, err))
			return nil, false
		}
	}
	if !types[mt] {
		collectorRequests.WithLabelValues("415").Inc()
		fail(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q is not accepted here; send application/json (one object or an array) or application/x-ndjson", mt))
		return nil, false
	}
	body, status, err := c.readBody(r)
	if err != nil {
		collectorRequests.WithLabelValues(statusLabel(status)).Inc()
		fail(w, status, err.Error())
		return nil, false
	}
	n, extra, status, err := count(body)
	if err != nil {
		collectorRequests.WithLabelValues(statusLabel(status)).Inc()
		fail(w, status, err.Error())
		return nil, false
	}
	if n > c.maxEvents {
		collectorRequests.WithLabelValues("413").Inc()
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%d events in one request; the limit is %d (http.max_events): split the batch", n, c.maxEvents))
		return nil, false
	}
	return c.newPending(r, received, mt, body, n, extra), true
}

// newPending wraps a request's body and metadata for the writer.
func (c *Collector) newPending(r *http.Request, received time.Time, contentType string, body []byte, n int, extra map[string]string) *pending {
	return &pending{
		payload: sluice.Payload{
			ReceivedAt:  received,
			Collector:   "http",
			Path:        r.URL.Path,
			ContentType: contentType,
			IP:          clientIP(r),
			UserAgent:   r.UserAgent(),
			Headers:     keptHeaders(r.Header, extra),
			Body:        body,
		},
		events: n,
		done:   make(chan error, 1),
	}
}

// commit stores p and reports whether it was stored; when it was not, the
// client has its 503.
func (c *Collector) commit(w http.ResponseWriter, r *http.Request, p *pending) bool {
	collectorEventsReceived.Add(float64(p.events))
	collectorBytesReceived.Add(float64(len(p.payload.Body)))
	if err := c.enqueue(r.Context(), p); err != nil {
		collectorRequests.WithLabelValues("503").Inc()
		fail(w, http.StatusServiceUnavailable, "events not stored: "+err.Error()+"; retry later")
		return false
	}
	collectorRequests.WithLabelValues("200").Inc()
	collectorEventsAcked.Add(float64(p.events))
	return true
}

// readBody reads the whole body, gunzipping it if needed, within the limit.
func (c *Collector) readBody(r *http.Request) ([]byte, int, error) {
	limitMsg := func() error {
		return fmt.Errorf("body is larger than the limit of %s (http.max_body): send smaller batches", humanBytes(c.maxBody))
	}
	if r.ContentLength > c.maxBody && r.Header.Get("Content-Encoding") == "" {
		return nil, http.StatusRequestEntityTooLarge, limitMsg()
	}
	var src io.Reader = http.MaxBytesReader(nil, r.Body, 4*c.maxBody+1024)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("body says Content-Encoding gzip but is not gzip: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content encoding %q is not supported; use gzip or none", enc)
	}
	// Size the buffer from Content-Length when it is known, so a large body
	// is not copied over and over while it grows.
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 {
		size = min(r.ContentLength, c.maxBody) + bytes.MinRead + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(src, c.maxBody+1))
	body := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, limitMsg()
		}
		return nil, http.StatusBadRequest, fmt.Errorf("body could not be read: %v", err)
	}
	if int64(len(body)) > c.maxBody {
		return nil, http.StatusRequestEntityTooLarge, limitMsg()
	}
	return body, 0, nil
}

// countJSON checks that body is a sequence of JSON values and counts them;
// the error says where it broke.
func countJSON(body []byte) (int, error) {
	n, err := jsonseq.Count(body)
	if err != nil {
		var se *jsonseq.SyntaxError
		if errors.As(err, &se) {
			return 0, fmt.Errorf("body is not valid JSON: %v", se)
		}
		return 0, fmt.Errorf("body is not valid JSON: %v", err)
	}
	return n, nil
}

// countEvents checks that body is JSON events and says how many it holds.
func countEvents(body []byte) (int, error) {
	n, err := countJSON(body)
	if err != nil {
		return 0, err
	}
	if n == 1 {
		first := bytes.TrimLeft(body, " \t\r\n\ufeff")
		if len(first) > 0 && first[0] != '{' && first[0] != '[' {
			return 0, fmt.Errorf("body is a JSON %s; send one object, an array of objects, or NDJSON objects", kind(first[0]))
		}
	}
	return n, nil
}

func kind(b byte) string {
	switch b {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// enqueue hands p to the writer and waits for its frame to be stored.
func (c *Collector) enqueue(ctx context.Context, p *pending) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errors.New("collector is shutting down")
	}
	select {
	case c.queue <- p:
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	c.mu.RUnlock()
	// Wait for the answer even if the client went away: the payload may be
	// stored, and the writer must not block on us.
	return <-p.done
}

// write is the group-commit loop: it takes every request waiting, packs
// them into frames below the bus's message limit and stores each frame with
// one publish.
func (c *Collector) write() {
	defer close(c.stopped)
	var batch []*pending
	for first := range c.queue {
		batch = append(batch[:0], first)
		size := int64(len(first.payload.Body))
	fill:
		for size < c.maxFrame {
			select {
			case p, ok := <-c.queue:
				if !ok {
					break fill
				}
				if size+int64(len(p.payload.Body)) > c.maxFrame {
					c.flush(batch)
					batch = batch[:0]
					size = 0
				}
				batch = append(batch, p)
				size += int64(len(p.payload.Body))
			default:
				break fill
			}
		}
		c.flush(batch)
	}
}

func (c *Collector) flush(batch []*pending) {
	if len(batch) == 0 {
		return
	}
	payloads := make([]sluice.Payload, len(batch))
	for i, p := range batch {
		payloads[i] = p.payload
	}
	frame, err := sluice.EncodeFrame(payloads)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err = c.store.Publish(ctx, sluice.StreamRaw, frame, "")
		cancel()
		collectorStoreSeconds.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		c.log.Error("collector: frame not stored", "requests", len(batch), "err", err)
		err = errors.New("the bus did not store them (" + err.Error() + ")")
	}
	for _, p := range batch {
		p.done <- err
	}
}

// keptHeaders picks the request headers enrich may need.
func keptHeaders(h http.Header, extra map[string]string) map[string]string {
	out := extra
	for _, k := range []string{"Referer", "Origin", "X-Forwarded-For", "Accept-Language"} {
		if v := h.Get(k); v != "" {
			if out == nil {
				out = make(map[string]string, 4)
			}
			out[k] = v
		}
	}
	return out
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func statusLabel(code int) string { return fmt.Sprint(code) }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
