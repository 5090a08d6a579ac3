package warehouse

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// MergeParquet writes the rows of the Parquet files inputs, whose schemas
// may differ (columns matched by name, types widened as the warehouse's
// views widen them), into one Parquet file at output, sorted by orderBy.
// It is the lake compactor's merge (lake.MergeFunc), run by a private
// in-memory DuckDB on one thread so that it never competes with queries
// for more than a core.
func MergeParquet(ctx context.Context, inputs []string, output, orderBy string) (int64, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET threads = 1",
		"SET preserve_insertion_order = false",
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return 0, fmt.Errorf("merge: %s: %w", s, err)
		}
	}
	paths := make([]string, len(inputs))
	for i, p := range inputs {
		paths[i] = quoteString(p)
	}
	order := ""
	if orderBy != "" {
		order = " ORDER BY " + quoteIdent(orderBy)
	}
	q := fmt.Sprintf("COPY (SELECT * FROM read_parquet([%s], hive_partitioning = false, union_by_name = true)%s) TO %s (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 122880)",
		strings.Join(paths, ", "), order, quoteString(output))
	res, err := db.ExecContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("merge %d files: %w", len(inputs), err)
	}
	return res.RowsAffected()
}
