package pipeline_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
)

// When every event fails (an expression that is wrong for all of them),
// every one becomes a bad row, once, with its payload and step: 40 messages
// of 250 events, processed in batches of 3 messages (7,500 bad rows a
// batch at most), as one message of bad rows per input message.
func TestEveryEventBadInLargeBatches(t *testing.T) {
	b := testBus(t)
	if err := b.EnsureStream(t.Context(), "events", bus.StreamConfig{Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	const msgs, per = 40, 250
	for m := range msgs {
		var buf bytes.Buffer
		for i := range per {
			fmt.Fprintf(&buf, `{"n":%d,"qty":"many"}`+"\n", m*per+i)
		}
		if _, err := b.Publish(t.Context(), "events", buf.Bytes(), ""); err != nil {
			t.Fatal(err)
		}
	}
	startPipeline(t, b, "    from: events\n    steps:\n      - set: {q: 'int(qty)'}\n    to: {stream: out}\n")
	rows := badRows(t, b, msgs*per)
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Path != "pipeline p steps[0]" || !strings.Contains(r.Message, "many") {
			t.Fatalf("bad row: %+v", r)
		}
		if seen[r.Payload] {
			t.Fatalf("%s is a bad row twice", r.Payload)
		}
		seen[r.Payload] = true
	}
	if len(rows) != msgs*per {
		t.Fatalf("%d bad rows, want %d", len(rows), msgs*per)
	}
	info, err := b.Info(t.Context(), "bad")
	if err != nil {
		t.Fatal(err)
	}
	if info.Msgs != msgs {
		t.Errorf("%d messages of bad rows for %d input messages, want one each", info.Msgs, msgs)
	}
}
