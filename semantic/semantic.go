// Package semantic is Sluice's semantic layer: LookML's model in plain YAML.
// Model files declare views (a table or a SQL query, with dimensions and
// measures) and explores (a view and the views joined to it); an explore
// query (fields, filters, sorts, a limit) compiles to one SQL statement for
// the active engine, DuckDB or PostgreSQL.
//
// Promises:
//   - Load reports every problem of every model file at once, each with
//     file:line:column and the field's path (views.orders.measures.revenue).
//   - A query's measures are never inflated by a join that fans out: a
//     measure of a view whose rows a join repeats is computed over one row
//     per primary key and group (compile.go explains how), exactly, in any
//     numeric type.
//   - Filter values reach the SQL only as literals of the field's type,
//     checked and quoted for the engine; names only as declared in the model.
//
// load.go reads the YAML, validate.go checks what it means, compile.go
// turns a Query into SQL, pivot.go a query with pivots into SQL for a pivot
// table, and describe.go lists the fields for the UI.
package semantic

import (
	"fmt"
	"strings"
)

// Model is every view and explore of a models directory, checked.
type Model struct {
	Views    map[string]*View
	Explores map[string]*Explore
	// Order lists the explores in file order (file names sorted).
	Order []string
}

// View is a table (or SQL query) with its dimensions and measures.
type View struct {
	Name        string
	Label       string       `yaml:"label"`
	Description string       `yaml:"description"`
	Table       string       `yaml:"table"` // a table name, schema.table allowed
	SQL         string       `yaml:"sql"`   // or a SELECT (a derived table)
	Dimensions  []*Dimension `yaml:"dimensions,keyed"`
	Measures    []*Measure   `yaml:"measures,keyed"`

	file   string
	fields map[string]*Field // every queryable field by name, time frames included
	order  []string          // field names in declaration order
	pk     *Dimension
}

// Dimension is a column (or expression) to group and filter by.
type Dimension struct {
	Name        string
	Type        string   `yaml:"type"` // string (default), number, time, yesno
	SQL         string   `yaml:"sql"`  // default ${TABLE}."<name>"
	Label       string   `yaml:"label"`
	Description string   `yaml:"description"`
	PrimaryKey  bool     `yaml:"primary_key"`
	Hidden      bool     `yaml:"hidden"`
	Timeframes  []string `yaml:"timeframes"` // time dimensions: default hour, day, week, month
}

// Measure is an aggregate over a view's rows, or (type number) an
// expression of other measures of the view.
type Measure struct {
	Name        string
	Type        string   `yaml:"type"`  // count, count_distinct, sum, avg, min, max, number
	SQL         string   `yaml:"sql"`   // what is aggregated; for number, the expression
	Field       string   `yaml:"field"` // or the dimension that is aggregated
	Label       string   `yaml:"label"`
	Description string   `yaml:"description"`
	Hidden      bool     `yaml:"hidden"`
	Filters     []Filter `yaml:"filters"` // only rows that pass them count
}

// Explore is a view to start from and the views that may be joined to it.
type Explore struct {
	Name        string
	View        string  `yaml:"view"` // default: the explore's name
	Label       string  `yaml:"label"`
	Description string  `yaml:"description"`
	Joins       []*Join `yaml:"joins,keyed"`

	file  string
	model string // the file's name without directory and extension
}

// Join joins a view to an explore. Its name is how queries and sql_on
// refer to it (the view's name unless it joins a view under another name).
type Join struct {
	Name         string
	View         string `yaml:"view"`         // default: the join's name
	SQLOn        string `yaml:"sql_on"`       // e.g. ${orders.user_id} = ${users.id}
	Relationship string `yaml:"relationship"` // many_to_one (default), one_to_many, one_to_one, many_to_many
	Type         string `yaml:"type"`         // left (default), inner, full

	parent string // the join (or the explore's view) sql_on attaches it to
	needs  []string
}

// Filter restricts a query (or a filtered measure) to rows whose field
// passes: {field: orders.status, op: "=", values: [complete]}. Value is
// shorthand for one value.
type Filter struct {
	Field  string `yaml:"field" json:"field"`
	Op     string `yaml:"op" json:"op"`
	Values []any  `yaml:"values" json:"values,omitempty"`
	Value  any    `yaml:"value" json:"value,omitempty"`
}

// Field is one queryable field of a view: a dimension, a time frame of a
// time dimension (created_at_month) or a measure.
type Field struct {
	View        string `json:"view"`
	Name        string `json:"name"`                  // view.field, as queries name it
	Kind        string `json:"kind"`                  // dimension or measure
	Type        string `json:"type"`                  // of its values: string, number, time, yesno
	Aggregate   string `json:"aggregate,omitempty"`   // a measure's type: count, sum, … number
	Label       string `json:"label"`                 // for people
	Description string `json:"description,omitempty"` //
	Timeframe   string `json:"timeframe,omitempty"`   // hour, day, week, month, quarter, year
	Group       string `json:"group,omitempty"`       // a time frame's dimension
	Hidden      bool   `json:"hidden,omitempty"`

	dim     *Dimension
	measure *Measure
}

// Error is one problem in a model file: where, which field, what.
type Error struct {
	File    string
	Line    int
	Column  int
	Path    string // e.g. views.orders.measures.revenue
	Message string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem Load found, in file order.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// The values model files may use.
var (
	dimensionTypes = []string{"string", "number", "time", "yesno"}
	measureTypes   = []string{"count", "count_distinct", "sum", "avg", "min", "max", "number"}
	timeframes     = []string{"hour", "day", "week", "month", "quarter", "year"}
	relationships  = []string{"many_to_one", "one_to_many", "one_to_one", "many_to_many"}
	joinTypes      = []string{"left", "inner", "full"}
	// DefaultTimeframes are a time dimension's frames when it names none.
	DefaultTimeframes = []string{"hour", "day", "week", "month"}
)
