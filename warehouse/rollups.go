package warehouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rollups (package rollup) are tables of the warehouse named after them,
// with a row per bucket (column time) and group: the rollup replaces the
// rows of the buckets that changed, a second or so after their events
// arrived.

// TableColumn is a column of a table a stage writes whole.
type TableColumn struct {
	Name string
	Type string // TIMESTAMP, VARCHAR, BIGINT, DOUBLE
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
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
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
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
		ins, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s VALUES (%s)", t, marks))
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range rows {
			if _, err := ins.ExecContext(ctx, r...); err != nil {
				return fmt.Errorf("table %s: %w", table, err)
			}
		}
	}
	return tx.Commit()
}
