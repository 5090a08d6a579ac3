package warehouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/lake"
)

// The lake's own column types, which ReadFiles hands over as the driver
// scans them; other types (JSON among them) come as their text.
var scannedTypes = map[string]bool{
	"VARCHAR": true, "BIGINT": true, "INTEGER": true, "DOUBLE": true, "BOOLEAN": true,
	"TIMESTAMP": true, "TIMESTAMP WITH TIME ZONE": true, "DATE": true,
}

// LiveFiles lists the data files of table that its view reads
// (lake.LiveFiles): committed, and not replaced by compaction.
func (w *Warehouse) LiveFiles(ctx context.Context, table string) ([]lake.DataFile, error) {
	return lake.LiveFiles(ctx, w.store, table)
}

// LakeTables lists the tables that have files in the lake.
func (w *Warehouse) LakeTables(ctx context.Context) ([]string, error) {
	return lake.Tables(ctx, w.store)
}

// TableColumns describes what SELECT * on the view of table returns: its
// columns in order, with DuckDB's type names. A built-in table's columns
// have their declared types even while its view is the empty stub (which
// types JSON as VARCHAR).
func (w *Warehouse) TableColumns(ctx context.Context, table string) ([]Column, error) {
	cols, err := w.describe(ctx, "SELECT * FROM "+quoteIdent(table))
	if err != nil {
		return nil, err
	}
	for _, t := range knownTables {
		if t.Name != table {
			continue
		}
		for _, f := range t.Fixed {
			for i := range cols {
				if cols[i].Name == f.Name && f.Type == sluice.TypeJSON {
					cols[i].Type = string(sluice.TypeJSON)
				}
			}
		}
	}
	return cols, nil
}

func (w *Warehouse) describe(ctx context.Context, query string) ([]Column, error) {
	rows, err := w.db.QueryContext(ctx, "DESCRIBE "+query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var cols []Column
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		cols = append(cols, Column{Name: fmt.Sprint(vals[0]), Type: fmt.Sprint(vals[1])})
	}
	return cols, rows.Err()
}

// lakeSource is the table function that reads the lake files keys as one
// table: columns matched by name, types widened as the views widen them, dt
// and hr from the partition path. A remote lake is read from the local
// cache; a file committed since the view's last refresh is fetched first.
func (w *Warehouse) lakeSource(ctx context.Context, keys []string) (string, error) {
	if w.cache != nil {
		if err := w.cache.download(ctx, keys); err != nil {
			return "", err
		}
	}
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = quoteString(w.localPath(k))
	}
	return fmt.Sprintf("read_parquet([%s], hive_partitioning = true, hive_types = {'dt': DATE, 'hr': INTEGER}, union_by_name = true)",
		strings.Join(paths, ", ")), nil
}

// FileColumns describes the lake files keys read as one table (as
// ReadFiles reads them): names and DuckDB's types, in order.
func (w *Warehouse) FileColumns(ctx context.Context, keys []string) ([]Column, error) {
	src, err := w.lakeSource(ctx, keys)
	if err != nil {
		return nil, err
	}
	cols, err := w.describe(ctx, "SELECT * FROM "+src)
	if err != nil {
		return nil, fmt.Errorf("read %d lake files: %w", len(keys), err)
	}
	return cols, nil
}

// ReadFiles reads the rows of the lake files keys and calls fn for each,
// with the columns FileColumns describes, in its order. Values of VARCHAR,
// BIGINT, INTEGER, DOUBLE, BOOLEAN, TIMESTAMP (WITH TIME ZONE) and DATE
// columns are what the driver scans (string, int64, int32, float64, bool,
// time.Time); values of other types (JSON, lists, …), and of the columns
// named in asText, are their text as DuckDB casts it to VARCHAR. An error
// from fn stops the read and is returned.
func (w *Warehouse) ReadFiles(ctx context.Context, keys []string, asText map[string]bool, fn func(row []any) error) error {
	if len(keys) == 0 {
		return nil
	}
	cols, err := w.FileColumns(ctx, keys)
	if err != nil {
		return err
	}
	src, err := w.lakeSource(ctx, keys)
	if err != nil {
		return err
	}
	list := make([]string, len(cols))
	for i, c := range cols {
		list[i] = quoteIdent(c.Name)
		if !scannedTypes[c.Type] || (asText[c.Name] && c.Type != "VARCHAR") {
			list[i] = fmt.Sprintf("CAST(%s AS VARCHAR) AS %s", list[i], list[i])
		}
	}
	rows, err := w.db.QueryContext(ctx, "SELECT "+strings.Join(list, ", ")+" FROM "+src)
	if err != nil {
		return fmt.Errorf("read %d lake files: %w", len(keys), err)
	}
	defer rows.Close()
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read lake files: %w", err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read lake files: %w", err)
	}
	return nil
}
