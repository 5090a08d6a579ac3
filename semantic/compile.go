package semantic

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Fan-out. A join repeats the rows of the views on its "one" side: with
// orders one_to_many order_items, each order appears once per item, and a
// plain SUM(orders.amount) would count it that many times. A view whose rows
// the query's joins repeat (Explore.fanningJoin) has its sums, averages and
// counts computed over one row per primary key and group of the query, in
// one of two ways, both over a CTE of the joined rows:
//
//   - One repeated view, and measures of other views that add up (sum,
//     count, min, max): two steps (splittable). First group by the query's
//     dimensions and the repeated view's key, taking that view's value once
//     (MIN of a value that is the same on every repeated row) and the other
//     views' partial sums and counts; then group by the dimensions.
//   - Otherwise: ROW_NUMBER() OVER (PARTITION BY <dimensions>, <key>) numbers
//     each repeated view's rows, and its measures take only row 1.
//
// A view's measures see only its own columns, so the row chosen does not
// matter. Both are exact in every type (DECIMAL, HUGEINT, NUMERIC, DOUBLE:
// the same values are summed as in a query without the join) and need no
// hashing, unlike Looker's symmetric aggregates; count_distinct, min and
// max do not mind repeats. A query without repeated rows that its measures
// mind is one plain SELECT … GROUP BY.

// Dialect is the SQL engine a query is compiled for.
type Dialect string

// The engines.
const (
	DuckDB   Dialect = "duckdb"
	Postgres Dialect = "postgres"
)

// Limits of a query's rows.
const (
	DefaultLimit = 500
	MaxLimit     = 50000
)

// Query is an explore query: the fields to show, grouped by its dimensions.
type Query struct {
	Explore string   `json:"explore"`
	Fields  []string `json:"fields"`            // view.field, dimensions and measures
	Filters []Filter `json:"filters,omitempty"` // on dimensions (WHERE) or measures (HAVING)
	Sorts   []Sort   `json:"sorts,omitempty"`   // default: the first measure, descending
	Limit   int      `json:"limit,omitempty"`   // default DefaultLimit
	// Pivots are selected dimensions whose values become columns: the
	// answer is a pivot table (pivot.go).
	Pivots []string `json:"pivots,omitempty"`
}

// Sort orders by a selected field.
type Sort struct {
	Field string `json:"field"`
	Desc  bool   `json:"desc,omitempty"`
}

// Column describes a column of a compiled query's answer.
type Column struct {
	Name  string `json:"name"` // view.field
	Label string `json:"label"`
	Kind  string `json:"kind"` // dimension or measure
	Type  string `json:"type"` // string, number, time, yesno
}

// Compiled is a query as SQL, and what its columns are.
type Compiled struct {
	SQL     string   `json:"sql"`
	Columns []Column `json:"columns"`
	Limit   int      `json:"limit"` // the rows the SQL answers at most
	// Pivot is set when the query pivots: the SQL's rows are then the
	// cells and the rows' totals, which Pivoted turns into a PivotTable.
	Pivot *Pivot `json:"pivot,omitempty"`
	// Window is the shortest span of the query's "in the past" filters
	// (the query's own and its measures'), 0 without one: how far the
	// answer is from a fixed window, a cache's measure of staleness.
	Window time.Duration `json:"-"`
}

// QueryError is a problem with a query: which part (fields[2],
// filters[0].values) and what.
type QueryError struct {
	Path    string
	Message string
}

func (e *QueryError) Error() string { return e.Path + ": " + e.Message }

func qerr(path, format string, args ...any) error {
	return &QueryError{Path: path, Message: fmt.Sprintf(format, args...)}
}

// ref is a field of a query, in the explore's view or one of its joins.
type ref struct {
	alias string
	view  *View
	field *Field
}

// compiler holds one Compile call's state.
type compiler struct {
	e       *Explore
	d       Dialect
	aliases map[string]*View
	joins   map[string]*Join
	clock   *clock
}

// clock is the now "in the past" filters count back from, and the latest
// start of one (Compiled.Window).
type clock struct {
	now, latest time.Time
}

func (m *Model) compiler(e *Explore, d Dialect, now time.Time) *compiler {
	c := &compiler{e: e, d: d, clock: &clock{now: now}, aliases: map[string]*View{e.View: m.Views[e.View]}, joins: map[string]*Join{}}
	for _, j := range e.Joins {
		c.aliases[j.Name] = m.Views[j.View]
		c.joins[j.Name] = j
	}
	return c
}

// Compile turns q into one SELECT for dialect d.
func (m *Model) Compile(q Query, d Dialect) (*Compiled, error) {
	return m.CompileAt(q, d, time.Now())
}

// CompileAt is Compile with "in the past" filters counted back from now
// instead of the clock. Two compiles of a query at the same now give the
// same SQL exactly as long as the model is the same, which makes the SQL
// at a fixed now a cache key.
func (m *Model) CompileAt(q Query, d Dialect, now time.Time) (*Compiled, error) {
	if len(q.Pivots) > 0 {
		return m.compilePivot(q, d, now)
	}
	out, order, err := m.compile(q, d, now)
	if err != nil {
		return nil, err
	}
	out.SQL += " ORDER BY " + strings.Join(order, ", ") + " LIMIT " + strconv.Itoa(out.Limit)
	return out, nil
}

// compile turns q into a SELECT without ORDER BY and LIMIT, and returns
// the ORDER BY's terms.
func (m *Model) compile(q Query, d Dialect, now time.Time) (*Compiled, []string, error) {
	e, ok := m.Explores[q.Explore]
	if !ok {
		return nil, nil, qerr("explore", "no explore %q%s", q.Explore, didYouMean(q.Explore, m.Order))
	}
	c := m.compiler(e, d, now)
	if len(q.Fields) == 0 {
		return nil, nil, qerr("fields", "choose at least one field of %s", strings.Join(c.aliasNames(), ", "))
	}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return nil, nil, qerr("limit", "%d is not a limit from 1 to %d", limit, MaxLimit)
	}

	var dims, measures []ref
	out := &Compiled{Limit: limit}
	selected := map[string]int{}
	for i, name := range q.Fields {
		r, err := c.resolve(fmt.Sprintf("fields[%d]", i), name)
		if err != nil {
			return nil, nil, err
		}
		if _, dup := selected[name]; dup {
			return nil, nil, qerr(fmt.Sprintf("fields[%d]", i), "%s is selected twice", name)
		}
		selected[name] = 0 // its column is numbered below
		if r.field.Kind == "dimension" {
			dims = append(dims, r)
		} else {
			measures = append(measures, r)
		}
	}
	// Dimensions first, then measures: the columns of the answer.
	for i, r := range append(slices.Clone(dims), measures...) {
		name := r.alias + "." + r.field.Name
		selected[name] = i + 1
		out.Columns = append(out.Columns, Column{Name: name, Label: c.label(r), Kind: r.field.Kind, Type: r.field.Type})
	}
	var where, having []string
	var havingRefs []ref
	needed := map[string]bool{}
	for _, r := range append(slices.Clone(dims), measures...) {
		needed[r.alias] = true
	}
	type measureFilter struct {
		r ref
		f Filter
		p string
	}
	var mfilters []measureFilter
	for i, f := range q.Filters {
		p := fmt.Sprintf("filters[%d]", i)
		r, err := c.resolve(p+".field", f.Field)
		if err != nil {
			return nil, nil, err
		}
		needed[r.alias] = true
		if r.field.Kind == "measure" {
			mfilters = append(mfilters, measureFilter{r, f, p})
			havingRefs = append(havingRefs, r)
			continue
		}
		s, err := filterSQL(d, r.field, c.dimSQL(r.alias, r.view, r.field), f, c.clock)
		if err != nil {
			return nil, nil, &QueryError{Path: p, Message: err.Error()}
		}
		where = append(where, s)
	}
	var order []string
	for i, s := range q.Sorts {
		n, ok := selected[s.Field]
		if !ok {
			return nil, nil, qerr(fmt.Sprintf("sorts[%d].field", i), "%q is not among the selected fields: sort by one of %s", s.Field, strings.Join(q.Fields, ", "))
		}
		dir := "ASC"
		if s.Desc {
			dir = "DESC"
		}
		order = append(order, fmt.Sprintf("%d %s NULLS LAST", n, dir))
	}
	if len(order) == 0 {
		if len(measures) > 0 {
			order = append(order, fmt.Sprintf("%d DESC NULLS LAST", len(dims)+1))
		} else {
			order = append(order, "1 ASC NULLS LAST")
		}
	}

	// The aggregates the measures are made of (a number measure's parts,
	// which may be other views').
	var parts []ref
	for i, r := range append(slices.Clone(measures), havingRefs...) {
		ps, err := c.parts(r)
		if err != nil {
			p := "fields"
			if i >= len(measures) {
				p = mfilters[i-len(measures)].p + ".field"
			}
			return nil, nil, &QueryError{Path: p, Message: err.Error()}
		}
		for _, pr := range ps {
			needed[pr.alias] = true
		}
		parts = append(parts, ps...)
	}
	joins := c.required(needed)
	// The views whose rows the joins repeat, and whose measures in this
	// query care.
	fanned := map[string]bool{}
	for _, r := range parts {
		if !needsKey(r.field.measure.Type) {
			continue
		}
		if c.e.fanningJoin(r.alias, joins) != nil {
			if r.view.pk == nil {
				return nil, nil, qerr("fields", "the joins repeat the rows of %s and view %s has no primary key to count each row once: add primary_key: true to its model", r.alias, r.view.Name)
			}
			fanned[r.alias] = true
		}
	}

	from := c.from(joins)
	var b strings.Builder
	agg := &aggregator{c: c, inline: len(fanned) == 0, fanned: fanned}
	if len(fanned) == 1 {
		for alias := range fanned {
			if c.splittable(alias, parts) {
				agg.split = alias
			}
		}
	}
	if agg.inline {
		b.WriteString("SELECT ")
		for i, r := range dims {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c.dimSQL(r.alias, r.view, r.field) + " AS " + quoteIdent(out.Columns[i].Name))
		}
	} else {
		// One row per joined row, with the dimensions, what the measures
		// aggregate, and each repeated view's row number.
		var dimExprs []string
		b.WriteString("WITH " + quoteIdent("rows") + " AS (SELECT ")
		var cols []string
		for i, r := range dims {
			expr := c.dimSQL(r.alias, r.view, r.field)
			dimExprs = append(dimExprs, expr)
			cols = append(cols, expr+" AS "+quoteIdent(fmt.Sprintf("d%d", i)))
		}
		var partials []string
		agg.cols, agg.partials = &cols, &partials
		for _, r := range append(slices.Clone(measures), havingRefs...) {
			agg.measure(r.alias, r.view, r.field.measure)
		}
		if agg.split != "" {
			v := c.aliases[agg.split]
			cols = append(cols, c.dimSQL(agg.split, v, v.fields[v.pk.Name])+" AS "+quoteIdent("k"))
		} else {
			for _, alias := range sortedKeys(fanned) {
				v := c.aliases[alias]
				part := append(slices.Clone(dimExprs), c.dimSQL(alias, v, v.fields[v.pk.Name]))
				cols = append(cols, "ROW_NUMBER() OVER (PARTITION BY "+strings.Join(part, ", ")+") AS "+quoteIdent("first_"+alias))
			}
		}
		b.WriteString(strings.Join(cols, ", "))
		b.WriteString(" FROM " + from)
		if len(where) > 0 {
			b.WriteString(" WHERE " + strings.Join(where, " AND "))
		}
		if agg.split != "" {
			// One row per group and key of the repeated view.
			keys := []string{quoteIdent("k")}
			for i := range dims {
				keys = append(keys, quoteIdent(fmt.Sprintf("d%d", i)))
			}
			b.WriteString("), " + quoteIdent("groups") + " AS (SELECT " + strings.Join(append(keys[1:], partials...), ", ") +
				" FROM " + quoteIdent("rows") + " GROUP BY " + strings.Join(keys, ", "))
		}
		b.WriteString(") SELECT ")
		for i := range dims {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteIdent(fmt.Sprintf("d%d", i)) + " AS " + quoteIdent(out.Columns[i].Name))
		}
	}
	for i, r := range measures {
		if i > 0 || len(dims) > 0 {
			b.WriteString(", ")
		}
		b.WriteString(agg.measure(r.alias, r.view, r.field.measure) + " AS " + quoteIdent(out.Columns[len(dims)+i].Name))
	}
	for _, mf := range mfilters {
		s, err := filterSQL(d, mf.r.field, agg.measure(mf.r.alias, mf.r.view, mf.r.field.measure), mf.f, c.clock)
		if err != nil {
			return nil, nil, &QueryError{Path: mf.p, Message: err.Error()}
		}
		having = append(having, s)
	}
	if agg.inline {
		b.WriteString(" FROM " + from)
		if len(where) > 0 {
			b.WriteString(" WHERE " + strings.Join(where, " AND "))
		}
	} else if agg.split != "" {
		b.WriteString(" FROM " + quoteIdent("groups"))
	} else {
		b.WriteString(" FROM " + quoteIdent("rows"))
	}
	if len(dims) > 0 {
		b.WriteString(" GROUP BY ")
		for i := range dims {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(i + 1))
		}
	}
	if len(having) > 0 {
		b.WriteString(" HAVING " + strings.Join(having, " AND "))
	}
	out.SQL = b.String()
	if !c.clock.latest.IsZero() {
		out.Window = now.Sub(c.clock.latest)
	}
	return out, order, nil
}

// resolve finds a field named view.field in the explore.
func (c *compiler) resolve(path, name string) (ref, error) {
	alias, field, ok := strings.Cut(name, ".")
	v := c.aliases[alias]
	if !ok || v == nil {
		return ref{}, qerr(path, "unknown field %q in explore %s: name fields view.field, with view one of %s%s", name, c.e.Name, strings.Join(c.aliasNames(), ", "), c.suggestField(name))
	}
	f := v.fields[field]
	if f == nil {
		return ref{}, qerr(path, "unknown field %q in explore %s%s", name, c.e.Name, c.suggestField(name))
	}
	return ref{alias: alias, view: v, field: f}, nil
}

func (c *compiler) aliasNames() []string {
	out := []string{c.e.View}
	for _, j := range c.e.Joins {
		out = append(out, j.Name)
	}
	return out
}

func (c *compiler) suggestField(name string) string {
	var all []string
	for _, a := range c.aliasNames() {
		for _, f := range c.aliases[a].order {
			all = append(all, a+"."+f)
		}
	}
	return didYouMean(name, all)
}

func (c *compiler) label(r ref) string {
	l := r.view.Label
	if l == "" {
		l = title(r.alias)
	}
	return l + " " + r.field.Label
}

// required lists the joins the aliases need (those they hang from too), in
// the explore's order.
func (c *compiler) required(needed map[string]bool) []*Join {
	for changed := true; changed; {
		changed = false
		for a := range needed {
			if j := c.joins[a]; j != nil {
				for _, n := range j.needs {
					if !needed[n] {
						needed[n], changed = true, true
					}
				}
			}
		}
	}
	var out []*Join
	for _, j := range c.e.Joins {
		if needed[j.Name] {
			out = append(out, j)
		}
	}
	return out
}

// parts lists the aggregates measure r is made of: itself, or a number
// measure's parts, of its view (${name}) or of another (${view.name}).
func (c *compiler) parts(r ref) ([]ref, error) {
	m := r.field.measure
	if m.Type != "number" {
		return []ref{r}, nil
	}
	var out []ref
	rs, _ := refs(m.SQL)
	for _, name := range rs {
		sub, err := c.sub(r, name)
		if err != nil {
			return nil, err
		}
		ps, err := c.parts(sub)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

// sub is the measure a number measure r refers to as name.
func (c *compiler) sub(r ref, name string) (ref, error) {
	view, field, ok := strings.Cut(name, ".")
	if !ok {
		return ref{alias: r.alias, view: r.view, field: r.view.fields[name]}, nil
	}
	var found []string
	for _, a := range c.aliasNames() {
		if c.aliases[a].Name == view {
			found = append(found, a)
		}
	}
	switch {
	case slices.Contains(found, view):
		found = []string{view}
	case len(found) == 0:
		return ref{}, fmt.Errorf("%s.%s uses ${%s}, and explore %s does not join view %s", r.alias, r.field.Name, name, c.e.Name, view)
	case len(found) > 1:
		return ref{}, fmt.Errorf("%s.%s uses ${%s}, and explore %s joins view %s as %s: name one join %s", r.alias, r.field.Name, name, c.e.Name, view, strings.Join(found, " and "), view)
	}
	v := c.aliases[found[0]]
	return ref{alias: found[0], view: v, field: v.fields[field]}, nil
}

// from is the FROM clause: the explore's view and the joins.
func (c *compiler) from(joins []*Join) string {
	var b strings.Builder
	b.WriteString(c.source(c.aliases[c.e.View]) + " AS " + quoteIdent(c.e.View))
	for _, j := range joins {
		fmt.Fprintf(&b, " %s JOIN %s AS %s ON %s", strings.ToUpper(j.Type), c.source(c.aliases[j.Name]), quoteIdent(j.Name), c.expand(j.SQLOn, func(r string) string {
			alias, field, _ := strings.Cut(r, ".")
			v := c.aliases[alias]
			return c.dimSQL(alias, v, v.fields[field])
		}))
	}
	return b.String()
}

func (c *compiler) source(v *View) string {
	if v.Table != "" {
		parts := strings.Split(v.Table, ".")
		for i, p := range parts {
			parts[i] = quoteIdent(p)
		}
		return strings.Join(parts, ".")
	}
	return "(" + strings.TrimRight(strings.TrimSpace(v.SQL), ";") + ")"
}

// expand replaces the ${…} references of a template.
func (c *compiler) expand(tmpl string, fn func(ref string) string) string {
	return refRe.ReplaceAllStringFunc(tmpl, func(m string) string {
		return fn(strings.TrimSpace(m[2 : len(m)-1]))
	})
}

// dimSQL is the SQL of a dimension (or time frame) of view v joined as alias.
func (c *compiler) dimSQL(alias string, v *View, f *Field) string {
	s := c.rawDimSQL(alias, v, f.dim)
	if f.Timeframe != "" {
		s = "date_trunc('" + f.Timeframe + "', " + s + ")"
	}
	return s
}

func (c *compiler) rawDimSQL(alias string, v *View, d *Dimension) string {
	if d.SQL == "" {
		return quoteIdent(alias) + "." + quoteIdent(d.Name)
	}
	return "(" + c.expand(d.SQL, func(r string) string {
		if r == "TABLE" {
			return quoteIdent(alias)
		}
		return c.rawDimSQL(alias, v, v.fields[r].dim)
	}) + ")"
}

// aggregator writes measures: inline (a plain GROUP BY) or over the rows
// CTE, where what a measure aggregates is a column of its own; with split,
// in two steps (splittable).
type aggregator struct {
	c      *compiler
	inline bool
	fanned map[string]bool
	cols   *[]string         // the CTE's columns, while it is written
	inputs map[string]string // the CTE's column of a measure's input
	// split is the one repeated view, when the measures allow two steps.
	split     string
	partials  *[]string         // the groups CTE's columns
	partialOf map[string]string // the groups CTE's column of a measure
}

// splittable tells whether the measures' parts can be aggregated in two
// steps, by group and key of the one repeated view alias, then by group:
// alias's own measures take their row's value in the first step (it is
// the same on every repeated row), other views' sums, counts, minimums and
// maximums add up their partial results. Averages and distinct counts of
// other views do not split; those queries number rows instead. Two steps
// are hash aggregations, cheaper than ROW_NUMBER()'s sort.
func (c *compiler) splittable(alias string, parts []ref) bool {
	for _, r := range parts {
		t := r.field.measure.Type
		if r.alias != alias && t != "sum" && t != "count" && t != "min" && t != "max" {
			return false
		}
	}
	return true
}

// measure is the aggregate expression of measure m of view v as alias.
func (a *aggregator) measure(alias string, v *View, m *Measure) string {
	c := a.c
	if m.Type == "number" {
		return "(" + c.expand(m.SQL, func(name string) string {
			sub, _ := c.sub(ref{alias: alias, view: v, field: v.fields[m.Name]}, name) // checked by parts
			return a.measure(sub.alias, sub.view, sub.field.measure)
		}) + ")"
	}
	var input string
	switch {
	case m.Field != "":
		input = c.dimSQL(alias, v, v.fields[m.Field])
	case m.SQL != "":
		input = "(" + c.expand(m.SQL, func(r string) string {
			if r == "TABLE" {
				return quoteIdent(alias)
			}
			return c.rawDimSQL(alias, v, v.fields[r].dim)
		}) + ")"
	case v.pk != nil:
		input = c.dimSQL(alias, v, v.fields[v.pk.Name])
	default:
		input = "1"
	}
	if len(m.Filters) > 0 {
		var conds []string
		for _, f := range m.Filters {
			fd := v.fields[f.Field]
			s, _ := filterSQL(c.d, fd, c.dimSQL(alias, v, fd), f, c.clock) // checked by Load
			conds = append(conds, s)
		}
		input = "CASE WHEN " + strings.Join(conds, " AND ") + " THEN " + input + " END"
	}
	first := ""
	if a.split != "" {
		return a.twoSteps(alias, m, a.input(alias, m, input))
	}
	if !a.inline {
		input = a.input(alias, m, input)
		if a.fanned[alias] && needsKey(m.Type) {
			first = quoteIdent("first_" + alias)
		}
	}
	if first != "" {
		input = "CASE WHEN " + first + " = 1 THEN " + input + " END"
	}
	switch m.Type {
	case "count":
		if input == "1" {
			return "COUNT(*)"
		}
		return "COUNT(" + input + ")"
	case "count_distinct":
		return "COUNT(DISTINCT " + input + ")"
	default:
		return strings.ToUpper(m.Type) + "(" + input + ")"
	}
}

// input is the rows CTE's column of what measure m of alias aggregates.
func (a *aggregator) input(alias string, m *Measure, expr string) string {
	key := alias + "." + m.Name
	if a.inputs == nil {
		a.inputs = map[string]string{}
	}
	col, ok := a.inputs[key]
	if !ok {
		col = quoteIdent(fmt.Sprintf("m%d", len(a.inputs)))
		a.inputs[key] = col
		*a.cols = append(*a.cols, expr+" AS "+col)
	}
	return col
}

// twoSteps aggregates input in the groups CTE and then by group.
func (a *aggregator) twoSteps(alias string, m *Measure, input string) string {
	first, then := "MIN", map[string]string{"count": "COUNT", "sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX", "count_distinct": "COUNT(DISTINCT"}[m.Type]
	switch {
	case alias == a.split && m.Type == "max":
		first = "MAX"
	case alias != a.split:
		// Partial results of a view whose rows are not repeated.
		first = strings.ToUpper(m.Type)
		if m.Type == "count" {
			then = "SUM"
		}
	}
	key := alias + "." + m.Name
	if a.partialOf == nil {
		a.partialOf = map[string]string{}
	}
	col, ok := a.partialOf[key]
	if !ok {
		col = quoteIdent(fmt.Sprintf("p%d", len(a.partialOf)))
		a.partialOf[key] = col
		*a.partials = append(*a.partials, first+"("+input+") AS "+col)
	}
	if m.Type == "count_distinct" {
		return "COUNT(DISTINCT " + col + ")"
	}
	return then + "(" + col + ")"
}

// The filter operators, and how many values each takes (-1: one or more).
var operators = map[string]int{
	"=": 1, "!=": 1, ">": 1, ">=": 1, "<": 1, "<=": 1,
	"in": -1, "not in": -1, "contains": 1, "is null": 0, "is not null": 0, "between": 2, "in the past": 1,
}

// Operators lists the filter operators.
var Operators = []string{"=", "!=", ">", ">=", "<", "<=", "in", "not in", "contains", "is null", "is not null", "between", "in the past"}

// filterSQL is the condition of filter f on field fd, whose SQL is expr.
func filterSQL(d Dialect, fd *Field, expr string, f Filter, clk *clock) (string, error) {
	op := strings.Join(strings.Fields(strings.ToLower(f.Op)), " ")
	if op == "<>" {
		op = "!="
	}
	if op == "" {
		op = "="
	}
	n, ok := operators[op]
	if !ok {
		return "", fmt.Errorf("unknown operator %q: the operators are %s", f.Op, strings.Join(Operators, ", "))
	}
	values := f.Values
	if f.Value != nil {
		values = append([]any{f.Value}, values...)
	}
	switch {
	case n >= 0 && len(values) != n:
		return "", fmt.Errorf("%s takes %d value(s), not %d", op, n, len(values))
	case n < 0 && len(values) == 0:
		return "", fmt.Errorf("%s takes one or more values", op)
	}
	typ := fd.Type
	switch {
	case op == "contains" && typ != "string":
		return "", fmt.Errorf("contains applies to text; %s is %s", fd.View+"."+fd.Name, typ)
	case typ == "yesno" && op != "=" && op != "!=" && n != 0:
		return "", fmt.Errorf("%s is yes/no: use =, != or is null", fd.View+"."+fd.Name)
	case op == "between" && typ != "number" && typ != "time":
		return "", fmt.Errorf("between applies to numbers and times; %s is %s", fd.View+"."+fd.Name, typ)
	case op == "in the past" && typ != "time":
		return "", fmt.Errorf("in the past applies to times; %s is %s", fd.View+"."+fd.Name, typ)
	case op == "in the past":
		since, err := pastStart(values[0], clk.now)
		if err != nil {
			return "", &valueError{0, err}
		}
		if since.After(clk.latest) {
			clk.latest = since
		}
		return expr + " >= " + timeLiteral(since), nil
	}
	lits := make([]string, len(values))
	for i, v := range values {
		s, err := literal(d, typ, v)
		if err != nil {
			return "", &valueError{i, err}
		}
		lits[i] = s
	}
	switch op {
	case "is null":
		return expr + " IS NULL", nil
	case "is not null":
		return expr + " IS NOT NULL", nil
	case "in":
		return expr + " IN (" + strings.Join(lits, ", ") + ")", nil
	case "not in":
		return expr + " NOT IN (" + strings.Join(lits, ", ") + ")", nil
	case "between":
		return expr + " BETWEEN " + lits[0] + " AND " + lits[1], nil
	case "contains":
		return "strpos(lower(" + expr + "), lower(" + lits[0] + ")) > 0", nil
	case "!=":
		return expr + " <> " + lits[0], nil
	}
	return expr + " " + op + " " + lits[0], nil
}

func timeLiteral(t time.Time) string {
	return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.999999") + "'"
}

// pastUnits are the units of "in the past" filters.
var pastUnits = map[string]func(t time.Time, n int) time.Time{
	"minute": func(t time.Time, n int) time.Time { return t.Add(-time.Duration(n) * time.Minute) },
	"hour":   func(t time.Time, n int) time.Time { return t.Add(-time.Duration(n) * time.Hour) },
	"day":    func(t time.Time, n int) time.Time { return t.AddDate(0, 0, -n) },
	"week":   func(t time.Time, n int) time.Time { return t.AddDate(0, 0, -7*n) },
	"month":  func(t time.Time, n int) time.Time { return t.AddDate(0, -n, 0) },
	"year":   func(t time.Time, n int) time.Time { return t.AddDate(-n, 0, 0) },
}

// ValidPast reports whether s is a span the "in the past" operator takes
// ("7 days", "24 hours"), as dashboards' date filters must be.
func ValidPast(s string) bool {
	_, err := pastStart(s, time.Now())
	return err == nil
}

// pastStart is when "in the past" v ("7 days", "24 hours", "1 month")
// begins, counted back from now: the filter becomes a fixed time, the same
// on every engine.
func pastStart(v any, now time.Time) (time.Time, error) {
	const hint = `write a number and a unit, e.g. "7 days", "24 hours" (minutes, hours, days, weeks, months, years)`
	s, ok := v.(string)
	fields := strings.Fields(strings.ToLower(s))
	if !ok || len(fields) != 2 {
		return time.Time{}, fmt.Errorf("%s is not a span of time: %s", describeValue(v), hint)
	}
	n, err := strconv.Atoi(fields[0])
	back := pastUnits[strings.TrimSuffix(fields[1], "s")]
	if err != nil || n < 0 || n > 100000 || back == nil {
		return time.Time{}, fmt.Errorf("%q is not a span of time: %s", s, hint)
	}
	return back(now.UTC(), n), nil
}

// valueError is a filter value that does not fit its field.
type valueError struct {
	i   int // in the filter's values, value first
	err error
}

func (e *valueError) Error() string { return fmt.Sprintf("values[%d]: %v", e.i, e.err) }

var numberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$`)

// timeLayouts are the forms a time filter value may take (UTC unless it
// says otherwise).
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02", "2006-01"}

// literal writes v as a SQL literal of type typ, or says why it cannot be
// one: values never reach the SQL as anything else.
func literal(d Dialect, typ string, v any) (string, error) {
	switch typ {
	case "number":
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = strings.TrimSpace(x)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return "", fmt.Errorf("%v is not a number SQL can hold", x)
			}
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case int64:
			s = strconv.FormatInt(x, 10)
		case uint64:
			s = strconv.FormatUint(x, 10)
		case int:
			s = strconv.Itoa(x)
		default:
			return "", fmt.Errorf("%s is not a number", describeValue(v))
		}
		if !numberRe.MatchString(s) {
			return "", fmt.Errorf("%q is not a number", s)
		}
		return s, nil
	case "time":
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case string:
			var err error
			for _, layout := range timeLayouts {
				if t, err = time.Parse(layout, strings.TrimSpace(x)); err == nil {
					break
				}
			}
			if err != nil {
				return "", fmt.Errorf("%q is not a time: write 2026-11-25, 2026-11-25 14:00:00 or RFC 3339", x)
			}
		default:
			return "", fmt.Errorf("%s is not a time: write 2026-11-25, 2026-11-25 14:00:00 or RFC 3339", describeValue(v))
		}
		return timeLiteral(t), nil
	case "yesno":
		switch x := v.(type) {
		case bool:
			if x {
				return "TRUE", nil
			}
			return "FALSE", nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "yes", "true":
				return "TRUE", nil
			case "no", "false":
				return "FALSE", nil
			}
		}
		return "", fmt.Errorf("%s is not yes/no: write true or false", describeValue(v))
	default:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		case float64, int64, uint64, int:
			s = fmt.Sprint(x)
		case bool:
			s = strconv.FormatBool(x)
		default:
			return "", fmt.Errorf("%s is not a text", describeValue(v))
		}
		return quoteString(d, s)
	}
}

// quoteString writes s as a string literal. PostgreSQL's E'…' form
// means the same whatever standard_conforming_strings says.
func quoteString(d Dialect, s string) (string, error) {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("%q is not valid text (invalid UTF-8 or a NUL character)", s)
	}
	s = strings.ReplaceAll(s, "'", "''")
	if d == Postgres {
		if strings.Contains(s, `\`) {
			return `E'` + strings.ReplaceAll(s, `\`, `\\`) + "'", nil
		}
	}
	return "'" + s + "'", nil
}

func describeValue(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case bool:
		return fmt.Sprint(v)
	case string:
		return strconv.Quote(v.(string))
	}
	return fmt.Sprint(v)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Normalize makes the rows an engine answered for c friendlier to JSON
// readers: whole numbers the engines give as text (sums of integers are
// HUGEINT in DuckDB and NUMERIC in PostgreSQL) become numbers when they
// are exact in a float64.
func (c *Compiled) Normalize(rows [][]any) {
	for _, row := range rows {
		for i, v := range row {
			if i >= len(c.Columns) || c.Columns[i].Type != "number" {
				continue
			}
			if s, ok := v.(string); ok {
				if n, err := strconv.ParseInt(s, 10, 64); err == nil && n <= 1<<53 && n >= -(1<<53) {
					row[i] = n
				}
			}
		}
	}
}
