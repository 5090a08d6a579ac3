package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// These tests run the real embedded NATS server on a file store in a
// temporary directory; nothing is mocked.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testStreams are the streams the embedded tests open.
var testStreams = map[string]bus.StreamConfig{
	"events": {Retention: time.Hour},
	"other":  {Retention: time.Hour},
}

// openEmbedded opens an embedded bus on dir; the caller closes it (restart
// tests close and reopen on the same dir).
func openEmbedded(t *testing.T, dir string, streams map[string]bus.StreamConfig) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{Dir: dir, Streams: streams, Logger: quiet})
	if err != nil {
		t.Fatalf("open embedded bus on %s: %v", dir, err)
	}
	return b
}

// newEmbedded opens an embedded bus in a fresh directory, closed at cleanup.
func newEmbedded(t *testing.T) *bus.Bus {
	t.Helper()
	b := openEmbedded(t, t.TempDir(), testStreams)
	t.Cleanup(func() { b.Close() })
	return b
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func publishN(t *testing.T, b *bus.Bus, stream string, from, to int) []uint64 {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	var seqs []uint64
	for i := from; i <= to; i++ {
		seq, err := b.Publish(ctx, stream, fmt.Appendf(nil, "m%d", i), "")
		if err != nil {
			t.Fatalf("publish m%d: %v", i, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// readN takes n messages from r, failing if they do not come within 10s.
func readN(t *testing.T, r *bus.Reader, n int) []bus.Msg {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var out []bus.Msg
	for len(out) < n {
		select {
		case m, ok := <-r.C():
			if !ok {
				t.Fatalf("reader closed after %d of %d messages", len(out), n)
			}
			out = append(out, m)
		case <-timeout:
			t.Fatalf("got %d of %d messages in 10s", len(out), n)
		}
	}
	return out
}

// expectNothing fails if r delivers a message within d.
func expectNothing(t *testing.T, r *bus.Reader, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.C():
		t.Fatalf("unexpected message seq %d %q", m.Seq, m.Data)
	case <-time.After(d):
	}
}

func TestPublishReturnsIncreasingSequences(t *testing.T) {
	b := newEmbedded(t)
	seqs := publishN(t, b, "events", 1, 20)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("publish %d got sequence %d, want %d (all: %v)", i+1, s, i+1, seqs)
		}
	}
	// Streams count independently.
	if s := publishN(t, b, "other", 1, 1); s[0] != 1 {
		t.Fatalf("first message on another stream got sequence %d, want 1", s[0])
	}
	if b.MaxPayload() != bus.DefaultMaxPayload {
		t.Fatalf("MaxPayload = %d, want %d", b.MaxPayload(), bus.DefaultMaxPayload)
	}
}

func TestPublishToUnknownStreamFails(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	if _, err := b.Publish(ctx, "nosuch", []byte("x"), ""); err == nil {
		t.Fatal("publish to a stream that was never created succeeded")
	}
}

func TestPublishDeduplicatesMsgID(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	first, err := b.Publish(ctx, "events", []byte("a"), "id-1")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, b, "events", 1, 3)
	again, err := b.Publish(ctx, "events", []byte("a, sent again"), "id-1")
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatalf("repeated msgID got sequence %d, want the first copy's %d", again, first)
	}
	other, err := b.Publish(ctx, "events", []byte("b"), "id-2")
	if err != nil {
		t.Fatal(err)
	}
	if other != 5 {
		t.Fatalf("new msgID got sequence %d, want 5", other)
	}
	info, err := b.Info(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if info.Msgs != 5 {
		t.Fatalf("stream holds %d messages, want 5 (the duplicate stored once)", info.Msgs)
	}
	r, err := b.ReadFrom(ctx, "events", first)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if m := readN(t, r, 1)[0]; string(m.Data) != "a" {
		t.Fatalf("stored copy is %q, want the first one", m.Data)
	}
}

func TestPublishAllStoresEverything(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	var msgs []bus.Outgoing
	for i := range 500 {
		stream := "events"
		if i%5 == 0 {
			stream = "other"
		}
		msgs = append(msgs, bus.Outgoing{Stream: stream, Data: fmt.Appendf(nil, "%s-%d", stream, i), MsgID: fmt.Sprint("all-", i)})
	}
	// A repeated id inside the batch is stored once.
	msgs = append(msgs, bus.Outgoing{Stream: "events", Data: []byte("dup"), MsgID: "all-1"})
	if err := b.PublishAll(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishAll(ctx, nil); err != nil {
		t.Fatalf("PublishAll of nothing: %v", err)
	}
	want := map[string][]string{}
	for _, m := range msgs[:500] {
		want[m.Stream] = append(want[m.Stream], string(m.Data))
	}
	for stream, data := range want {
		info, err := b.Info(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if info.Msgs != uint64(len(data)) || info.LastSeq != uint64(len(data)) {
			t.Fatalf("%s: %+v, want %d messages", stream, info, len(data))
		}
		r, err := b.ReadFrom(ctx, stream, 1)
		if err != nil {
			t.Fatal(err)
		}
		got := readN(t, r, len(data))
		r.Close()
		for i, m := range got {
			// Pipelined publishes of one stream keep their order.
			if string(m.Data) != data[i] || m.Seq != uint64(i+1) {
				t.Fatalf("%s message %d = seq %d %q, want seq %d %q", stream, i, m.Seq, m.Data, i+1, data[i])
			}
		}
	}
	if err := b.PublishAll(ctx, []bus.Outgoing{{Stream: "nosuch", Data: []byte("x")}}); err == nil {
		t.Fatal("PublishAll to a missing stream succeeded")
	}
}

// consumeUntil runs Consume in the background; stop cancels it and waits
// for Consume to return, returning its error.
func consumeUntil(t *testing.T, b *bus.Bus, stream, name string, maxBatch int, h bus.Handler) (stop func() error) {
	t.Helper()
	return consumeUntil2(t, b, stream, name, maxBatch, func(ctx context.Context, batch []bus.Msg) (bus.Finish, error) {
		return nil, h(ctx, batch)
	})
}

// waitFor polls cond every 20ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pendingIs(t *testing.T, b *bus.Bus, stream, name string, want uint64) func() bool {
	return func() bool {
		n, err := b.Pending(t.Context(), stream, name)
		return err == nil && n == want
	}
}

func TestConsumeDeliversInOrderInBatches(t *testing.T) {
	b := newEmbedded(t)
	const n, maxBatch = 100, 8
	publishN(t, b, "events", 1, n)
	var (
		mu      sync.Mutex
		seqs    []uint64
		batches int
	)
	stop := consumeUntil(t, b, "events", "stage", maxBatch, func(ctx context.Context, batch []bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		if len(batch) == 0 || len(batch) > maxBatch {
			t.Errorf("batch of %d messages, want 1..%d", len(batch), maxBatch)
		}
		if batches == 0 {
			// A slow first batch lets the rest pile up, to be batched.
			time.Sleep(100 * time.Millisecond)
		}
		batches++
		for _, m := range batch {
			if want := fmt.Sprintf("m%d", m.Seq); string(m.Data) != want {
				t.Errorf("seq %d carries %q, want %q", m.Seq, m.Data, want)
			}
			if m.Time.IsZero() {
				t.Errorf("seq %d has no time", m.Seq)
			}
			seqs = append(seqs, m.Seq)
		}
		return nil
	})
	// A delivery the NATS client drops (it can when this process is
	// starved of CPU, see pump) comes again after the 30 s ack wait.
	waitFor(t, 45*time.Second, "all messages handled and acknowledged", func() bool {
		mu.Lock()
		got := len(seqs)
		mu.Unlock()
		return got == n && pendingIs(t, b, "events", "stage", 0)()
	})
	// New messages reach a running consumer.
	publishN(t, b, "events", n+1, n+5)
	waitFor(t, 10*time.Second, "messages published while consuming", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs) == n+5
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v after cancel, want context.Canceled", err)
	}
	if d := b.DroppedDeliveries(); d > 0 {
		// Then the dropped ones came late, once each.
		t.Logf("the NATS client dropped %d deliveries; they came again after the ack wait", d)
		sorted := slices.Sorted(slices.Values(seqs))
		for i, s := range sorted {
			if s != uint64(i+1) {
				t.Fatalf("messages handled: %v, want 1..%d once each", seqs, n+5)
			}
		}
	} else {
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("delivery %d was seq %d: not in stream order (%v)", i, s, seqs)
			}
		}
	}
	if batches > n/2 {
		t.Errorf("%d messages came in %d batches: hardly batched", n, batches)
	}
}

func TestConsumeRedeliversFailedBatch(t *testing.T) {
	b := newEmbedded(t)
	const n = 20
	publishN(t, b, "events", 1, n)
	var (
		mu       sync.Mutex
		failed   []uint64
		handled  = map[uint64]int{}
		attempts int
	)
	stop := consumeUntil(t, b, "events", "stage", 4, func(ctx context.Context, batch []bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		for i := 1; i < len(batch); i++ {
			if batch[i].Seq <= batch[i-1].Seq {
				t.Errorf("batch out of order: %d after %d", batch[i].Seq, batch[i-1].Seq)
			}
		}
		if failed == nil {
			for _, m := range batch {
				failed = append(failed, m.Seq)
			}
			return errors.New("stage broke")
		}
		for _, m := range batch {
			if want := fmt.Sprintf("m%d", m.Seq); string(m.Data) != want {
				t.Errorf("redelivered seq %d carries %q, want %q", m.Seq, m.Data, want)
			}
			handled[m.Seq]++
		}
		return nil
	})
	waitFor(t, 15*time.Second, "every message handled after the failure", func() bool {
		mu.Lock()
		got := len(handled)
		mu.Unlock()
		return got == n && pendingIs(t, b, "events", "stage", 0)()
	})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v, want context.Canceled", err)
	}
	if len(failed) == 0 || failed[0] != 1 {
		t.Fatalf("first (failed) batch was %v, want it to start at seq 1", failed)
	}
	for _, s := range failed {
		if handled[s] != 1 {
			t.Errorf("seq %d of the failed batch was handled %d times after the failure, want once", s, handled[s])
		}
	}
	for s := uint64(1); s <= n; s++ {
		if handled[s] != 1 {
			t.Errorf("seq %d acknowledged %d times, want once", s, handled[s])
		}
	}
}

// TestConsumeAfterRestart checks what a durable consumer sees when the bus
// restarts on the same dir: nothing it acknowledged, and what it took but
// did not acknowledge again at once, not after the 30s ack wait.
func TestConsumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	b := openEmbedded(t, dir, testStreams)
	publishN(t, b, "events", 1, 5)

	var (
		mu   sync.Mutex
		seen []uint64
	)
	stop := consumeUntil(t, b, "events", "stage", 10, func(ctx context.Context, batch []bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range batch {
			seen = append(seen, m.Seq)
		}
		return nil
	})
	waitFor(t, 10*time.Second, "seqs 1-5 acknowledged", pendingIs(t, b, "events", "stage", 0))
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}

	// Seqs 6-10: the stage takes them and dies before acknowledging.
	publishN(t, b, "events", 6, 10)
	took := make(chan struct{}, 1)
	stop = consumeUntil(t, b, "events", "stage", 10, func(ctx context.Context, batch []bus.Msg) error {
		for _, m := range batch {
			if m.Seq <= 5 {
				t.Errorf("acknowledged seq %d delivered again", m.Seq)
			}
		}
		select {
		case took <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	})
	select {
	case <-took:
	case <-time.After(10 * time.Second):
		t.Fatal("seqs 6-10 were not delivered")
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if n, err := b.Pending(t.Context(), "events", "stage"); err != nil || n != 5 {
		t.Fatalf("Pending = %d, %v before restart; want 5", n, err)
	}
	b.Close()

	b = openEmbedded(t, dir, testStreams)
	defer b.Close()
	if n, err := b.Pending(t.Context(), "events", "stage"); err != nil || n != 5 {
		t.Fatalf("Pending = %d, %v after restart; want 5", n, err)
	}
	start := time.Now()
	got := make(chan uint64, 100)
	stop = consumeUntil(t, b, "events", "stage", 10, func(ctx context.Context, batch []bus.Msg) error {
		for _, m := range batch {
			got <- m.Seq
		}
		return nil
	})
	var redelivered []uint64
	// Well below the 30s ack wait: the messages must be taken back, not
	// waited out.
	timeout := time.After(10 * time.Second)
	for len(redelivered) < 5 {
		select {
		case s := <-got:
			redelivered = append(redelivered, s)
		case <-timeout:
			t.Fatalf("after restart got %v in 10s, want seqs 6-10 at once", redelivered)
		}
	}
	elapsed := time.Since(start)
	waitFor(t, 10*time.Second, "redelivered messages acknowledged", pendingIs(t, b, "events", "stage", 0))
	select {
	case s := <-got:
		t.Fatalf("seq %d delivered again after everything was acknowledged", s)
	case <-time.After(200 * time.Millisecond):
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if !slices.Equal(redelivered, []uint64{6, 7, 8, 9, 10}) {
		t.Fatalf("after restart the consumer got %v, want [6 7 8 9 10]", redelivered)
	}
	t.Logf("unacknowledged messages came back %s after restart", elapsed.Round(time.Millisecond))
}

func TestConsumeUnknownStream(t *testing.T) {
	b := newEmbedded(t)
	err := b.Consume(testCtx(t, 10*time.Second), "nosuch", "stage", 4, func(context.Context, []bus.Msg) error { return nil })
	if err == nil {
		t.Fatal("Consume on a missing stream returned nil")
	}
	if _, err := b.Pending(t.Context(), "events", "nobody"); err == nil {
		t.Fatal("Pending of a missing consumer returned no error")
	}
}

func TestReadFrom(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 20*time.Second)
	publishN(t, b, "events", 1, 10)

	r, err := b.ReadFrom(ctx, "events", 4)
	if err != nil {
		t.Fatal(err)
	}
	got := readN(t, r, 7)
	for i, m := range got {
		want := uint64(4 + i)
		if m.Seq != want || string(m.Data) != fmt.Sprintf("m%d", want) {
			t.Fatalf("message %d = seq %d %q, want seq %d", i, m.Seq, m.Data, want)
		}
	}
	expectNothing(t, r, 200*time.Millisecond)
	// The reader follows the stream.
	publishN(t, b, "events", 11, 12)
	if got := readN(t, r, 2); got[0].Seq != 11 || got[1].Seq != 12 {
		t.Fatalf("followed messages %d, %d, want 11, 12", got[0].Seq, got[1].Seq)
	}
	r.Close()
	select {
	case _, ok := <-r.C():
		for ok {
			_, ok = <-r.C()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("C not closed after Close")
	}

	// 0 and 1 both mean the beginning.
	for _, from := range []uint64{0, 1} {
		r, err := b.ReadFrom(ctx, "events", from)
		if err != nil {
			t.Fatal(err)
		}
		if m := readN(t, r, 1)[0]; m.Seq != 1 {
			t.Fatalf("ReadFrom(%d) started at seq %d, want 1", from, m.Seq)
		}
		r.Close()
	}

	// Past the end: waits for the next message.
	r, err = b.ReadFrom(ctx, "events", 13)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	expectNothing(t, r, 200*time.Millisecond)
	publishN(t, b, "events", 13, 13)
	if m := readN(t, r, 1)[0]; m.Seq != 13 {
		t.Fatalf("got seq %d, want 13", m.Seq)
	}

	if _, err := b.ReadFrom(ctx, "nosuch", 1); err == nil {
		t.Fatal("ReadFrom on a missing stream succeeded")
	}
}

func TestReadSince(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 20*time.Second)
	publishN(t, b, "events", 1, 3)
	time.Sleep(20 * time.Millisecond)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	publishN(t, b, "events", 4, 6)

	r, err := b.ReadSince(ctx, "events", since)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := readN(t, r, 3)
	for i, m := range got {
		if m.Seq != uint64(4+i) {
			t.Fatalf("ReadSince gave seq %d at %d, want %d", m.Seq, i, 4+i)
		}
		if m.Time.Before(since) {
			t.Fatalf("seq %d stored at %s, before %s", m.Seq, m.Time, since)
		}
	}
	expectNothing(t, r, 200*time.Millisecond)

	old, err := b.ReadSince(ctx, "events", since.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if m := readN(t, old, 1)[0]; m.Seq != 1 {
		t.Fatalf("ReadSince an hour ago started at %d, want 1", m.Seq)
	}
}

func TestInfo(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	info, err := b.Info(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if info.Msgs != 0 || info.LastSeq != 0 || info.Bytes != 0 {
		t.Fatalf("empty stream: %+v", info)
	}
	publishN(t, b, "events", 1, 7)
	info, err = b.Info(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if info.FirstSeq != 1 || info.LastSeq != 7 || info.Msgs != 7 || info.Bytes == 0 {
		t.Fatalf("after 7 publishes: %+v", info)
	}
	if _, err := b.Info(ctx, "nosuch"); err == nil {
		t.Fatal("Info on a missing stream succeeded")
	}
}

func TestState(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	v, rev, err := b.GetState(ctx, "pos.archiver")
	if err != nil || v != nil || rev != 0 {
		t.Fatalf("absent key: %q, %d, %v; want nil, 0, nil", v, rev, err)
	}
	r1, err := b.PutState(ctx, "pos.archiver", []byte("1"), 0)
	if err != nil || r1 == 0 {
		t.Fatalf("create: %d, %v", r1, err)
	}
	if _, err := b.PutState(ctx, "pos.archiver", []byte("x"), 0); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	r2, err := b.PutState(ctx, "pos.archiver", []byte("2"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("update at current revision: %d, %v", r2, err)
	}
	if _, err := b.PutState(ctx, "pos.archiver", []byte("stale"), r1); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("update at stale revision: %v, want ErrConflict", err)
	}
	if _, err := b.PutState(ctx, "other", []byte("x"), 99); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("update of a missing key: %v, want ErrConflict", err)
	}
	v, rev, err = b.GetState(ctx, "pos.archiver")
	if err != nil || string(v) != "2" || rev != r2 {
		t.Fatalf("get: %q, %d, %v; want \"2\", %d", v, rev, err, r2)
	}

	// Two writers racing from one revision: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = b.PutState(ctx, "pos.archiver", fmt.Appendf(nil, "w%d", i), r2)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, bus.ErrConflict):
			t.Fatalf("racing writer: %v, want nil or ErrConflict", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d racing writers won, want exactly 1", wins)
	}
}

func TestSchemaRoundTrip(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	s, rev, err := b.Schema(ctx, "events")
	if err != nil || rev != 0 || s.Table != "events" || len(s.Columns) != 0 {
		t.Fatalf("no schema yet: %+v, %d, %v", s, rev, err)
	}
	added := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	s.Columns = append(slices.Clone(sluice.EventColumns), sluice.Column{Name: "revenue", Type: sluice.TypeDouble, Added: added})
	rev1, err := b.SaveSchema(ctx, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, rev, err := b.Schema(ctx, "events")
	if err != nil || rev != rev1 {
		t.Fatalf("read back: rev %d, %v; want rev %d", rev, err, rev1)
	}
	if got.Table != "events" || len(got.Columns) != len(s.Columns) {
		t.Fatalf("read back %+v", got)
	}
	for i, c := range got.Columns {
		w := s.Columns[i]
		if c.Name != w.Name || c.Type != w.Type || !c.Added.Equal(w.Added) {
			t.Fatalf("column %d = %+v, want %+v", i, c, w)
		}
	}
	if c, ok := got.Lookup("revenue"); !ok || c.Type != sluice.TypeDouble {
		t.Fatalf("Lookup(revenue) = %+v, %v", c, ok)
	}
	if _, err := b.SaveSchema(ctx, s, 0); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("save over an existing schema at rev 0: %v, want ErrConflict", err)
	}
	s.Columns = append(s.Columns, sluice.Column{Name: "country", Type: sluice.TypeVarchar, Added: added})
	rev2, err := b.SaveSchema(ctx, s, rev1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SaveSchema(ctx, s, rev1); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("save at stale rev: %v, want ErrConflict", err)
	}
	got, rev, err = b.Schema(ctx, "events")
	if err != nil || rev != rev2 || len(got.Columns) != len(s.Columns) {
		t.Fatalf("after second save: %d columns, rev %d, %v", len(got.Columns), rev, err)
	}
	// Schemas of different tables are separate records.
	if bad, rev, err := b.Schema(ctx, "bad"); err != nil || rev != 0 || len(bad.Columns) != 0 {
		t.Fatalf("schema of bad: %+v, %d, %v", bad, rev, err)
	}

	// A record that is not a schema is reported, not silently emptied.
	if _, err := b.PutState(ctx, "schema.broken", []byte("{not json"), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Schema(ctx, "broken"); err == nil {
		t.Fatal("corrupt schema record read without error")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	b := openEmbedded(t, dir, testStreams)
	ctx := testCtx(t, 30*time.Second)
	publishN(t, b, "events", 1, 50)
	idSeq, err := b.Publish(ctx, "events", []byte("with id"), "keep-1")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := b.PutState(ctx, "k", []byte("v"), 0)
	if err != nil {
		t.Fatal(err)
	}
	schemaRev, err := b.SaveSchema(ctx, sluice.Schema{Table: "events", Columns: sluice.EventColumns}, 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := b.Info(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openEmbedded(t, dir, testStreams)
	defer b.Close()
	after, err := b.Info(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("stream after reopen %+v, before %+v", after, before)
	}
	r, err := b.ReadFrom(ctx, "events", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := readN(t, r, 51)
	r.Close()
	for i, m := range got[:50] {
		if string(m.Data) != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("seq %d = %q after reopen", m.Seq, m.Data)
		}
	}
	if v, r2, err := b.GetState(ctx, "k"); err != nil || string(v) != "v" || r2 != rev {
		t.Fatalf("state after reopen: %q, %d, %v", v, r2, err)
	}
	if s, r2, err := b.Schema(ctx, "events"); err != nil || r2 != schemaRev || len(s.Columns) != len(sluice.EventColumns) {
		t.Fatalf("schema after reopen: %d columns, rev %d, %v", len(s.Columns), r2, err)
	}
	// The duplicate window survives the restart, and sequences go on.
	if s, err := b.Publish(ctx, "events", []byte("with id, again"), "keep-1"); err != nil || s != idSeq {
		t.Fatalf("repeated msgID after reopen: seq %d, %v; want %d", s, err, idSeq)
	}
	if s := publishN(t, b, "events", 52, 52); s[0] != before.LastSeq+1 {
		t.Fatalf("first publish after reopen got seq %d, want %d", s[0], before.LastSeq+1)
	}
}

func TestOpenNeedsDir(t *testing.T) {
	_, err := bus.Open(t.Context(), bus.Options{Logger: quiet})
	if err == nil {
		t.Fatal("embedded bus opened without a directory")
	}
}

// TestRetentionApplied checks that a stream's limits from Options are the
// stream's limits: old messages go when they are older than Retention or
// when the stream is over MaxBytes. A retention shorter than the duplicate
// window must be accepted.
func TestRetentionApplied(t *testing.T) {
	b := openEmbedded(t, t.TempDir(), map[string]bus.StreamConfig{
		"short": {Retention: time.Second},
		"small": {Retention: time.Hour, MaxBytes: 4096},
	})
	defer b.Close()
	ctx := testCtx(t, 20*time.Second)
	publishN(t, b, "short", 1, 3)
	waitFor(t, 10*time.Second, "messages older than the 1s retention to expire", func() bool {
		info, err := b.Info(ctx, "short")
		return err == nil && info.Msgs == 0 && info.LastSeq == 3
	})

	for i := range 100 {
		if _, err := b.Publish(ctx, "small", make([]byte, 100), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	info, err := b.Info(ctx, "small")
	if err != nil {
		t.Fatal(err)
	}
	if info.Bytes > 4096 || info.FirstSeq == 1 || info.LastSeq != 100 {
		t.Fatalf("stream with MaxBytes 4096 after 100 x 100 bytes: %+v", info)
	}
}

// A pipelined stage handles the next batch while the previous one's Finish
// runs; a batch is acknowledged when its Finish succeeds (also when no next
// batch comes), and a failed Finish brings back its batch and the one
// handled meanwhile.
func TestConsumePipelined(t *testing.T) {
	b := newEmbedded(t)
	const n = 40
	publishN(t, b, "events", 1, n)
	var (
		mu        sync.Mutex
		stored    = map[uint64]int{} // by a successful Finish
		handled   = map[uint64]int{}
		batches   int // handled so far
		finishes  int // ended so far
		overlap   bool
		failOnce  = true
		failedSeq uint64
	)
	stop := consumeUntil2(t, b, "events", "pipe", 4, func(ctx context.Context, batch []bus.Msg) (bus.Finish, error) {
		mu.Lock()
		if finishes < batches {
			overlap = true // the previous batch's Finish has not ended
		}
		batches++
		for _, m := range batch {
			handled[m.Seq]++
		}
		mu.Unlock()
		return func(ctx context.Context) error {
			time.Sleep(30 * time.Millisecond) // storing takes a while
			mu.Lock()
			defer mu.Unlock()
			finishes++
			last := batch[len(batch)-1].Seq
			if failOnce && last >= 8 {
				failOnce, failedSeq = false, last
				return errors.New("store failed")
			}
			for _, m := range batch {
				stored[m.Seq]++
			}
			return nil
		}, nil
	})
	waitFor(t, 20*time.Second, "every message stored", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(stored) == n
	})
	waitFor(t, 10*time.Second, "every message acknowledged", pendingIs(t, b, "events", "pipe", 0))
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("ConsumePipelined returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !overlap {
		t.Error("no batch was handled while a Finish ran")
	}
	if failedSeq == 0 || handled[failedSeq] < 2 {
		t.Errorf("the batch whose Finish failed (up to seq %d) was handled %d times", failedSeq, handled[failedSeq])
	}
}

// consumeUntil2 is consumeUntil for a pipelined handler.
func consumeUntil2(t *testing.T, b *bus.Bus, stream, name string, maxBatch int, h bus.PipelinedHandler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.ConsumePipelined(ctx, stream, name, maxBatch, h) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("ConsumePipelined did not return within 10s of its context being cancelled")
			return nil
		}
	}
}

func TestStreamsListsOnlySluiceStreams(t *testing.T) {
	b := newEmbedded(t)
	names, err := b.Streams(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// The state bucket is a stream too, but not one of sluice's.
	if want := []string{"events", "other"}; !slices.Equal(names, want) {
		t.Errorf("streams: %v, want %v", names, want)
	}
}

func TestStateKeysAndDelete(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	if keys, err := b.StateKeys(ctx, "pipeline.p"); err != nil || len(keys) != 0 {
		t.Fatalf("no keys: %v, %v", keys, err)
	}
	revs := map[string]uint64{}
	for _, k := range []string{"pipeline.p", "pipeline.p.1of2", "pipeline.p.0of2", "pipeline.pq.0of2", "pipeline.p.lease.0"} {
		r, err := b.PutState(ctx, k, []byte("x"), 0)
		if err != nil {
			t.Fatal(err)
		}
		revs[k] = r
	}
	keys, err := b.StateKeys(ctx, "pipeline.p")
	if err != nil || !slices.Equal(keys, []string{"pipeline.p.0of2", "pipeline.p.1of2", "pipeline.p.lease.0"}) {
		t.Fatalf("keys under pipeline.p: %v, %v", keys, err)
	}
	if err := b.DeleteState(ctx, "pipeline.p.0of2", revs["pipeline.p.0of2"]+100); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("delete at a wrong revision: %v, want ErrConflict", err)
	}
	if err := b.DeleteState(ctx, "pipeline.p.0of2", revs["pipeline.p.0of2"]); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteState(ctx, "pipeline.p.lease.0", 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteState(ctx, "never.there", 0); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
	if keys, err := b.StateKeys(ctx, "pipeline.p"); err != nil || !slices.Equal(keys, []string{"pipeline.p.1of2"}) {
		t.Fatalf("after deletes: %v, %v", keys, err)
	}
	// A deleted key can be created again.
	if _, err := b.PutState(ctx, "pipeline.p.0of2", []byte("y"), 0); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}
