package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/collect"
	"github.com/sluice-data/sluice/internal/natstest"
)

// The tests in this file run `bus.url: nats://…` against a real nats-server
// process (internal/natstest). They skip when the server cannot be built or
// started, unless CI=true or SLUICE_INTEGRATION=1, where that is a failure.

func TestMain(m *testing.M) {
	code := m.Run()
	natstest.RemoveBinary()
	os.Exit(code)
}

func openExternal(t *testing.T, url string, streams map[string]bus.StreamConfig) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{URL: url, Streams: streams, Logger: quiet})
	if err != nil {
		t.Fatalf("open bus at %s: %v", url, err)
	}
	return b
}

// streamConfig reads a stream's configuration straight from the server,
// through a client of its own.
func streamConfig(t *testing.T, url, name string) jetstream.StreamConfig {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(testCtx(t, 10*time.Second), name)
	if err != nil {
		t.Fatalf("stream %s on the external server: %v", name, err)
	}
	return s.CachedInfo().Config
}

func TestExternalServer(t *testing.T) {
	srv := natstest.Start(t)
	streams := map[string]bus.StreamConfig{
		"events": {Retention: 90 * time.Minute, MaxBytes: 64 << 20},
		"other":  {Retention: 2 * time.Minute},
	}
	b := openExternal(t, srv.URL(), streams)
	defer b.Close()
	ctx := testCtx(t, 30*time.Second)

	cfg := streamConfig(t, srv.URL(), "events")
	if cfg.MaxAge != 90*time.Minute || cfg.MaxBytes != 64<<20 || cfg.Storage != jetstream.FileStorage ||
		cfg.Retention != jetstream.LimitsPolicy || cfg.Duplicates != 5*time.Minute {
		t.Fatalf("events stream config on the server: max_age %s, max_bytes %d, storage %s, retention %s, duplicates %s",
			cfg.MaxAge, cfg.MaxBytes, cfg.Storage, cfg.Retention, cfg.Duplicates)
	}
	if cfg := streamConfig(t, srv.URL(), "other"); cfg.MaxAge != 2*time.Minute || cfg.Duplicates > cfg.MaxAge {
		t.Fatalf("other stream: max_age %s, duplicates %s", cfg.MaxAge, cfg.Duplicates)
	}
	if b.MaxPayload() <= 0 {
		t.Fatalf("MaxPayload = %d", b.MaxPayload())
	}

	seqs := publishN(t, b, "events", 1, 10)
	if seqs[0] != 1 || seqs[9] != 10 {
		t.Fatalf("sequences %v", seqs)
	}
	first, err := b.Publish(ctx, "events", []byte("id"), "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.Publish(ctx, "events", []byte("id again"), "ext-1"); err != nil || again != first {
		t.Fatalf("repeated msgID: %d, %v; want %d", again, err, first)
	}
	var out []bus.Outgoing
	for i := range 20 {
		out = append(out, bus.Outgoing{Stream: "other", Data: fmt.Appendf(nil, "o%d", i)})
	}
	if err := b.PublishAll(ctx, out); err != nil {
		t.Fatal(err)
	}
	if info, err := b.Info(ctx, "other"); err != nil || info.Msgs != 20 {
		t.Fatalf("other after PublishAll: %+v, %v", info, err)
	}

	r, err := b.ReadFrom(ctx, "events", 5)
	if err != nil {
		t.Fatal(err)
	}
	got := readN(t, r, 7)
	r.Close()
	if got[0].Seq != 5 || string(got[0].Data) != "m5" || got[6].Seq != 11 || string(got[6].Data) != "id" {
		t.Fatalf("ReadFrom(5): first %d %q, last %d %q", got[0].Seq, got[0].Data, got[6].Seq, got[6].Data)
	}

	var (
		mu      sync.Mutex
		handled []uint64
	)
	stop := consumeUntil(t, b, "events", "ext-stage", 4, func(ctx context.Context, batch []bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range batch {
			handled = append(handled, m.Seq)
		}
		return nil
	})
	waitFor(t, 10*time.Second, "consumer acknowledged all 11 messages", pendingIs(t, b, "events", "ext-stage", 0))
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for i, s := range handled {
		if s != uint64(i+1) {
			t.Fatalf("consumer got %v, want 1..11 in order", handled)
		}
	}

	rev, err := b.PutState(ctx, "k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutState(ctx, "k", []byte("w"), rev+7); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("stale put: %v, want ErrConflict", err)
	}
	b.Close()

	// Reopening with other limits updates the stream in place.
	streams["events"] = bus.StreamConfig{Retention: 3 * time.Hour}
	b = openExternal(t, srv.URL(), streams)
	defer b.Close()
	if cfg := streamConfig(t, srv.URL(), "events"); cfg.MaxAge != 3*time.Hour || cfg.MaxBytes != -1 {
		t.Fatalf("after reopen with new limits: max_age %s, max_bytes %d; want 3h, -1", cfg.MaxAge, cfg.MaxBytes)
	}
	if info, err := b.Info(ctx, "events"); err != nil || info.Msgs != 11 {
		t.Fatalf("messages after reopen: %+v, %v", info, err)
	}
	if v, _, err := b.GetState(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("state after reopen: %q, %v", v, err)
	}
}

// TestExternalServerKilled checks what the collector relies on to answer
// 503 instead of hanging: with the server gone, Publish fails within its
// context's deadline; once the server is back on the same store, the client
// reconnects, and everything acknowledged before the kill is still there.
func TestExternalServerKilled(t *testing.T) {
	srv := natstest.Start(t)
	b := openExternal(t, srv.URL(), map[string]bus.StreamConfig{"events": {Retention: time.Hour}})
	defer b.Close()
	publishN(t, b, "events", 1, 20)

	srv.Kill()

	for _, name := range []string{"Publish", "PublishAll"} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		start := time.Now()
		var err error
		if name == "Publish" {
			_, err = b.Publish(ctx, "events", []byte("while down"), "")
		} else {
			err = b.PublishAll(ctx, []bus.Outgoing{{Stream: "events", Data: []byte("while down, all")}})
		}
		elapsed := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("%s succeeded with the server killed", name)
		}
		if elapsed > 4*time.Second {
			t.Fatalf("%s took %s to fail with a 2s deadline", name, elapsed)
		}
		t.Logf("%s with the server down failed after %s: %v", name, elapsed.Round(time.Millisecond), err)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	waitFor(t, 20*time.Second, "Publish to work again after the server restarted", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		s, err := b.Publish(ctx, "events", []byte("after restart"), "")
		seq = s
		return err == nil
	})
	if seq < 21 {
		t.Fatalf("first publish after restart got seq %d, want > 20", seq)
	}
	ctx := testCtx(t, 20*time.Second)
	r, err := b.ReadFrom(ctx, "events", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Acknowledged before SIGKILL means on disk (sync_interval: always).
	for i, m := range readN(t, r, 20) {
		if want := "m" + strconv.Itoa(i+1); string(m.Data) != want || m.Seq != uint64(i+1) {
			t.Fatalf("after kill -9 and restart seq %d = %q, want %q", m.Seq, m.Data, want)
		}
	}
	if info, err := b.Info(ctx, "events"); err != nil || info.LastSeq != seq {
		t.Fatalf("info after restart: %+v, %v; want last seq %d", info, err, seq)
	} else if seq != 21 {
		t.Logf("note: %d publishes that failed while the server was down were stored after all", seq-21)
	}
}

// TestExternalServerKilledCollector is the collector's side of the above (it
// lives here, next to the server it needs): with the bus down a request gets
// 503 with the reason, promptly and never 200; once the server is back, 200.
func TestExternalServerKilledCollector(t *testing.T) {
	srv := natstest.Start(t)
	b := openExternal(t, srv.URL(), map[string]bus.StreamConfig{sluice.StreamRaw: {Retention: time.Hour}})
	defer b.Close()
	c := collect.New(collect.Options{Store: b, Logger: quiet})
	defer c.Close()
	web := httptest.NewServer(c.Handler())
	defer web.Close()
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(web.URL+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp.StatusCode, out.String()
	}
	if code, msg := post(`{"n":1}`); code != http.StatusOK {
		t.Fatalf("with the server up: %d %s", code, msg)
	}

	srv.Kill()
	for i := range 3 {
		start := time.Now()
		code, msg := post(`{"n":2}`)
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, "not stored") {
			t.Fatalf("request %d with the server killed: %d %s, want 503", i, code, msg)
		}
		// The collector gives the bus 10s to store a frame.
		if d := time.Since(start); d > 12*time.Second {
			t.Fatalf("503 took %s", d)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the collector to accept again after the server restarted", func() bool {
		code, _ := post(`{"n":3}`)
		return code == http.StatusOK
	})
	ctx := testCtx(t, 20*time.Second)
	r, err := b.ReadFrom(ctx, sluice.StreamRaw, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first, err := sluice.DecodeFrame(readN(t, r, 1)[0].Data)
	if err != nil || len(first) != 1 || string(first[0].Body) != `{"n":1}` {
		t.Fatalf("frame acknowledged before the kill: %v, %v", first, err)
	}
}

func TestExternalUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	start := time.Now()
	_, err = bus.Open(ctx, bus.Options{URL: url, Logger: quiet})
	if err == nil {
		t.Fatalf("Open(%s) succeeded with nothing listening", url)
	}
	if time.Since(start) > 8*time.Second {
		t.Fatalf("Open took %s to fail", time.Since(start))
	}
}
