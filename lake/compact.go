package lake

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Compaction merges the small files of a closed partition into large files
// sorted by the table's time column, and swaps them in atomically for every
// reader that reads the lake's live files (LiveFiles: sluice's warehouse):
//
//  1. a compaction record naming the inputs and the outputs is written
//     (state "started"); the outputs are not live yet;
//  2. the outputs are written, named <stream>-<first>-<last>.compacted.parquet
//     by the range of their inputs, and their row count checked against the
//     inputs' footers;
//  3. the record is rewritten with state "swapped": from this one write on,
//     the outputs are live and the inputs are not;
//  4. after a grace period (queries that began before the swap may still be
//     reading the inputs) the inputs are deleted, then the record.
//
// A crash before 3 leaves outputs that are never live, removed by Recover; a
// crash after 3 leaves inputs that are no longer live, deleted by Recover
// once the grace period has passed. Engines that read the lake by glob see
// both inputs and outputs between 2 and 4 (docs/operations.md).

// compaction is the record of one compaction, at
// _sluice/compactions/<table>/<dt>_<hr>-<first>-<last>.json.
type compaction struct {
	Table     string    `json:"table"`
	Partition string    `json:"partition"` // dt=…/hr=…
	Inputs    []string  `json:"inputs"`
	Outputs   []string  `json:"outputs"`
	Rows      int64     `json:"rows"`
	State     string    `json:"state"` // started | swapped
	StartedAt time.Time `json:"started_at"`
	SwappedAt time.Time `json:"swapped_at,omitzero"`
}

const (
	stateStarted = "started"
	stateSwapped = "swapped"
)

func compactionPrefix(table string) string { return "_sluice/compactions/" + table + "/" }

func compactionKey(table, partition string, first, last uint64) string {
	p := strings.NewReplacer("dt=", "", "/hr=", "_").Replace(partition)
	return fmt.Sprintf("%s%s-%d-%d.json", compactionPrefix(table), p, first, last)
}

// CompactedName names the file a compaction writes for the inputs spanning
// stream sequences first..last.
func CompactedName(stream string, first, last uint64) string {
	return fmt.Sprintf("%s-%d-%d.compacted.parquet", stream, first, last)
}

func readCompactions(ctx context.Context, s Store, table string) (map[string]compaction, error) {
	keys, err := s.List(ctx, compactionPrefix(table))
	if err != nil {
		return nil, err
	}
	out := map[string]compaction{}
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		data, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotExist) {
			continue // finished meanwhile
		}
		if err != nil {
			return nil, err
		}
		var c compaction
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("compaction record %s is corrupt: %w", k, err)
		}
		out[k] = c
	}
	return out, nil
}

// readCommit returns a table's commit record (zero when there is none).
func readCommit(ctx context.Context, s Store, table string) (commitRecord, error) {
	var rec commitRecord
	data, err := s.Get(ctx, commitKey(table))
	switch {
	case errors.Is(err, ErrNotExist):
		return rec, nil
	case err != nil:
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("commit record %s is corrupt: %w", commitKey(table), err)
	}
	return rec, nil
}

// LiveFiles lists the files a reader of table should read: committed files
// (a file beyond the committed position belongs to a flush that did not
// finish), minus the inputs of swapped compactions, minus the outputs of
// compactions not yet swapped. Ordered by key.
func LiveFiles(ctx context.Context, s Store, table string) ([]DataFile, error) {
	// The compaction records first: a compaction that swaps and deletes its
	// inputs between the two reads then shows its outputs (listed after)
	// and not its inputs (gone), never both.
	comps, err := readCompactions(ctx, s, table)
	if err != nil {
		return nil, err
	}
	rec, err := readCommit(ctx, s, table)
	if err != nil {
		return nil, err
	}
	files, err := Files(ctx, s, table)
	if err != nil {
		return nil, err
	}
	hidden := map[string]bool{}
	for _, c := range comps {
		keys := c.Outputs
		if c.State == stateSwapped {
			keys = c.Inputs
		}
		for _, k := range keys {
			hidden[k] = true
		}
	}
	out := files[:0]
	for _, f := range files {
		if hidden[f.Key] || (!f.Compacted && f.Last > rec.LastSeq) {
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// MergeFunc merges local Parquet files into one local file, rows sorted by
// orderBy, and returns the rows written. The warehouse provides it (DuckDB).
type MergeFunc func(ctx context.Context, inputs []string, output, orderBy string) (int64, error)

// CompactorOptions configure a Compactor.
type CompactorOptions struct {
	Store  Store
	Tables []Table
	Merge  MergeFunc
	// After is how long after its hour ends a partition counts as closed;
	// default 1h.
	After time.Duration
	// TargetBytes is the size compaction aims for; files are merged in
	// sequence order into groups up to it. Default 256 MiB.
	TargetBytes int64
	// Grace is how long replaced inputs stay (queries that started before
	// the swap may still read them); default 2m.
	Grace time.Duration
	// TempDir holds downloads and outputs while they are merged; default
	// the system's.
	TempDir string
	// OnSwap is called after a swap (the warehouse refreshes its view).
	OnSwap func(table string)
	Logger *slog.Logger
}

// Compactor merges small files of closed partitions.
type Compactor struct {
	o   CompactorOptions
	log *slog.Logger
}

// NewCompactor returns a compactor.
func NewCompactor(o CompactorOptions) *Compactor {
	if o.After == 0 {
		o.After = time.Hour
	}
	if o.TargetBytes <= 0 {
		o.TargetBytes = 256 << 20
	}
	if o.Grace == 0 {
		o.Grace = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Compactor{o: o, log: o.Logger.With("role", "compact")}
}

// Report tells what a compaction pass did.
type Report struct {
	Partitions int // partitions compacted
	Inputs     int // files merged
	Outputs    int // files written
	Rows       int64
	Finished   int // earlier compactions whose inputs were deleted
}

// Recover finishes or undoes the compactions records describe: outputs of
// a compaction that never swapped are deleted; inputs of a swapped one are
// deleted once the grace period has passed. It returns how many records it
// settled.
func (c *Compactor) Recover(ctx context.Context, now time.Time) (int, error) {
	settled := 0
	for _, t := range c.o.Tables {
		comps, err := readCompactions(ctx, c.o.Store, t.Name)
		if err != nil {
			return settled, err
		}
		for _, k := range slices.Sorted(maps.Keys(comps)) {
			rec := comps[k]
			var doomed []string
			switch {
			case rec.State == stateSwapped && now.Sub(rec.SwappedAt) >= c.o.Grace:
				doomed = rec.Inputs
			case rec.State == stateSwapped:
				continue
			default:
				doomed = rec.Outputs
			}
			for _, f := range doomed {
				if err := c.o.Store.Delete(ctx, f); err != nil {
					return settled, err
				}
			}
			if err := c.o.Store.Delete(ctx, k); err != nil {
				return settled, err
			}
			settled++
		}
	}
	return settled, nil
}

// Partitions lists the partitions of a table with more than one live file,
// oldest first, and the live files of each.
func Partitions(ctx context.Context, s Store, table string) ([]string, map[string][]DataFile, error) {
	files, err := LiveFiles(ctx, s, table)
	if err != nil {
		return nil, nil, err
	}
	by := map[string][]DataFile{}
	for _, f := range files {
		p := strings.TrimPrefix(path.Dir(f.Key), table+"/")
		by[p] = append(by[p], f)
	}
	return slices.Sorted(maps.Keys(by)), by, nil
}

// PartitionEnd is when the hour a partition (dt=…/hr=…) holds ends.
func PartitionEnd(partition string) (time.Time, bool) {
	m := partitionRe.FindStringSubmatch(partition)
	if m == nil {
		return time.Time{}, false
	}
	start, err := time.Parse("2006-01-02 15", m[1]+" "+m[2])
	if err != nil {
		return time.Time{}, false
	}
	return start.Add(time.Hour), true
}

// Compact compacts every closed partition of every table that has small
// files, after settling earlier compactions (Recover).
func (c *Compactor) Compact(ctx context.Context, now time.Time) (Report, error) {
	var r Report
	n, err := c.Recover(ctx, now)
	r.Finished = n
	if err != nil {
		return r, err
	}
	for _, t := range c.o.Tables {
		parts, _, err := Partitions(ctx, c.o.Store, t.Name)
		if err != nil {
			return r, err
		}
		for _, p := range parts {
			end, ok := PartitionEnd(p)
			if !ok || now.Sub(end) < c.o.After {
				continue
			}
			pr, err := c.CompactPartition(ctx, t, p)
			r.add(pr)
			if err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

func (r *Report) add(o Report) {
	r.Partitions += o.Partitions
	r.Inputs += o.Inputs
	r.Outputs += o.Outputs
	r.Rows += o.Rows
	r.Finished += o.Finished
}

// CompactPartition merges the live files of one partition (dt=…/hr=…) into
// files of about TargetBytes, whether or not the partition is closed. Files
// are grouped in sequence order; a group of one file is left as it is. A
// partition with a compaction still in its grace period is skipped.
func (c *Compactor) CompactPartition(ctx context.Context, t Table, partition string) (Report, error) {
	var r Report
	comps, err := readCompactions(ctx, c.o.Store, t.Name)
	if err != nil {
		return r, err
	}
	for _, rec := range comps {
		if rec.Partition == partition {
			return r, nil
		}
	}
	_, by, err := Partitions(ctx, c.o.Store, t.Name)
	if err != nil {
		return r, err
	}
	files := by[partition]
	slices.SortFunc(files, func(a, b DataFile) int { return cmp.Compare(a.First, b.First) })
	sizes, err := c.sizes(ctx, files)
	if err != nil {
		return r, err
	}
	var group []DataFile
	var groupBytes int64
	flush := func() error {
		defer func() { group, groupBytes = nil, 0 }()
		if len(group) < 2 {
			return nil
		}
		rows, err := c.merge(ctx, t, partition, group)
		if err != nil {
			return err
		}
		r.Partitions = 1
		r.Inputs += len(group)
		r.Outputs++
		r.Rows += rows
		return nil
	}
	for i, f := range files {
		if len(group) > 0 && groupBytes+sizes[i] > c.o.TargetBytes {
			if err := flush(); err != nil {
				return r, err
			}
		}
		group = append(group, f)
		groupBytes += sizes[i]
	}
	if err := flush(); err != nil {
		return r, err
	}
	return r, nil
}

// sizes are the files' sizes in bytes.
func (c *Compactor) sizes(ctx context.Context, files []DataFile) ([]int64, error) {
	out := make([]int64, len(files))
	d, local := c.o.Store.(*Dir)
	for i, f := range files {
		if local {
			st, err := os.Stat(d.path(f.Key))
			if err != nil {
				return nil, err
			}
			out[i] = st.Size()
			continue
		}
		if sz, ok := c.o.Store.(interface {
			Size(context.Context, string) (int64, error)
		}); ok {
			n, err := sz.Size(ctx, f.Key)
			if err != nil {
				return nil, err
			}
			out[i] = n
			continue
		}
		data, err := c.o.Store.Get(ctx, f.Key)
		if err != nil {
			return nil, err
		}
		out[i] = int64(len(data))
	}
	return out, nil
}

// merge compacts one group of files of a partition into one file.
func (c *Compactor) merge(ctx context.Context, t Table, partition string, group []DataFile) (int64, error) {
	first, last := group[0].First, group[0].Last
	inputs := make([]string, len(group))
	for i, f := range group {
		first, last = min(first, f.First), max(last, f.Last)
		inputs[i] = f.Key
	}
	out := t.Name + "/" + partition + "/" + CompactedName(t.Stream, first, last)
	if slices.Contains(inputs, out) {
		return 0, fmt.Errorf("compact %s: output %s is one of its inputs", partition, out)
	}
	recKey := compactionKey(t.Name, partition, first, last)
	rec := compaction{Table: t.Name, Partition: partition, Inputs: inputs, Outputs: []string{out}, State: stateStarted, StartedAt: time.Now().UTC()}
	if err := c.putRecord(ctx, recKey, rec); err != nil {
		return 0, err
	}
	undo := func(err error) (int64, error) {
		c.o.Store.Delete(context.WithoutCancel(ctx), out)
		c.o.Store.Delete(context.WithoutCancel(ctx), recKey)
		return 0, fmt.Errorf("compact %s/%s: %w", t.Name, partition, err)
	}
	if c.o.TempDir != "" {
		if err := os.MkdirAll(c.o.TempDir, 0o755); err != nil {
			return undo(err)
		}
	}
	tmp, err := os.MkdirTemp(c.o.TempDir, "sluice-compact-")
	if err != nil {
		return undo(err)
	}
	defer os.RemoveAll(tmp)
	paths, err := c.localize(ctx, inputs, tmp)
	if err != nil {
		return undo(err)
	}
	var want int64
	for _, p := range paths {
		n, err := footerRows(p)
		if err != nil {
			return undo(err)
		}
		want += n
	}
	dst := filepath.Join(tmp, "out.parquet")
	got, err := c.o.Merge(ctx, paths, dst, t.PartitionBy)
	if err != nil {
		return undo(err)
	}
	if n, err := footerRows(dst); err != nil || n != want || got != want {
		return undo(fmt.Errorf("merged file holds %d rows (merge said %d), its inputs %d: not swapped (%v)", n, got, want, err))
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		return undo(err)
	}
	if err := c.o.Store.Put(ctx, out, data); err != nil {
		return undo(err)
	}
	rec.State, rec.SwappedAt, rec.Rows = stateSwapped, time.Now().UTC(), want
	if err := c.putRecord(ctx, recKey, rec); err != nil {
		return undo(err)
	}
	c.log.Info("compacted", "table", t.Name, "partition", partition, "inputs", len(inputs), "rows", want, "bytes", len(data), "output", out)
	if c.o.OnSwap != nil {
		c.o.OnSwap(t.Name)
	}
	if c.o.Grace < 0 {
		// No reader to wait for (sluice lake compact on a stopped lake).
		if _, err := c.Recover(ctx, time.Now()); err != nil {
			return want, err
		}
	}
	return want, nil
}

func (c *Compactor) putRecord(ctx context.Context, key string, rec compaction) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return c.o.Store.Put(ctx, key, data)
}

// localize returns local paths of the keys: in place for a directory lake,
// downloaded into tmp otherwise.
func (c *Compactor) localize(ctx context.Context, keys []string, tmp string) ([]string, error) {
	out := make([]string, len(keys))
	if d, ok := c.o.Store.(*Dir); ok {
		for i, k := range keys {
			out[i] = d.path(k)
		}
		return out, nil
	}
	for i, k := range keys {
		data, err := c.o.Store.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		out[i] = filepath.Join(tmp, fmt.Sprintf("in-%06d.parquet", i))
		if err := os.WriteFile(out[i], data, 0o644); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func footerRows(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return pf.NumRows(), nil
}

// CommittedSeq is the last message of table's stream whose rows are in
// committed files (0 when none is).
func CommittedSeq(ctx context.Context, s Store, table string) (uint64, error) {
	rec, err := readCommit(ctx, s, table)
	return rec.LastSeq, err
}
