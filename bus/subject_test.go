package bus_test

import (
	"fmt"
	"testing"
	"time"
)

func TestPublishToSubSubjectReachesReadersAndLastMsg(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	if _, ok, err := b.LastMsg(ctx, "events", "file.nginx"); err != nil || ok {
		t.Fatalf("LastMsg on an empty sub-subject = ok %v, err %v; want false, nil", ok, err)
	}
	publishN(t, b, "events", 1, 2)
	for i := range 3 {
		for _, sub := range []string{"file.nginx", "file.app"} {
			if _, err := b.PublishTo(ctx, "events", sub, fmt.Appendf(nil, "%s-%d", sub, i), ""); err != nil {
				t.Fatalf("PublishTo %s: %v", sub, err)
			}
		}
	}
	publishN(t, b, "events", 3, 3)
	m, ok, err := b.LastMsg(ctx, "events", "file.nginx")
	if err != nil || !ok {
		t.Fatalf("LastMsg = ok %v, err %v", ok, err)
	}
	if string(m.Data) != "file.nginx-2" || m.Seq != 7 || m.Time.IsZero() {
		t.Fatalf("LastMsg = seq %d %q at %v, want seq 7 %q", m.Seq, m.Data, m.Time, "file.nginx-2")
	}
	// A sub-subject is part of its stream: readers see everything in order.
	r, err := b.ReadFrom(ctx, "events", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := readN(t, r, 9)
	want := []string{"m1", "m2", "file.nginx-0", "file.app-0", "file.nginx-1", "file.app-1", "file.nginx-2", "file.app-2", "m3"}
	for i, m := range got {
		if string(m.Data) != want[i] {
			t.Fatalf("message %d = %q, want %q", i, m.Data, want[i])
		}
	}
	// Sub-subjects of one stream are not another's.
	if _, ok, err := b.LastMsg(ctx, "other", "file.nginx"); err != nil || ok {
		t.Fatalf("LastMsg on another stream = ok %v, err %v", ok, err)
	}
}

func TestPublishToDeduplicatesMsgID(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	first, err := b.PublishTo(ctx, "events", "a.b", []byte("x"), "id-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.PublishTo(ctx, "events", "a.b", []byte("x again"), "id-1")
	if err != nil || again != first {
		t.Fatalf("repeated msgID = seq %d, err %v; want %d", again, err, first)
	}
}

func TestPublishToRejectsBadSubSubjects(t *testing.T) {
	b := newEmbedded(t)
	ctx := testCtx(t, 10*time.Second)
	for _, sub := range []string{"", ".", "a.", ".a", "a..b", "a.*", ">", "a b", "a\tb", "a.>"} {
		if _, err := b.PublishTo(ctx, "events", sub, []byte("x"), ""); err == nil {
			t.Errorf("PublishTo sub %q succeeded, want an error", sub)
		}
		if _, _, err := b.LastMsg(ctx, "events", sub); err == nil {
			t.Errorf("LastMsg sub %q succeeded, want an error", sub)
		}
	}
	if _, err := b.PublishTo(ctx, "nosuch", "a", []byte("x"), ""); err == nil {
		t.Error("PublishTo a missing stream succeeded")
	}
	if _, _, err := b.LastMsg(ctx, "nosuch", "a"); err == nil {
		t.Error("LastMsg on a missing stream succeeded")
	}
}
