package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/jobs/extract"
	"github.com/sluice-data/sluice/lake/schema"
)

// extractHTTP is an http job's body: the pages of a JSON API into the job's
// lake table (see lakeout.go). A record's fields are its columns, typed by
// their values as a pipeline's lake output types them (a field whose type
// conflicts with its column fails the run). Each run reads from the first
// page, unless a run of the task failed or was cancelled in the middle:
// the next goes on after the last page it stored.
func (s *Scheduler) extractHTTP(ctx context.Context, run *Run, j config.Job, out target, log io.Writer) error {
	t := run.Task()
	h := j.HTTP
	first, err := render("jobs."+t.Job+".http.url", h.URL, t.Params)
	if err != nil {
		return err
	}
	headers := map[string]string{}
	for k, v := range h.Headers {
		if headers[k], err = render("jobs."+t.Job+".http.headers."+k, v, t.Params); err != nil {
			return err
		}
	}
	pager := extract.NewPager(extract.HTTP{
		Headers: headers, Records: h.Records, Paginate: h.Paginate, Cursor: h.Cursor, Param: h.Param,
		Rate: h.Rate, Retries: h.Retries, Timeout: h.Timeout.D(), UserAgent: "sluice (job " + t.Job + ")",
		Log: func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) },
	})
	progressKey, sub := "jobs.state."+t.id(), "job."+t.id()
	w, err := s.newLakeWriter(ctx, out.Lake, sub)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if err := w.declare(ctx, []sluice.Column{{Name: extractedAtColumn, Type: sluice.TypeTimestamp, Added: now}, {Name: runColumn, Type: sluice.TypeVarchar, Added: now}}); err != nil {
		return err
	}
	p, err := s.loadProgress(ctx, progressKey)
	if err != nil {
		return err
	}
	last, hasLast, err := w.last(ctx)
	if err != nil {
		return err
	}
	fresh, err := s.fresh(ctx, t, p)
	if err != nil {
		return err
	}
	if fresh {
		rev := uint64(0)
		if p != nil {
			rev = p.rev
		}
		start, _ := json.Marshal(extract.Start(first, h.FirstPage))
		p = &progress{Gen: run.ID, Pos: start, Seq: last.Seq, rev: rev}
		if err := s.saveProgress(ctx, progressKey, p); err != nil {
			return err
		}
	} else if pp := p.Pending; pp != nil {
		// The attempt before stopped while publishing a page. Stored
		// whole (one message, found on the bus), it is not read again;
		// else it is, and its messages' ids drop what was stored.
		if hasLast && last.Seq > p.Seq && pp.Messages == 1 {
			p.Pos, p.Seq, p.Rows = pp.Next, last.Seq, p.Rows+pp.Rows
		}
		p.Pending = nil
		if err := s.saveProgress(ctx, progressKey, p); err != nil {
			return err
		}
	}
	var pos extract.Position
	if err := json.Unmarshal(p.Pos, &pos); err != nil {
		return fmt.Errorf("%s: %w", progressKey, err)
	}
	if pos.Page != h.FirstPage || pos.Cursor != "" {
		fmt.Fprintf(log, "going on from page %d: %s\n", pos.Page, pos.URL)
	}
	start, rows, pages := time.Now(), int64(0), 0
	lastLog := start
	for !p.Done {
		if pos.Done() {
			p.Done = true
			if err := s.saveProgress(ctx, progressKey, p); err != nil {
				return err
			}
			break
		}
		records, next, err := pager.Fetch(ctx, pos)
		if err != nil {
			return err
		}
		at := s.now().UTC()
		var msgs [][]byte
		var msg, line []byte
		changed := false
		for i, r := range records {
			r[extractedAtColumn], r[runColumn] = at, p.Gen
			row, ch, err := schema.Conform(&w.schema, w.table, extractedAtColumn, r)
			if err != nil {
				return fmt.Errorf("record %d of %s: %w", i+1, pos.URL, err)
			}
			changed = changed || ch
			line = appendRecord(line[:0], row)
			if len(msg) > 0 && len(msg)+len(line) > w.max {
				msgs, msg = append(msgs, msg), nil
			}
			msg = append(msg, line...)
		}
		if len(msg) > 0 {
			msgs = append(msgs, msg)
		}
		// The schema record first: the archiver types the rows by it.
		if changed {
			if err := w.save(ctx); err != nil {
				return err
			}
		}
		nextJSON, _ := json.Marshal(next)
		if len(msgs) > 0 {
			p.Pending = &pendingPage{Next: nextJSON, Messages: len(msgs), Rows: int64(len(records))}
			if err := s.saveProgress(ctx, progressKey, p); err != nil {
				return err
			}
			for i, m := range msgs {
				seq, err := w.publish(ctx, m, msgID(sub, p.Gen, []byte(strconv.Itoa(pos.Page)), p.Pos, []byte(strconv.Itoa(i))))
				if err != nil {
					return err
				}
				p.Seq = seq
			}
		}
		p.Pos, p.Pending, p.Rows = nextJSON, nil, p.Rows+int64(len(records))
		if err := s.saveProgress(ctx, progressKey, p); err != nil {
			return err
		}
		pos = next
		pages++
		rows += int64(len(records))
		if time.Since(lastLog) > 5*time.Second {
			fmt.Fprintf(log, "%d records in %d pages so far\n", rows, pages)
			lastLog = time.Now()
		}
	}
	fmt.Fprintf(log, "%d records in %d pages in %s\n", rows, pages, time.Since(start).Round(time.Millisecond))
	return s.finishLake(ctx, run, out.Lake, p, p.Rows, log)
}

// appendRecord encodes a conformed record as a JSON line, its fields in
// name order.
func appendRecord(b []byte, row map[string]any) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(row)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, jsonKey(k)...)
		b = extract.AppendJSON(b, row[k])
	}
	return append(b, '}', '\n')
}
