package extract

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/internal/mysqltest"
	"github.com/sluice-data/sluice/internal/pgtest"
)

// readAll pages through q, page rows at a time, and returns every row (as
// JSON) and how many queries it took.
func readAll(t *testing.T, db DB, q Query, cols []Column, page int, after []any) ([]string, int) {
	t.Helper()
	ctx := context.Background()
	order := q.Order()
	idx := make([]int, len(order))
	for i, o := range order {
		idx[i] = -1
		for j, c := range cols {
			if strings.EqualFold(c.Name, o) {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			t.Fatalf("order column %s is not among %v", o, cols)
		}
	}
	var out []string
	queries := 0
	for {
		n := 0
		var last []any
		err := db.Page(ctx, q, after, page, func(row []any) error {
			n++
			var b []byte
			for i, v := range row {
				if i > 0 {
					b = append(b, ' ')
				}
				b = AppendJSON(b, v)
			}
			out = append(out, string(b))
			last = last[:0]
			for _, i := range idx {
				last = append(last, row[i])
			}
			return nil
		})
		queries++
		if err != nil {
			t.Fatal(err)
		}
		if n < page {
			return out, queries
		}
		after = append([]any(nil), last...)
	}
}

func columnTypes(cols []Column) string {
	var s []string
	for _, c := range cols {
		s = append(s, c.Name+" "+string(c.Type))
	}
	return strings.Join(s, ", ")
}

func TestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
CREATE TABLE orders (
	id bigint PRIMARY KEY, n int, small smallint, amount numeric(12,2), ratio real, paid boolean,
	note text, code char(3), tags text[], attrs jsonb, day date, created timestamp, updated_at timestamptz,
	ref uuid, "Mixed Case" varchar(10));
INSERT INTO orders
SELECT i, i * 10, (i % 100)::smallint, i + 0.25, i / 4.0, i % 2 = 0,
	CASE WHEN i = 3 THEN E'line\nbreak "quoted" \\ é' ELSE 'n' || i END, 'c' || (i % 10), ARRAY['a', 'b' || i],
	jsonb_build_object('i', i), DATE '2026-11-01' + (i % 20), TIMESTAMP '2026-11-25 10:00:00.123456' + i * INTERVAL '1 minute',
	TIMESTAMPTZ '2026-11-25 00:00:00+00' + (i / 7) * INTERVAL '1 hour', gen_random_uuid(), 'm' || i
FROM generate_series(1, 250) AS i;
UPDATE orders SET note = NULL, updated_at = NULL WHERE id = 5;`)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := Query{Table: "orders", Key: []string{"id"}, Decimals: "double"}
	cols, err := db.Columns(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := "id BIGINT, n BIGINT, small BIGINT, amount DOUBLE, ratio DOUBLE, paid BOOLEAN, note VARCHAR, code VARCHAR, tags JSON, attrs JSON, day TIMESTAMP, created TIMESTAMP, updated_at TIMESTAMP, ref VARCHAR, Mixed Case VARCHAR"
	if got := columnTypes(cols); got != want {
		t.Fatalf("columns:\n%s\nwant\n%s", got, want)
	}
	// A snapshot in pages of 7: every row once, in key order.
	rows, queries := readAll(t, db, q, cols, 7, nil)
	if len(rows) != 250 || queries != 36 {
		t.Fatalf("%d rows in %d queries", len(rows), queries)
	}
	if !strings.HasPrefix(rows[2], `3 30 3 3.25 0.75 false "line\nbreak \"quoted\" \\ é" "c3 " ["a","b3"] {"i": 3} "2026-11-04T00:00:00.000000Z" "2026-11-25T10:03:00.123456Z" "2026-11-25T00:00:00.000000Z" "`) ||
		!strings.HasSuffix(rows[2], `"m3"`) {
		t.Errorf("row 3: %s", rows[2])
	}
	if !strings.HasPrefix(rows[4], `5 50 5 5.25 1.25 false null "c5 "`) {
		t.Errorf("row 5: %s", rows[4])
	}
	// Incremental: by updated_at (7 rows share each value), then id; a row
	// without a cursor is never read.
	q = Query{Table: "orders", Columns: []string{"amount"}, Cursor: "updated_at", Key: []string{"id"}, Decimals: "varchar"}
	cols, err = db.Columns(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := columnTypes(cols); got != "amount VARCHAR, updated_at TIMESTAMP, id BIGINT" {
		t.Fatalf("columns: %s", got)
	}
	rows, _ = readAll(t, db, q, cols, 10, nil)
	if len(rows) != 249 || rows[0] != `"1.25" "2026-11-25T00:00:00.000000Z" 1` || rows[248] != `"250.25" "2026-11-26T11:00:00.000000Z" 250` {
		t.Fatalf("%d rows: %s … %s", len(rows), rows[0], rows[len(rows)-1])
	}
	// From a position in the middle of a run of one cursor value.
	after := []any{time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC), int64(9)}
	rows, _ = readAll(t, db, q, cols, 4, after)
	if len(rows) != 241 || rows[0] != `"10.25" "2026-11-25T01:00:00.000000Z" 10` {
		t.Fatalf("after %v: %d rows from %s", after, len(rows), rows[0])
	}
	// Positions read back from rows as stored (text for numeric, strings
	// for uuid) work as well.
	q = Query{Table: "orders", Key: []string{"ref"}}
	if _, err := db.Columns(ctx, q); err != nil {
		t.Fatal(err)
	}
	var ref string
	conn.QueryRow(ctx, "SELECT ref::text FROM orders ORDER BY ref OFFSET 99 LIMIT 1").Scan(&ref)
	n := 0
	if err := db.Page(ctx, q, []any{ref}, 1000, func([]any) error { n++; return nil }); err != nil || n != 150 {
		t.Fatalf("after uuid %s: %d rows, %v", ref, n, err)
	}
	if _, err := db.Columns(ctx, Query{Table: "nosuch", Key: []string{"id"}}); err == nil || !strings.Contains(err.Error(), `relation "nosuch" does not exist`) {
		t.Errorf("missing table: %v", err)
	}
}

func TestMySQL(t *testing.T) {
	url, conn := mysqltest.URL(t)
	ctx := context.Background()
	for _, s := range []string{`
CREATE TABLE orders (
	id BIGINT PRIMARY KEY, n INT, tiny TINYINT(1), amount DECIMAL(12,2), ratio FLOAT, big BIGINT UNSIGNED,
	note TEXT, code CHAR(3), kind ENUM('a','b'), bits BIT(12), day DATE, created DATETIME(6), updated_at TIMESTAMP(6) NULL,
	blob_col VARBINARY(8), ` + "`Mixed Case`" + ` VARCHAR(10)) CHARACTER SET utf8mb4`,
		`CREATE TABLE seq (i INT PRIMARY KEY)`,
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var vals []string
	for i := 1; i <= 250; i++ {
		note := fmt.Sprintf("'n%d'", i)
		if i == 3 {
			note = `'line\nbreak "quoted" \\ é'`
		}
		vals = append(vals, fmt.Sprintf("(%d, %d, %d, %d.25, %d / 4.0, %d, %s, 'c%d', '%s', b'101', DATE '2026-11-01' + INTERVAL %d DAY, TIMESTAMP '2026-11-25 10:00:00.123456' + INTERVAL %d MINUTE, TIMESTAMP '2026-11-25 00:00:00' + INTERVAL %d HOUR, X'00FF', 'm%d')",
			i, i*10, i%2, i, i, uint64(i)*1e15, note, i%10, []string{"a", "b"}[i%2], i%20, i, i/7, i))
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO orders VALUES "+strings.Join(vals, ", ")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "UPDATE orders SET note = NULL, updated_at = NULL WHERE id = 5"); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := Query{Table: "orders", Key: []string{"id"}, Decimals: "double"}
	cols, err := db.Columns(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want := "id BIGINT, n BIGINT, tiny BIGINT, amount DOUBLE, ratio DOUBLE, big BIGINT, note VARCHAR, code VARCHAR, kind VARCHAR, bits BIGINT, day TIMESTAMP, created TIMESTAMP, updated_at TIMESTAMP, blob_col VARCHAR, Mixed Case VARCHAR"
	if got := columnTypes(cols); got != want {
		t.Fatalf("columns:\n%s\nwant\n%s", got, want)
	}
	rows, queries := readAll(t, db, q, cols, 7, nil)
	if len(rows) != 250 || queries != 36 {
		t.Fatalf("%d rows in %d queries", len(rows), queries)
	}
	if want := `3 30 1 3.25 0.75 3000000000000000 "line\nbreak \"quoted\" \\ é" "c3" "b" 5 "2026-11-04T00:00:00.000000Z" "2026-11-25T10:03:00.123456Z" "2026-11-25T00:00:00.000000Z" "\u0000�" "m3"`; rows[2] != want { // invalid UTF-8 becomes U+FFFD
		t.Errorf("row 3:\n%s\nwant\n%s", rows[2], want)
	}
	q = Query{Table: "orders", Columns: []string{"amount"}, Cursor: "updated_at", Key: []string{"id"}, Decimals: "varchar"}
	cols, err = db.Columns(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := columnTypes(cols); got != "amount VARCHAR, updated_at TIMESTAMP, id BIGINT" {
		t.Fatalf("columns: %s", got)
	}
	rows, _ = readAll(t, db, q, cols, 10, nil)
	if len(rows) != 249 || rows[0] != `"1.25" "2026-11-25T00:00:00.000000Z" 1` || rows[248] != `"250.25" "2026-11-26T11:00:00.000000Z" 250` {
		t.Fatalf("%d rows: %s … %s", len(rows), rows[0], rows[len(rows)-1])
	}
	after := []any{time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC), int64(9)}
	rows, _ = readAll(t, db, q, cols, 4, after)
	if len(rows) != 241 || rows[0] != `"10.25" "2026-11-25T01:00:00.000000Z" 10` {
		t.Fatalf("after %v: %d rows from %s", after, len(rows), rows[0])
	}
	if _, err := db.Columns(ctx, Query{Table: "nosuch", Key: []string{"id"}}); err == nil || !strings.Contains(err.Error(), "doesn't exist") {
		t.Errorf("missing table: %v", err)
	}
}
