package pipeline

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/sluice-data/sluice/config"
)

// TableReader reads the warehouse tables that lookup steps enrich events
// from: the node's warehouse, DuckDB or PostgreSQL.
type TableReader interface {
	// ReadTable returns the names of the columns asked for (all of the
	// table's when none are) and at most limit rows of table, a table or
	// view. Values are as events hold them: whole numbers int64, other
	// numbers float64, times time.Time, text string, NULL nil. When there
	// is no such table, the error wraps ErrNoTable.
	ReadTable(ctx context.Context, table string, columns []string, limit int) ([]string, [][]any, error)
}

// ErrNoTable is what a TableReader's error wraps when the table does not
// exist.
var ErrNoTable = errors.New("no such table")

const (
	// maxLookupRows bounds a lookup table: it is held in memory, whole.
	maxLookupRows = 1_000_000
	// loadTimeout bounds one read of a lookup table.
	loadTimeout = 2 * time.Minute
)

// lookupStep adds the columns of the row whose Column equals the event's
// Key, from a CSV file or a warehouse table. Keys compare as text, so a
// table's integer 42 matches the event values 42 and "42".
//
// A file is read again when its modification time or size changes, a table
// every Reload; a load that fails keeps the rows loaded before. A table is
// read again in a goroutine, and its rows replace the old ones at the next
// event after it finished, so events never wait for the warehouse after the
// first load. A table that does not exist when the pipeline starts (a
// pipeline that creates it has not written yet) starts the lookup empty:
// events pass without its fields until a reload finds it.
type lookupStep struct {
	c       config.LookupStep
	every   time.Duration             // how often to look for a change
	rows    map[string]map[string]any // by key
	checked time.Time
	log     *slog.Logger
	failed  string // the last load's error, logged when it first happens

	// file: the version loaded.
	mod  time.Time
	size int64

	// table: tables reads it; loading delivers a reload in progress.
	tables  TableReader
	loading chan tableLoad
}

// tableLoad is the result of one read of a lookup table.
type tableLoad struct {
	rows map[string]map[string]any
	err  error
}

func newLookup(c config.LookupStep, o Options) (*lookupStep, error) {
	if c.Column == "" {
		c.Column = c.Key
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l := &lookupStep{c: c, every: c.Reload.D(), log: o.Logger.With("pipeline", o.Name)}
	if c.Table == "" {
		if l.every <= 0 {
			l.every = 5 * time.Second
		}
		l.log = l.log.With("lookup", c.File)
		rows, err := l.loadFile()
		if err != nil {
			return nil, err
		}
		l.rows = rows
		return l, nil
	}
	if l.every <= 0 {
		l.every = 30 * time.Second
	}
	l.log = l.log.With("lookup", c.Table)
	l.tables, l.rows = o.Lookups, map[string]map[string]any{}
	if l.tables == nil {
		if o.Simulation {
			return l, nil // sluice test has no warehouse: nothing matches
		}
		return nil, fmt.Errorf("lookup table %s: no warehouse to read it from", c.Table)
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	l.checked = time.Now()
	rows, err := l.readTable(ctx)
	switch {
	case errors.Is(err, ErrNoTable):
		l.failed = err.Error()
		l.log.Warn("lookup table does not exist (yet): events pass without its fields until it does", "err", err, "retry_every", l.every)
	case err != nil:
		return nil, err
	default:
		l.rows = rows
	}
	return l, nil
}

func (l *lookupStep) apply(ev Event, now time.Time) (Event, config.Outputs, error) {
	if l.tables != nil {
		l.reloadTable(now)
	} else if l.c.File != "" && now.Sub(l.checked) >= l.every {
		l.checked = now
		if st, err := os.Stat(l.c.File); err == nil && (!st.ModTime().Equal(l.mod) || st.Size() != l.size) {
			l.loaded(l.loadFile())
		}
	}
	k, ok := ev[l.c.Key]
	if !ok || k == nil {
		return ev, nil, nil
	}
	if row, ok := l.rows[fmt.Sprint(k)]; ok {
		for c, v := range row {
			ev[c] = v
		}
	}
	return ev, nil, nil
}

// loaded takes the rows of a load, or logs its error (once while it stays
// the same) and keeps the rows loaded before.
func (l *lookupStep) loaded(rows map[string]map[string]any, err error) {
	if err != nil {
		if msg := err.Error(); msg != l.failed {
			l.failed = msg
			l.log.Error("lookup: loading failed; the rows loaded before stay in use", "err", err)
		}
		return
	}
	if l.failed != "" {
		l.failed = ""
		l.log.Info("lookup loaded", "rows", len(rows))
	}
	l.rows = rows
}

// reloadTable takes the rows of a finished reload, and starts the next one
// when it is time.
func (l *lookupStep) reloadTable(now time.Time) {
	select {
	case r := <-l.loading: // never ready while nil
		l.loading = nil
		l.loaded(r.rows, r.err)
	default:
	}
	if l.loading != nil || now.Sub(l.checked) < l.every {
		return
	}
	l.checked = now
	done := make(chan tableLoad, 1)
	l.loading = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		rows, err := l.readTable(ctx)
		done <- tableLoad{rows, err}
	}()
}

// readTable reads the lookup table. It runs beside apply: it reads only
// what does not change after newLookup.
func (l *lookupStep) readTable(ctx context.Context) (map[string]map[string]any, error) {
	var cols []string
	if len(l.c.Fields) > 0 {
		cols = []string{l.c.Column}
		for _, f := range l.c.Fields {
			if !slices.Contains(cols, f) {
				cols = append(cols, f)
			}
		}
	}
	names, recs, err := l.tables.ReadTable(ctx, l.c.Table, cols, maxLookupRows+1)
	if err != nil {
		return nil, fmt.Errorf("lookup table %s: %w", l.c.Table, err)
	}
	if len(recs) > maxLookupRows {
		return nil, fmt.Errorf("lookup table %s has more than %d rows, and a lookup holds its table in memory: look up in a view that selects the rows needed", l.c.Table, maxLookupRows)
	}
	keyCol := slices.Index(names, l.c.Column)
	if keyCol < 0 {
		return nil, fmt.Errorf("lookup table %s: no column %q (the columns are %v)", l.c.Table, l.c.Column, names)
	}
	rows := make(map[string]map[string]any, len(recs))
	for _, rec := range recs {
		if rec[keyCol] == nil {
			continue
		}
		row := make(map[string]any, len(names)-1)
		for i, n := range names {
			// NULL adds nothing: the event keeps what it has.
			if i != keyCol && rec[i] != nil {
				row[n] = rec[i]
			}
		}
		rows[fmt.Sprint(rec[keyCol])] = row
	}
	return rows, nil
}

// loadFile reads the lookup's CSV file and notes its version.
func (l *lookupStep) loadFile() (map[string]map[string]any, error) {
	st, err := os.Stat(l.c.File)
	if err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	f, err := os.Open(l.c.File)
	if err != nil {
		return nil, fmt.Errorf("lookup: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", l.c.File, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("lookup %s: no header row", l.c.File)
	}
	header := recs[0]
	keyCol := slices.Index(header, l.c.Column)
	if keyCol < 0 {
		return nil, fmt.Errorf("lookup %s: no column %q (the columns are %v)", l.c.File, l.c.Column, header)
	}
	for _, f := range l.c.Fields {
		if !slices.Contains(header, f) {
			return nil, fmt.Errorf("lookup %s: no column %q (the columns are %v)", l.c.File, f, header)
		}
	}
	rows := make(map[string]map[string]any, len(recs)-1)
	for _, rec := range recs[1:] {
		if keyCol >= len(rec) {
			continue
		}
		row := map[string]any{}
		for i, h := range header {
			if i == keyCol || i >= len(rec) || (len(l.c.Fields) > 0 && !slices.Contains(l.c.Fields, h)) {
				continue
			}
			row[h] = rec[i]
		}
		rows[rec[keyCol]] = row
	}
	l.mod, l.size = st.ModTime(), st.Size()
	return rows, nil
}

// throttleStep lets through at most threshold events per key in each
// window of processing time, and drops the rest.
type throttleStep struct {
	c      config.ThrottleStep
	window time.Duration
	start  time.Time
	counts map[string]int
}

func newThrottle(c config.ThrottleStep) *throttleStep {
	w := c.Window.D()
	if w <= 0 {
		w = time.Second
	}
	return &throttleStep{c: c, window: w, counts: map[string]int{}}
}

func (s *throttleStep) apply(ev Event, now time.Time) (Event, config.Outputs, error) {
	if now.Sub(s.start) >= s.window {
		s.start = now.Truncate(s.window)
		clear(s.counts)
	}
	k, err := keyOf(ev, s.c.Key)
	if err != nil {
		return nil, nil, err
	}
	s.counts[k]++
	if s.counts[k] > s.c.Threshold {
		return nil, nil, nil
	}
	return ev, nil, nil
}
