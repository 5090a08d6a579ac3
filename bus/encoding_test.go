package bus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
)

// jsonLines is compressible data, like the event batches the bus carries.
func jsonLines(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"event_id":"e-%d","event":"page_view","page_url":"https://shop.example.com/p/%d","user_id":"u-%d"}`+"\n", i, i%97, i%13)
	}
	return b.Bytes()[:n]
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestNewMsgCompressesWhatPays(t *testing.T) {
	for _, c := range []struct {
		name       string
		data       []byte
		compressed bool
	}{
		{"empty", nil, false},
		{"small JSON", jsonLines(compressMin - 1), false},
		{"JSON at the threshold", jsonLines(compressMin), true},
		{"large JSON", jsonLines(1 << 20), true},
		{"random", randomBytes(64 << 10), false},
	} {
		for _, id := range []string{"", "id-1"} {
			m := newMsg("sluice.events", c.data, id)
			got := m.Header.Get(EncodingHeader) == EncodingS2
			if got != c.compressed {
				t.Errorf("%s (msg id %q): compressed %v, want %v", c.name, id, got, c.compressed)
			}
			if m.Header.Get("Nats-Msg-Id") != id {
				t.Errorf("%s: msg id %q, want %q", c.name, m.Header.Get("Nats-Msg-Id"), id)
			}
			if got && len(m.Data) > len(c.data)/4 {
				t.Errorf("%s: stored %d of %d bytes", c.name, len(m.Data), len(c.data))
			}
			if !got && !bytes.Equal(m.Data, c.data) {
				t.Errorf("%s: stored data differs from the original", c.name)
			}
			back, err := decode(m.Header, m.Data)
			if err != nil || !bytes.Equal(back, c.data) {
				t.Errorf("%s: decode gave %d bytes, err %v; want the %d original bytes", c.name, len(back), err, len(c.data))
			}
		}
	}
}

func TestDecodeRejectsWhatItCannotRead(t *testing.T) {
	good := s2.Encode(nil, jsonLines(8<<10))
	for _, c := range []struct {
		name, enc string
		data      []byte
		want      string
	}{
		{"unknown encoding", "zstd", good, `unknown Sluice-Encoding "zstd"`},
		{"truncated", EncodingS2, good[:len(good)/2], "s2:"},
		{"garbage", EncodingS2, []byte("not s2 at all"), "s2:"},
		{"empty", EncodingS2, nil, "s2:"},
		// A header claiming far more than any message may expand to.
		{"bomb", EncodingS2, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, "would expand to"},
	} {
		_, err := decode(nats.Header{EncodingHeader: []string{c.enc}}, c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// A stored message the bus can't decode (a newer sluice's encoding, or
// damage) reaches the stage as stored, not lost, and is logged.
func TestUndecodableMessageIsDeliveredAsStored(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{Dir: t.TempDir(), Streams: map[string]StreamConfig{"raw": {Retention: time.Hour}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	odd := []byte("compressed by something newer")
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subject("raw"), Data: odd, Header: nats.Header{EncodingHeader: []string{"zstd"}}}); err != nil {
		t.Fatal(err)
	}
	big := jsonLines(256 << 10)
	if _, err := b.Publish(ctx, "raw", big, ""); err != nil {
		t.Fatal(err)
	}
	r, err := b.ReadFrom(ctx, "raw", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i, want := range [][]byte{odd, big} {
		select {
		case m := <-r.C():
			if !bytes.Equal(m.Data, want) {
				t.Fatalf("message %d: %d bytes, want the %d published", i+1, len(m.Data), len(want))
			}
		case <-ctx.Done():
			t.Fatalf("message %d never came", i+1)
		}
	}
	if !strings.Contains(logs.String(), "delivering a message as stored") || !strings.Contains(logs.String(), "zstd") {
		t.Fatalf("no error logged for the undecodable message; log:\n%s", logs.String())
	}
	if m, ok, err := b.LastMsg(ctx, "raw", ""); err == nil && ok && !bytes.Equal(m.Data, big) {
		t.Fatalf("LastMsg: %d bytes, want %d", len(m.Data), len(big))
	}
}

// Large messages go through every way in and out of the bus unchanged, and
// the store holds them compressed.
func TestLargeMessagesRoundTripCompressed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{Dir: t.TempDir(), Streams: map[string]StreamConfig{"events": {Retention: time.Hour}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var want [][]byte
	for i := range 6 {
		want = append(want, jsonLines(100<<10+i))
	}
	want = append(want, randomBytes(50<<10), []byte("small"))
	total := 0
	for _, d := range want {
		total += len(d)
	}
	if _, err := b.Publish(ctx, "events", want[0], ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishTo(ctx, "events", "part", want[1], "id-1"); err != nil {
		t.Fatal(err)
	}
	var out []Outgoing
	for _, d := range want[2:] {
		out = append(out, Outgoing{Stream: "events", Data: d})
	}
	if err := b.PublishAll(ctx, out); err != nil {
		t.Fatal(err)
	}
	info, err := b.Info(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	// The random 50 KiB stays as it is; 600 KiB of JSON lines shrink.
	if info.Bytes > uint64(50<<10+100<<10) {
		t.Fatalf("the stream holds %d bytes for %d published: not compressed", info.Bytes, total)
	}
	if m, ok, err := b.LastMsg(ctx, "events", "part"); err != nil || !ok || !bytes.Equal(m.Data, want[1]) {
		t.Fatalf("LastMsg: %d bytes, %v, %v; want the %d published", len(m.Data), ok, err, len(want[1]))
	}
	got := make(chan []byte, len(want))
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, "events", "test", 3, func(_ context.Context, batch []Msg) error {
			for _, m := range batch {
				got <- m.Data
			}
			return nil
		})
	}()
	for i, w := range want {
		select {
		case d := <-got:
			if !bytes.Equal(d, w) {
				t.Fatalf("consumed message %d: %d bytes, want the %d published", i+1, len(d), len(w))
			}
		case <-ctx.Done():
			t.Fatalf("message %d never consumed", i+1)
		}
	}
	stop()
	<-done
}

func FuzzEncoding(f *testing.F) {
	f.Add([]byte("{}"), false)
	f.Add(jsonLines(5000), false)
	f.Add(s2.Encode(nil, jsonLines(5000)), true)
	f.Fuzz(func(t *testing.T, data []byte, asStored bool) {
		if asStored {
			// Any stored bytes claiming S2: an error, never a panic.
			out, err := decode(nats.Header{EncodingHeader: []string{EncodingS2}}, data)
			if err == nil {
				if want, werr := s2.Decode(nil, data); werr != nil || !bytes.Equal(out, want) {
					t.Fatalf("decode = %d bytes, s2.Decode = %d bytes, %v", len(out), len(want), werr)
				}
			}
			return
		}
		m := newMsg("sluice.x", data, "")
		back, err := decode(m.Header, m.Data)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(data), len(back), err)
		}
	})
}
