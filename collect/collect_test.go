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
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// Most tests here run the collector over HTTP with a real embedded bus as
// its Store, and read what it stored back from the raw stream. Stores that
// fail are small fakes: they stand for a bus that cannot store. The tests
// are inside the package to watch the writer's queue, which makes the
// group-commit tests deterministic. The collector against a killed external
// NATS server is tested in bus (TestExternalServerKilledCollector), next to
// the server process it needs.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{
		Dir:     t.TempDir(),
		Streams: map[string]bus.StreamConfig{sluice.StreamRaw: {Retention: time.Hour}},
		Logger:  quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// serve runs a collector over HTTP; it is stopped at cleanup (after the
// HTTP server, as the node does).
func serve(t *testing.T, o Options) (*Collector, *httptest.Server) {
	t.Helper()
	o.Logger = quiet
	c := New(o)
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() {
		srv.Close()
		c.Close()
	})
	return c, srv
}

type request struct {
	body        []byte
	contentType string // "-" for none
	encoding    string
	header      map[string]string
	chunked     bool   // hide the length, as a streaming client does
	path        string // default /v1/events
}

type response struct {
	status   int
	accepted int
	err      string
	raw      string
}

func post(t *testing.T, url string, rq request) response {
	t.Helper()
	r, err := send(url, rq)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send is post for goroutines other than the test's: it reports instead of
// failing the test.
func send(url string, rq request) (response, error) {
	var body io.Reader = bytes.NewReader(rq.body)
	if rq.chunked {
		body = io.MultiReader(body)
	}
	path := rq.path
	if path == "" {
		path = "/v1/events"
	}
	req, err := http.NewRequest(http.MethodPost, url+path, body)
	if err != nil {
		return response{}, err
	}
	switch rq.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", rq.contentType)
	}
	if rq.encoding != "" {
		req.Header.Set("Content-Encoding", rq.encoding)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: resp.StatusCode, raw: string(data)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return r, fmt.Errorf("%d response has content type %q, want application/json", r.status, ct)
	}
	var v struct {
		Accepted *int   `json:"accepted"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return r, fmt.Errorf("%d response is not JSON: %q", r.status, data)
	}
	if r.status == http.StatusOK {
		if v.Accepted == nil {
			return r, fmt.Errorf("200 without accepted: %s", data)
		}
		r.accepted = *v.Accepted
	} else if v.Error == "" {
		return r, fmt.Errorf("%d without an error message: %s", r.status, data)
	}
	r.err = v.Error
	return r, nil
}

// sendAll posts every request at once and returns the responses in order.
func sendAll(t *testing.T, url string, rqs []request) []response {
	t.Helper()
	out := make([]response, len(rqs))
	errs := make([]error, len(rqs))
	var wg sync.WaitGroup
	for i, rq := range rqs {
		wg.Go(func() { out[i], errs[i] = send(url, rq) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// stored reads the whole raw stream: the number of messages and every
// payload in them, in order.
func stored(t *testing.T, b *bus.Bus) (int, []sluice.Payload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	info, err := b.Info(ctx, sluice.StreamRaw)
	if err != nil {
		t.Fatal(err)
	}
	if info.Msgs == 0 {
		return 0, nil
	}
	r, err := b.ReadFrom(ctx, sluice.StreamRaw, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var (
		msgs     int
		payloads []sluice.Payload
	)
	for {
		select {
		case m, ok := <-r.C():
			if !ok {
				t.Fatalf("raw reader stopped after %d of %d messages", msgs, info.Msgs)
			}
			ps, err := sluice.DecodeFrame(m.Data)
			if err != nil {
				t.Fatalf("raw seq %d: %v", m.Seq, err)
			}
			if len(ps) == 0 {
				t.Fatalf("raw seq %d is an empty frame", m.Seq)
			}
			msgs++
			payloads = append(payloads, ps...)
			if m.Seq >= info.LastSeq {
				return msgs, payloads
			}
		case <-ctx.Done():
			t.Fatalf("read %d of %d raw messages", msgs, info.Msgs)
		}
	}
}

func TestAcceptsAndStores(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b})
	bom := "\xEF\xBB\xBF"
	tests := []struct {
		name   string
		rq     request
		body   string // what must be stored, if not rq.body
		events int
		ct     string // stored content type
	}{
		{"object", request{body: []byte(`{"event":"page_view","id":"object"}`)}, "", 1, "application/json"},
		{"array", request{body: []byte(` [{"id":"array"},{"n":2},{"n":3}] `)}, "", 3, "application/json"},
		{"empty array", request{body: []byte(`[]`), contentType: "application/json; charset=utf-8"}, "", 0, "application/json"},
		{"ndjson", request{body: []byte("{\"id\":\"ndjson\"}\r\n\n{\"n\":2}\n{\"n\":3}\n"), contentType: "application/x-ndjson"}, "", 3, "application/x-ndjson"},
		{"jsonl", request{body: []byte("{\"id\":\"jsonl\"}\n[1,2]\n"), contentType: "application/jsonl"}, "", 2, "application/jsonl"},
		{"beacon", request{body: []byte(`{"id":"beacon"}`), contentType: "text/plain;charset=UTF-8"}, "", 1, "text/plain"},
		{"no content type", request{body: []byte(`{"id":"none"}`), contentType: "-"}, "", 1, ""},
		{"byte order mark", request{body: []byte(bom + `{"id":"bom"}`)}, "", 1, "application/json"},
		{"gzip", request{body: gz(t, []byte(`[{"id":"gzip"},{"n":2}]`)), encoding: "gzip"}, `[{"id":"gzip"},{"n":2}]`, 2, "application/json"},
		{"x-gzip chunked", request{body: gz(t, []byte("{\"id\":\"x-gzip\"}\n{}")), encoding: "X-Gzip", chunked: true}, "{\"id\":\"x-gzip\"}\n{}", 2, "application/json"},
		{"identity", request{body: []byte(`{"id":"identity"}`), encoding: "identity"}, "", 1, "application/json"},
	}
	before := time.Now().UTC()
	for _, tt := range tests {
		tt.rq.header = map[string]string{
			"User-Agent":      "test-agent/" + tt.name,
			"Referer":         "https://shop.example/" + tt.name,
			"Accept-Language": "de-CH",
			"Cookie":          "secret=1",
		}
		if r := post(t, srv.URL, tt.rq); r.status != http.StatusOK || r.accepted != tt.events {
			t.Fatalf("%s: %d %s, want 200 accepted %d", tt.name, r.status, r.raw, tt.events)
		}
	}
	after := time.Now().UTC()

	_, payloads := stored(t, b)
	// An empty array holds nothing to store.
	if len(payloads) != len(tests)-1 {
		t.Fatalf("%d payloads stored for %d non-empty requests", len(payloads), len(tests)-1)
	}
	for _, tt := range tests {
		if tt.events == 0 {
			for _, p := range payloads {
				if p.UserAgent == "test-agent/"+tt.name {
					t.Errorf("%s: stored a payload with no events", tt.name)
				}
			}
			continue
		}
		want := tt.body
		if want == "" {
			want = string(tt.rq.body)
		}
		var p *sluice.Payload
		for i := range payloads {
			if payloads[i].UserAgent == "test-agent/"+tt.name {
				p = &payloads[i]
			}
		}
		if p == nil {
			t.Fatalf("%s: no payload stored", tt.name)
		}
		if string(p.Body) != want {
			t.Errorf("%s: stored body %q, want %q", tt.name, p.Body, want)
		}
		if p.Collector != "http" || p.Path != "/v1/events" || p.ContentType != tt.ct || p.IP != "127.0.0.1" {
			t.Errorf("%s: metadata collector %q path %q content type %q ip %q", tt.name, p.Collector, p.Path, p.ContentType, p.IP)
		}
		if p.ReceivedAt.Before(before) || p.ReceivedAt.After(after) || p.ReceivedAt.Location() != time.UTC {
			t.Errorf("%s: received_at %s not within [%s, %s] UTC", tt.name, p.ReceivedAt, before, after)
		}
		if p.Headers["Referer"] != "https://shop.example/"+tt.name || p.Headers["Accept-Language"] != "de-CH" {
			t.Errorf("%s: kept headers %v", tt.name, p.Headers)
		}
		if _, ok := p.Headers["Cookie"]; ok || len(p.Headers) != 2 {
			t.Errorf("%s: kept headers %v, want only Referer and Accept-Language", tt.name, p.Headers)
		}
	}
}

func TestHealthzAndRoutes(t *testing.T) {
	_, srv := serve(t, Options{Store: okStore{}})
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/events: %d, want 405", resp.StatusCode)
	}
}

// heldStore stores in the real bus, but holds every Publish until open is
// called, so a test can see what piles up behind a slow fsync. The hold does
// not count against the collector's deadline for storing a frame: under the
// race detector, filling the queue can take seconds.
type heldStore struct {
	*bus.Bus
	started chan int // per Publish that started: the requests in its frame
	release chan struct{}
	once    sync.Once

	mu     sync.Mutex
	frames []int // the size of each frame published
}

func newHeldStore(b *bus.Bus) *heldStore {
	return &heldStore{Bus: b, started: make(chan int, 100), release: make(chan struct{})}
}

func (s *heldStore) Publish(ctx context.Context, stream string, data []byte, msgID string) (uint64, error) {
	ps, err := sluice.DecodeFrame(data)
	if err != nil {
		return 0, err
	}
	s.started <- len(ps)
	<-s.release
	s.mu.Lock()
	s.frames = append(s.frames, len(data))
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.Bus.Publish(ctx, stream, data, msgID)
}

// open lets every Publish through, now and from now on.
func (s *heldStore) open() { s.once.Do(func() { close(s.release) }) }

// holdFirst waits for the first frame's Publish, then for the other
// requests of n to be queued behind it, and returns how many requests the
// first frame holds. The writer takes whatever is queued when it starts a
// frame, so the first frame may hold more than one.
func (s *heldStore) holdFirst(c *Collector, n int) (int, error) {
	var first int
	select {
	case first = <-s.started:
	case <-time.After(10 * time.Second):
		return 0, errors.New("no frame was published within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(c.queue) != n-first {
		if time.Now().After(deadline) {
			return first, fmt.Errorf("%d requests in the first frame, %d queued after 10s; want %d", first, len(c.queue), n-first)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return first, nil
}

// sendHeld sends rqs concurrently while the store holds back the first frame
// until every other request is queued behind it, checks that each is
// answered 200 with one event, and says how many went into the first frame.
func sendHeld(t *testing.T, store *heldStore, c *Collector, url string, rqs []request) int {
	t.Helper()
	var (
		first   int
		holdErr error
	)
	held := make(chan struct{})
	go func() {
		defer close(held)
		defer store.open()
		first, holdErr = store.holdFirst(c, len(rqs))
	}()
	for i, r := range sendAll(t, url, rqs) {
		if r.status != http.StatusOK || r.accepted != 1 {
			t.Errorf("request %d: %d %s", i, r.status, r.raw)
		}
	}
	<-held
	if holdErr != nil {
		t.Fatal(holdErr)
	}
	return first
}

func TestConcurrentRequestsAreGroupCommitted(t *testing.T) {
	b := openBus(t)
	store := newHeldStore(b)
	c, srv := serve(t, Options{Store: store})
	t.Cleanup(store.open)
	const n = 64
	rqs := make([]request, n)
	for i := range rqs {
		rqs[i] = request{body: fmt.Appendf(nil, `{"request":%d}`, i)}
	}
	// While the first frame is being stored, every other request waits;
	// then they all go in one frame.
	first := sendHeld(t, store, c, srv.URL, rqs)
	msgs, payloads := stored(t, b)
	want := 2
	if first == n {
		want = 1
	}
	if msgs != want {
		t.Errorf("%d requests stored as %d raw messages, want %d (%d in the first, the rest in one more)", n, msgs, want, first)
	}
	seen := make(map[string]int)
	for _, p := range payloads {
		seen[string(p.Body)]++
	}
	for i := range n {
		if body := fmt.Sprintf(`{"request":%d}`, i); seen[body] != 1 {
			t.Errorf("body %s stored %d times, want once", body, seen[body])
		}
	}
	if len(payloads) != n {
		t.Errorf("%d payloads stored, want %d", len(payloads), n)
	}
}

// TestConcurrentRequestsRealBus is the same without holding anything back:
// whatever the timing, every request is answered 200 and stored once.
func TestConcurrentRequestsRealBus(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b})
	const n = 64
	rqs := make([]request, n)
	for i := range rqs {
		rqs[i] = request{body: fmt.Appendf(nil, `[{"r":%d},{"r":%d}]`, i, i)}
	}
	for i, r := range sendAll(t, srv.URL, rqs) {
		if r.status != http.StatusOK || r.accepted != 2 {
			t.Errorf("request %d: %d %s", i, r.status, r.raw)
		}
	}
	msgs, payloads := stored(t, b)
	seen := make(map[string]bool)
	for _, p := range payloads {
		seen[string(p.Body)] = true
	}
	if len(payloads) != n || len(seen) != n || msgs > n {
		t.Fatalf("%d payloads (%d different) in %d raw messages for %d requests", len(payloads), len(seen), msgs, n)
	}
	t.Logf("%d concurrent requests stored in %d raw messages", n, msgs)
}

// TestFramesStayBelowTheLimit checks that frames are cut at half the bus's
// message size, never mixing in a body that would push one over.
func TestFramesStayBelowTheLimit(t *testing.T) {
	b := openBus(t)
	store := newHeldStore(b)
	c, srv := serve(t, Options{Store: store})
	t.Cleanup(store.open)
	const n, perFrame = 12, 4 // a fifth body of 900 KiB would take a frame over 4 MiB
	rqs := make([]request, n)
	for i := range rqs {
		rqs[i] = request{body: fmt.Appendf(nil, `{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", 900<<10))}
	}
	first := sendHeld(t, store, c, srv.URL, rqs)
	msgs, payloads := stored(t, b)
	if len(payloads) != n {
		t.Fatalf("%d payloads stored, want %d", len(payloads), n)
	}
	if want := 1 + (n-first+perFrame-1)/perFrame; msgs != want {
		t.Errorf("%d x 900 KiB (%d in the first frame) stored in %d frames, want %d", n, first, msgs, want)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for i, size := range store.frames {
		if limit := int(b.MaxPayload()) / 2; size > limit {
			t.Errorf("frame %d is %d bytes, over half the bus's message limit (%d)", i, size, limit)
		}
	}
}

func TestRejectsMalformed(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b})
	gzipped := gz(t, []byte(`{"a":1}`))
	corrupt := bytes.Clone(gzipped)
	corrupt[len(corrupt)-6] ^= 0xff // break the CRC
	tests := []struct {
		name string
		rq   request
		want string
	}{
		{"syntax error", request{body: []byte("{\"a\":1}\n{\"b\": }\n")}, "line 2, column 7"},
		{"truncated", request{body: []byte(`[{"a":1},`)}, "line 1, column 10: unexpected end of JSON input"},
		{"values without whitespace", request{body: []byte(`{"a":1}{"b":2}`)}, "line 1, column 8"},
		{"string", request{body: []byte(`"just a string"`)}, "JSON string"},
		{"number", request{body: []byte(` 42 `)}, "JSON number"},
		{"null", request{body: []byte(`null`)}, "JSON null"},
		{"boolean", request{body: []byte(`true`)}, "JSON boolean"},
		{"empty", request{body: nil}, "empty body"},
		{"blank", request{body: []byte(" \r\n\t ")}, "empty body"},
		{"not gzip", request{body: []byte(`{"a":1}`), encoding: "gzip"}, "not gzip"},
		{"corrupt gzip", request{body: corrupt, encoding: "gzip"}, "could not be read"},
		{"truncated gzip", request{body: gzipped[:len(gzipped)-4], encoding: "gzip"}, "could not be read"},
		{"gzip of garbage", request{body: gz(t, []byte("<xml/>")), encoding: "gzip"}, "not valid JSON"},
	}
	for _, tt := range tests {
		r := post(t, srv.URL, tt.rq)
		if r.status != http.StatusBadRequest || !strings.Contains(r.err, tt.want) {
			t.Errorf("%s: %d %q, want 400 mentioning %q", tt.name, r.status, r.err, tt.want)
		}
	}
	if msgs, _ := stored(t, b); msgs != 0 {
		t.Fatalf("%d raw messages stored for rejected requests", msgs)
	}
}

// bomb is gzip of a valid JSON object inflating to about size bytes.
func bomb(t *testing.T, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(`{"a":"`))
	chunk := bytes.Repeat([]byte("a"), 1<<20)
	for range size >> 20 {
		w.Write(chunk)
	}
	w.Write([]byte(`"}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRejectsOversized(t *testing.T) {
	b := openBus(t)
	const maxBody = 4 << 10
	_, srv := serve(t, Options{Store: b, MaxBody: maxBody, MaxEvents: 10})
	exact := fmt.Appendf(nil, `{"a":"%s"}`, strings.Repeat("x", maxBody-8))
	if len(exact) != maxBody {
		t.Fatalf("test body is %d bytes", len(exact))
	}
	over := append(bytes.Clone(exact[:len(exact)-2]), `x"}`...)
	events := func(n int) []byte {
		return []byte("[" + strings.TrimSuffix(strings.Repeat(`{"e":1},`, n), ",") + "]")
	}

	ok := []struct {
		name   string
		rq     request
		events int
	}{
		{"body of exactly max_body", request{body: exact}, 1},
		{"gzip inflating to exactly max_body", request{body: gz(t, exact), encoding: "gzip"}, 1},
		{"max_events events", request{body: events(10)}, 10},
	}
	for _, tt := range ok {
		if r := post(t, srv.URL, tt.rq); r.status != http.StatusOK || r.accepted != tt.events {
			t.Errorf("%s: %d %s, want 200 accepted %d", tt.name, r.status, r.raw, tt.events)
		}
	}

	zipBomb := bomb(t, 8<<20)
	if len(zipBomb) > 4*maxBody {
		t.Fatalf("zip bomb is %d bytes compressed: too big to test inflation", len(zipBomb))
	}
	tooBig := []struct {
		name string
		rq   request
		want string
	}{
		{"body over max_body", request{body: over}, "http.max_body"},
		{"chunked body over max_body", request{body: over, chunked: true}, "http.max_body"},
		{"identity body over max_body", request{body: over, encoding: "identity"}, "http.max_body"},
		{"gzip inflating over max_body", request{body: gz(t, over), encoding: "gzip"}, "http.max_body"},
		{"zip bomb", request{body: zipBomb, encoding: "gzip"}, "limit of 4 KiB (http.max_body)"},
		// Inflating to nothing, it is the compressed size that is capped.
		{"endless empty gzip members", request{body: bytes.Repeat(gz(t, nil), 10*maxBody/len(gz(t, nil))), encoding: "gzip", chunked: true}, "http.max_body"},
		{"more than max_events", request{body: events(11)}, "11 events in one request; the limit is 10 (http.max_events)"},
		{"more than max_events in ndjson", request{body: bytes.Repeat([]byte("{}\n"), 11)}, "http.max_events"},
	}
	for _, tt := range tooBig {
		start := time.Now()
		r := post(t, srv.URL, tt.rq)
		if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.err, tt.want) {
			t.Errorf("%s: %d %q, want 413 mentioning %q", tt.name, r.status, r.err, tt.want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %s to reject", tt.name, d)
		}
	}
	_, payloads := stored(t, b)
	if len(payloads) != len(ok) {
		t.Fatalf("%d payloads stored, want only the %d accepted", len(payloads), len(ok))
	}
}

// TestZipBombDefaultLimit inflates 16 MiB against the default 1 MiB limit.
func TestZipBombDefaultLimit(t *testing.T) {
	_, srv := serve(t, Options{Store: openBus(t)})
	r := post(t, srv.URL, request{body: bomb(t, 16<<20), encoding: "gzip"})
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.err, "1 MiB") {
		t.Fatalf("zip bomb: %d %q, want 413 naming the 1 MiB limit", r.status, r.err)
	}
}

func TestRejectsUnsupportedMedia(t *testing.T) {
	_, srv := serve(t, Options{Store: openBus(t)})
	body := []byte(`{"a":1}`)
	tests := []struct {
		name string
		rq   request
		want string
	}{
		{"xml", request{body: body, contentType: "text/xml"}, `"text/xml" is not accepted`},
		{"form", request{body: body, contentType: "application/x-www-form-urlencoded"}, "not accepted"},
		{"unparsable content type", request{body: body, contentType: "application/json; =x"}, "cannot be parsed"},
		{"brotli", request{body: body, encoding: "br"}, `content encoding "br" is not supported`},
		{"deflate", request{body: body, encoding: "deflate"}, "not supported"},
		{"two encodings", request{body: gz(t, gz(t, body)), encoding: "gzip, gzip"}, "not supported"},
	}
	for _, tt := range tests {
		r := post(t, srv.URL, tt.rq)
		if r.status != http.StatusUnsupportedMediaType || !strings.Contains(r.err, tt.want) {
			t.Errorf("%s: %d %q, want 415 mentioning %q", tt.name, r.status, r.err, tt.want)
		}
	}
}

// nested is {"a": [[[…]]]} with depth levels of nesting in all.
func nested(depth int) []byte {
	return []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
}

func TestHostileBodies(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b})
	tests := []struct {
		name   string
		rq     request
		status int
	}{
		{"huge exponent", request{body: []byte(`{"n":1e999999999}`)}, 200},
		{"huge integer", request{body: []byte(`{"n":` + strings.Repeat("9", 100000) + `}`)}, 200},
		{"negative zero", request{body: []byte(`{"n":-0.0E-0}`)}, 200},
		{"nesting at the limit", request{body: nested(10000)}, 200},
		{"nesting over the limit", request{body: nested(10001)}, 400},
		{"array nesting over the limit", request{body: bytes.Repeat([]byte("["), 20000)}, 400},
		{"invalid UTF-8 in a string", request{body: []byte("{\"s\":\"\xff\xfe\xc3(\xed\xa0\x80\"}")}, 200},
		{"invalid UTF-8 in a key", request{body: []byte("{\"\xc0\xaf\":1}")}, 200},
		{"escaped NUL", request{body: []byte(`{"s":"a\u0000b"}`)}, 200},
		{"lone surrogate", request{body: []byte(`{"s":"\ud800"}`)}, 200},
		{"raw NUL in a string", request{body: []byte("{\"s\":\"a\x00b\"}")}, 400},
		{"NUL between values", request{body: []byte("{}\x00{}")}, 400},
		{"NUL after the body", request{body: []byte("{}\x00")}, 400},
		{"only NULs", request{body: make([]byte, 1000)}, 400},
		{"many tiny events", request{body: bytes.Repeat([]byte("{}\n"), 10000)}, 200},
		{"long key", request{body: []byte(`{"` + strings.Repeat("k", 500000) + `":1}`)}, 200},
		{"hostile user agent", request{body: []byte(`{"ua":1}`), header: map[string]string{"User-Agent": "\xff\xfe<script>", "Referer": "\x80"}}, 200},
		{"gzip of invalid UTF-8", request{body: gz(t, []byte("[\"\xff\"]")), encoding: "gzip"}, 200},
	}
	for _, tt := range tests {
		r := post(t, srv.URL, tt.rq)
		if r.status != tt.status {
			t.Errorf("%s: %d %.200s, want %d", tt.name, r.status, r.raw, tt.status)
		}
	}
	_, payloads := stored(t, b)
	bodies := make(map[string]bool)
	for _, p := range payloads {
		bodies[string(p.Body)] = true
		if !utf8.ValidString(p.UserAgent) || !utf8.ValidString(p.Headers["Referer"]) {
			t.Errorf("stored metadata is not UTF-8: user agent %q, referer %q", p.UserAgent, p.Headers["Referer"])
		}
	}
	for _, tt := range tests {
		if tt.status == 200 && tt.rq.encoding == "" && !bodies[string(tt.rq.body)] {
			t.Errorf("%s: body not stored byte for byte", tt.name)
		}
	}
}

// failStore is a bus that cannot store.
type failStore struct {
	calls atomic.Int64
}

func (s *failStore) Publish(ctx context.Context, stream string, data []byte, msgID string) (uint64, error) {
	s.calls.Add(1)
	return 0, errors.New("nats: no response from stream")
}

func (s *failStore) MaxPayload() int64 { return bus.DefaultMaxPayload }

// okStore is a bus that stores everything, instantly.
type okStore struct{}

func (okStore) Publish(ctx context.Context, stream string, data []byte, msgID string) (uint64, error) {
	return 1, nil
}

func (okStore) MaxPayload() int64 { return bus.DefaultMaxPayload }

func TestStoreFailureAnswers503(t *testing.T) {
	store := &failStore{}
	_, srv := serve(t, Options{Store: store})
	rqs := make([]request, 32)
	for i := range rqs {
		rqs[i] = request{body: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	for i, r := range sendAll(t, srv.URL, rqs) {
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("request %d: %d %s, want 503", i, r.status, r.raw)
		}
		if !strings.Contains(r.err, "not stored") || !strings.Contains(r.err, "no response from stream") || !strings.Contains(r.err, "retry") {
			t.Errorf("503 message %q does not say what failed and what to do", r.err)
		}
	}
	if store.calls.Load() == 0 {
		t.Fatal("the store was never asked")
	}
	// Malformed requests are still told what is wrong with them.
	if r := post(t, srv.URL, request{body: []byte("{")}); r.status != http.StatusBadRequest {
		t.Fatalf("malformed request with a failing store: %d, want 400", r.status)
	}
}

// TestBusClosedAnswers503 stops the real bus under a running collector.
func TestBusClosedAnswers503(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b})
	if r := post(t, srv.URL, request{body: []byte(`{"before":1}`)}); r.status != http.StatusOK {
		t.Fatalf("before closing the bus: %d %s", r.status, r.raw)
	}
	b.Close()
	start := time.Now()
	r := post(t, srv.URL, request{body: []byte(`{"after":1}`)})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.err, "not stored") {
		t.Fatalf("with the bus closed: %d %s, want 503", r.status, r.raw)
	}
	if d := time.Since(start); d > 11*time.Second {
		t.Fatalf("503 took %s", d)
	}
}

func TestCloseLetsInFlightRequestsFinish(t *testing.T) {
	b := openBus(t)
	store := newHeldStore(b)
	c := New(Options{Store: store, Logger: quiet})
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(store.open) // before srv.Close, should the test fail early

	const n = 8
	type result struct {
		r   response
		err error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			r, err := send(srv.URL, request{body: fmt.Appendf(nil, `{"inflight":%d}`, i)})
			results <- result{r, err}
		}()
	}
	if _, err := store.holdFirst(c, n); err != nil {
		t.Fatal(err)
	}

	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while requests were still waiting for the bus")
	case <-time.After(200 * time.Millisecond):
	}
	// Requests arriving now are turned away, not lost. (The writer holds
	// the queue, so wait for Close to have marked the collector closed.)
	waitFor(t, func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.closed
	})
	if r := post(t, srv.URL, request{body: []byte(`{"late":1}`)}); r.status != http.StatusServiceUnavailable || !strings.Contains(r.err, "shutting down") {
		t.Fatalf("request after Close: %d %s, want 503 shutting down", r.status, r.raw)
	}

	store.open()
	for range n {
		res := <-results
		if res.err != nil {
			t.Fatal(res.err)
		}
		if r := res.r; r.status != http.StatusOK || r.accepted != 1 {
			t.Fatalf("in-flight request: %d %s, want 200", r.status, r.raw)
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the in-flight requests were stored")
	}
	_, payloads := stored(t, b)
	if len(payloads) != n {
		t.Fatalf("%d payloads stored, want %d", len(payloads), n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzHandleEvents posts arbitrary bodies. A 200 must mean the body is
// JSON events and says how many. Minimizing a large input can stall the
// fuzzer for the default 60s; -fuzzminimizetime=200x keeps it moving.
func FuzzHandleEvents(f *testing.F) {
	for _, s := range []string{
		`{"event":"page_view"}`, `[{"a":1},{"b":2}]`, "{}\n{}\r\n\n", `[]`, `"x"`, `42`, ``, "\xEF\xBB\xBF{}",
		`{"a":`, `{"a":1}{"b":2}`, "{\"s\":\"\xff\"}", "{\"s\":\"\x00\"}", `[1,"a",null]`, `[[1],[2]]`,
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Add(gz(f, []byte(`{"a":1}`)), uint8(2))
	f.Add([]byte("\x1f\x8b\x08\x00garbage"), uint8(2))

	c := New(Options{Store: okStore{}, Logger: quiet})
	f.Cleanup(c.Close)
	h := c.Handler()

	// mode 0: plain body; 1: the body gzipped; 2: the body sent as if it
	// were gzip.
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		sent, decoded := body, body
		req := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
		switch mode % 3 {
		case 1:
			sent = gz(t, body)
			req.Header.Set("Content-Encoding", "gzip")
		case 2:
			req.Header.Set("Content-Encoding", "gzip")
			decoded = nil
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				decoded, _ = io.ReadAll(io.LimitReader(zr, 2<<20))
			}
		}
		req.Body = io.NopCloser(bytes.NewReader(sent))
		req.ContentLength = int64(len(sent))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeHTTP(w, req)
		}()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer in 10s for %q (mode %d)", body, mode)
		}

		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if w.Code != http.StatusOK {
			return
		}
		var resp struct{ Accepted int }
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("200 with body %q", w.Body)
		}
		n, err := jsonseq.Count(decoded)
		if err != nil {
			t.Fatalf("200 for a body jsonseq rejects (%v): %q", err, decoded)
		}
		if resp.Accepted != n {
			t.Fatalf("accepted %d, jsonseq counts %d in %q", resp.Accepted, n, decoded)
		}
	})
}

func TestSegmentRoutes(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b, MaxEvents: 3})
	cases := []struct {
		path, body string
		status     int
		accepted   int
		msg        string
	}{
		{"/v1/batch", `{"batch":[{"type":"track","event":"a"},{"type":"page"}],"writeKey":"k"}`, 200, 2, ""},
		{"/v1/batch", `{"batch":[]}`, 200, 0, ""},
		{"/v1/track", `{"event":"a","userId":"u"}`, 200, 1, ""},
		{"/v1/identify", `{"userId":"u","traits":{"a":1}}`, 200, 1, ""},
		{"/v1/batch", `{"messages":[]}`, 400, 0, `\"batch\": an array`},
		{"/v1/batch", `[{"type":"track"}]`, 400, 0, "send one JSON object"},
		{"/v1/track", `{"event":`, 400, 0, "not valid JSON"},
		{"/v1/batch", `{"batch":[{},{},{},{}]}`, 413, 0, "4 events"},
	}
	for _, c := range cases {
		r := post(t, srv.URL, request{body: []byte(c.body), path: c.path})
		if r.status != c.status || (c.status == 200 && r.accepted != c.accepted) || !strings.Contains(r.raw, c.msg) {
			t.Errorf("%s %s: %d %s", c.path, c.body, r.status, r.raw)
		}
	}
}
