package warehouse

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/internal/s3test"
	"github.com/sluice-data/sluice/lake"
)

// testLake is a lake directory whose files a private DuckDB writes, the
// DuckDB warehouse over it, and PostgreSQL in a schema of the test's own.
type testLake struct {
	t    *testing.T
	dir  string
	duck *sql.DB
	w    *Warehouse
	pg   *Postgres
	url  string
}

func newTestLake(t *testing.T, o PostgresOptions) *testLake {
	t.Helper()
	url := pgtest.URL(t)
	l := newDuckLake(t)
	pg, err := OpenPostgres(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	l.pg, l.url = pg, url
	return l
}

// newDuckLake is a testLake without PostgreSQL.
func newDuckLake(t *testing.T) *testLake {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(context.Background(), filepath.Join(dir, "wh.duckdb"), filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { duck.Close() })
	return &testLake{t: t, dir: filepath.Join(dir, "lake"), duck: duck, w: w}
}

// write puts the rows of query into the lake file
// <table>/dt=<dt>/hr=<hr>/<name>, commits it (the commit record covers
// every file) and refreshes the table's view.
func (l *testLake) write(table, dt string, hr int, name, query string) {
	l.t.Helper()
	dir := filepath.Join(l.dir, table, "dt="+dt, fmt.Sprintf("hr=%02d", hr))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.duck.Exec(fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", query, quoteString(filepath.Join(dir, name)))); err != nil {
		l.t.Fatalf("write %s: %v", name, err)
	}
	l.commit(table)
}

func (l *testLake) commit(table string) {
	l.t.Helper()
	rec, _ := json.Marshal(map[string]any{"table": table, "stream": "s", "last_seq": 1 << 40})
	if err := os.MkdirAll(filepath.Join(l.dir, "_sluice", "commits"), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "_sluice", "commits", table+".json"), rec, 0o644); err != nil {
		l.t.Fatal(err)
	}
	if err := l.w.Refresh(context.Background(), table); err != nil {
		l.t.Fatal(err)
	}
}

func (l *testLake) sync(table string) SyncStats {
	l.t.Helper()
	st, err := l.pg.Sync(context.Background(), l.w, table)
	if err != nil {
		l.t.Fatalf("sync %s: %v", table, err)
	}
	return st
}

// same runs q on both engines and fails unless the rows are equal.
func (l *testLake) same(q string) [][]any {
	l.t.Helper()
	ctx := context.Background()
	duck, err := l.w.Query(ctx, q, 0)
	if err != nil {
		l.t.Fatalf("DuckDB: %s: %v", q, err)
	}
	pg, err := l.pg.Query(ctx, q, 0)
	if err != nil {
		l.t.Fatalf("PostgreSQL: %s: %v", q, err)
	}
	d, _ := json.Marshal(duck.Rows)
	p, _ := json.Marshal(pg.Rows)
	if string(d) != string(p) {
		l.t.Errorf("%s\n DuckDB     %s\n PostgreSQL %s", q, d, p)
	}
	return pg.Rows
}

// pgColumnTypes lists table's columns in PostgreSQL as "name type".
func (l *testLake) pgColumnTypes(table string) []string {
	l.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, l.url)
	if err != nil {
		l.t.Fatal(err)
	}
	defer conn.Close(ctx)
	cols, err := columnsOf(ctx, conn, table)
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, c := range cols {
		out = append(out, c.name+" "+c.typ)
	}
	return out
}

func TestPostgresLoadsEveryLakeType(t *testing.T) {
	l := newTestLake(t, PostgresOptions{})
	l.write("things", "2026-11-25", 9, "s-1-2.parquet", `SELECT * FROM (VALUES
		(1::BIGINT, 'a'::VARCHAR, 1.5::DOUBLE, true, TIMESTAMP '2026-11-25 09:01:02.123456', TIMESTAMPTZ '2026-11-25 09:01:02+00',
		 DATE '2026-11-01', 7::INTEGER, '{"k": [1, 2], "s": "x"}'::JSON, [1, 2], 2.50::DECIMAL(5,2), 'nul'||chr(0)||'in'),
		(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL))
		AS t(id, s, d, b, ts, tstz, day, i, j, list, dec, nul)`)
	if st := l.sync("things"); st.Loaded != 1 || st.Rows != 2 {
		t.Fatalf("first sync: %+v", st)
	}
	want := []string{
		"id bigint", "s text", "d double precision", "b boolean", "ts timestamp without time zone",
		"tstz timestamp with time zone", "day date", "i integer", "j jsonb", "list text", "dec text", "nul text",
		"dt date", "hr integer",
	}
	if got := l.pgColumnTypes("things"); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("columns in PostgreSQL:\n got %v\nwant %v", got, want)
	}
	// The types both engines have answer alike, JSON decoded on both.
	rows := l.same("SELECT id, s, d, b, ts, tstz, day, i, j, j->'k'->>1 AS k1, dt, hr FROM things ORDER BY id")
	if b, _ := json.Marshal(rows[0]); string(b) != `[1,"a",1.5,true,"2026-11-25T09:01:02.123456Z","2026-11-25T09:01:02Z","2026-11-01T00:00:00Z",7,{"k":[1,2],"s":"x"},"2","2026-11-25T00:00:00Z",9]` {
		t.Errorf("row 1: %s", b)
	}
	// The others are their DuckDB text; PostgreSQL text holds no NUL.
	res, err := l.pg.Query(context.Background(), "SELECT list, dec, nul FROM things WHERE id = 1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Rows); got != "[[[1, 2] 2.50 nul\uFFFDin]]" {
		t.Errorf("text columns: %s", got)
	}
	// Aggregates answer alike: a sum of bigints is decimal text on both.
	l.same("SELECT count(*), sum(id), avg(d), count(j), min(ts), max(day) FROM things")
}

func TestPostgresSyncLoadsWhatChanged(t *testing.T) {
	l := newTestLake(t, PostgresOptions{})
	ctx := context.Background()
	l.write("ev", "2026-11-25", 9, "s-1-3.parquet", `SELECT * FROM (VALUES ('a', 10::BIGINT), ('b', 20), ('c', 30)) AS t(id, price)`)
	l.write("ev", "2026-11-25", 10, "s-4-5.parquet", `SELECT * FROM (VALUES ('d', 1::BIGINT), ('e', 2)) AS t(id, price)`)
	if st := l.sync("ev"); st != (SyncStats{Loaded: 2, Rows: 5}) {
		t.Fatalf("first sync: %+v", st)
	}
	// Nothing changed: nothing is done, twice.
	for range 2 {
		if st := l.sync("ev"); st != (SyncStats{}) {
			t.Fatalf("sync without changes: %+v", st)
		}
	}
	q := "SELECT hr, count(*), sum(price) FROM ev GROUP BY hr ORDER BY hr"
	if got := fmt.Sprint(l.same(q)); got != "[[9 3 60] [10 2 3]]" {
		t.Errorf("after the first sync: %s", got)
	}

	// A new file in hour 10 with a price that widens to DOUBLE and a new
	// column: only its row is copied; the column is widened, and added.
	l.write("ev", "2026-11-25", 10, "s-6-6.parquet", `SELECT 'f' AS id, 2.5::DOUBLE AS price, 'XMAS' AS coupon`)
	if st := l.sync("ev"); st != (SyncStats{Loaded: 1, Rows: 1}) {
		t.Fatalf("sync after a new file: %+v", st)
	}
	if got := fmt.Sprint(l.same(q)); got != "[[9 3 60] [10 3 5.5]]" {
		t.Errorf("after the new file: %s", got)
	}
	l.same("SELECT id, price, coupon FROM ev ORDER BY id")
	if got := strings.Join(l.pgColumnTypes("ev"), ", "); got != "id text, price double precision, dt date, hr integer, coupon text" {
		t.Errorf("columns after widening: %s", got)
	}
	// Loads are recorded per partition, with their files.
	res, err := l.pg.Query(ctx, "SELECT hr, files, rows FROM _sluice_loads WHERE table_name = 'ev' ORDER BY hr", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Rows); got != "[[9 [ev/dt=2026-11-25/hr=09/s-1-3.parquet] 3] [10 [ev/dt=2026-11-25/hr=10/s-4-5.parquet ev/dt=2026-11-25/hr=10/s-6-6.parquet] 3]]" {
		t.Errorf("_sluice_loads: %s", got)
	}

	// Compaction replaces hour 10's files by one with the same rows: the
	// hour is reloaded whole, its rows once.
	for _, f := range []string{"s-4-5.parquet", "s-6-6.parquet"} {
		if err := os.Remove(filepath.Join(l.dir, "ev", "dt=2026-11-25", "hr=10", f)); err != nil {
			t.Fatal(err)
		}
	}
	l.write("ev", "2026-11-25", 10, "s-4-6.compacted.parquet",
		`SELECT * FROM (VALUES ('d', 1::DOUBLE, NULL::VARCHAR), ('e', 2, NULL), ('f', 2.5, 'XMAS')) AS t(id, price, coupon)`)
	if st := l.sync("ev"); st != (SyncStats{Loaded: 1, Rows: 3}) {
		t.Fatalf("sync after compaction: %+v", st)
	}
	if got := fmt.Sprint(l.same(q)); got != "[[9 3 60] [10 3 5.5]]" {
		t.Errorf("after compaction: %s", got)
	}

	// A partition that leaves the lake (retention) leaves PostgreSQL.
	if err := os.RemoveAll(filepath.Join(l.dir, "ev", "dt=2026-11-25", "hr=09")); err != nil {
		t.Fatal(err)
	}
	l.commit("ev")
	if st := l.sync("ev"); st != (SyncStats{Deleted: 1}) {
		t.Fatalf("sync after retention: %+v", st)
	}
	if got := fmt.Sprint(l.same(q)); got != "[[10 3 5.5]]" {
		t.Errorf("after retention: %s", got)
	}
	if tables, err := l.pg.LoadedTables(ctx); err != nil || fmt.Sprint(tables) != "[ev]" {
		t.Errorf("loaded tables: %v %v", tables, err)
	}

	// A table dropped by hand is loaded again, whole.
	conn, err := pgx.Connect(ctx, l.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP TABLE ev"); err != nil {
		t.Fatal(err)
	}
	if st := l.sync("ev"); st != (SyncStats{Loaded: 1, Rows: 3}) {
		t.Fatalf("sync after DROP TABLE: %+v", st)
	}
	if got := fmt.Sprint(l.same(q)); got != "[[10 3 5.5]]" {
		t.Errorf("after DROP TABLE: %s", got)
	}
}

// enrich.widen_to_string: a column that gets a string where it had numbers
// becomes text in both engines, the old values too.
func TestPostgresColumnWidensToText(t *testing.T) {
	l := newTestLake(t, PostgresOptions{})
	l.write("w", "2026-11-25", 9, "s-1-2.parquet", `SELECT * FROM (VALUES ('a', 1::BIGINT), ('b', 2)) AS t(id, n)`)
	l.sync("w")
	l.write("w", "2026-11-25", 9, "s-3-3.parquet", `SELECT 'c' AS id, 'three' AS n`)
	l.write("w", "2026-11-25", 10, "s-4-4.parquet", `SELECT 'd' AS id, 'four' AS n`)
	if st := l.sync("w"); st != (SyncStats{Loaded: 2, Rows: 2}) {
		t.Fatalf("sync: %+v", st)
	}
	if got := fmt.Sprint(l.same("SELECT id, n, hr FROM w ORDER BY id")); got != "[[a 1 9] [b 2 9] [c three 9] [d four 10]]" {
		t.Errorf("rows: %s", got)
	}
	if got := strings.Join(l.pgColumnTypes("w"), ", "); got != "id text, n text, dt date, hr integer" {
		t.Errorf("columns: %s", got)
	}
}

// Two loaders of one table at once (two processes, or a Sync that overlaps
// another) load each partition once.
func TestPostgresConcurrentSyncsDoNotDoubleRows(t *testing.T) {
	l := newTestLake(t, PostgresOptions{})
	for hr := range 4 {
		l.write("ev", "2026-11-25", hr, fmt.Sprintf("s-%d-%d.parquet", hr*1000+1, hr*1000+1000),
			fmt.Sprintf("SELECT i AS n, %d AS h FROM range(1000) t(i)", hr))
	}
	other, err := OpenPostgres(context.Background(), l.url, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	errs := make(chan error, 2)
	for _, p := range []*Postgres{l.pg, other} {
		go func() {
			_, err := p.Sync(context.Background(), l.w, "ev")
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(l.same("SELECT hr, count(*), sum(n) FROM ev GROUP BY hr ORDER BY hr")); got != "[[0 1000 499500] [1 1000 499500] [2 1000 499500] [3 1000 499500]]" {
		t.Errorf("after two concurrent syncs: %s", got)
	}
}

func TestPostgresQueriesAreReadOnly(t *testing.T) {
	l := newTestLake(t, PostgresOptions{QueryTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	l.write("ev", "2026-11-25", 9, "s-1-2.parquet", `SELECT * FROM (VALUES ('a', 1), ('b', 2)) AS t(id, n)`)
	l.sync("ev")
	for _, q := range []string{
		"INSERT INTO ev (id) VALUES ('x')",
		"DROP TABLE ev",
		"CREATE TABLE x (a int)",
		"TRUNCATE ev",
		"COPY ev TO STDOUT",
		"SET statement_timeout = 0",
		"DO $$ BEGIN DELETE FROM ev; END $$",
		"WITH d AS (DELETE FROM ev RETURNING *) SELECT count(*) FROM d",
		"EXPLAIN ANALYZE DELETE FROM ev",
		"/* SELECT */ DELETE FROM ev",
		"-- SELECT\nUPDATE ev SET n = 0",
	} {
		// With a row limit (a cursor) and without.
		for _, maxRows := range []int{0, 10} {
			_, err := l.pg.Query(ctx, q, maxRows)
			var qe *QueryError
			if !errors.As(err, &qe) || !errors.Is(err, ErrNotReadOnly) {
				t.Errorf("%s (maxRows %d): want a QueryError wrapping ErrNotReadOnly, got %v", q, maxRows, err)
			}
		}
	}
	// Two statements in one query: the extended protocol refuses them, so
	// the second never runs even though the first is a SELECT.
	_, err := l.pg.Query(ctx, "SELECT 1; DROP TABLE ev", 0)
	var qe *QueryError
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "one statement") {
		t.Errorf("two statements: %v", err)
	}
	// A query runs at most QueryTimeout.
	start := time.Now()
	_, err = l.pg.Query(ctx, "SELECT pg_sleep(10)", 0)
	if !errors.As(err, &qe) || !strings.Contains(err.Error(), "longer than 300ms") || time.Since(start) > 5*time.Second {
		t.Errorf("pg_sleep: %v after %s", err, time.Since(start))
	}
	// A context deadline bounds it too, and reads as the context's error.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := l.pg.Query(dctx, "SELECT pg_sleep(10)", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pg_sleep past the deadline: %v", err)
	}
	// Syntax errors are the user's; the table is untouched and readable in
	// every statement form that reads.
	if _, err := l.pg.Query(ctx, "SELEC 1", 0); !errors.As(err, &qe) || errors.Is(err, ErrNotReadOnly) || !strings.Contains(err.Error(), "syntax") {
		t.Errorf("syntax error: %v", err)
	}
	for _, q := range []string{
		"SELECT count(*) FROM ev",
		"  -- count\n/* outer /* nested */ */ (SELECT count(*) FROM ev)",
		"WITH x AS (SELECT * FROM ev) SELECT count(*) FROM x",
		"VALUES (2::bigint)",
		"TABLE _sluice_loads",
		"EXPLAIN SELECT * FROM ev",
	} {
		for _, maxRows := range []int{0, 5} {
			res, err := l.pg.Query(ctx, q, maxRows)
			if err != nil || len(res.Rows) == 0 {
				t.Errorf("%s (maxRows %d): %v", q, maxRows, err)
				continue
			}
			if strings.Contains(q, "count") || strings.HasPrefix(q, "VALUES") {
				if got := fmt.Sprint(res.Rows); got != "[[2]]" {
					t.Errorf("%s (maxRows %d): %s", q, maxRows, got)
				}
			}
		}
	}
	// maxRows cuts the answer and says so; the rows past it are never
	// made: a billion would keep the server busy until the timeout.
	slow, err := OpenPostgres(ctx, l.url, PostgresOptions{QueryTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start = time.Now()
	res, err := slow.Query(ctx, "SELECT generate_series(1, 1000000000)", 3)
	if err != nil || fmt.Sprint(res.Rows) != "[[1] [2] [3]]" || !res.Truncated || time.Since(start) > 3*time.Second {
		t.Errorf("maxRows on a billion rows: %+v %v after %s", res, err, time.Since(start))
	}
	res, err = l.pg.Query(ctx, "SELECT * FROM generate_series(1, 10)", 3)
	if err != nil || len(res.Rows) != 3 || !res.Truncated || res.Columns[0].Name != "generate_series" || res.Columns[0].Type != "int4" {
		t.Errorf("maxRows: %+v %v", res, err)
	}
	if _, err := l.pg.Query(ctx, "  ", 0); !errors.As(err, &qe) {
		t.Errorf("empty query: %v", err)
	}
}

// Table and column names come from the lake (stream names, event fields):
// quoted everywhere, and names longer than PostgreSQL's 63 bytes kept apart.
func TestPostgresHostileIdentifiers(t *testing.T) {
	l := newTestLake(t, PostgresOptions{})
	table := `odd "name"; DROP TABLE _sluice_loads; --`
	long := strings.Repeat("x", 70)
	l.write(table, "2026-11-25", 9, "s-1-2.parquet", fmt.Sprintf(`SELECT 1 AS "a""b", 2 AS "Mixed Case", 3 AS "); DROP TABLE x; --",
		4 AS "%s_1", 5 AS "%s_2", 6 AS "ünï"`, long, long))
	if st := l.sync(table); st.Loaded != 1 || st.Rows != 1 {
		t.Fatalf("sync: %+v", st)
	}
	got := l.pgColumnTypes(table)
	if len(got) != 8 || got[0] != `a"b integer` || got[1] != "Mixed Case integer" || got[2] != "); DROP TABLE x; -- integer" ||
		len(got[3]) != 63+len(" integer") || got[3] == got[4] || got[5] != "ünï integer" {
		t.Errorf("columns: %q", got)
	}
	res, err := l.pg.Query(context.Background(), fmt.Sprintf(`SELECT "a""b" + "Mixed Case" + "); DROP TABLE x; --" + "ünï" FROM %s`, quoteIdent(table)), 0)
	if err != nil || fmt.Sprint(res.Rows) != "[[12]]" {
		t.Errorf("query: %v %v", res, err)
	}
	if tables, err := l.pg.LoadedTables(context.Background()); err != nil || len(tables) != 1 || tables[0] != table {
		t.Errorf("loaded tables: %q %v", tables, err)
	}
}

func TestFirstKeyword(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1":                    "select",
		"  \n\tWith x AS (SELECT 1) ": "with",
		"((select 1))":                "select",
		"-- c\nEXPLAIN SELECT 1":      "explain",
		"/* a /* b */ c */ values(1)": "values",
		"/* unterminated":             "",
		"-- only a comment":           "",
		"delete from x":               "delete",
		"":                            "",
	} {
		if got := firstKeyword(q); got != want {
			t.Errorf("firstKeyword(%q) = %q, want %q", q, got, want)
		}
	}
}

func TestPgName(t *testing.T) {
	short := "event_id"
	if pgName(short) != short {
		t.Errorf("short names stay: %q", pgName(short))
	}
	a, b := strings.Repeat("é", 40)+"a", strings.Repeat("é", 40)+"b"
	if len(pgName(a)) > 63 || pgName(a) == pgName(b) || !strings.HasPrefix(pgName(a), strings.Repeat("é", 27)+"_") {
		t.Errorf("long names: %q %q", pgName(a), pgName(b))
	}
}

// A lake on S3: the loader reads the local cache, and fetches a file that
// was committed after the view's last refresh.
func TestPostgresSyncFromS3(t *testing.T) {
	url := pgtest.URL(t)
	srv := s3test.StartFake(t)
	srv.Setenv(t)
	ctx := context.Background()
	store, err := lake.Open(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The files are made locally, then put in the bucket.
	l := newTestLake(t, PostgresOptions{})
	put := func(hr int, name, query string) {
		t.Helper()
		l.write("ev", "2026-11-25", hr, name, query)
		key := fmt.Sprintf("ev/dt=2026-11-25/hr=%02d/%s", hr, name)
		for k, path := range map[string]string{key: filepath.Join(l.dir, filepath.FromSlash(key)), "_sluice/commits/ev.json": filepath.Join(l.dir, "_sluice", "commits", "ev.json")} {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Put(ctx, k, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(9, "s-1-2.parquet", "SELECT * FROM (VALUES (1), (2)) t(n)")
	w, err := OpenLake(ctx, filepath.Join(t.TempDir(), "s3.duckdb"), store, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pg, err := OpenPostgres(ctx, url, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	put(10, "s-3-3.parquet", "SELECT 3 AS n")
	if st, err := pg.Sync(ctx, w, "ev"); err != nil || st != (SyncStats{Loaded: 2, Rows: 3}) {
		t.Fatalf("sync: %+v %v", st, err)
	}
	if res, err := pg.Query(ctx, "SELECT hr, sum(n) FROM ev GROUP BY hr ORDER BY hr", 0); err != nil || fmt.Sprint(res.Rows) != "[[9 3] [10 3]]" {
		t.Errorf("PostgreSQL: %v %v", res, err)
	}
}
