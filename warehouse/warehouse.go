// Package warehouse is the SQL engine over the lake: an embedded DuckDB file
// owned by the sluice server process, in which every lake table is a view of
// the same name. Besides DuckDB's functions, SQL has sluice_distinct and
// sluice_quantile, which merge rollups' sketches (sketches.go).
//
// Promises: Query runs only read-only statements (SELECT, EXPLAIN) and can
// read only the lake (DuckDB's external access is off, with the lake as the
// one allowed directory); one statement per call; results are bounded in
// rows and time.
package warehouse

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/lake"
)

// Warehouse is an open DuckDB warehouse.
type Warehouse struct {
	db      *sql.DB
	lakeDir string
	store   lake.Store
	cache   *cache // nil: the lake is the local directory lakeDir
	mu      sync.Mutex
	tmu     sync.Mutex        // serialises WriteRows
	views   map[string]string // the file list each view reads
	// stats are each table's statistics (sluice_tables), from the footers
	// in fileStats.
	stats     map[string]TableStats
	fileStats map[string]fileStats
	statsView string
	closed    bool // under mu: Close was called
	// version counts the changes to what queries can read (DataVersion).
	version atomic.Uint64
}

// DataVersion changes whenever what a query can read may have changed: a
// view pointed at other lake files, a table written by a pipeline, a job
// or a rollup. An answer computed while DataVersion was v is still the
// answer while it is v (it goes up after each change is committed), which
// is what caches of query results rely on.
func (w *Warehouse) DataVersion() uint64 { return w.version.Load() }

// changed records a committed change (DataVersion).
func (w *Warehouse) changed() { w.version.Add(1) }

// maxConns bounds concurrent queries (and view refreshes) on the warehouse.
const maxConns = 8

// knownTables are the built-in tables: their views exist from the start and
// list their columns in table order.
var knownTables = lake.BuiltinTables

// Open opens (or creates) the DuckDB file at path over the lake directory.
func Open(ctx context.Context, path, lakeDir string) (*Warehouse, error) {
	store, err := lake.NewDir(lakeDir)
	if err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	return OpenLake(ctx, path, store, "")
}

// OpenLake opens (or creates) the DuckDB file at path over a lake in any
// store. DuckDB reads only local files: a lake that is not a directory is
// read through a cache in cacheDir, which holds a copy of every live file
// (fetched when a view first needs it, removed a while after it stops being
// live).
func OpenLake(ctx context.Context, path string, store lake.Store, cacheDir string) (*Warehouse, error) {
	var absLake string
	var c *cache
	if d, ok := store.(*lake.Dir); ok {
		absLake = d.Root()
	} else {
		if cacheDir == "" {
			return nil, errors.New("warehouse: a lake that is not a directory needs a cache directory")
		}
		var err error
		if absLake, err = filepath.Abs(cacheDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(absLake, 0o755); err != nil {
			return nil, fmt.Errorf("warehouse: lake cache: %w", err)
		}
		c = newCache(store, absLake)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(path), "tmp")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return nil, fmt.Errorf("warehouse %s: %w", path, err)
	}
	// DuckDB parallelises each query over all cores; more concurrent queries
	// than this only compete for memory.
	db.SetMaxOpenConns(maxConns)
	setup := []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET GLOBAL TimeZone = 'UTC'",
		fmt.Sprintf("SET temp_directory = %s", quoteString(tmp)),
		fmt.Sprintf("SET allowed_directories = [%s, %s]", quoteString(absLake+"/"), quoteString(tmp+"/")),
		"SET enable_external_access = false",
	}
	for _, s := range setup {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			if strings.Contains(err.Error(), "lock") {
				return nil, fmt.Errorf("warehouse %s is in use by another process (is `sluice up` running on this data dir?): %w", path, err)
			}
			return nil, fmt.Errorf("warehouse setup %q: %w", s, err)
		}
	}
	if err := registerSketchFunctions(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("warehouse %s: %w", path, err)
	}
	w := &Warehouse{db: db, lakeDir: absLake, store: store, cache: c, views: map[string]string{},
		stats: map[string]TableStats{}, fileStats: map[string]fileStats{}}
	if err := w.RefreshAll(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return w, nil
}

// Close closes the database file.
// A refresh still running (a commit's, off the archiver's goroutine)
// finishes first; later ones do nothing.
func (w *Warehouse) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	return w.db.Close()
}

// RefreshAll (re)creates the view of every built-in table and every table
// found in the lake.
func (w *Warehouse) RefreshAll(ctx context.Context) error {
	tables, err := lake.Tables(ctx, w.store)
	if err != nil {
		return fmt.Errorf("warehouse: list lake tables: %w", err)
	}
	for _, t := range knownTables {
		if err := w.refresh(ctx, t.Name, true); err != nil {
			return err
		}
	}
	w.mu.Lock()
	for t := range w.views {
		tables = append(tables, t) // a table whose files all expired loses its view
	}
	w.mu.Unlock()
	slices.Sort(tables)
	for _, t := range slices.Compact(tables) {
		if err := w.refresh(ctx, t, true); err != nil {
			return err
		}
	}
	return nil
}

// Refresh points the view of table at its live files (lake.LiveFiles). The
// archiver calls it after each commit, the compactor after each swap; a
// view whose files did not change is left alone.
func (w *Warehouse) Refresh(ctx context.Context, table string) error {
	return w.refresh(ctx, table, false)
}

func (w *Warehouse) refresh(ctx context.Context, table string, force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	files, err := lake.LiveFiles(ctx, w.store, table)
	if err != nil {
		return fmt.Errorf("warehouse: files of %s: %w", table, err)
	}
	keys := make([]string, len(files))
	for i, f := range files {
		keys[i] = f.Key
	}
	if err := w.fetch(ctx, table, keys); err != nil {
		return err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = quoteString(w.localPath(f.Key))
	}
	list := "[" + strings.Join(paths, ", ") + "]"
	if !force && w.views[table] == list {
		return nil
	}
	if err := w.updateStats(ctx, table, files); err != nil {
		return err
	}
	var fixed []sluice.Column
	for _, t := range knownTables {
		if t.Name == table {
			fixed = t.Fixed
		}
	}
	var body string
	switch {
	case len(files) > 0:
		src := fmt.Sprintf("read_parquet(%s, hive_partitioning = true, hive_types = {'dt': DATE, 'hr': INTEGER}, union_by_name = true)", list)
		if len(fixed) == 0 {
			body = "SELECT * FROM " + src
		} else {
			names := make([]string, len(fixed))
			for i, c := range fixed {
				names[i] = quoteIdent(c.Name)
			}
			cols := strings.Join(names, ", ")
			body = fmt.Sprintf("SELECT %s, * EXCLUDE (%s) FROM %s", cols, cols, src)
		}
	case len(fixed) > 0:
		// No files yet: an empty view with the table's columns, so queries
		// work (and count 0) from the first second.
		cols := make([]string, len(fixed))
		for i, c := range fixed {
			typ := string(c.Type)
			if c.Type == sluice.TypeJSON {
				typ = "VARCHAR"
			}
			cols[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", typ, quoteIdent(c.Name))
		}
		body = "SELECT " + strings.Join(cols, ", ") + " WHERE false"
	default:
		// A table of no built-in shape whose files are all gone (expired).
		if _, err := w.db.ExecContext(ctx, "DROP VIEW IF EXISTS "+quoteIdent(table)); err != nil {
			return fmt.Errorf("warehouse: drop view %s: %w", table, err)
		}
		w.changed()
		w.views[table] = list
		return nil
	}
	if _, err := w.db.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS %s", quoteIdent(table), body)); err != nil {
		return fmt.Errorf("warehouse: view %s: %w", table, err)
	}
	w.changed()
	w.views[table] = list
	return nil
}

// fetch makes sure the lake files keys are local, for table's view (a
// directory lake: they are). The cache forgets the files the table's view
// no longer reads, after a while.
func (w *Warehouse) fetch(ctx context.Context, table string, keys []string) error {
	if w.cache == nil {
		return nil
	}
	return w.cache.hold(ctx, table, keys)
}

// localPath is where DuckDB reads the lake object key (fetch it first).
func (w *Warehouse) localPath(key string) string {
	return filepath.Join(w.lakeDir, filepath.FromSlash(key))
}

// Column is a result column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is the answer to a query, in the API's JSON shape.
type Result struct {
	Columns   []Column `json:"columns"`
	Rows      [][]any  `json:"rows"`
	Truncated bool     `json:"truncated,omitempty"`
}

// ErrNotReadOnly reports a statement that would change something.
var ErrNotReadOnly = errors.New("only read-only queries (SELECT, WITH … SELECT, EXPLAIN) are allowed")

// QueryError is a problem with the user's SQL (as opposed to the server).
type QueryError struct{ Err error }

func (e *QueryError) Error() string { return e.Err.Error() }
func (e *QueryError) Unwrap() error { return e.Err }

// Query runs one read-only statement and returns at most maxRows rows.
func (w *Warehouse) Query(ctx context.Context, query string, maxRows int) (*Result, error) {
	if strings.TrimSpace(query) == "" {
		return nil, &QueryError{errors.New("empty query")}
	}
	res, err := w.query(ctx, query, maxRows)
	if err != nil && missingFile(err) {
		// A file a view names is gone: deleted by retention or by
		// `sluice lake gc` in another process, or replaced by a compaction
		// whose grace period outlasted this view. The lake is the truth:
		// read it again and retry once.
		if rerr := w.RefreshAll(ctx); rerr != nil {
			return nil, rerr
		}
		res, err = w.query(ctx, query, maxRows)
	}
	return res, err
}

func (w *Warehouse) query(ctx context.Context, query string, maxRows int) (*Result, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := checkReadOnly(ctx, conn, query); err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, &QueryError{err}
	}
	defer rows.Close()
	return collect(rows, maxRows)
}

// missingFile tells whether DuckDB failed because a file is not there.
func missingFile(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "No files found that match the pattern") || strings.Contains(msg, "No such file or directory")
}

// checkReadOnly prepares the statement to learn its type without running it.
func checkReadOnly(ctx context.Context, conn *sql.Conn, query string) error {
	return conn.Raw(func(dc any) error {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return errors.New("warehouse: driver cannot prepare")
		}
		st, err := prep.PrepareContext(ctx, query)
		if err != nil {
			return &QueryError{err}
		}
		defer st.Close()
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			return errors.New("warehouse: not a DuckDB statement")
		}
		typ, err := ds.StatementType()
		if err != nil {
			return &QueryError{err}
		}
		switch typ {
		case duckdb.STATEMENT_TYPE_SELECT, duckdb.STATEMENT_TYPE_EXPLAIN:
			return nil
		}
		return &QueryError{ErrNotReadOnly}
	})
}

func collect(rows *sql.Rows, maxRows int) (*Result, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: make([]Column, len(types)), Rows: [][]any{}}
	for i, t := range types {
		res.Columns[i] = Column{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) >= maxRows {
			res.Truncated = true
			break
		}
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			vals[i] = jsonValue(v)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, &QueryError{err}
	}
	return res, nil
}

// jsonValue turns what the driver returns into something encoding/json
// writes faithfully.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, uint8, uint16, uint32, float32, float64:
		return x
	case uint64:
		if x > 1<<53 {
			return fmt.Sprint(x)
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case *big.Int:
		return x.String()
	case duckdb.Decimal:
		return x.Float64()
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case duckdb.Interval:
		return fmt.Sprintf("%d months %d days %d µs", x.Months, x.Days, x.Micros)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e)
		}
		return out
	case duckdb.OrderedMap:
		return orderedMap(&x)
	case *duckdb.OrderedMap:
		return orderedMap(x)
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonValue(e)
		}
		return out
	default:
		return fmt.Sprint(x)
	}
}

// orderedMap writes a MAP as a JSON object (keys as text).
func orderedMap(m *duckdb.OrderedMap) map[string]any {
	keys, vals := m.Keys(), m.Values()
	out := make(map[string]any, len(keys))
	for i, k := range keys {
		out[fmt.Sprint(k)] = jsonValue(vals[i])
	}
	return out
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
