package warehouse

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteRows writes rows into the warehouse table (not a lake view): the
// table is created on first use with a column per field, typed by the first
// non-null value (time -> TIMESTAMP, whole number -> BIGINT, number ->
// DOUBLE, bool -> BOOLEAN, text -> VARCHAR, object or list -> JSON); a
// later new field adds a column. When key names columns, a row replaces the
// row with the same key values (NULLs equal), all in one transaction: a
// window result written twice is one row. Pipelines write their results
// here.
func (w *Warehouse) WriteRows(ctx context.Context, table string, key []string, rows []map[string]any) error {
	if len(rows) == 0 {
		return nil
	}
	w.tmu.Lock()
	defer w.tmu.Unlock()
	if w.isView(table) {
		return fmt.Errorf("%s is a lake table: pipelines write tables of their own", table)
	}
	cols, err := w.tableColumns(ctx, table)
	if err != nil {
		return err
	}
	order, want := rowColumns(rows, key, sqlType)
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if cols == nil {
		defs := make([]string, len(order))
		for i, c := range order {
			defs[i] = quoteIdent(c) + " " + cmpType(want[c])
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", quoteIdent(table), strings.Join(defs, ", "))); err != nil {
			return fmt.Errorf("create table %s: %w", table, err)
		}
		cols = map[string]string{}
		for _, c := range order {
			cols[c] = cmpType(want[c])
		}
	}
	for _, c := range order {
		if _, ok := cols[c]; !ok {
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", quoteIdent(table), quoteIdent(c), cmpType(want[c]))); err != nil {
				return fmt.Errorf("table %s: add column %s: %w", table, c, err)
			}
			cols[c] = cmpType(want[c])
		}
	}
	if len(key) > 0 {
		conds := make([]string, len(key))
		for i, k := range key {
			conds[i] = quoteIdent(k) + " IS NOT DISTINCT FROM ?"
		}
		del, err := tx.PrepareContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", quoteIdent(table), strings.Join(conds, " AND ")))
		if err != nil {
			return err
		}
		defer del.Close()
		for _, r := range rows {
			args := make([]any, len(key))
			for i, k := range key {
				args[i] = sqlValue(r[k], cols[k])
			}
			if _, err := del.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("table %s: %w", table, err)
			}
		}
	}
	names := make([]string, len(order))
	marks := make([]string, len(order))
	for i, c := range order {
		names[i] = quoteIdent(c)
		marks[i] = "?"
	}
	ins, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", quoteIdent(table), strings.Join(names, ", "), strings.Join(marks, ", ")))
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, r := range rows {
		args := make([]any, len(order))
		for i, c := range order {
			args[i] = sqlValue(r[c], cols[c])
		}
		if _, err := ins.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("table %s: %w", table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.changed()
	return nil
}

// rowColumns lists the columns rows need, in a stable order (the key
// first, then by name), with the type typeOf gives each column's first
// non-null value ("" when every value is null).
func rowColumns(rows []map[string]any, key []string, typeOf func(any) string) ([]string, map[string]string) {
	want := map[string]string{}
	for _, r := range rows {
		for k, v := range r {
			if t := typeOf(v); t != "" && want[k] == "" {
				want[k] = t
			} else if _, ok := want[k]; !ok {
				want[k] = ""
			}
		}
	}
	order := slices.Clone(key)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
	}
	return order, want
}

// isView tells whether name is one of the lake's views.
func (w *Warehouse) isView(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.views[name]
	return ok || name == "sluice_tables"
}

// tableColumns returns a base table's columns and types, nil when there is
// no such table.
func (w *Warehouse) tableColumns(ctx context.Context, table string) (map[string]string, error) {
	rows, err := w.db.QueryContext(ctx, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols map[string]string
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return nil, err
		}
		if cols == nil {
			cols = map[string]string{}
		}
		cols[n] = t
	}
	return cols, rows.Err()
}

// sqlType is the column type for a value; "" for NULL.
func sqlType(v any) string {
	switch v.(type) {
	case nil:
		return ""
	case time.Time:
		return "TIMESTAMP"
	case int64, int, int32:
		return "BIGINT"
	case float64, float32:
		return "DOUBLE"
	case bool:
		return "BOOLEAN"
	case string:
		return "VARCHAR"
	}
	return "JSON"
}

func cmpType(t string) string {
	if t == "" {
		return "VARCHAR"
	}
	return t
}

// sqlValue converts a value for a column of type t.
func sqlValue(v any, t string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return x.UTC()
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	case int64:
		if t == "DOUBLE" {
			return float64(x)
		}
	case float64:
		if t == "BIGINT" && x == float64(int64(x)) {
			return int64(x)
		}
	}
	if t == "VARCHAR" {
		if _, isStr := v.(string); !isStr {
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
	return v
}
