package warehouse

import "context"

// Engine is what answers the SQL API and `sluice sql`: the DuckDB warehouse
// (*Warehouse, the default) or PostgreSQL (*Postgres, warehouse.url:
// postgres://…). Both take the same statements for the lake's tables and
// answer in the same Result shape.
type Engine interface {
	// Query runs one read-only statement and returns at most maxRows rows
	// (0: all). A problem with the statement itself (syntax, unknown
	// table, a statement that would change something) is a *QueryError;
	// one that would change something also wraps ErrNotReadOnly. Any other
	// error is the engine's.
	Query(ctx context.Context, query string, maxRows int) (*Result, error)
}

// Versioned is an Engine that knows when what it reads has changed, so
// that answers can be cached: DuckDB, whose every write goes through
// Sluice. PostgreSQL is not one: its tables change behind Sluice's back.
type Versioned interface {
	Engine
	// DataVersion changes after every committed change that a query could
	// see; an answer computed at version v holds while it is v.
	DataVersion() uint64
}

var (
	_ Versioned = (*Warehouse)(nil)
	_ Engine    = (*Postgres)(nil)
)
