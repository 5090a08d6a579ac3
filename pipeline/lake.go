package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/lake/schema"
)

// A lake output ({lake: NAME}) writes rows to the stream NAME, which the
// lake archives as the table NAME. The archiver types a row's fields by the
// table's schema record on the bus (schema.NAME), as it does for events; the
// pipeline keeps that record (package lake/schema, shared with the jobs
// that extract into the lake): it adds a column for a new field, widens a
// BIGINT column that gets a fraction to DOUBLE, and sends a row whose field
// conflicts with its column's type to bad. The record is saved before the
// rows that need it are published.

// errSchemaConflict is a lake schema that another writer changed in a way
// this batch's rows do not fit: the pipeline starts again from its
// checkpoint with the new schema.
var errSchemaConflict = errors.New("lake schema changed incompatibly by another writer")

// lakeOut is the schema of one lake output's table.
type lakeOut struct {
	table, time string
	schema      sluice.Schema
	rev         uint64
	changed     bool
	loaded      bool
}

// lakeOf returns the schema of a lake output's table, read from the bus the
// first time.
func (p *Pipeline) lakeOf(ctx context.Context, table, timeCol string) (*lakeOut, error) {
	if l := p.lakes[table]; l != nil && l.loaded {
		return l, nil
	}
	if p.lakes == nil {
		p.lakes = map[string]*lakeOut{}
	}
	s, rev, err := p.o.Bus.Schema(ctx, table)
	if err != nil {
		return nil, err
	}
	s.Table = table
	l := &lakeOut{table: table, time: timeCol, schema: s, rev: rev, loaded: true}
	p.lakes[table] = l
	return l, nil
}

// conform fits a row to the table (lake/schema.Conform): it returns the
// row as it is written and records new and widened columns; a field that
// cannot fit is an error, and the schema is then left as it was.
func (l *lakeOut) conform(ev Event) (Event, error) {
	row, changed, err := schema.Conform(&l.schema, l.table, l.time, ev)
	if changed {
		l.changed = true
	}
	return row, err
}

// saveLakes saves the schemas the batch changed, merging with what other
// writers saved meanwhile (lake/schema.Save). A column whose types cannot
// be merged is errSchemaConflict.
func (p *Pipeline) saveLakes(ctx context.Context) error {
	for _, name := range slices.Sorted(maps.Keys(p.lakes)) {
		l := p.lakes[name]
		if !l.changed {
			continue
		}
		err := schema.Save(ctx, p.o.Bus, name, &l.schema, &l.rev)
		if errors.Is(err, schema.ErrIncompatible) {
			// Start over from the checkpoint with their schema.
			delete(p.lakes, name)
			return fmt.Errorf("lake table %s: %w: %v", name, errSchemaConflict, err)
		}
		if err != nil {
			return err
		}
		l.changed = false
	}
	return nil
}
