package warehouse

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/sluice-data/sluice/rollup/sketch"
)

// The SQL functions over rollups' sketch columns (<metric>_sketch), for SQL
// that groups coarser than a rollup's grain:
//
//	sluice_distinct(list(visitors_sketch))      BIGINT: the union's estimate
//	sluice_quantile(list(load_sketch), 0.95)    DOUBLE: the merged sketches' quantile
//
// NULL elements are skipped. sluice_distinct of no sketch (an empty or NULL
// list, only NULLs) is 0, as count(DISTINCT …) of no rows is;
// sluice_quantile of no value is NULL, as quantile_disc's is. A blob that is
// not a sketch of the kind, or q outside [0, 1], fails the query with an
// error that names the function.

// registerSketchFunctions registers the functions on db. DuckDB keeps
// functions registered through its C API in the database's system catalog,
// so one registration serves every connection, those opened later too.
func registerSketchFunctions(ctx context.Context, db *sql.DB) error {
	blob, err := duckdb.NewTypeInfo(duckdb.TYPE_BLOB)
	if err != nil {
		return err
	}
	blobs, err := duckdb.NewListInfo(blob)
	if err != nil {
		return err
	}
	bigint, err := duckdb.NewTypeInfo(duckdb.TYPE_BIGINT)
	if err != nil {
		return err
	}
	double, err := duckdb.NewTypeInfo(duckdb.TYPE_DOUBLE)
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	distinct := &sqlFunc{
		config: duckdb.ScalarFuncConfig{InputTypeInfos: []duckdb.TypeInfo{blobs}, ResultTypeInfo: bigint, SpecialNullHandling: true},
		run: func(args []driver.Value) (any, error) {
			bs, err := sketchArgs("sluice_distinct", args[0])
			if err != nil {
				return nil, err
			}
			n, err := sketch.Distinct(bs)
			if err != nil {
				return nil, fmt.Errorf("sluice_distinct: %w (its argument is list(<metric>_sketch) of a rollup's distinct metric)", err)
			}
			return n, nil
		},
	}
	quantile := &sqlFunc{
		config: duckdb.ScalarFuncConfig{InputTypeInfos: []duckdb.TypeInfo{blobs, double}, ResultTypeInfo: double},
		run: func(args []driver.Value) (any, error) {
			bs, err := sketchArgs("sluice_quantile", args[0])
			if err != nil {
				return nil, err
			}
			q, ok := args[1].(float64)
			if !ok {
				return nil, fmt.Errorf("sluice_quantile: q is a %T, not a DOUBLE", args[1])
			}
			v, ok, err := sketch.Quantile(bs, q)
			switch {
			case err != nil:
				return nil, fmt.Errorf("sluice_quantile: %w (its arguments are list(<metric>_sketch) of a rollup's quantile metric and q, between 0 and 1)", err)
			case !ok:
				return nil, nil
			}
			return v, nil
		},
	}
	for name, f := range map[string]*sqlFunc{"sluice_distinct": distinct, "sluice_quantile": quantile} {
		if err := duckdb.RegisterScalarUDF(conn, name, f); err != nil {
			return fmt.Errorf("register SQL function %s: %w", name, err)
		}
	}
	return nil
}

// sketchArgs reads a LIST(BLOB) argument; SQL NULLs are nil.
func sketchArgs(fn string, arg driver.Value) ([][]byte, error) {
	if arg == nil {
		return nil, nil
	}
	list, ok := arg.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: the sketches are a %T, not a list of BLOBs", fn, arg)
	}
	out := make([][]byte, len(list))
	for i, e := range list {
		switch b := e.(type) {
		case nil:
		case []byte:
			out[i] = b
			if b == nil {
				out[i] = []byte{} // an empty BLOB, not a NULL
			}
		default:
			return nil, fmt.Errorf("%s: element %d of the list is a %T, not a BLOB", fn, i+1, e)
		}
	}
	return out, nil
}

// sqlFunc is a scalar SQL function computed row by row.
type sqlFunc struct {
	config duckdb.ScalarFuncConfig
	run    duckdb.RowExecutorFn
}

func (f *sqlFunc) Config() duckdb.ScalarFuncConfig { return f.config }

func (f *sqlFunc) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: f.run}
}
