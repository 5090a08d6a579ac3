package lake

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/sluice-data/sluice"
)

// FileInfo is a data file as Inspect finds it.
type FileInfo struct {
	DataFile
	Partition string // e.g. dt=2026-11-25/hr=10
	Rows      int64
	Bytes     int64
	Err       error // the file could not be read as Parquet
	// Live: readers read this file (LiveFiles). A file that is not live is
	// beyond the committed position, or a compaction replaced it (or has
	// not swapped it in yet).
	Live bool
}

// TableInfo is a table of the lake: its committed position and its files.
type TableInfo struct {
	Table     string
	Committed uint64           // last stream sequence committed; 0: no commit record
	Last      []string         // the files of the last commit
	LastRows  map[string]int64 // rows of each, as the commit recorded them
	// Compactions are the compactions not yet settled (in their grace
	// period, or interrupted).
	Compactions int
	Columns     []sluice.Column // the table's columns as of the last commit
	Files       []FileInfo
}

// Inspect reads a table's commit record and every data file's footer.
func Inspect(ctx context.Context, s Store, table string) (TableInfo, error) {
	ti := TableInfo{Table: table}
	rec, err := readCommit(ctx, s, table)
	if err != nil {
		return ti, err
	}
	ti.Committed, ti.Last, ti.LastRows, ti.Columns = rec.LastSeq, rec.Files, rec.Rows, rec.Columns
	comps, err := readCompactions(ctx, s, table)
	if err != nil {
		return ti, err
	}
	ti.Compactions = len(comps)
	live, err := LiveFiles(ctx, s, table)
	if err != nil {
		return ti, err
	}
	isLive := map[string]bool{}
	for _, f := range live {
		isLive[f.Key] = true
	}
	files, err := Files(ctx, s, table)
	if err != nil {
		return ti, err
	}
	for _, f := range files {
		fi := FileInfo{DataFile: f, Partition: strings.TrimPrefix(path.Dir(f.Key), table+"/"), Live: isLive[f.Key]}
		data, err := s.Get(ctx, f.Key)
		if err != nil {
			return ti, err
		}
		fi.Bytes = int64(len(data))
		pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			fi.Err = err
		} else {
			fi.Rows = pf.NumRows()
		}
		ti.Files = append(ti.Files, fi)
	}
	return ti, nil
}

// Problem is one finding of Verify.
type Problem struct {
	Table, Key, Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Table + ": " + p.Message
	}
	return p.Key + ": " + p.Message
}

// Verify checks every table of the lake: the files the last commit names
// exist, every data file is readable Parquet with rows, no two files hold
// overlapping but different sequence ranges, and no file lies beyond the
// committed position (a flush that did not finish: the archiver rewrites
// it when it next starts).
func Verify(ctx context.Context, s Store) ([]TableInfo, []Problem, error) {
	tables, err := Tables(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	var infos []TableInfo
	var problems []Problem
	for _, table := range tables {
		ti, err := Inspect(ctx, s, table)
		if err != nil {
			return nil, nil, err
		}
		infos = append(infos, ti)
		problems = append(problems, check(ti)...)
	}
	return infos, problems, nil
}

func check(ti TableInfo) []Problem {
	var out []Problem
	bad := func(key, format string, a ...any) {
		out = append(out, Problem{Table: ti.Table, Key: key, Message: fmt.Sprintf(format, a...)})
	}
	if ti.Committed == 0 && len(ti.Files) > 0 {
		bad("", "%d files but no commit record (%s)", len(ti.Files), commitKey(ti.Table))
	}
	present := map[string]FileInfo{}
	for _, f := range ti.Files {
		present[f.Key] = f
		switch {
		case f.Err != nil:
			bad(f.Key, "not readable as Parquet: %v", f.Err)
		case f.Rows == 0:
			bad(f.Key, "holds no rows")
		}
		if !f.Compacted && f.Last > ti.Committed {
			bad(f.Key, "lies beyond the committed position %d: a flush that did not finish; the archiver rewrites it when it next starts", ti.Committed)
		}
	}
	for _, k := range ti.Last {
		f, ok := present[k]
		switch {
		case !ok:
			if !ti.replaced(k) {
				bad(k, "named by the last commit but missing")
			}
		case ti.LastRows != nil && f.Err == nil && f.Rows != ti.LastRows[k]:
			bad(k, "holds %d rows; its commit recorded %d", f.Rows, ti.LastRows[k])
		}
	}
	// One flush writes one range into each partition it touches; ranges of
	// different flushes must not overlap. A compacted file spans the
	// ranges it replaced, so it is checked within its partition only.
	ranges := map[[2]uint64]bool{}
	parts := map[string][][2]uint64{}
	for _, f := range ti.Files {
		r := [2]uint64{f.First, f.Last}
		if f.Live {
			parts[f.Partition] = append(parts[f.Partition], r)
		}
		if !f.Compacted {
			ranges[r] = true
		}
	}
	overlaps := func(rs [][2]uint64, where string) {
		slices.SortFunc(rs, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
		for i := 1; i < len(rs); i++ {
			if prev, r := rs[i-1], rs[i]; r[0] <= prev[1] {
				bad("", "sequence ranges %d-%d and %d-%d overlap%s: rows may be counted twice", prev[0], prev[1], r[0], r[1], where)
			}
		}
	}
	overlaps(slices.Collect(maps.Keys(ranges)), "")
	for _, p := range slices.Sorted(maps.Keys(parts)) {
		overlaps(parts[p], " in "+p)
	}
	return out
}

// replaced tells whether a compaction replaced key (and deleted it).
func (ti TableInfo) replaced(key string) bool {
	part := strings.TrimPrefix(path.Dir(key), ti.Table+"/")
	for _, f := range ti.Files {
		if f.Compacted && f.Live && f.Partition == part {
			if df, ok := parseFile(key); ok && df.First >= f.First && df.Last <= f.Last {
				return true
			}
		}
	}
	return false
}
