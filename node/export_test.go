package node

import (
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/warehouse"
)

// Bus is the node's bus, for tests that play a part of sluice on it.
func (n *Node) Bus() *bus.Bus { return n.bus }

// DuckDB is the node's DuckDB warehouse, for tests that compare it with
// PostgreSQL when that is the engine the SQL API answers from.
func (n *Node) DuckDB() *warehouse.Warehouse { return n.wh }
