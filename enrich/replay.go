package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// ReplayFilter selects the bad rows to replay.
type ReplayFilter struct {
	Types  []string  // failure types; empty means every type
	Since  time.Time // failed at or after
	Until  time.Time // failed before; zero means now
	DryRun bool      // count, publish nothing
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Matched  int            `json:"matched"`  // bad rows the filter selected
	Replayed int            `json:"replayed"` // of those, handed back to enrich
	ByType   map[string]int `json:"by_type"`
}

// Replay hands bad rows back to enrich after a fix (a schema added to a
// registry, a config change): each selected row's input goes back on `raw`
// as the payload it first came in, marked with HeaderReplayOf. Enrich treats
// it like any input, so it becomes an event or, if it still fails, a new bad
// row. The marker seeds the ids enrich generates and the raw message ids, so
// replaying the same rows twice yields the same events, which the dedupe
// window drops.
//
// Bad rows are read from the bad stream, which keeps them for
// streams.bad.retention (30 days by default); older ones are in the lake's
// bad table for reading, but not replayable.
func Replay(ctx context.Context, b *bus.Bus, f ReplayFilter) (ReplayResult, error) {
	res := ReplayResult{ByType: map[string]int{}}
	if f.Until.IsZero() {
		f.Until = time.Now()
	}
	info, err := b.Info(ctx, sluice.StreamBad)
	if err != nil {
		return res, err
	}
	if info.Msgs == 0 {
		return res, nil
	}
	r, err := b.ReadSince(ctx, sluice.StreamBad, f.Since)
	if err != nil {
		return res, err
	}
	defer r.Close()

	maxFrame := int(b.MaxPayload() / 2)
	var batch []sluice.Payload
	size, batchID := 0, ""
	publish := func() error {
		if len(batch) == 0 || f.DryRun {
			batch = batch[:0]
			return nil
		}
		frame, err := sluice.EncodeFrame(batch)
		if err != nil {
			return err
		}
		// Named by the rows it holds: the same rows again (within the bus's
		// duplicate window) are stored once.
		lastID := batch[len(batch)-1].Headers[sluice.HeaderReplayOf]
		if _, err := b.Publish(ctx, sluice.StreamRaw, frame, "replay-"+batchID+"-"+lastID); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		res.Replayed += len(batch)
		batch, size = batch[:0], 0
		return nil
	}
	idle := time.NewTimer(5 * time.Second)
	defer idle.Stop()
	for {
		var m bus.Msg
		var ok bool
		select {
		case m, ok = <-r.C():
			if !ok {
				return res, ctx.Err()
			}
		case <-idle.C:
			// Nothing at or after Since is left to read.
			return res, publish()
		case <-ctx.Done():
			return res, ctx.Err()
		}
		idle.Reset(5 * time.Second)
		for k, line := range splitLines(m.Data) {
			var row sluice.BadRow
			if err := json.Unmarshal(line, &row); err != nil {
				return res, fmt.Errorf("replay: bad stream seq %d line %d: %w", m.Seq, k, err)
			}
			if row.FailedAt.Before(f.Since) || !row.FailedAt.Before(f.Until) || (len(f.Types) > 0 && !slices.Contains(f.Types, row.Type)) {
				continue
			}
			res.Matched++
			res.ByType[row.Type]++
			id := strconv.FormatUint(m.Seq, 10) + "/" + strconv.Itoa(k)
			p := sluice.Payload{
				ReceivedAt: row.ReceivedAt, Collector: row.Collector, Path: row.Path, IP: row.IP,
				ContentType: row.ContentType, Headers: maps.Clone(row.Headers), Body: []byte(row.Payload),
			}
			if p.Headers == nil {
				p.Headers = map[string]string{}
			}
			p.Headers[sluice.HeaderReplayOf] = id
			switch {
			case p.ContentType == "" && row.Collector == "syslog":
				p.ContentType = sluice.ContentTypeSyslog // rows from before content types were kept
			case p.ContentType == sluice.ContentTypeRecords:
				p.Body = sluice.AppendRecord(nil, p.Body, false) // a bad row holds one record
			}
			if size+len(p.Body)+512 > maxFrame {
				if err := publish(); err != nil {
					return res, err
				}
			}
			if len(batch) == 0 {
				batchID = id
			}
			batch = append(batch, p)
			size += len(p.Body) + 512
		}
		if m.Seq >= info.LastSeq {
			return res, publish()
		}
	}
}

func splitLines(data []byte) [][]byte {
	var out [][]byte
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, []byte(l))
		}
	}
	return out
}

// replayHeaders are the payload headers a bad row keeps for replay: all but
// a file tailer's position, which only matters to the tailer.
func replayHeaders(h map[string]string) map[string]string {
	if _, ok := h[sluice.HeaderCheckpoint]; !ok {
		return h
	}
	out := maps.Clone(h)
	delete(out, sluice.HeaderCheckpoint)
	return out
}
