package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// A lake output ({lake: NAME}) writes rows to the stream NAME, which the
// lake archives as the table NAME. The archiver types a row's fields by the
// table's schema record on the bus (schema.NAME), as it does for events; the
// pipeline keeps that record: it adds a column for a new field, widens a
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

// timeRe is a time as the stages write it: the lake types such a text as
// a TIMESTAMP when its column is new.
var timeRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$`)

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

// typeOf is the column type of a value (false: null, which fits any).
func typeOf(v any) (sluice.ColumnType, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		if timeRe.MatchString(x) {
			return sluice.TypeTimestamp, true
		}
		return sluice.TypeVarchar, true
	case time.Time:
		return sluice.TypeTimestamp, true
	case bool:
		return sluice.TypeBoolean, true
	case float32, float64:
		return sluice.TypeDouble, true
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return sluice.TypeBigint, true
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.Struct:
		return sluice.TypeJSON, true
	}
	return sluice.TypeVarchar, true
}

// conform fits a row to the table: it returns the row as it is written
// (times as times, names spelled as their columns) and records new and
// widened columns; a field that cannot fit is an error, and the schema
// is then left as it was.
func (l *lakeOut) conform(ev Event) (Event, error) {
	row := make(Event, len(ev))
	t, ok := asTime(ev[l.time])
	if !ok {
		return nil, fmt.Errorf("lake table %s is partitioned by %s, and this row's %s is %s", l.table, l.time, l.time, describeValue(ev[l.time]))
	}
	row[l.time] = t
	type change struct {
		i   int
		typ sluice.ColumnType
	}
	var widen []change
	var add []sluice.Column
	for _, k := range slices.Sorted(maps.Keys(ev)) {
		v := ev[k]
		if k == l.time {
			k = l.columnName(k)
			row[k] = t
			if _, ok := l.schema.Lookup(k); !ok {
				add = append(add, sluice.Column{Name: k, Type: sluice.TypeTimestamp, Added: time.Now().UTC()})
			}
			continue
		}
		typ, ok := typeOf(v)
		name := l.columnName(k)
		i := slices.IndexFunc(l.schema.Columns, func(c sluice.Column) bool { return c.Name == name })
		if !ok {
			if i >= 0 {
				row[name] = nil
			}
			continue // a null adds no column
		}
		if i < 0 {
			if slices.ContainsFunc(add, func(c sluice.Column) bool { return strings.EqualFold(c.Name, name) }) {
				return nil, fmt.Errorf("fields %q and another spelled alike differently: lake table %s would get two columns of one name", k, l.table)
			}
			add = append(add, sluice.Column{Name: name, Type: typ, Added: time.Now().UTC()})
			row[name] = v
			continue
		}
		col := l.schema.Columns[i]
		switch {
		case col.Type == typ, col.Type == sluice.TypeJSON:
		case col.Type == sluice.TypeDouble && typ == sluice.TypeBigint:
		case col.Type == sluice.TypeBigint && typ == sluice.TypeDouble:
			widen = append(widen, change{i, sluice.TypeDouble})
		case col.Type == sluice.TypeVarchar && typ == sluice.TypeTimestamp:
			// A text that looks like a time, in a text column.
		case col.Type == sluice.TypeTimestamp && typ == sluice.TypeVarchar:
			tv, ok := asTime(v)
			if !ok {
				return nil, fmt.Errorf("field %q is TIMESTAMP in lake table %s, but this row has %s", name, l.table, describeValue(v))
			}
			v = tv
		default:
			return nil, fmt.Errorf("field %q is %s in lake table %s, but this row has %s; send a %s or use a new field name", name, col.Type, l.table, describeValue(v), col.Type)
		}
		row[name] = v
	}
	if len(add) > 0 || len(widen) > 0 {
		for _, w := range widen {
			l.schema.Columns[w.i].Type = w.typ
		}
		l.schema.Columns = append(l.schema.Columns, add...)
		l.changed = true
	}
	return row, nil
}

// columnName is a field's column: the spelling the table has for it (SQL
// names are case-insensitive), else the field's own.
func (l *lakeOut) columnName(k string) string {
	for _, c := range l.schema.Columns {
		if c.Name == k {
			return k
		}
	}
	for _, c := range l.schema.Columns {
		if strings.EqualFold(c.Name, k) {
			return c.Name
		}
	}
	return k
}

// saveLakes saves the schemas the batch changed, merging with what other
// writers saved meanwhile: columns they added are kept, and one both
// widened is the wider. A column whose types cannot be merged is
// errSchemaConflict.
func (p *Pipeline) saveLakes(ctx context.Context) error {
	for _, name := range slices.Sorted(maps.Keys(p.lakes)) {
		l := p.lakes[name]
		for l.changed {
			rev, err := p.o.Bus.SaveSchema(ctx, l.schema, l.rev)
			if err == nil {
				l.rev, l.changed = rev, false
				break
			}
			if !errors.Is(err, bus.ErrConflict) {
				return err
			}
			theirs, trev, err := p.o.Bus.Schema(ctx, name)
			if err != nil {
				return err
			}
			merged, err := mergeSchema(theirs, l.schema)
			if err != nil {
				// Start over from the checkpoint with their schema.
				delete(p.lakes, name)
				return fmt.Errorf("lake table %s: %w: %v", name, errSchemaConflict, err)
			}
			merged.Table = name
			l.schema, l.rev = merged, trev
		}
	}
	return nil
}

// mergeSchema adds ours to theirs.
func mergeSchema(theirs, ours sluice.Schema) (sluice.Schema, error) {
	out := sluice.Schema{Table: theirs.Table, Columns: slices.Clone(theirs.Columns)}
	for _, c := range ours.Columns {
		i := slices.IndexFunc(out.Columns, func(t sluice.Column) bool { return strings.EqualFold(t.Name, c.Name) })
		switch {
		case i < 0:
			out.Columns = append(out.Columns, c)
		case out.Columns[i].Type == c.Type:
		case out.Columns[i].Type == sluice.TypeBigint && c.Type == sluice.TypeDouble:
			out.Columns[i].Type = sluice.TypeDouble
		case out.Columns[i].Type == sluice.TypeDouble && c.Type == sluice.TypeBigint:
		default:
			return out, fmt.Errorf("column %s is %s there and %s here", c.Name, out.Columns[i].Type, c.Type)
		}
	}
	return out, nil
}

// describeValue names a value's type and shows it, for errors.
func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "missing (null)"
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("the text %q", x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	}
	typ, _ := typeOf(v)
	switch typ {
	case sluice.TypeBigint:
		return fmt.Sprintf("the integer %v", v)
	case sluice.TypeDouble:
		return fmt.Sprintf("the number %v", v)
	case sluice.TypeJSON:
		return "an object or list"
	}
	return fmt.Sprintf("%v", v)
}
