package warehouse

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
)

// Rollups (package rollup) are tables of the warehouse named after them,
// with a row per bucket (column time) and group: the rollup replaces the
// rows of the buckets that changed, a second or so after their events
// arrived. When PostgreSQL is the warehouse the rollup writes its table
// there too, as the SQL API answers from there.

// TableColumn is a column of a table a stage writes whole.
type TableColumn struct {
	Name string
	Type string // TIMESTAMP, VARCHAR, BIGINT, DOUBLE, BLOB
}

// ReplaceBuckets makes rows the rows of the given buckets of table (their
// time column equal to one of buckets), in one transaction. The table is
// created with cols; one with other columns (the rollup's definition
// changed) is replaced.
func (w *Warehouse) ReplaceBuckets(ctx context.Context, table string, cols []TableColumn, buckets []time.Time, rows [][]any) error {
	w.tmu.Lock()
	defer w.tmu.Unlock()
	if w.isView(table) {
		return fmt.Errorf("%s is a lake table: a rollup needs a name of its own", table)
	}
	have, err := w.tableColumns(ctx, table)
	if err != nil {
		return err
	}
	// One connection, one transaction: the rows go in through DuckDB's
	// appender (a statement per row made a refresh of a busy minute, with
	// thousands of groups, take half a second).
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	tx := conn
	t := quoteIdent(table)
	same := len(have) == len(cols)
	for _, c := range cols {
		if !strings.EqualFold(have[c.Name], c.Type) {
			same = false
		}
	}
	if !same {
		defs := make([]string, len(cols))
		for i, c := range cols {
			defs[i] = quoteIdent(c.Name) + " " + c.Type
		}
		if have != nil {
			if _, err := tx.ExecContext(ctx, "DROP TABLE "+t); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", t, strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("create table %s: %w", table, err)
		}
	}
	for chunk := range slices.Chunk(buckets, 500) {
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")
		args := make([]any, len(chunk))
		for i, b := range chunk {
			args[i] = b.UTC()
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE \"time\" IN (%s)", t, marks), args...); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
	}
	if len(rows) > 0 {
		err := conn.Raw(func(dc any) error {
			a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", table)
			if err != nil {
				return err
			}
			for _, r := range rows {
				vals := make([]driver.Value, len(r))
				for i, v := range r {
					vals[i] = v
				}
				if err := a.AppendRow(vals...); err != nil {
					a.Close()
					return err
				}
			}
			return a.Close()
		})
		if err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	done = true
	w.changed()
	return nil
}

// ReplaceBuckets does in PostgreSQL what (*Warehouse).ReplaceBuckets does
// in DuckDB, in one transaction: timestamp, text, bigint, double precision
// and bytea columns. PostgreSQL may hold tables that are not sluice's: the
// table is created with a comment that names it the rollup's, and one
// without it is left alone (an error), never dropped.
func (p *Postgres) ReplaceBuckets(ctx context.Context, table string, cols []TableColumn, buckets []time.Time, rows [][]any) error {
	name := pgName(table)
	want := make([]pgColumn, len(cols))
	names := make([]string, len(cols))
	conv := make([]func(any) any, len(cols))
	for i, c := range cols {
		typ := pgType(c.Type)
		if c.Type == "BLOB" {
			typ = "bytea"
		}
		want[i] = pgColumn{pgName(c.Name), typ}
		names[i] = want[i].name
		conv[i] = converter(typ)
	}
	mark := "sluice rollup " + table
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "sluice table "+table); err != nil {
			return err
		}
		have, err := columnsOf(ctx, tx, name)
		if err != nil {
			return err
		}
		if have != nil {
			var comment *string
			if err := tx.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", quoteIdent(name)).Scan(&comment); err != nil {
				return err
			}
			if comment == nil || *comment != mark {
				return fmt.Errorf("PostgreSQL has a table %s that is not rollup %s's: rename the rollup, or drop or rename the table", quoteIdent(name), table)
			}
		}
		if !slices.Equal(have, want) {
			if have != nil {
				if _, err := tx.Exec(ctx, "DROP TABLE "+quoteIdent(name)); err != nil {
					return err
				}
			}
			defs := make([]string, len(want))
			for i, c := range want {
				defs[i] = quoteIdent(c.name) + " " + c.typ
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", quoteIdent(name), strings.Join(defs, ", "))); err != nil {
				return fmt.Errorf("create table %s: %w", table, err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("COMMENT ON TABLE %s IS %s", quoteIdent(name), quoteString(mark))); err != nil {
				return err
			}
		}
		utc := make([]time.Time, len(buckets))
		for i, b := range buckets {
			utc[i] = b.UTC()
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE "time" = ANY($1)`, quoteIdent(name)), utc); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			vals := slices.Clone(rows[i])
			for j, f := range conv {
				if f != nil && vals[j] != nil {
					vals[j] = f(vals[j])
				}
			}
			return vals, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{name}, names, src); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		return nil
	})
}
