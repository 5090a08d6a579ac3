package rollup

import (
	"context"
	"fmt"
	"time"
)

// A rebuild is the batch half of the lambda architecture: it counts an
// interval again from the lake, with the rollup's definition as it is now
// (a fixed filter, say), and swaps the result in for the interval's buckets
// at once. The lake holds the stream's messages up to its committed
// position; the messages after it are read from the stream, and the swap
// waits for the live counting to pause, so that the new version holds
// every event of the interval exactly once. Until the swap, queries see
// the version before, whole; after it, the new one, whole.

// LakeSource reads the rows of the rollup's source table in the lake whose
// time falls in [from, to): those of the messages up to the seq it returns
// (the table's committed position), each exactly once.
type LakeSource func(ctx context.Context, from, to time.Time, visit func(ev map[string]any) error) (seq uint64, err error)

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	LakeRows     int64     `json:"lake_rows"`
	LakeSeq      uint64    `json:"lake_seq"`
	StreamEvents int64     `json:"stream_messages"`
	Buckets      int       `json:"buckets"`
	Version      int       `json:"version"`
	Took         string    `json:"took"`
}

// Rebuild counts [from, to) again from the lake and the stream after it,
// and swaps the new buckets in.
func (r *Runner) Rebuild(ctx context.Context, from, to time.Time, lake LakeSource) (RebuildReport, error) {
	start := time.Now()
	g := r.Table.Granularity
	if !to.After(from) {
		return RebuildReport{}, fmt.Errorf("rebuild: to %s is not after from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	// Whole intervals: each is swapped for its next version whole.
	from, to = r.Table.span(from.UTC(), to.UTC())
	rep := RebuildReport{From: from, To: to}
	fresh := NewTable(g, r.Table.Dimensions, r.Table.Metrics)
	changed := map[int64]bool{}
	sc := r.newScratch()
	seq, err := lake(ctx, from, to, func(ev map[string]any) error {
		rep.LakeRows++
		r.countEvent(fresh, ev, changed, from, to, sc)
		return ctx.Err()
	})
	if err != nil {
		return rep, fmt.Errorf("rebuild of rollup %s from the lake: %w", r.o.Name, err)
	}
	rep.LakeSeq = seq
	// The stream after the lake's position, while counting goes on; then
	// the last messages and the swap with counting paused.
	r.ingest.Lock()
	upTo := r.next.Load()
	r.ingest.Unlock()
	done, err := r.replay(ctx, fresh, seq+1, upTo, from, to, &rep)
	if err != nil {
		return rep, err
	}
	r.ingest.Lock()
	defer r.ingest.Unlock()
	if _, err := r.replay(ctx, fresh, done, r.next.Load(), from, to, &rep); err != nil {
		return rep, err
	}
	var bs []time.Time
	bs, rep.Buckets, rep.Version = r.Table.replaceRange(from, to, fresh)
	// The new versions are durable before the rebuild reports.
	if err := r.Table.save(r.dir(), r.next.Load()); err != nil {
		return rep, fmt.Errorf("rebuild of rollup %s: the new version is in use but not saved yet: %w", r.o.Name, err)
	}
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	if r.o.OnChange != nil {
		r.o.OnChange(bs)
	}
	r.log.Info("rollup interval rebuilt", "from", from, "to", to, "lake_rows", rep.LakeRows, "lake_seq", seq,
		"stream_messages", rep.StreamEvents, "buckets", rep.Buckets, "version", rep.Version, "took", rep.Took)
	return rep, nil
}

// replay counts the messages [first, end) of the stream into t (those of
// [from, to)); it returns end.
func (r *Runner) replay(ctx context.Context, t *Table, first, end uint64, from, to time.Time, rep *RebuildReport) (uint64, error) {
	if first >= end {
		return max(first, end), nil
	}
	rd, err := r.o.Bus.ReadFrom(ctx, r.o.Config.From, first)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	changed := map[int64]bool{}
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case m := <-rd.C():
			if m.Seq >= end {
				return end, nil
			}
			r.count(t, m, changed, from, to)
			rep.StreamEvents++
			if m.Seq == end-1 {
				return end, nil
			}
		}
	}
}
