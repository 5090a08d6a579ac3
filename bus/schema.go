package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sluice-data/sluice"
)

// Table schemas live in the bus's state bucket so that every stage and every
// node sees the same record: enrich extends it before it publishes an event
// with a new column, the archiver reads it to type the Parquet columns.

func schemaKey(table string) string { return "schema." + table }

// Schema returns the schema record of table (empty when none yet) and its
// revision for SaveSchema.
func (b *Bus) Schema(ctx context.Context, table string) (sluice.Schema, uint64, error) {
	data, rev, err := b.GetState(ctx, schemaKey(table))
	if err != nil || data == nil {
		return sluice.Schema{Table: table}, rev, err
	}
	var s sluice.Schema
	if err := json.Unmarshal(data, &s); err != nil {
		return sluice.Schema{Table: table}, 0, fmt.Errorf("schema of %s is corrupt: %w", table, err)
	}
	return s, rev, nil
}

// SaveSchema writes s if the stored revision is still rev, returning the new
// revision; ErrConflict means another writer got there first.
func (b *Bus) SaveSchema(ctx context.Context, s sluice.Schema, rev uint64) (uint64, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return 0, err
	}
	return b.PutState(ctx, schemaKey(s.Table), data, rev)
}
