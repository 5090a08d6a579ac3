// Package schema keeps the schema record of a lake table that sluice's own
// stages write rows into (a pipeline's lake output, an extract job): the
// record (schema.<table> in the bus's state bucket) is what the archiver
// types the rows' fields by. A writer fits each row to the record (Conform),
// adding a column for a new field and widening a BIGINT column that gets a
// fraction to DOUBLE, and saves the record (Save) before it publishes the
// rows that need it. A column's type never changes otherwise: a row whose
// field conflicts with its column is an error for the writer to route.
package schema

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

// ErrIncompatible is a record another writer changed in a way that cannot
// be merged with this writer's (a column of two types).
var ErrIncompatible = errors.New("lake schema changed incompatibly by another writer")

// timeRe is a time as the stages write it: the lake types such a text as
// a TIMESTAMP when its column is new.
var timeRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$`)

// TypeOf is the column type of a value (false: null, which fits any).
func TypeOf(v any) (sluice.ColumnType, bool) {
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

// AsTime reads a time value: RFC 3339 text, a time, or epoch milliseconds.
func AsTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x, true
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	case int64:
		return time.UnixMilli(x).UTC(), true
	case float64:
		return time.UnixMicro(int64(x * 1000)).UTC(), true
	}
	return time.Time{}, false
}

// Conform fits a row to table's schema s, whose rows are partitioned by
// the time column timeCol: it returns the row as it is written (times as
// times, names spelled as their columns) and adds new and widened columns
// to s, telling whether it changed it. A field that cannot fit is an error,
// and s is then left as it was.
func Conform(s *sluice.Schema, table, timeCol string, ev map[string]any) (map[string]any, bool, error) {
	row := make(map[string]any, len(ev))
	t, ok := AsTime(ev[timeCol])
	if !ok {
		return nil, false, fmt.Errorf("lake table %s is partitioned by %s, and this row's %s is %s", table, timeCol, timeCol, Describe(ev[timeCol]))
	}
	row[timeCol] = t
	type change struct {
		i   int
		typ sluice.ColumnType
	}
	var widen []change
	var add []sluice.Column
	for _, k := range slices.Sorted(maps.Keys(ev)) {
		v := ev[k]
		if k == timeCol {
			k = ColumnName(*s, k)
			row[k] = t
			if _, ok := s.Lookup(k); !ok {
				add = append(add, sluice.Column{Name: k, Type: sluice.TypeTimestamp, Added: time.Now().UTC()})
			}
			continue
		}
		typ, ok := TypeOf(v)
		name := ColumnName(*s, k)
		i := slices.IndexFunc(s.Columns, func(c sluice.Column) bool { return c.Name == name })
		if !ok {
			if i >= 0 {
				row[name] = nil
			}
			continue // a null adds no column
		}
		if i < 0 {
			if slices.ContainsFunc(add, func(c sluice.Column) bool { return strings.EqualFold(c.Name, name) }) {
				return nil, false, fmt.Errorf("fields %q and another spelled alike differently: lake table %s would get two columns of one name", k, table)
			}
			add = append(add, sluice.Column{Name: name, Type: typ, Added: time.Now().UTC()})
			row[name] = v
			continue
		}
		col := s.Columns[i]
		switch {
		case col.Type == typ, col.Type == sluice.TypeJSON:
		case col.Type == sluice.TypeDouble && typ == sluice.TypeBigint:
		case col.Type == sluice.TypeBigint && typ == sluice.TypeDouble:
			widen = append(widen, change{i, sluice.TypeDouble})
		case col.Type == sluice.TypeVarchar && typ == sluice.TypeTimestamp:
			// A text that looks like a time, in a text column.
		case col.Type == sluice.TypeTimestamp && typ == sluice.TypeVarchar:
			tv, ok := AsTime(v)
			if !ok {
				return nil, false, fmt.Errorf("field %q is TIMESTAMP in lake table %s, but this row has %s", name, table, Describe(v))
			}
			v = tv
		default:
			return nil, false, fmt.Errorf("field %q is %s in lake table %s, but this row has %s; send a %s or use a new field name", name, col.Type, table, Describe(v), col.Type)
		}
		row[name] = v
	}
	if len(add) == 0 && len(widen) == 0 {
		return row, false, nil
	}
	for _, w := range widen {
		s.Columns[w.i].Type = w.typ
	}
	s.Columns = append(s.Columns, add...)
	return row, true, nil
}

// ColumnName is a field's column: the spelling the table has for it (SQL
// names are case-insensitive), else the field's own.
func ColumnName(s sluice.Schema, k string) string {
	for _, c := range s.Columns {
		if c.Name == k {
			return k
		}
	}
	for _, c := range s.Columns {
		if strings.EqualFold(c.Name, k) {
			return c.Name
		}
	}
	return k
}

// Save saves s (read at revision *rev) as table's record, merging with
// what other writers saved meanwhile: columns they added are kept, and one
// both widened is the wider. *s and *rev become what was saved. A column
// whose types cannot be merged is ErrIncompatible.
func Save(ctx context.Context, b *bus.Bus, table string, s *sluice.Schema, rev *uint64) error {
	for {
		s.Table = table
		nrev, err := b.SaveSchema(ctx, *s, *rev)
		if err == nil {
			*rev = nrev
			return nil
		}
		if !errors.Is(err, bus.ErrConflict) {
			return err
		}
		theirs, trev, err := b.Schema(ctx, table)
		if err != nil {
			return err
		}
		merged, err := Merge(theirs, *s)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrIncompatible, err)
		}
		*s, *rev = merged, trev
	}
}

// Merge adds ours to theirs: new columns, and BIGINT widened to DOUBLE;
// any other difference of type is an error.
func Merge(theirs, ours sluice.Schema) (sluice.Schema, error) {
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

// Describe names a value's type and shows it, for errors.
func Describe(v any) string {
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
	typ, _ := TypeOf(v)
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
