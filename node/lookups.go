package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-data/sluice/pipeline"
	"github.com/sluice-data/sluice/warehouse"
)

// lookups is where pipelines' lookup steps read their tables: the warehouse
// that answers SQL, PostgreSQL or DuckDB.
func (n *Node) lookups() pipeline.TableReader { return lookupTables{n.engine()} }

// lookupTables reads lookup tables with the engine's read-only queries.
type lookupTables struct{ engine warehouse.Engine }

func (t lookupTables) ReadTable(ctx context.Context, table string, columns []string, limit int) ([]string, [][]any, error) {
	sel := "*"
	if len(columns) > 0 {
		quoted := make([]string, len(columns))
		for i, c := range columns {
			quoted[i] = quoteIdent(c)
		}
		sel = strings.Join(quoted, ", ")
	}
	res, err := t.engine.Query(ctx, "SELECT "+sel+" FROM "+quoteIdent(table), limit)
	if err != nil {
		if noTable(err) {
			return nil, nil, fmt.Errorf("%w in the warehouse", pipeline.ErrNoTable)
		}
		return nil, nil, err
	}
	names := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		names[i] = c.Name
	}
	for _, row := range res.Rows {
		for i, v := range row {
			row[i] = eventValue(v, res.Columns[i].Type)
		}
	}
	return names, res.Rows, nil
}

// noTable tells whether a query failed because its table does not exist.
func noTable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "42P01" // undefined_table
	}
	// In "SELECT cols FROM t", only t is looked up in DuckDB's catalog (a
	// missing column is a binder error).
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeCatalog
}

// eventValue turns a value of the engine's answer (its API's JSON shape)
// into what an event holds: whole numbers int64, other numbers float64,
// times time.Time.
func eventValue(v any, typ string) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64: // up to 2^53: larger ones are text
		return int64(x)
	case float32:
		return float64(x)
	case string:
		typ = strings.ToUpper(typ)
		switch {
		case strings.HasPrefix(typ, "TIMESTAMP") || typ == "DATE":
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return t
			}
		case typ == "HUGEINT" || typ == "UHUGEINT" || typ == "NUMERIC" || strings.HasPrefix(typ, "DECIMAL"):
			// Whole numbers too large for JSON's are decimal text.
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return n
			}
		}
	}
	return v
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
