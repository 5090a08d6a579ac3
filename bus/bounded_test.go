package bus_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
)

// A bounded reader delivers no more than its budget until the consumer
// releases messages, then goes on, in order, losing none.
func TestReadFromBoundedHoldsItsBudget(t *testing.T) {
	b := newEmbedded(t)
	ctx := context.Background()
	for i := range 10 {
		if _, err := b.Publish(ctx, "events", bytes.Repeat([]byte{'a' + byte(i)}, 100<<10), ""); err != nil {
			t.Fatal(err)
		}
	}
	r, err := b.ReadFromBounded(ctx, "events", 1, 250<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []uint64
	take := func() bool {
		select {
		case m := <-r.C():
			got = append(got, m.Seq)
			return true
		case <-time.After(3 * time.Second):
			return false
		}
	}
	for take() {
	}
	if len(got) != 2 || r.Held() != 200<<10 {
		t.Fatalf("delivered %v holding %d bytes; want 2 messages within 250 KiB", got, r.Held())
	}
	// Releasing one lets one more in.
	r.Release(busMsg(100 << 10))
	if !take() || len(got) != 3 {
		t.Fatalf("after a release: %v", got)
	}
	for i := 0; i < 20 && len(got) < 10; i++ {
		r.Release(busMsg(100 << 10))
		take()
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("out of order or lost: %v", got)
		}
	}
	if len(got) != 10 {
		t.Fatalf("delivered %v", got)
	}
}

func busMsg(n int) bus.Msg { return bus.Msg{Data: make([]byte, n)} }
