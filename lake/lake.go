// Package lake is where data is kept for years: hive-partitioned Parquet
// files, readable by DuckDB, Spark, Trino, Athena and Hive.
//
//	<lake>/<table>/dt=YYYY-MM-DD/hr=HH/<stream>-<firstSeq>-<lastSeq>.parquet
//	<lake>/_sluice/commits/<table>.json      the archiver's committed position
//
// The Archiver copies a stream into a table. Its promise is exactly-once
// files: a file is named by the bus sequence range it holds and appears
// atomically; the committed position moves only after every file of a flush
// is durable; after a crash the archiver rewrites the same range into the same
// names, so the lake never loses or doubles a row.
package lake

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Store holds the lake's objects. Keys are slash-separated paths relative to
// the lake root.
type Store interface {
	// Put stores data under key atomically and durably: readers see the
	// whole object or none, and it survives a crash once Put returns.
	Put(ctx context.Context, key string, data []byte) error
	// Get returns the object; an error wrapping ErrNotExist when absent.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the keys under prefix, in lexical order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes the object; deleting what is absent is not an error.
	Delete(ctx context.Context, key string) error
}

// ErrNotExist reports an object that is not in the store.
var ErrNotExist = errors.New("object does not exist")

// PartitionDir is the hive partition of table for event time t (UTC).
func PartitionDir(table string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%s/dt=%s/hr=%02d", table, t.Format("2006-01-02"), t.Hour())
}

// FileName names the file holding stream sequences first..last.
func FileName(stream string, first, last uint64) string {
	return fmt.Sprintf("%s-%d-%d.parquet", stream, first, last)
}

var fileRe = regexp.MustCompile(`^([A-Za-z0-9_]+)-(\d+)-(\d+)(\.compacted)?\.parquet$`)

// DataFile is a Parquet file of a table, with the range it holds.
type DataFile struct {
	Key         string
	Stream      string
	First, Last uint64
	// Compacted files hold the rows of their partition from every file
	// they replaced; First..Last spans the ranges of those files (other
	// partitions hold files within it).
	Compacted bool
}

// Files lists the data files of table.
func Files(ctx context.Context, s Store, table string) ([]DataFile, error) {
	keys, err := s.List(ctx, table+"/")
	if err != nil {
		return nil, err
	}
	var out []DataFile
	for _, k := range keys {
		if f, ok := parseFile(k); ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// parseFile reads a data file's stream and range from its key.
func parseFile(key string) (DataFile, bool) {
	m := fileRe.FindStringSubmatch(path.Base(key))
	if m == nil {
		return DataFile{}, false
	}
	first, _ := strconv.ParseUint(m[2], 10, 64)
	last, _ := strconv.ParseUint(m[3], 10, 64)
	return DataFile{Key: key, Stream: m[1], First: first, Last: last, Compacted: m[4] != ""}, true
}

// Tables lists the tables that have files in the lake.
func Tables(ctx context.Context, s Store) ([]string, error) {
	keys, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		table, _, ok := strings.Cut(k, "/")
		if !ok || strings.HasPrefix(table, "_") || seen[table] || !strings.HasSuffix(k, ".parquet") {
			continue
		}
		seen[table] = true
		out = append(out, table)
	}
	return out, nil
}

func commitKey(table string) string { return "_sluice/commits/" + table + ".json" }

// Committed is the last stream sequence of table the lake holds for good:
// its commit record's position (0 before the first commit). A writer that
// published rows up to sequence n knows they are all in the lake once
// Committed reaches n.
func Committed(ctx context.Context, s Store, table string) (uint64, error) {
	rec, err := readCommit(ctx, s, table)
	return rec.LastSeq, err
}
