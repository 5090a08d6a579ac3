package semantic

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// refRe finds the references of a SQL template: ${TABLE}, ${field},
// ${view.field}.
var refRe = regexp.MustCompile(`\$\{([^{}]*)\}`)

// refs lists the references of a template, or says what is wrong with it.
func refs(tmpl string) ([]string, error) {
	var out []string
	for _, m := range refRe.FindAllStringSubmatch(tmpl, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	if strings.Count(tmpl, "${") != len(out) {
		return nil, fmt.Errorf("a ${ is not closed: write ${field}, ${view.field} or ${TABLE}")
	}
	return out, nil
}

// validate checks what the decoded files mean, and prepares each view's
// fields and each join's place in its explore.
func (l *loader) validate() {
	for _, name := range sortedKeys(l.m.Views) {
		l.validateView(l.m.Views[name])
	}
	for _, name := range l.m.Order {
		l.validateExplore(l.m.Explores[name])
	}
}

func (l *loader) validateView(v *View) {
	p := "views." + v.Name
	v.fields = map[string]*Field{}
	switch {
	case v.Table == "" && strings.TrimSpace(v.SQL) == "":
		l.addKey(p, "a view needs table (a table's name) or sql (a SELECT)")
	case v.Table != "" && v.SQL != "":
		l.add(p+".sql", "a view has table or sql, not both")
	case v.Table != "":
		for _, part := range strings.Split(v.Table, ".") {
			if !nameRe(part) {
				l.add(p+".table", fmt.Sprintf("%q is not a table name: write name or schema.name (letters, digits, _)", v.Table))
				break
			}
		}
	}
	addField := func(path string, f *Field) {
		if _, dup := v.fields[f.Name]; dup {
			l.addKey(path, fmt.Sprintf("field %s is defined twice in view %s (a time dimension's frames are fields too: created_at_day …)", f.Name, v.Name))
			return
		}
		v.fields[f.Name] = f
		v.order = append(v.order, f.Name)
	}
	dims := map[string]*Dimension{}
	for _, d := range v.Dimensions {
		dims[d.Name] = d
	}
	for _, d := range v.Dimensions {
		dp := p + ".dimensions." + d.Name
		if d.Type == "" {
			d.Type = "string"
		}
		if !slices.Contains(dimensionTypes, d.Type) {
			l.add(dp+".type", fmt.Sprintf("unknown dimension type %q: the types are %s", d.Type, strings.Join(dimensionTypes, ", ")))
		}
		if d.PrimaryKey {
			if v.pk != nil {
				l.add(dp+".primary_key", fmt.Sprintf("view %s already has a primary key (%s): one dimension is the primary key", v.Name, v.pk.Name))
			}
			v.pk = d
		}
		if d.Type != "time" && len(d.Timeframes) > 0 {
			l.add(dp+".timeframes", "only a time dimension has timeframes: set type: time, or remove timeframes")
		}
		if d.Type == "time" && d.Timeframes == nil {
			d.Timeframes = DefaultTimeframes
		}
		if d.SQL != "" {
			l.checkDimSQL(v, dims, dp+".sql", d.SQL)
			l.checkCycle(dims, dp+".sql", d)
		}
		label := d.Label
		if label == "" {
			label = title(d.Name)
		}
		addField(dp, &Field{View: v.Name, Name: d.Name, Kind: "dimension", Type: d.Type, Label: label, Description: d.Description, Hidden: d.Hidden, dim: d})
		for i, tf := range d.Timeframes {
			if d.Type != "time" {
				break
			}
			if !slices.Contains(timeframes, tf) {
				l.add(fmt.Sprintf("%s.timeframes[%d]", dp, i), fmt.Sprintf("unknown timeframe %q: the timeframes are %s", tf, strings.Join(timeframes, ", ")))
				continue
			}
			addField(dp, &Field{View: v.Name, Name: d.Name + "_" + tf, Kind: "dimension", Type: "time", Label: label + " " + title(tf),
				Description: d.Description, Timeframe: tf, Group: d.Name, Hidden: d.Hidden, dim: d})
		}
	}
	for _, m := range v.Measures {
		mp := p + ".measures." + m.Name
		switch {
		case m.Type == "":
			l.addKey(mp, "a measure needs a type: "+strings.Join(measureTypes, ", "))
		case !slices.Contains(measureTypes, m.Type):
			l.add(mp+".type", fmt.Sprintf("unknown measure type %q: the types are %s", m.Type, strings.Join(measureTypes, ", ")))
		case m.Type == "number":
			if m.SQL == "" {
				l.addKey(mp, "a number measure needs sql: an expression of other measures, e.g. ${revenue} / NULLIF(${orders}, 0)")
			}
			if m.Field != "" {
				l.add(mp+".field", "a number measure has sql, not field")
			}
			if len(m.Filters) > 0 {
				l.add(mp+".filters", "a number measure has no filters: filter the measures it uses")
			}
			l.checkMeasureSQL(v, mp+".sql", m, nil)
		case m.SQL != "" && m.Field != "":
			l.add(mp+".field", m.Type+" has sql or field, not both")
		case m.Type != "count" && m.SQL == "" && m.Field == "":
			l.addKey(mp, m.Type+" needs a sql or field")
		}
		if m.Field != "" {
			if f, ok := v.fields[m.Field]; !ok || f.Kind != "dimension" {
				l.add(mp+".field", fmt.Sprintf("view %s has no dimension %q%s", v.Name, m.Field, didYouMean(m.Field, v.dimensionNames())))
			}
		}
		if m.SQL != "" && m.Type != "number" {
			l.checkDimSQL(v, dims, mp+".sql", m.SQL)
		}
		for i, f := range m.Filters {
			fp := fmt.Sprintf("%s.filters[%d]", mp, i)
			fd, ok := v.fields[f.Field]
			if !ok || fd.Kind != "dimension" {
				l.add(fp+".field", fmt.Sprintf("view %s has no dimension %q%s", v.Name, f.Field, didYouMean(f.Field, v.dimensionNames())))
				continue
			}
			if _, err := filterSQL(DuckDB, fd, "x", f, &clock{now: time.Now()}); err != nil {
				var ve *valueError
				switch {
				case errors.As(err, &ve) && f.Value != nil && ve.i == 0:
					l.add(fp+".value", ve.err.Error())
				case errors.As(err, &ve) && f.Value != nil:
					l.add(fmt.Sprintf("%s.values[%d]", fp, ve.i-1), ve.err.Error())
				case errors.As(err, &ve):
					l.add(fmt.Sprintf("%s.values[%d]", fp, ve.i), ve.err.Error())
				default:
					l.add(fp, err.Error())
				}
			}
		}
		label := m.Label
		if label == "" {
			label = title(m.Name)
		}
		addField(mp, &Field{View: v.Name, Name: m.Name, Kind: "measure", Type: measureValueType(v, m), Aggregate: m.Type, Label: label, Description: m.Description, Hidden: m.Hidden, measure: m})
	}
}

// checkDimSQL checks the references of a dimension's SQL (or of what an
// aggregate measure aggregates): ${TABLE} and the view's own dimensions.
func (l *loader) checkDimSQL(v *View, dims map[string]*Dimension, p, sql string) {
	rs, err := refs(sql)
	if err != nil {
		l.add(p, err.Error())
		return
	}
	for _, r := range rs {
		if r == "TABLE" {
			continue
		}
		if _, ok := dims[r]; !ok {
			msg := fmt.Sprintf("${%s}: view %s has no dimension %q", r, v.Name, r)
			if strings.Contains(r, ".") {
				msg = fmt.Sprintf("${%s}: a view's SQL refers to its own dimensions (${name}) and ${TABLE}; other views are joined in explores", r)
			}
			l.add(p, msg+didYouMean(r, v.dimensionNames()))
		}
	}
}

// checkCycle reports a dimension whose SQL leads back to itself.
func (l *loader) checkCycle(dims map[string]*Dimension, p string, d *Dimension) {
	var visit func(cur *Dimension, path []string) bool
	visit = func(cur *Dimension, path []string) bool {
		rs, _ := refs(cur.SQL)
		for _, r := range rs {
			next, ok := dims[r]
			switch {
			case !ok:
			case next == d:
				l.add(p, "the dimensions refer to each other in a circle: "+strings.Join(append(path, r), " -> "))
				return true
			case !slices.Contains(path, r) && len(path) < 64:
				if visit(next, append(path, r)) {
					return true
				}
			}
		}
		return false
	}
	visit(d, []string{d.Name})
}

// checkMeasureSQL checks a number measure's references: measures of its
// view (${name}) or of other views (${view.name}; an explore must join that
// view for a query to use it), without circles. Only the measure itself
// reports missing references (path is empty); those it leads to report
// their own.
func (l *loader) checkMeasureSQL(v *View, p string, m *Measure, path []string) {
	key := v.Name + "." + m.Name
	if slices.Contains(path, key) {
		l.add(p, "the measures refer to each other in a circle: "+strings.Join(append(path, key), " -> "))
		return
	}
	rs, err := refs(m.SQL)
	if err != nil {
		if len(path) == 0 {
			l.add(p, err.Error())
		}
		return
	}
	for _, r := range rs {
		tv, name := v, r
		if vn, mn, ok := strings.Cut(r, "."); ok {
			tv, name = l.m.Views[vn], mn
			if tv == nil {
				if len(path) == 0 {
					l.add(p, fmt.Sprintf("${%s}: no view %q%s", r, vn, didYouMean(vn, sortedKeys(l.m.Views))))
				}
				continue
			}
		}
		next := tv.measure(name)
		if next == nil {
			if len(path) == 0 {
				l.add(p, fmt.Sprintf("${%s}: view %s has no measure %q (a number measure combines measures)%s", r, tv.Name, name, didYouMean(name, tv.measureNames())))
			}
			continue
		}
		if next.Type == "number" && len(path) < 32 {
			l.checkMeasureSQL(tv, p, next, append(path, key))
		}
	}
}

func (v *View) measure(name string) *Measure {
	for _, m := range v.Measures {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (l *loader) validateExplore(e *Explore) {
	p := "explores." + e.Name
	if e.View == "" {
		e.View = e.Name
	}
	base, ok := l.m.Views[e.View]
	if !ok {
		at := p + ".view"
		if _, set := l.values[at]; !set {
			at = p
		}
		l.add(at, fmt.Sprintf("no view %q%s", e.View, didYouMean(e.View, sortedKeys(l.m.Views))))
		return
	}
	aliases := map[string]*View{e.Name: base}
	if e.Name != e.View {
		// Queries name the explore's view by the view's name.
		delete(aliases, e.Name)
		aliases[e.View] = base
	}
	order := []string{e.View}
	for _, j := range e.Joins {
		jp := p + ".joins." + j.Name
		if j.View == "" {
			j.View = j.Name
		}
		if _, dup := aliases[j.Name]; dup {
			l.addKey(jp, fmt.Sprintf("%s is already in explore %s: give the join another name and view: %s", j.Name, e.Name, j.View))
			continue
		}
		v, ok := l.m.Views[j.View]
		if !ok {
			msg := fmt.Sprintf("no view %q%s", j.View, didYouMean(j.View, sortedKeys(l.m.Views)))
			if _, set := l.values[jp+".view"]; set {
				l.add(jp+".view", msg)
			} else {
				l.addKey(jp, msg)
			}
			continue
		}
		if j.Relationship == "" {
			j.Relationship = "many_to_one"
		}
		if !slices.Contains(relationships, j.Relationship) {
			l.add(jp+".relationship", fmt.Sprintf("unknown relationship %q: write %s", j.Relationship, strings.Join(relationships, ", ")))
		}
		if j.Type == "" {
			j.Type = "left"
		}
		if !slices.Contains(joinTypes, j.Type) {
			l.add(jp+".type", fmt.Sprintf("unknown join type %q: write %s", j.Type, strings.Join(joinTypes, ", ")))
		}
		aliases[j.Name] = v
		if strings.TrimSpace(j.SQLOn) == "" {
			l.addKey(jp, "a join needs sql_on, e.g. sql_on: ${orders.user_id} = ${users.id}")
			order = append(order, j.Name)
			continue
		}
		rs, err := refs(j.SQLOn)
		if err != nil {
			l.add(jp+".sql_on", err.Error())
		}
		self, bad := false, err != nil
		for _, r := range rs {
			alias, field, ok := strings.Cut(r, ".")
			if !ok {
				l.add(jp+".sql_on", fmt.Sprintf("${%s}: in sql_on, name fields with their view: ${%s.%s}", r, j.Name, r))
				bad = true
				continue
			}
			av, known := aliases[alias]
			switch {
			case !known:
				l.add(jp+".sql_on", fmt.Sprintf("${%s}: %q is not the explore's view or a join before %s%s", r, alias, j.Name, didYouMean(alias, order)))
				bad = true
				continue
			case av.fields[field] == nil || av.fields[field].Kind != "dimension":
				l.add(jp+".sql_on", fmt.Sprintf("${%s}: view %s has no dimension %q%s", r, av.Name, field, didYouMean(field, av.dimensionNames())))
				bad = true
				continue
			case alias == j.Name:
				self = true
			case !slices.Contains(j.needs, alias):
				j.needs = append(j.needs, alias)
				// The latest of the views it names is what it hangs from.
				if j.parent == "" || slices.Index(order, alias) > slices.Index(order, j.parent) {
					j.parent = alias
				}
			}
		}
		if !bad && (!self || j.parent == "") {
			l.add(jp+".sql_on", fmt.Sprintf("sql_on must compare a field of %s with a field of a view joined before it, e.g. ${%s.id} = ${%s.%s_id}", j.Name, j.Name, e.View, j.Name))
		}
		order = append(order, j.Name)
	}
	// A view whose rows a join repeats needs a primary key for its sums,
	// averages and counts (compile.go).
	for _, alias := range order {
		v := aliases[alias]
		if v == nil || v.pk != nil {
			continue
		}
		var needing []string
		for _, m := range v.Measures {
			if needsKey(m.Type) {
				needing = append(needing, m.Name)
			}
		}
		if len(needing) == 0 {
			continue
		}
		if j := e.fanningJoin(alias, e.Joins); j != nil {
			l.add(p+".joins."+j.Name+".relationship", fmt.Sprintf("%s %s repeats the rows of %s, whose measures %s need view %s to have a primary key: set primary_key: true on the dimension that identifies a row",
				j.Name, j.Relationship, alias, strings.Join(needing, ", "), v.Name))
		}
	}
}

// measureValueType is the type of a measure's values: time for the min
// or max of a time dimension, else number.
func measureValueType(v *View, m *Measure) string {
	if m.Type == "min" || m.Type == "max" {
		if f := v.fields[m.Field]; f != nil && f.Type == "time" {
			return "time"
		}
	}
	return "number"
}

// needsKey tells whether a measure type counts each row once only with a
// primary key when a join repeats rows (count_distinct, min and max do not
// mind repeats).
func needsKey(typ string) bool {
	return typ == "count" || typ == "sum" || typ == "avg"
}

// fanningJoin is a join among joins whose relationship repeats the rows of
// alias, or nil: walking away from alias, an edge that leads to "many".
func (e *Explore) fanningJoin(alias string, joins []*Join) *Join {
	for _, j := range joins {
		if j.parent == "" {
			continue
		}
		below := e.below(j.Name, alias, joins)
		switch {
		case j.Relationship == "many_to_many":
			return j
		case below && j.Relationship == "many_to_one":
			return j
		case !below && j.Relationship == "one_to_many":
			return j
		}
	}
	return nil
}

// below tells whether alias is join name or hangs from it.
func (e *Explore) below(name, alias string, joins []*Join) bool {
	for range len(joins) + 1 {
		if alias == name {
			return true
		}
		i := slices.IndexFunc(joins, func(j *Join) bool { return j.Name == alias })
		if i < 0 {
			return false
		}
		alias = joins[i].parent
	}
	return false
}

func (v *View) dimensionNames() []string {
	var out []string
	for _, n := range v.order {
		if v.fields[n].Kind == "dimension" {
			out = append(out, n)
		}
	}
	return out
}

func (v *View) measureNames() []string {
	var out []string
	for _, m := range v.Measures {
		out = append(out, m.Name)
	}
	return out
}

func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %s?)", c)
	}
	return ""
}

// title makes a label of a name: created_at -> Created At.
func title(name string) string {
	words := strings.Fields(strings.ReplaceAll(name, "_", " "))
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
