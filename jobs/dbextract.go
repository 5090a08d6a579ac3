package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/jobs/extract"
	"github.com/sluice-data/sluice/lake/schema"
)

// extractDB is an extract job's body: a table of PostgreSQL or MySQL read
// page after page into the job's lake table (see lakeout.go). An
// incremental extract goes on from the cursor where the last run ended; a
// snapshot reads the whole table each run (and goes on where a run of the
// task that did not finish stopped).
func (s *Scheduler) extractDB(ctx context.Context, run *Run, j config.Job, out target, log io.Writer) error {
	t := run.Task()
	e := j.Extract
	where, err := render("jobs."+t.Job+".extract.where", e.Where, t.Params)
	if err != nil {
		return err
	}
	q := extract.Query{Table: e.Table, Columns: e.Columns, Where: where, Cursor: e.Cursor, Key: e.Key, Decimals: e.Decimals}
	db, err := extract.Open(ctx, e.From)
	if err != nil {
		return err
	}
	defer db.Close()
	cols, err := db.Columns(ctx, q)
	if err != nil {
		return err
	}
	progressKey, sub := "jobs.state."+t.id(), "job."+t.id()
	if e.Incremental() {
		progressKey, sub = "jobs.state."+t.Job, "job."+t.Job
	}
	w, err := s.newLakeWriter(ctx, out.Lake, sub)
	if err != nil {
		return err
	}
	// The lake's columns: _extracted_at, _run, then the source's, spelled
	// as the table spells them.
	lakeCols := []sluice.Column{{Name: extractedAtColumn, Type: sluice.TypeTimestamp}, {Name: runColumn, Type: sluice.TypeVarchar}}
	for _, c := range cols {
		if strings.EqualFold(c.Name, extractedAtColumn) || strings.EqualFold(c.Name, runColumn) {
			return fmt.Errorf("table %s has a column %s, a name sluice gives its own column in the lake: leave it out (columns: […])", e.Table, c.Name)
		}
		if slices.ContainsFunc(lakeCols, func(l sluice.Column) bool { return strings.EqualFold(l.Name, c.Name) }) {
			return fmt.Errorf("table %s has two columns named %s but for case: the lake's names ignore case", e.Table, c.Name)
		}
		lakeCols = append(lakeCols, sluice.Column{Name: c.Name, Type: c.Type, Added: s.now().UTC()})
	}
	lakeCols[0].Added, lakeCols[1].Added = s.now().UTC(), s.now().UTC()
	if err := w.declare(ctx, lakeCols); err != nil {
		return err
	}
	keys := make([][]byte, len(lakeCols))
	types := make([]sluice.ColumnType, len(lakeCols))
	for i, c := range lakeCols {
		name := schema.ColumnName(w.schema, c.Name)
		keys[i] = jsonKey(name)
		col, _ := w.schema.Lookup(name)
		types[i] = col.Type
	}
	// Where the order columns are among the row's values (the row's
	// values follow _extracted_at and _run).
	var orderAt []int
	for _, o := range q.Order() {
		i := slices.IndexFunc(cols, func(c extract.Column) bool { return strings.EqualFold(c.Name, o) })
		if i < 0 {
			return fmt.Errorf("table %s has no column %s (its columns: %s)", e.Table, o, columnNames(cols))
		}
		orderAt = append(orderAt, i+2)
	}

	p, err := s.loadProgress(ctx, progressKey)
	if err != nil {
		return err
	}
	last, hasLast, err := w.last(ctx)
	if err != nil {
		return err
	}
	fresh := p == nil
	if !e.Incremental() {
		if fresh, err = s.fresh(ctx, t, p); err != nil {
			return err
		}
	}
	switch {
	case fresh:
		// A new snapshot, or the first run of an incremental extract.
		rev := uint64(0)
		if p != nil {
			rev = p.rev
		}
		p = &progress{Gen: run.ID, Seq: last.Seq, rev: rev}
		if err := s.saveProgress(ctx, progressKey, p); err != nil {
			return err
		}
		fmt.Fprintf(log, "extract %s from the start\n", e.Table)
	case hasLast && last.Seq > p.Seq:
		// Rows stored after the progress was saved (the attempt before
		// stopped in between): go on after the last of them.
		pos, err := positionOf(last.Data, keys, orderAt)
		if err != nil {
			return fmt.Errorf("the last message of %s on the bus: %w", sub, err)
		}
		p.Pos, p.Seq = pos, last.Seq
		if err := s.saveProgress(ctx, progressKey, p); err != nil {
			return err
		}
		fmt.Fprintf(log, "extract %s after %s (the last rows stored)\n", e.Table, p.Pos)
	case len(p.Pos) == 0:
		fmt.Fprintf(log, "extract %s from the start\n", e.Table)
	default:
		fmt.Fprintf(log, "extract %s after %s\n", e.Table, p.Pos)
	}

	start, rows, pages := time.Now(), int64(0), 0
	lastLog := start
	// A message's rows, and one row: reused from page to page.
	msg, line := make([]byte, 0, w.max+w.max/8), []byte(nil)
	for !p.Done {
		var after []any
		if len(p.Pos) > 0 {
			if after, err = parsePosition(p.Pos, types, orderAt); err != nil {
				return fmt.Errorf("%s: %w", progressKey, err)
			}
		}
		at := s.now().UTC()
		values := make([]any, len(lakeCols))
		values[0], values[1] = at, run.ID
		if !e.Incremental() {
			values[1] = p.Gen
		}
		var (
			msgFrom = p.Pos // the position before the message's first row
			n       int
			pos     []byte
		)
		flush := func() error {
			if len(msg) == 0 {
				return nil
			}
			seq, err := w.publish(ctx, msg, msgID(sub, p.Gen, msgFrom, pos))
			if err != nil {
				return err
			}
			p.Seq, msgFrom, msg = seq, bytes.Clone(pos), msg[:0]
			return nil
		}
		err := db.Page(ctx, q, after, e.Page, func(row []any) error {
			copy(values[2:], row)
			line = appendRow(line[:0], keys, values)
			if len(msg) > 0 && len(msg)+len(line) > w.max {
				if err := flush(); err != nil {
					return err
				}
			}
			if len(line) > w.max*2 {
				return fmt.Errorf("a row of %s is %d bytes of JSON, more than the bus takes in a message (%d)", e.Table, len(line), w.max*2)
			}
			msg = append(msg, line...)
			pos = positionJSON(pos[:0], values, orderAt)
			n++
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return err
		}
		pages++
		rows += int64(n)
		if n > 0 {
			p.Pos, p.Rows = json.RawMessage(bytes.Clone(pos)), p.Rows+int64(n)
		}
		if n < e.Page && !e.Incremental() {
			p.Done = true
		}
		if n > 0 || p.Done {
			if err := s.saveProgress(ctx, progressKey, p); err != nil {
				return err
			}
		}
		if time.Since(lastLog) > 5*time.Second {
			fmt.Fprintf(log, "%d rows in %d pages so far\n", rows, pages)
			lastLog = time.Now()
		}
		if n < e.Page {
			break
		}
	}
	took := time.Since(start)
	fmt.Fprintf(log, "%d rows in %d pages in %s (%.0f rows/s)", rows, pages, took.Round(time.Millisecond), float64(rows)/max(took.Seconds(), 1e-3))
	if e.Incremental() && len(p.Pos) > 0 {
		fmt.Fprintf(log, "; the next run starts after %s", p.Pos)
	}
	fmt.Fprintln(log)
	if !e.Incremental() {
		rows = p.Rows // the snapshot's, over its attempts
	}
	return s.finishLake(ctx, run, out.Lake, p, rows, log)
}

// positionJSON appends the order columns' values as a JSON array.
func positionJSON(b []byte, values []any, orderAt []int) []byte {
	b = append(b, '[')
	for i, at := range orderAt {
		if i > 0 {
			b = append(b, ',')
		}
		b = extract.AppendJSON(b, values[at])
	}
	return append(b, ']')
}

// parsePosition reads a position back into values for a page's query.
func parsePosition(pos json.RawMessage, types []sluice.ColumnType, orderAt []int) ([]any, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(pos, &raw); err != nil || len(raw) != len(orderAt) {
		return nil, fmt.Errorf("the position %s does not fit the order columns (%d): were cursor or key changed? Delete the record to start from the beginning", pos, len(orderAt))
	}
	out := make([]any, len(raw))
	for i, r := range raw {
		v, err := extract.ParseValue(types[orderAt[i]], r)
		if err != nil {
			return nil, fmt.Errorf("the position %s: %w", pos, err)
		}
		out[i] = v
	}
	return out, nil
}

// positionOf is the position of the last row of a stored message.
func positionOf(data []byte, keys [][]byte, orderAt []int) (json.RawMessage, error) {
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	var row map[string]json.RawMessage
	if err := json.Unmarshal(lines[len(lines)-1], &row); err != nil {
		return nil, err
	}
	b := []byte{'['}
	for i, at := range orderAt {
		if i > 0 {
			b = append(b, ',')
		}
		var name string
		json.Unmarshal(keys[at][:len(keys[at])-1], &name)
		v, ok := row[name]
		if !ok {
			return nil, fmt.Errorf("its last row has no %s", name)
		}
		b = append(b, v...)
	}
	return append(b, ']'), nil
}

func columnNames(cols []extract.Column) string {
	var names []string
	for _, c := range cols {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}
