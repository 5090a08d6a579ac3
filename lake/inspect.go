package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
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
}

// TableInfo is a table of the lake: its committed position and its files.
type TableInfo struct {
	Table     string
	Committed uint64          // last stream sequence committed; 0: no commit record
	Last      []string        // the files of the last commit
	Columns   []sluice.Column // the table's columns as of the last commit
	Files     []FileInfo
}

// Inspect reads a table's commit record and every data file's footer.
func Inspect(ctx context.Context, s Store, table string) (TableInfo, error) {
	ti := TableInfo{Table: table}
	data, err := s.Get(ctx, commitKey(table))
	switch {
	case errors.Is(err, ErrNotExist):
	case err != nil:
		return ti, err
	default:
		var rec commitRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return ti, fmt.Errorf("%s: commit record: %w", table, err)
		}
		ti.Committed, ti.Last, ti.Columns = rec.LastSeq, rec.Files, rec.Columns
	}
	files, err := Files(ctx, s, table)
	if err != nil {
		return ti, err
	}
	for _, f := range files {
		fi := FileInfo{DataFile: f, Partition: strings.TrimPrefix(path.Dir(f.Key), table+"/")}
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
	present := map[string]bool{}
	for _, f := range ti.Files {
		present[f.Key] = true
		switch {
		case f.Err != nil:
			bad(f.Key, "not readable as Parquet: %v", f.Err)
		case f.Rows == 0:
			bad(f.Key, "holds no rows")
		}
		if f.Last > ti.Committed {
			bad(f.Key, "lies beyond the committed position %d: a flush that did not finish; the archiver rewrites it when it next starts", ti.Committed)
		}
	}
	for _, k := range ti.Last {
		if !present[k] {
			bad(k, "named by the last commit but missing")
		}
	}
	// One flush writes one range into each partition it touches; ranges of
	// different flushes must not overlap.
	ranges := map[[2]uint64]bool{}
	for _, f := range ti.Files {
		ranges[[2]uint64{f.First, f.Last}] = true
	}
	sorted := make([][2]uint64, 0, len(ranges))
	for r := range ranges {
		sorted = append(sorted, r)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i][0] < sorted[j][0] })
	for i := 1; i < len(sorted); i++ {
		if prev, r := sorted[i-1], sorted[i]; r[0] <= prev[1] {
			bad("", "sequence ranges %d-%d and %d-%d overlap: rows may be counted twice", prev[0], prev[1], r[0], r[1])
		}
	}
	return out
}
