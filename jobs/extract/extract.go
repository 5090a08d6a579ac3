// Package extract reads production databases and HTTP APIs for the jobs
// that copy them into the lake (package jobs): a table of PostgreSQL or
// MySQL/MariaDB in pages (postgres.go, mysql.go), and the pages of a JSON
// API (http.go).
//
// A database is read by keyset pagination: each page is one short query,
// `WHERE (cursor, key) > (last page's end) ORDER BY cursor, key LIMIT n`,
// in its own implicit transaction, so no long transaction holds back the
// source's vacuum or replication, and a page's end is a position a later
// run can start from. A row's values come out typed for the lake: nil,
// int64, float64, bool, string, time.Time (UTC) or json.RawMessage.
package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// Query is what to read from a table.
type Query struct {
	Table   string   // [schema.]table
	Columns []string // empty: all
	Where   string   // an extra condition, SQL
	// Cursor, when set, orders the rows before Key and makes positions
	// comparable across runs: rows whose cursor is NULL are never read.
	Cursor string
	Key    []string
	// Decimals is how numeric/decimal columns come out: "double" or
	// "varchar".
	Decimals string
}

// Order is the columns rows are ordered by: the cursor, then the key.
func (q Query) Order() []string {
	if q.Cursor == "" {
		return q.Key
	}
	out := []string{q.Cursor}
	for _, k := range q.Key {
		if !strings.EqualFold(k, q.Cursor) {
			out = append(out, k)
		}
	}
	return out
}

// Column is a column of the rows read, with its lake type.
type Column struct {
	Name string
	Type sluice.ColumnType
	// Source is the source's type, for messages.
	Source string
}

// DB is a source database.
type DB interface {
	// Columns are the columns of q's rows, in the order Page gives them;
	// they include the order columns.
	Columns(ctx context.Context, q Query) ([]Column, error)
	// Page reads at most limit rows of q past after (the values of the
	// order columns of the last row read before; nil: from the start), in
	// order, and calls fn with each (the slice is reused).
	Page(ctx context.Context, q Query, after []any, limit int, fn func(row []any) error) error
	Close() error
}

// Open connects to an extract's source (config.SourceDB).
func Open(ctx context.Context, from string) (DB, error) {
	driver, dsn, err := config.SourceDB(from)
	if err != nil {
		return nil, err
	}
	if driver == "mysql" {
		return openMySQL(ctx, dsn)
	}
	return openPostgres(ctx, dsn)
}

// selectList is the columns a query reads: the ones asked for (all when
// none) plus the order columns that are missing.
func selectList(q Query, quote func(string) string) string {
	if len(q.Columns) == 0 {
		return "*"
	}
	cols := append([]string(nil), q.Columns...)
	for _, o := range q.Order() {
		found := false
		for _, c := range cols {
			found = found || strings.EqualFold(c, o)
		}
		if !found {
			cols = append(cols, o)
		}
	}
	for i, c := range cols {
		cols[i] = quote(c)
	}
	return strings.Join(cols, ", ")
}

// pageSQL is a page's query: the rows past the position in mark(1..n),
// in order. The predicate is written so that its first term is a plain
// range on the first order column, which both PostgreSQL and MySQL answer
// from an index on the order columns: c1 >= $1 AND (c1 > $1 OR (c2 >= $2
// AND (c2 > $2 OR …))).
func pageSQL(q Query, after bool, quote func(string) string, mark func(i int) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s", selectList(q, quote), quoteTable(q.Table, quote))
	var conds []string
	if q.Where != "" {
		conds = append(conds, "("+q.Where+")")
	}
	if q.Cursor != "" {
		conds = append(conds, quote(q.Cursor)+" IS NOT NULL")
	}
	order := q.Order()
	if after {
		conds = append(conds, keyset(order, quote, mark, 0))
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	quoted := make([]string, len(order))
	for i, c := range order {
		quoted[i] = quote(c)
	}
	limit := 1
	if after {
		limit = len(order) + 1
	}
	fmt.Fprintf(&b, " ORDER BY %s LIMIT %s", strings.Join(quoted, ", "), mark(limit))
	return b.String()
}

// keyset is the predicate "(cols[i:]) > (marks[i:])".
func keyset(cols []string, quote func(string) string, mark func(int) string, i int) string {
	c, m := quote(cols[i]), mark(i+1)
	if i == len(cols)-1 {
		return fmt.Sprintf("%s > %s", c, m)
	}
	return fmt.Sprintf("%s >= %s AND (%s > %s OR (%s))", c, m, c, m, keyset(cols, quote, mark, i+1))
}

// quoteTable quotes schema.table.
func quoteTable(t string, quote func(string) string) string {
	parts := strings.Split(t, ".")
	for i, p := range parts {
		parts[i] = quote(p)
	}
	return strings.Join(parts, ".")
}

// ParseValue reads back a value of a lake column as AppendJSON wrote it
// (the position a page ended at, from a stored row).
func ParseValue(t sluice.ColumnType, raw json.RawMessage) (any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch t {
	case sluice.TypeBigint:
		return strconv.ParseInt(string(raw), 10, 64)
	case sluice.TypeDouble:
		return strconv.ParseFloat(string(raw), 64)
	case sluice.TypeBoolean:
		return strconv.ParseBool(string(raw))
	case sluice.TypeTimestamp:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return time.Parse(time.RFC3339Nano, s)
	case sluice.TypeJSON:
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return s, nil
}

// TimeLayout is how times are written in rows: the layout the lake's
// archiver reads fastest.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// AppendJSON appends a value as JSON: a time in TimeLayout, a
// json.RawMessage as it is, other values as encoding/json writes them.
func AppendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		if x != x || x > 1.7976931348623157e308 || x < -1.7976931348623157e308 {
			return append(b, "null"...) // NaN and infinities have no JSON
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		return jsonseq.AppendString(b, x)
	case time.Time:
		b = append(b, '"')
		b = x.UTC().AppendFormat(b, TimeLayout)
		return append(b, '"')
	case json.RawMessage:
		return append(b, x...)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return jsonseq.AppendString(b, fmt.Sprint(v))
	}
	return append(b, data...)
}
