package warehouse

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// WriteRows writes rows into a PostgreSQL table of its own, as
// (*Warehouse).WriteRows does in DuckDB: created on first use (time ->
// timestamp, whole number -> bigint, number -> double precision, bool ->
// boolean, text -> text, object or list -> jsonb), new fields add columns,
// and with a key each row replaces the row with the same key values, in one
// transaction. Pipelines write here when PostgreSQL is the warehouse.
func (p *Postgres) WriteRows(ctx context.Context, table string, key []string, rows []map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	order, want := rowColumns(rows, key, pgRowType)
	name := pgIdent(table)
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// One writer per table at a time (two sluice processes, or a
		// retry racing a slow first try).
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "sluice table "+table); err != nil {
			return err
		}
		defs := make([]string, len(order))
		for i, c := range order {
			defs[i] = pgIdent(c) + " " + orText(want[c])
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", name, strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		for _, c := range order {
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", name, pgIdent(c), orText(want[c]))); err != nil {
				return fmt.Errorf("table %s: add column %s: %w", table, c, err)
			}
		}
		if len(key) > 0 {
			conds := make([]string, len(key))
			for i, k := range key {
				conds[i] = fmt.Sprintf("%s IS NOT DISTINCT FROM $%d", pgIdent(k), i+1)
			}
			del := fmt.Sprintf("DELETE FROM %s WHERE %s", name, strings.Join(conds, " AND "))
			for _, r := range rows {
				args := make([]any, len(key))
				for i, k := range key {
					args[i] = pgRowValue(r[k])
				}
				if _, err := tx.Exec(ctx, del, args...); err != nil {
					return fmt.Errorf("table %s: %w", table, err)
				}
			}
		}
		cols := make([]string, len(order))
		for i, c := range order {
			cols[i] = pgName(c)
		}
		src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			vals := make([]any, len(order))
			for j, c := range order {
				vals[j] = pgRowValue(rows[i][c])
			}
			return vals, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{pgName(table)}, cols, src); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
		return nil
	})
}

func pgIdent(s string) string { return quoteIdent(pgName(s)) }

func pgRowType(v any) string {
	switch v.(type) {
	case nil:
		return ""
	case time.Time:
		return "timestamp"
	case int64, int, int32:
		return "bigint"
	case float64, float32:
		return "double precision"
	case bool:
		return "boolean"
	case string:
		return "text"
	}
	return "jsonb"
}

func orText(t string) string {
	if t == "" {
		return "text"
	}
	return t
}

func pgRowValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return v
}
