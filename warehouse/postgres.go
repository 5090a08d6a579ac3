package warehouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the PostgreSQL warehouse (warehouse.url: postgres://…; also
// the road to Redshift). Sync loads each lake table into a table of the same
// name, reading the Parquet files through the DuckDB warehouse; Query runs
// the SQL API's statements there.
//
// Promises: a partition (dt, hr) of a table holds exactly the rows of the
// lake files _sluice_loads records for it, never a mix and never twice: a
// load copies the rows of the files the partition lacks (after deleting its
// rows, when files were replaced or removed) and records the new set, in
// one transaction. Queries run in READ ONLY transactions, one statement
// each, bounded in time and rows.
type Postgres struct {
	pool    *pgxpool.Pool
	timeout time.Duration
}

// PostgresOptions configure OpenPostgres.
type PostgresOptions struct {
	// QueryTimeout bounds each query (its statement_timeout); default 60s.
	// A query's context deadline, when sooner, bounds it instead.
	QueryTimeout time.Duration
	// Setting names the URL in errors (default warehouse.url).
	Setting string
}

// loadsTable records which lake files each loaded partition came from. Its
// name starts with "_", which no lake table's does (lake.Tables skips them).
const loadsTable = "_sluice_loads"

// OpenPostgres connects to the database at url (postgres://… or
// postgresql://…; a search_path parameter picks the schema) and creates the
// bookkeeping table if it is missing.
func OpenPostgres(ctx context.Context, url string, o PostgresOptions) (*Postgres, error) {
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = time.Minute
	}
	if o.Setting == "" {
		o.Setting = "warehouse.url"
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Setting, err)
	}
	// Tables change shape under the loader (ALTER TABLE): cached statement
	// descriptions, COPY's among them, would go stale.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "sluice"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Setting, err)
	}
	where := fmt.Sprintf("PostgreSQL at %s:%d, database %q", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s (%s): %w", where, o.Setting, err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+quoteIdent(loadsTable)+` (
		table_name text NOT NULL,
		dt date NOT NULL,
		hr integer NOT NULL,
		files text[] NOT NULL,
		rows bigint NOT NULL,
		loaded_at timestamptz NOT NULL,
		PRIMARY KEY (table_name, dt, hr))`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("warehouse: %s: create %s: %w", where, loadsTable, err)
	}
	return &Postgres{pool: pool, timeout: o.QueryTimeout}, nil
}

// Close closes the connections.
func (p *Postgres) Close() { p.pool.Close() }

// Query runs one read-only statement (SELECT, WITH, EXPLAIN, VALUES, TABLE)
// in a READ ONLY transaction and returns at most maxRows rows (0: all). Other
// statements are only parsed, for their syntax errors, and refused; the READ
// ONLY transaction refuses what writes behind a SELECT (a data-modifying
// WITH, EXPLAIN ANALYZE DELETE …).
// Values come as the DuckDB warehouse gives them: integral numerics as
// decimal text, other numerics as floats, times as RFC 3339 in UTC, jsonb
// decoded.
func (p *Postgres) Query(ctx context.Context, query string, maxRows int) (*Result, error) {
	kw := firstKeyword(query)
	reads := false
	switch kw {
	case "":
		return nil, &QueryError{errors.New("empty query")}
	case "select", "with", "explain", "values", "table":
		reads = true
	}
	timeout := p.timeout
	if d, ok := ctx.Deadline(); ok {
		// A context that ends sooner cancels the query itself (pgx asks
		// the server to); the statement_timeout is only the backstop.
		timeout = min(timeout, time.Until(d)+time.Second)
	}
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = "+strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)); err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	if !reads {
		// Parsed, not run: a typo is the user's syntax error, anything
		// else is refused.
		if _, err := tx.Conn().PgConn().Prepare(ctx, "", query, nil); err != nil {
			return nil, pgQueryError(ctx, err, timeout)
		}
		return nil, &QueryError{ErrNotReadOnly}
	}
	// The extended protocol takes exactly one statement: "SELECT 1; DROP
	// …" fails to parse rather than running both.
	run := query
	if maxRows > 0 && kw != "explain" {
		// As a cursor, the server makes and sends only the rows the
		// answer keeps, and one more to tell that it was cut.
		if _, err := tx.Conn().PgConn().ExecParams(ctx, "DECLARE sluice_query NO SCROLL CURSOR FOR "+query, nil, nil, nil, nil).Close(); err != nil {
			return nil, pgQueryError(ctx, err, timeout)
		}
		run = "FETCH FORWARD " + strconv.Itoa(maxRows+1) + " FROM sluice_query"
	}
	rows, err := tx.Query(ctx, run, pgx.QueryExecModeDescribeExec)
	if err != nil {
		return nil, pgQueryError(ctx, err, timeout)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	res := &Result{Columns: make([]Column, len(fields)), Rows: [][]any{}}
	types := rows.Conn().TypeMap()
	for i, f := range fields {
		typ := "oid " + strconv.FormatUint(uint64(f.DataTypeOID), 10)
		if t, ok := types.TypeForOID(f.DataTypeOID); ok {
			typ = t.Name
		}
		res.Columns[i] = Column{Name: f.Name, Type: typ}
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) >= maxRows {
			res.Truncated = true
			break
		}
		vals, err := rows.Values()
		if err != nil {
			return nil, pgQueryError(ctx, err, timeout)
		}
		for i, v := range vals {
			vals[i] = pgValue(v)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, pgQueryError(ctx, err, timeout)
	}
	return res, nil
}

// firstKeyword is the statement's first word, lower case, after comments
// and opening parentheses.
func firstKeyword(q string) string {
	for {
		q = strings.TrimLeftFunc(q, unicode.IsSpace)
		switch {
		case strings.HasPrefix(q, "--"):
			_, rest, ok := strings.Cut(q, "\n")
			if !ok {
				return ""
			}
			q = rest
		case strings.HasPrefix(q, "/*"):
			rest, ok := skipBlockComment(q)
			if !ok {
				return ""
			}
			q = rest
		case strings.HasPrefix(q, "("):
			q = q[1:]
		default:
			end := strings.IndexFunc(q, func(r rune) bool { return !unicode.IsLetter(r) })
			if end < 0 {
				end = len(q)
			}
			return strings.ToLower(q[:end])
		}
	}
}

// skipBlockComment returns what follows the block comment q starts with;
// PostgreSQL's block comments nest.
func skipBlockComment(q string) (string, bool) {
	depth := 0
	for i := 0; i < len(q); {
		switch {
		case strings.HasPrefix(q[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(q[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return q[i:], true
			}
		default:
			i++
		}
	}
	return "", false
}

// pgQueryError sorts a failed query's error: the statement's own problems
// are QueryErrors, the server's or the connection's are not.
func pgQueryError(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("warehouse: %w", err)
	}
	switch {
	case pe.Code == "25006", // read_only_sql_transaction
		pe.Code == "0A000" && strings.Contains(pe.Message, "data-modifying"): // a cursor over WITH … DELETE
		return &QueryError{fmt.Errorf("%w: %s", ErrNotReadOnly, pe.Message)}
	case pe.Code == "57014": // query_canceled, by statement_timeout
		return &QueryError{fmt.Errorf("query took longer than %s and was cancelled", timeout.Round(time.Millisecond))}
	case pe.Code == "42601" && strings.Contains(pe.Message, "multiple commands"):
		return &QueryError{errors.New("one statement per query: remove the ';' and what follows")}
	}
	for _, class := range []string{"08", "53", "57", "58", "XX"} {
		// connection, resources, operator intervention, system, internal
		if strings.HasPrefix(pe.Code, class) {
			return fmt.Errorf("warehouse: %w", err)
		}
	}
	return &QueryError{err}
}

// pgValue turns what pgx decodes into what the DuckDB warehouse would
// answer for the same value.
func pgValue(v any) any {
	switch x := v.(type) {
	case pgtype.Numeric:
		return numericValue(x)
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case netip.Prefix:
		return x.String()
	case pgtype.Interval:
		return fmt.Sprintf("%d months %d days %d µs", x.Months, x.Days, x.Microseconds)
	case pgtype.Time:
		return time.UnixMicro(x.Microseconds).UTC().Format("15:04:05.999999")
	case pgtype.InfinityModifier:
		return x.String()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pgValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = pgValue(e)
		}
		return out
	default:
		return jsonValue(v)
	}
}

// numericValue answers like DuckDB: an integral numeric (sum of bigints,
// DuckDB's HUGEINT) as decimal text, any other as a float (DuckDB's
// DECIMAL and DOUBLE).
func numericValue(n pgtype.Numeric) any {
	switch {
	case !n.Valid:
		return nil
	case n.NaN:
		return "NaN"
	case n.InfinityModifier == pgtype.Infinity:
		return "Infinity"
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return "-Infinity"
	case n.Exp >= 0:
		scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.Exp)), nil)
		return new(big.Int).Mul(n.Int, scale).String()
	}
	f, err := n.Float64Value()
	if err != nil {
		return n.Int.String() + "e" + strconv.Itoa(int(n.Exp))
	}
	return f.Float64
}

// SyncStats says what a Sync did.
type SyncStats struct {
	Loaded  int   // partitions loaded: whole, or the rows of their new files
	Deleted int   // partitions deleted because their files left the lake
	Rows    int64 // rows copied
}

// partition is an hour of a table in the lake: dt=YYYY-MM-DD/hr=HH.
type partition struct {
	dt string
	hr int
}

func (p partition) String() string { return fmt.Sprintf("dt=%s/hr=%02d", p.dt, p.hr) }

// partitionOf reads the partition from a data file's key.
func partitionOf(table, key string) (partition, bool) {
	parts := strings.Split(strings.TrimPrefix(key, table+"/"), "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "dt=") || !strings.HasPrefix(parts[1], "hr=") {
		return partition{}, false
	}
	dt := strings.TrimPrefix(parts[0], "dt=")
	if _, err := time.Parse("2006-01-02", dt); err != nil {
		return partition{}, false
	}
	hr, err := strconv.Atoi(strings.TrimPrefix(parts[1], "hr="))
	if err != nil || hr < 0 || hr > 23 {
		return partition{}, false
	}
	return partition{dt, hr}, true
}

// Sync makes table in PostgreSQL hold what the lake holds: it creates the
// table (columns as the DuckDB view has them, in its order) or adds new
// columns and widens BIGINT ones that became DOUBLE, reloads every partition
// whose files changed since its last load, and deletes the partitions whose
// files are gone (retention). Reading goes through lake, the DuckDB
// warehouse. Calls for one table may overlap (also from other processes):
// each partition's load holds a lock on the table's loads.
func (p *Postgres) Sync(ctx context.Context, from *Warehouse, table string) (SyncStats, error) {
	var st SyncStats
	files, err := from.LiveFiles(ctx, table)
	if err != nil {
		return st, fmt.Errorf("sync %s: list lake files: %w", table, err)
	}
	want := map[partition][]string{}
	for _, f := range files {
		if pt, ok := partitionOf(table, f.Key); ok {
			want[pt] = append(want[pt], f.Key)
		}
	}
	name := pgName(table)
	var exists bool
	if err := p.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quoteIdent(name)).Scan(&exists); err != nil {
		return st, fmt.Errorf("sync %s: %w", table, err)
	}
	// Without its table (never made, or dropped by hand) nothing of the
	// table is loaded, whatever _sluice_loads says; creating it clears that.
	loaded := map[partition][]string{}
	if exists {
		if loaded, err = p.loads(ctx, table); err != nil {
			return st, fmt.Errorf("sync %s: %w", table, err)
		}
	}
	var changed, gone []partition
	for pt, keys := range want {
		slices.Sort(keys)
		if !slices.Equal(keys, loaded[pt]) {
			changed = append(changed, pt)
		}
	}
	for pt := range loaded {
		if _, ok := want[pt]; !ok {
			gone = append(gone, pt)
		}
	}
	if exists && len(changed) == 0 && len(gone) == 0 {
		return st, nil
	}
	// The view's columns, when it has any: a built-in table exists (empty)
	// before its first file, and the table is created in the view's order.
	if cols, err := from.TableColumns(ctx, table); err == nil {
		if err := p.ensureTable(ctx, table, name, pgColumns(cols)); err != nil {
			return st, fmt.Errorf("sync %s: %w", table, err)
		}
	} else if len(want) > 0 {
		return st, fmt.Errorf("sync %s: columns of its view: %w", table, err)
	}
	slices.SortFunc(changed, comparePartitions)
	for _, pt := range changed {
		n, err := p.loadPartition(ctx, from, table, name, pt, want[pt])
		if err != nil {
			return st, fmt.Errorf("sync %s %s: %w", table, pt, err)
		}
		st.Loaded++
		st.Rows += n
	}
	slices.SortFunc(gone, comparePartitions)
	for _, pt := range gone {
		if err := p.deletePartition(ctx, table, name, pt); err != nil {
			return st, fmt.Errorf("sync %s: delete %s: %w", table, pt, err)
		}
		st.Deleted++
	}
	return st, nil
}

func comparePartitions(a, b partition) int {
	if c := strings.Compare(a.dt, b.dt); c != 0 {
		return c
	}
	return a.hr - b.hr
}

// LoadedTables lists the lake tables that have partitions loaded.
func (p *Postgres) LoadedTables(ctx context.Context) ([]string, error) {
	rows, err := p.pool.Query(ctx, "SELECT DISTINCT table_name FROM "+quoteIdent(loadsTable)+" ORDER BY 1")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// loads returns the file set each loaded partition of table came from.
func (p *Postgres) loads(ctx context.Context, table string) (map[partition][]string, error) {
	rows, err := p.pool.Query(ctx, "SELECT to_char(dt, 'YYYY-MM-DD'), hr, files FROM "+quoteIdent(loadsTable)+" WHERE table_name = $1", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[partition][]string{}
	for rows.Next() {
		var pt partition
		var files []string
		if err := rows.Scan(&pt.dt, &pt.hr, &files); err != nil {
			return nil, err
		}
		out[pt] = files
	}
	return out, rows.Err()
}

// lock serialises the loads of one table until tx ends.
func lock(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "sluice load "+name)
	return err
}

// pgColumn is a column of a PostgreSQL table: its name and its type as
// format_type spells it.
type pgColumn struct{ name, typ string }

// pgTypes maps the lake's DuckDB types to PostgreSQL's. JSON becomes jsonb
// (operators ->, ->> work as on DuckDB's JSON); types not listed become
// text.
var pgTypes = map[string]string{
	"VARCHAR":                  "text",
	"BIGINT":                   "bigint",
	"INTEGER":                  "integer",
	"DOUBLE":                   "double precision",
	"BOOLEAN":                  "boolean",
	"TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
	"TIMESTAMP":                "timestamp without time zone",
	"DATE":                     "date",
	"JSON":                     "jsonb",
}

func pgType(duck string) string {
	if t, ok := pgTypes[duck]; ok {
		return t
	}
	return "text"
}

func pgColumns(cols []Column) []pgColumn {
	out := make([]pgColumn, len(cols))
	for i, c := range cols {
		out[i] = pgColumn{pgName(c.Name), pgType(c.Type)}
	}
	return out
}

// maxIdent is PostgreSQL's identifier length (NAMEDATALEN-1): longer names
// are cut, silently.
const maxIdent = 63

// pgName fits a lake name into a PostgreSQL identifier: a name longer than
// 63 bytes keeps its first 54 and gets 8 hex digits of its hash, so that two
// long names that start alike stay apart. PostgreSQL names cannot hold
// NUL.
func pgName(s string) string {
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) <= maxIdent {
		return s
	}
	cut := maxIdent - 9
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	sum := sha256.Sum256([]byte(s))
	return s[:cut] + "_" + hex.EncodeToString(sum[:4])
}

// columnsOf lists the columns of table name; nil when there is no table.
func columnsOf(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, name string) ([]pgColumn, error) {
	rows, err := q.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, quoteIdent(name))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pgColumn
	for rows.Next() {
		var c pgColumn
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ensureTable creates the table of lake table table, name in PostgreSQL,
// with cols (and the partition columns dt and hr, indexed) and no loads
// recorded, or brings an existing one up to cols.
func (p *Postgres) ensureTable(ctx context.Context, table, name string, cols []pgColumn) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := lock(ctx, tx, name); err != nil {
		return err
	}
	have, err := columnsOf(ctx, tx, name)
	if err != nil {
		return err
	}
	if have == nil {
		for _, c := range []pgColumn{{"dt", "date"}, {"hr", "integer"}} {
			if !slices.ContainsFunc(cols, func(x pgColumn) bool { return x.name == c.name }) {
				cols = append(cols, c)
			}
		}
		defs := make([]string, len(cols))
		for i, c := range cols {
			defs[i] = quoteIdent(c.name) + " " + c.typ
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", quoteIdent(name), strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("create table: %w", err)
		}
		// Loads find a partition's rows by dt and hr.
		if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE INDEX ON %s (dt, hr)", quoteIdent(name))); err != nil {
			return fmt.Errorf("create index: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+quoteIdent(loadsTable)+" WHERE table_name = $1", table); err != nil {
			return err
		}
	} else if _, err := adjust(ctx, tx, name, have, cols); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// adjust adds the columns of want that table name lacks and widens those
// whose type widened: integer -> bigint -> double precision, and anything
// -> text (enrich.widen_to_string; PostgreSQL's cast turns the old values
// into text). It returns the table's column types by name. A column the
// lake has narrower than the table (a file typed BIGINT where the table has
// double precision or text) keeps its type; any other disagreement is an
// error.
func adjust(ctx context.Context, tx pgx.Tx, name string, have, want []pgColumn) (map[string]string, error) {
	types := map[string]string{}
	for _, c := range have {
		types[c.name] = c.typ
	}
	rank := map[string]int{"integer": 1, "bigint": 2, "double precision": 3}
	for _, c := range want {
		cur, ok := types[c.name]
		var alter string
		switch {
		case !ok:
			alter = fmt.Sprintf("ADD COLUMN %s %s", quoteIdent(c.name), c.typ)
		case cur == c.typ, cur == "text":
			continue
		case c.typ == "text", rank[cur] > 0 && rank[c.typ] > rank[cur]:
			alter = fmt.Sprintf("ALTER COLUMN %[1]s TYPE %[2]s USING %[1]s::%[2]s", quoteIdent(c.name), c.typ)
		case rank[c.typ] > 0 && rank[cur] > rank[c.typ]:
			continue
		default:
			return nil, fmt.Errorf("column %s is %s in PostgreSQL but %s in the lake", quoteIdent(c.name), cur, c.typ)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s %s", quoteIdent(name), alter)); err != nil {
			return nil, fmt.Errorf("alter table: %w", err)
		}
		types[c.name] = c.typ
	}
	return types, nil
}

// errStopRead ends a read of lake files early.
var errStopRead = errors.New("stop reading")

// loadPartition makes partition pt of table (name in PostgreSQL) hold the
// rows of the files keys, in one transaction, and returns how many rows it
// copied. When the partition was loaded from some of keys before (the
// archiver added files), only the new files' rows are copied; otherwise
// (first load, or files replaced by compaction or rewritten) its rows are
// deleted and all are copied.
func (p *Postgres) loadPartition(ctx context.Context, from *Warehouse, table, name string, pt partition, keys []string) (int64, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := lock(ctx, tx, name); err != nil {
		return 0, err
	}
	var current []string
	var rows int64
	err = tx.QueryRow(ctx, "SELECT files, rows FROM "+quoteIdent(loadsTable)+" WHERE table_name = $1 AND dt = $2::date AND hr = $3",
		table, pt.dt, pt.hr).Scan(&current, &rows)
	switch {
	case err == nil && slices.Equal(current, keys):
		return 0, nil // loaded meanwhile by another Sync
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return 0, err
	}
	read := keys
	appending := len(current) > 0 && !slices.ContainsFunc(current, func(k string) bool { return !slices.Contains(keys, k) })
	if appending {
		read = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return slices.Contains(current, k) })
	} else {
		rows = 0
	}
	cols, err := from.FileColumns(ctx, read)
	if err != nil {
		return 0, err
	}
	have, err := columnsOf(ctx, tx, name)
	if err != nil {
		return 0, err
	}
	if have == nil {
		return 0, fmt.Errorf("table %s is missing", quoteIdent(name))
	}
	types, err := adjust(ctx, tx, name, have, pgColumns(cols))
	if err != nil {
		return 0, err
	}
	if !appending {
		if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE dt = $1::date AND hr = $2", quoteIdent(name)), pt.dt, pt.hr); err != nil {
			return 0, fmt.Errorf("delete old rows: %w", err)
		}
	}
	names := make([]string, len(cols))
	asText := map[string]bool{}
	src := &copySource{}
	for i, c := range cols {
		names[i] = pgName(c.Name)
		typ := types[names[i]]
		asText[c.Name] = typ == "text"
		src.conv = append(src.conv, converter(typ))
	}
	next, stop := iter.Pull(func(yield func([]any) bool) {
		src.err = from.ReadFiles(ctx, read, asText, func(row []any) error {
			if !yield(row) {
				return errStopRead
			}
			return nil
		})
		if errors.Is(src.err, errStopRead) {
			src.err = nil
		}
	})
	defer stop()
	src.next = next
	n, err := tx.CopyFrom(ctx, pgx.Identifier{name}, names, src)
	if err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+quoteIdent(loadsTable)+` (table_name, dt, hr, files, rows, loaded_at)
		VALUES ($1, $2::date, $3, $4, $5, now())
		ON CONFLICT (table_name, dt, hr) DO UPDATE SET files = EXCLUDED.files, rows = EXCLUDED.rows, loaded_at = EXCLUDED.loaded_at`,
		table, pt.dt, pt.hr, keys, rows+n); err != nil {
		return 0, fmt.Errorf("record load: %w", err)
	}
	return n, tx.Commit(ctx)
}

// deletePartition deletes the rows of partition pt and its record.
func (p *Postgres) deletePartition(ctx context.Context, table, name string, pt partition) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := lock(ctx, tx, name); err != nil {
		return err
	}
	have, err := columnsOf(ctx, tx, name)
	if err != nil {
		return err
	}
	if have != nil {
		if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE dt = $1::date AND hr = $2", quoteIdent(name)), pt.dt, pt.hr); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+quoteIdent(loadsTable)+" WHERE table_name = $1 AND dt = $2::date AND hr = $3", table, pt.dt, pt.hr); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// copySource feeds CopyFrom from a pulled read of lake files.
type copySource struct {
	next func() ([]any, bool)
	row  []any
	conv []func(any) any
	err  error // the read's, once next reports the end
}

func (s *copySource) Next() bool {
	row, ok := s.next()
	if !ok {
		return false
	}
	for i, f := range s.conv {
		if f != nil && row[i] != nil {
			row[i] = f(row[i])
		}
	}
	s.row = row
	return true
}

func (s *copySource) Values() ([]any, error) { return s.row, nil }

func (s *copySource) Err() error { return s.err }

// converter turns a value read from the lake into one PostgreSQL's column
// type takes: PostgreSQL text cannot hold NUL (it becomes U+FFFD), nor can
// jsonb hold \u0000; narrower numbers widen.
func converter(typ string) func(any) any {
	switch typ {
	case "text":
		return func(v any) any {
			if s, ok := v.(string); ok && strings.IndexByte(s, 0) >= 0 {
				return strings.ReplaceAll(s, "\x00", "\uFFFD")
			}
			return v
		}
	case "jsonb":
		return func(v any) any {
			if s, ok := v.(string); ok {
				return pgJSON(s)
			}
			return v
		}
	case "double precision":
		return func(v any) any {
			switch x := v.(type) {
			case int64:
				return float64(x)
			case int32:
				return float64(x)
			}
			return v
		}
	case "bigint":
		return func(v any) any {
			if x, ok := v.(int32); ok {
				return int64(x)
			}
			return v
		}
	}
	return nil
}

// pgJSON rewrites JSON text that jsonb would refuse for its \u0000.
func pgJSON(s string) string {
	if !strings.Contains(s, `\u0000`) {
		return s
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return s
	}
	b, err := json.Marshal(withoutNUL(v))
	if err != nil {
		return s
	}
	return string(b)
}

func withoutNUL(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\x00", "\uFFFD")
	case []any:
		for i, e := range x {
			x[i] = withoutNUL(e)
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[strings.ReplaceAll(k, "\x00", "\uFFFD")] = withoutNUL(e)
		}
		return out
	}
	return v
}
