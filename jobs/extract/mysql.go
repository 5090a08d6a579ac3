package extract

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	// The MySQL/MariaDB driver of database/sql.
	_ "github.com/go-sql-driver/mysql"
	"github.com/sluice-data/sluice"
)

// mysql reads a MySQL or MariaDB table through one connection, with a
// prepared statement per page query (the binary protocol: numbers come as
// numbers). TINYINT(1) stays a number (BIGINT): MySQL has no boolean.
type mysql struct {
	db    *sql.DB
	conn  *sql.Conn
	cols  []Column
	stmts map[string]*sql.Stmt
}

func openMySQL(ctx context.Context, dsn string) (*mysql, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to MySQL: %w", err)
	}
	// Pages are separate statements: no snapshot of the whole table is
	// held, and a page sees what was committed before it. TIMESTAMP
	// columns are read and compared in UTC, as the driver reads them.
	for _, set := range []string{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET time_zone = '+00:00'"} {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			conn.Close()
			db.Close()
			return nil, fmt.Errorf("MySQL: %s: %w", set, err)
		}
	}
	return &mysql{db: db, conn: conn, stmts: map[string]*sql.Stmt{}}, nil
}

func (m *mysql) Close() error {
	for _, s := range m.stmts {
		s.Close()
	}
	m.conn.Close()
	return m.db.Close()
}

func myQuote(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func (m *mysql) Columns(ctx context.Context, q Query) ([]Column, error) {
	rows, err := m.conn.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 0", selectList(q, myQuote), quoteTable(q.Table, myQuote)))
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", q.Table, err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", q.Table, err)
	}
	m.cols = m.cols[:0]
	for _, t := range types {
		c := Column{Name: t.Name(), Type: sluice.TypeVarchar, Source: t.DatabaseTypeName()}
		switch strings.TrimPrefix(c.Source, "UNSIGNED ") {
		case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "YEAR", "BIT":
			c.Type = sluice.TypeBigint
		case "FLOAT", "DOUBLE":
			c.Type = sluice.TypeDouble
		case "DECIMAL":
			if q.Decimals != "varchar" {
				c.Type = sluice.TypeDouble
			}
		case "DATE", "DATETIME", "TIMESTAMP":
			c.Type = sluice.TypeTimestamp
		case "JSON":
			c.Type = sluice.TypeJSON
		}
		m.cols = append(m.cols, c)
	}
	return append([]Column(nil), m.cols...), rows.Err()
}

func (m *mysql) Page(ctx context.Context, q Query, after []any, limit int, fn func(row []any) error) error {
	query := pageSQL(q, after != nil, myQuote, func(i int) string { return "?" })
	stmt, ok := m.stmts[query]
	if !ok {
		var err error
		if stmt, err = m.conn.PrepareContext(ctx, query); err != nil {
			return fmt.Errorf("read %s: %w", q.Table, err)
		}
		m.stmts[query] = stmt
	}
	// The keyset predicate names each order value twice but the last.
	var args []any
	for i, v := range after {
		args = append(args, v)
		if i < len(after)-1 {
			args = append(args, v)
		}
	}
	args = append(args, limit)
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", q.Table, err)
	}
	defer rows.Close()
	raw := make([]any, len(m.cols))
	ptrs := make([]any, len(m.cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	row := make([]any, len(m.cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s: %w", q.Table, err)
		}
		for i, c := range m.cols {
			v, err := myValue(c, raw[i])
			if err != nil {
				return fmt.Errorf("read %s: column %s (%s): %w", q.Table, c.Name, c.Source, err)
			}
			row[i] = v
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", q.Table, err)
	}
	return nil
}

// myValue converts what the driver scanned to a value of the column's lake
// type.
func myValue(c Column, v any) (any, error) {
	t := c.Type
	switch x := v.(type) {
	case nil:
		return nil, nil
	case int64:
		if t == sluice.TypeDouble {
			return float64(x), nil
		}
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit a BIGINT", x)
		}
		return int64(x), nil
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	case time.Time:
		if x.IsZero() {
			return nil, nil // 0000-00-00
		}
		return x.UTC(), nil
	case []byte:
		switch t {
		case sluice.TypeBigint:
			if c.Source == "BIT" && len(x) <= 8 { // big-endian bytes
				var n int64
				for _, b := range x {
					n = n<<8 | int64(b)
				}
				return n, nil
			}
			return strconv.ParseInt(string(x), 10, 64)
		case sluice.TypeDouble:
			return strconv.ParseFloat(string(x), 64)
		case sluice.TypeJSON:
			if !json.Valid(x) {
				return string(x), nil
			}
			return append(json.RawMessage(nil), x...), nil
		}
		return string(x), nil
	case string:
		return x, nil
	}
	return fmt.Sprint(v), nil
}
