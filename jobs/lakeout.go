package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/jsonseq"
	"github.com/sluice-data/sluice/jobs/extract"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/lake/schema"
)

// The lake output of an extract or http job ({lake: TABLE}) is written the
// way a pipeline writes one: the rows, as JSON lines, go to the bus stream
// TABLE, which the lake's archiver commits to Parquet; the table's schema
// record (schema.TABLE) types their columns and is saved before the rows
// that need it. Every row has two columns besides its own: _extracted_at
// (when it was read; the table's partition time) and _run (the run that
// read it; for a snapshot or an API read, the run that began the read).
//
// A run keeps its progress in the bus's state bucket: jobs.state.<job> for
// an incremental extract (its cursor, shared by every run of the job),
// jobs.state.<task> for a snapshot or an API read (the run that began it,
// and where it is: a read a failed or cancelled run began is finished by
// the task's next run). The progress moves after the bus has acknowledged
// the rows before it. Each run's messages are published under a sub-subject of
// the stream of their own (job.<job> or job.<task>), so that a run that
// goes on after a crash finds the last message stored, which may be past
// the saved progress, and goes on from there (an extract's rows carry
// their position), and each message has an id made from the range of rows
// it holds: a page read again is dropped by the bus's duplicate window.
//
// The task is complete when every row is committed to the lake (its commit
// record has passed the run's last message) and then jobs.done.<task> is
// written: a crashed run never counts as done.

// Columns every row of a job's lake output has.
const (
	extractedAtColumn = config.ExtractTimeColumn
	runColumn         = "_run"
)

// progress is where a run that writes the lake is (jobs.state.<…>).
type progress struct {
	// Gen is the run that began this progress: each run of a snapshot or
	// API read begins again; an incremental extract's progress goes on
	// across runs. Message ids include it.
	Gen string `json:"gen"`
	// Pos is where the next page starts: for an extract, the order
	// columns' values of the last row stored, as the rows hold them; for
	// an API, the next page's extract.Position.
	Pos json.RawMessage `json:"pos,omitempty"`
	// Seq is the stream sequence of the last message stored by the time
	// the progress was saved.
	Seq  uint64 `json:"seq"`
	Rows int64  `json:"rows"`
	// Pending is an API page being published: when its messages are
	// found stored, the read goes on after it.
	Pending *pendingPage `json:"pending,omitempty"`
	// Done is a snapshot or API read that reached its end.
	Done    bool      `json:"done,omitempty"`
	Updated time.Time `json:"updated"`
	rev     uint64
}

type pendingPage struct {
	Next     json.RawMessage `json:"next"`
	Messages int             `json:"messages"`
	Rows     int64           `json:"rows"`
}

// doneRecord says a task's lake output is complete (jobs.done.<task>).
type doneRecord struct {
	Run   string    `json:"run"`
	Gen   string    `json:"gen"` // the progress the run completed
	Table string    `json:"table"`
	Seq   uint64    `json:"seq"` // the run's rows are at or before it
	Rows  int64     `json:"rows"`
	At    time.Time `json:"at"`
}

func doneKey(t Task) string { return "jobs.done." + t.id() }

// fresh tells whether a snapshot or API read of a task begins anew: when
// there is no progress, or the one there is was completed and recorded
// done. A read a failed or cancelled run began is finished by the next
// run of the task, so that its rows are not stored twice.
func (s *Scheduler) fresh(ctx context.Context, t Task, p *progress) (bool, error) {
	if p == nil {
		return true, nil
	}
	if !p.Done {
		return false, nil
	}
	data, _, err := s.o.Bus.GetState(ctx, doneKey(t))
	if err != nil || data == nil {
		return false, err
	}
	var d doneRecord
	if err := json.Unmarshal(data, &d); err != nil {
		return false, fmt.Errorf("%s: %w", doneKey(t), err)
	}
	return d.Gen == p.Gen, nil
}

// lakeWritten tells whether a job's own lake output is complete for its
// task: the done record exists and the lake has committed what it names.
func (s *Scheduler) lakeWritten(ctx context.Context, t target) (time.Time, bool, error) {
	data, _, err := s.o.Bus.GetState(ctx, doneKey(*t.task))
	if err != nil || data == nil {
		return time.Time{}, false, err
	}
	var d doneRecord
	if err := json.Unmarshal(data, &d); err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", doneKey(*t.task), err)
	}
	if s.o.Lake == nil {
		return time.Time{}, false, errors.New("no lake to hold " + t.String())
	}
	c, err := lake.Committed(ctx, s.o.Lake, t.Lake)
	if err != nil {
		return time.Time{}, false, err
	}
	return d.At, c >= d.Seq, nil
}

// lakeWriter publishes a run's rows to its lake table's stream.
type lakeWriter struct {
	bus    *bus.Bus
	table  string
	sub    string // the run's sub-subject
	schema sluice.Schema
	rev    uint64
	max    int // bytes of a message
}

func (s *Scheduler) newLakeWriter(ctx context.Context, table, sub string) (*lakeWriter, error) {
	sc, rev, err := s.o.Bus.Schema(ctx, table)
	if err != nil {
		return nil, err
	}
	return &lakeWriter{bus: s.o.Bus, table: table, sub: sub, schema: sc, rev: rev, max: int(min(s.o.Bus.MaxPayload()/2, 4<<20))}, nil
}

// declare adds columns to the table's schema record (a new column, BIGINT
// widened to DOUBLE); a column the table has with another type is an
// error.
func (w *lakeWriter) declare(ctx context.Context, cols []sluice.Column) error {
	merged, err := schema.Merge(w.schema, sluice.Schema{Table: w.table, Columns: cols})
	if err != nil {
		return fmt.Errorf("lake table %s: %v: the source's type of the column changed; write to a new lake table, or drop this one (and the schema record schema.%s) to start it again", w.table, err, w.table)
	}
	if len(merged.Columns) == len(w.schema.Columns) && fmt.Sprint(merged.Columns) == fmt.Sprint(w.schema.Columns) {
		return nil
	}
	w.schema = merged
	return w.save(ctx)
}

// save saves the schema record, merged with other writers'.
func (w *lakeWriter) save(ctx context.Context) error {
	if err := schema.Save(ctx, w.bus, w.table, &w.schema, &w.rev); err != nil {
		return fmt.Errorf("lake table %s: %w", w.table, err)
	}
	return nil
}

// last is the last message stored under the run's sub-subject (ok false:
// none).
func (w *lakeWriter) last(ctx context.Context) (bus.Msg, bool, error) {
	return w.bus.LastMsg(ctx, w.table, w.sub)
}

// publish stores a message of rows.
func (w *lakeWriter) publish(ctx context.Context, data []byte, id string) (uint64, error) {
	return w.bus.PublishTo(ctx, w.table, w.sub, data, id)
}

// msgID names a message by the run's progress and the range it holds.
func msgID(sub, gen string, parts ...[]byte) string {
	h := sha256.New()
	h.Write([]byte(gen))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write(p)
	}
	return "job:" + sub + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// loadProgress reads a progress record (nil when there is none).
func (s *Scheduler) loadProgress(ctx context.Context, key string) (*progress, error) {
	data, rev, err := s.o.Bus.GetState(ctx, key)
	if err != nil || data == nil {
		return nil, err
	}
	var p progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	p.rev = rev
	return &p, nil
}

// saveProgress writes a progress record if nobody else did since it was
// read: two runs of one job never move one cursor.
func (s *Scheduler) saveProgress(ctx context.Context, key string, p *progress) error {
	p.Updated = s.now().UTC()
	data, _ := json.Marshal(p)
	rev, err := s.o.Bus.PutState(context.WithoutCancel(ctx), key, data, p.rev)
	if errors.Is(err, bus.ErrConflict) {
		return fmt.Errorf("%s was changed by another run of the job meanwhile; this attempt stops, and the next goes on from there", key)
	}
	if err != nil {
		return err
	}
	p.rev = rev
	return nil
}

// finishLake waits until the lake has committed the rows up to seq, makes
// them visible to the warehouse's SQL, and writes the task's done record.
func (s *Scheduler) finishLake(ctx context.Context, run *Run, table string, p *progress, rows int64, log io.Writer) error {
	seq := p.Seq
	if s.o.Lake == nil {
		return errors.New("no lake to write " + table + " to")
	}
	start := time.Now()
	logged := false
	for {
		c, err := lake.Committed(ctx, s.o.Lake, table)
		if err != nil {
			return err
		}
		if c >= seq {
			break
		}
		if !logged {
			fmt.Fprintf(log, "waiting for the lake to commit %s up to sequence %d (it is at %d)\n", table, seq, c)
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the lake to commit %s: %w", table, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if logged {
		fmt.Fprintf(log, "committed to the lake in %s\n", time.Since(start).Round(time.Millisecond))
	}
	if s.o.Refresh != nil {
		if err := s.o.Refresh(ctx, table); err != nil {
			return fmt.Errorf("lake table %s is committed, but the warehouse did not take it in: %w", table, err)
		}
	}
	d, _ := json.Marshal(doneRecord{Run: run.ID, Gen: p.Gen, Table: table, Seq: seq, Rows: rows, At: s.now().UTC()})
	for {
		_, rev, err := s.o.Bus.GetState(ctx, doneKey(run.Task()))
		if err != nil {
			return err
		}
		if _, err = s.o.Bus.PutState(ctx, doneKey(run.Task()), d, rev); !errors.Is(err, bus.ErrConflict) {
			return err
		}
	}
}

// appendRow encodes a row of named values as a JSON line.
func appendRow(b []byte, keys [][]byte, values []any) []byte {
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, k...)
		b = extract.AppendJSON(b, values[i])
	}
	return append(b, '}', '\n')
}

// jsonKey is a column name as a JSON object key, with its colon.
func jsonKey(name string) []byte { return append(jsonseq.AppendString(nil, name), ':') }
