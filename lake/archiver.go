package lake

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// Table describes how a stream becomes a lake table.
type Table struct {
	Name   string // table name, also the top folder in the lake
	Stream string // the bus stream it is archived from
	// Fixed are the columns every file has; the table's other columns come
	// from its schema record on the bus (Dynamic).
	Fixed   []sluice.Column
	Dynamic bool
	// PartitionBy is the timestamp column whose hour places a row.
	PartitionBy string
}

// EventsTable, BadTable and LogsTable are the built-in tables.
var (
	EventsTable = Table{Name: "events", Stream: sluice.StreamEvents, Fixed: sluice.EventColumns, Dynamic: true, PartitionBy: "event_time"}
	BadTable    = Table{Name: "bad", Stream: sluice.StreamBad, Fixed: sluice.BadColumns, PartitionBy: "failed_at"}
	LogsTable   = Table{Name: "logs", Stream: sluice.StreamLogs, Fixed: sluice.LogColumns, PartitionBy: "timestamp"}
)

// BuiltinTables are the built-in tables, each archived from its stream.
var BuiltinTables = []Table{EventsTable, BadTable, LogsTable}

// ArchiverOptions configure an Archiver.
type ArchiverOptions struct {
	Bus           *bus.Bus
	Store         Store
	Table         Table
	FlushInterval time.Duration // longest a row waits for its file; default 5s
	MaxRows       int           // rows that force a flush; default 200000
	MaxBytes      int64         // buffered row bytes (JSON) that force a flush; default 256 MiB
	// OnCommit is called after each commit (the warehouse refreshes views).
	OnCommit func(table string)
	Logger   *slog.Logger
}

// Archiver copies one stream into one lake table, exactly once.
type Archiver struct {
	o         ArchiverOptions
	log       *slog.Logger
	committed atomic.Uint64

	schema sluice.Schema
	parts  map[string]*partition
	dirs   map[string]string // partition directory by the hour, "2006-01-02T15"
	rows   int
	bytes  int64  // of the buffered rows
	first  uint64 // first sequence in the buffer
	last   uint64 // last sequence in the buffer
	// replays are the ends of ranges that files already in the lake hold
	// beyond the commit (a flush cut short by a crash, or a commit record
	// restored from an older backup): flush exactly at each, in order, so
	// the same files are rewritten with the same rows.
	replays []uint64
	started time.Time
}

type partition struct {
	dir   string
	lines [][]byte
}

// commitRecord is the archiver's durable position, written after the files.
type commitRecord struct {
	Table       string    `json:"table"`
	Stream      string    `json:"stream"`
	LastSeq     uint64    `json:"last_seq"`
	CommittedAt time.Time `json:"committed_at"`
	Files       []string  `json:"files"`
	// Rows is how many rows each of Files holds (sluice lake verify
	// compares them with the files).
	Rows map[string]int64 `json:"rows,omitempty"`
	// Columns is the table's schema as of this commit: every column any
	// file may hold, with its type and when it was added. Readers other
	// than sluice find the types here without opening every file.
	Columns []sluice.Column `json:"columns"`
}

// NewArchiver returns an archiver; Run starts it.
func NewArchiver(o ArchiverOptions) *Archiver {
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 200000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Archiver{o: o, log: o.Logger.With("table", o.Table.Name), parts: map[string]*partition{}}
}

// Committed is the last stream sequence durably in the lake.
func (a *Archiver) Committed() uint64 { return a.committed.Load() }

// Run archives until ctx is done, then flushes what it holds and returns.
func (a *Archiver) Run(ctx context.Context) error {
	pos, err := a.recover(ctx)
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.o.Table.Name, err)
	}
	a.committed.Store(pos)
	a.log.Info("archiver starting", "from_seq", pos+1, "replays", len(a.replays))
	r, err := a.o.Bus.ReadFrom(ctx, a.o.Table.Stream, pos+1)
	if err != nil {
		return fmt.Errorf("archive %s: %w", a.o.Table.Name, err)
	}
	defer r.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case m, ok := <-r.C():
			if !ok {
				return a.stop()
			}
			if m.Seq <= a.committed.Load() || (a.last != 0 && m.Seq <= a.last) {
				continue
			}
			if a.first == 0 {
				timer.Reset(a.o.FlushInterval)
			}
			if err := a.add(m); err != nil {
				return fmt.Errorf("archive %s: seq %d: %w", a.o.Table.Name, m.Seq, err)
			}
			if a.flushDue() {
				if err := a.flushRetrying(ctx); err != nil {
					return a.stop()
				}
			}
		case <-timer.C:
			if len(a.replays) == 0 && a.first != 0 {
				if err := a.flushRetrying(ctx); err != nil {
					return a.stop()
				}
			}
		case <-ctx.Done():
			return a.stop()
		}
	}
}

// stop flushes the buffer on shutdown, unless a crashed flush is still being
// replayed (a partial range would not have its files' names).
func (a *Archiver) stop() error {
	if a.first == 0 || len(a.replays) > 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.flush(ctx); err != nil {
		return fmt.Errorf("archive %s: final flush: %w (the rows stay on the bus and are archived on the next start)", a.o.Table.Name, err)
	}
	return nil
}

func (a *Archiver) flushDue() bool {
	if len(a.replays) > 0 {
		return a.last >= a.replays[0]
	}
	return a.rows >= a.o.MaxRows || a.bytes >= a.o.MaxBytes
}

// flushRetrying flushes, retrying with backoff until it works or ctx ends.
func (a *Archiver) flushRetrying(ctx context.Context) error {
	backoff := time.Second
	for {
		err := a.flush(ctx)
		if err == nil {
			return nil
		}
		a.log.Error("archive flush failed; retrying", "first_seq", a.first, "last_seq", a.last, "err", err)
		archiveFlushFailures.WithLabelValues(a.o.Table.Name).Inc()
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// recover reads the committed position and deals with files a crashed flush
// left behind: they are replayed into the same names.
func (a *Archiver) recover(ctx context.Context) (uint64, error) {
	rec, err := readCommit(ctx, a.o.Store, a.o.Table.Name)
	if err != nil {
		return 0, err
	}
	files, err := Files(ctx, a.o.Store, a.o.Table.Name)
	if err != nil {
		return 0, err
	}
	var orphans []DataFile
	for _, f := range files {
		if f.Stream == a.o.Table.Stream && f.Last > rec.LastSeq && !f.Compacted {
			orphans = append(orphans, f)
		}
	}
	if len(orphans) == 0 {
		return rec.LastSeq, nil
	}
	// The ranges, each once (a flush writes one file per partition, all
	// with the flush's range), must follow the commit without gap or
	// overlap to be rewritten identically.
	slices.SortFunc(orphans, func(x, y DataFile) int { return cmp.Compare(x.First, y.First) })
	next, ok := rec.LastSeq+1, true
	var ends []uint64
	var prev DataFile
	for i, f := range orphans {
		switch {
		case i > 0 && f.First == prev.First && f.Last == prev.Last:
			// another partition of the same range
		case f.First == next:
			ends = append(ends, f.Last)
			next = f.Last + 1
		default:
			ok = false
		}
		prev = f
	}
	info, err := a.o.Bus.Info(ctx, a.o.Table.Stream)
	if err != nil {
		return 0, err
	}
	if !ok || info.LastSeq < ends[len(ends)-1] || info.FirstSeq > rec.LastSeq+1 {
		// The stream no longer holds those ranges, or they don't line up:
		// they cannot be rewritten identically, so remove them and archive
		// what the stream has.
		a.log.Warn("removing files beyond the commit that cannot be rewritten identically", "files", len(orphans))
		for _, f := range orphans {
			if err := a.o.Store.Delete(ctx, f.Key); err != nil {
				return 0, err
			}
		}
		return rec.LastSeq, nil
	}
	a.replays = ends
	a.log.Info("replaying an unfinished flush into the same files", "ranges", len(ends), "up_to_seq", ends[len(ends)-1], "files", len(orphans))
	return rec.LastSeq, nil
}

// add buffers the rows of one message by partition.
func (a *Archiver) add(m bus.Msg) error {
	if a.first == 0 {
		a.first = m.Seq
		a.started = time.Now()
	}
	a.last = m.Seq
	for line := range bytes.Lines(m.Data) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		dir, err := a.partition(line)
		if err != nil {
			return err
		}
		p := a.parts[dir]
		if p == nil {
			p = &partition{dir: dir}
			a.parts[dir] = p
		}
		p.lines = append(p.lines, line)
		a.rows++
		a.bytes += int64(len(line))
	}
	archiveBuffered.WithLabelValues(a.o.Table.Name).Set(float64(a.rows))
	return nil
}

// partitionTime finds the partition column in a line without decoding it:
// the stages write it near the front as "name":"<RFC 3339>".
// partition returns the partition directory of a row. Rows carry their
// time as enrich writes it (2006-01-02T15:04:05.000000Z), whose first 13
// bytes name the hour: directories are cached by them.
func (a *Archiver) partition(line []byte) (string, error) {
	key := `"` + a.o.Table.PartitionBy + `":"`
	if i := bytes.Index(line, []byte(key)); i >= 0 {
		rest := line[i+len(key):]
		// A malformed rest of the time still fails, when the file is
		// encoded.
		if end := bytes.IndexByte(rest, '"'); end == 27 && rest[26] == 'Z' {
			if dir, ok := a.dirs[string(rest[:13])]; ok {
				return dir, nil
			}
		}
	}
	t, err := partitionTime(line, a.o.Table.PartitionBy)
	if err != nil {
		return "", err
	}
	dir := PartitionDir(a.o.Table.Name, t)
	if a.dirs == nil || len(a.dirs) > 10000 {
		a.dirs = map[string]string{}
	}
	a.dirs[t.UTC().Format("2006-01-02T15")] = dir
	return dir, nil
}

func partitionTime(line []byte, col string) (time.Time, error) {
	key := `"` + col + `":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}, fmt.Errorf("row has no %s", col)
	}
	rest := line[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return time.Time{}, fmt.Errorf("row has a malformed %s", col)
	}
	return time.Parse(time.RFC3339Nano, string(rest[:end]))
}

// flush writes one file per partition, all named by the buffered sequence
// range, then moves the committed position.
func (a *Archiver) flush(ctx context.Context) error {
	if a.first == 0 {
		return nil
	}
	name := FileName(a.o.Table.Stream, a.first, a.last)
	dirs := make([]string, 0, len(a.parts))
	for d := range a.parts {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	if a.o.Table.Dynamic {
		// Read the record afresh: enrich saves a new or widened column
		// before it publishes a row that needs it, so this version types
		// every buffered row (a cached one would still say BIGINT for a
		// column now holding 2.5, and no retry could fix that).
		var err error
		if a.schema, _, err = a.o.Bus.Schema(ctx, a.o.Table.Name); err != nil {
			return err
		}
	}
	var keys []string
	rows := make(map[string]int64, len(dirs))
	for _, d := range dirs {
		p := a.parts[d]
		data, err := a.encode(p.lines)
		if err != nil {
			return fmt.Errorf("encode %s/%s: %w", d, name, err)
		}
		key := d + "/" + name
		if err := a.o.Store.Put(ctx, key, data); err != nil {
			return err
		}
		keys = append(keys, key)
		rows[key] = int64(len(p.lines))
		archiveBytes.WithLabelValues(a.o.Table.Name).Add(float64(len(data)))
	}
	rec, _ := json.Marshal(commitRecord{
		Table: a.o.Table.Name, Stream: a.o.Table.Stream, LastSeq: a.last,
		CommittedAt: time.Now().UTC(), Files: keys, Rows: rows, Columns: a.tableColumns(),
	})
	if err := a.o.Store.Put(ctx, commitKey(a.o.Table.Name), rec); err != nil {
		return err
	}
	archiveRows.WithLabelValues(a.o.Table.Name).Add(float64(a.rows))
	archiveFiles.WithLabelValues(a.o.Table.Name).Add(float64(len(keys)))
	a.log.Debug("committed", "first_seq", a.first, "last_seq", a.last, "rows", a.rows, "files", len(keys), "took", time.Since(a.started))
	a.committed.Store(a.last)
	if len(a.replays) > 0 && a.last >= a.replays[0] {
		a.replays = a.replays[1:]
	}
	a.first, a.last, a.rows, a.bytes = 0, 0, 0, 0
	archiveBuffered.WithLabelValues(a.o.Table.Name).Set(0)
	clear(a.parts)
	if a.o.OnCommit != nil {
		a.o.OnCommit(a.o.Table.Name)
	}
	return nil
}

// tableColumns is the table's schema: the fixed columns, then those of the
// schema record (dynamic tables).
func (a *Archiver) tableColumns() []sluice.Column {
	cols := slices.Clone(a.o.Table.Fixed)
	if !a.o.Table.Dynamic {
		return cols
	}
	for _, c := range a.schema.Columns {
		if !slices.ContainsFunc(cols, func(f sluice.Column) bool { return f.Name == c.Name }) {
			cols = append(cols, c)
		}
	}
	return cols
}

// guessRows is how many rows the columns of a file are guessed from.
const guessRows = 256

// encode writes the rows of a file as Parquet. Its columns are the fixed
// columns, then the dynamic columns its rows use, typed by the table's
// schema record. To read the rows once, not once for the columns and again
// for the values, the dynamic columns are guessed from the first rows; only
// if a later row has another field are the rest read for their columns and
// the file written again.
func (a *Archiver) encode(lines [][]byte) ([]byte, error) {
	if !a.o.Table.Dynamic {
		return encodeParquet(a.o.Table.Name, a.o.Table.Fixed, lines, false)
	}
	first := lines[:min(guessRows, len(lines))]
	cols, err := a.columns(first)
	if err != nil {
		return nil, err
	}
	data, err := encodeParquet(a.o.Table.Name, cols, lines, true)
	var more *moreColumnsError
	if !errors.As(err, &more) {
		return data, err
	}
	// The rows before more.row have no field beyond the guess.
	if cols, err = a.columns(first, lines[more.row:]); err != nil {
		return nil, err
	}
	return encodeParquet(a.o.Table.Name, cols, lines, true)
}

// columns are the columns of a dynamic table's rows: the fixed columns,
// then the dynamic columns the rows use, sorted by name.
func (a *Archiver) columns(rows ...[][]byte) ([]sluice.Column, error) {
	cols := slices.Clone(a.o.Table.Fixed)
	// The fixed columns are numbered first: every key numbered after them
	// is the name of a field some row has.
	var keys jsonseq.Keys
	for _, c := range cols {
		keys.Add(c.Name)
	}
	for _, lines := range rows {
		for _, l := range lines {
			if err := keys.Fields(l, func(int, []byte) error { return nil }); err != nil {
				return nil, err
			}
		}
	}
	names := make([]string, 0, keys.Len()-len(cols))
	for k := len(cols); k < keys.Len(); k++ {
		names = append(names, keys.Name(k))
	}
	slices.Sort(names)
	for _, n := range names {
		c, ok := a.schema.Lookup(n)
		if !ok {
			return nil, fmt.Errorf("column %q is not in the schema record of %s", n, a.o.Table.Name)
		}
		cols = append(cols, sluice.Column{Name: c.Name, Type: c.Type})
	}
	return cols, nil
}

// Lag is how many messages of the stream are not yet in the lake.
func (a *Archiver) Lag(ctx context.Context) (uint64, error) {
	info, err := a.o.Bus.Info(ctx, a.o.Table.Stream)
	if err != nil {
		return 0, err
	}
	c := a.committed.Load()
	if info.LastSeq <= c {
		return 0, nil
	}
	return info.LastSeq - c, nil
}

// Stream is the stream this archiver reads.
func (a *Archiver) Stream() string { return a.o.Table.Stream }
