// Package dashboard reads the UI's dashboards: YAML files (one dashboard a
// file) of tiles, each an explore query of the semantic layer drawn as a
// number, a chart, a table or a pivot table. It promises that every
// dashboard it returns compiles against the model it was checked with: a
// tile that names an unknown explore or field is an error at file:line when
// the files are read, not a broken tile in the browser.
package dashboard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/sluice-data/sluice/semantic"
)

// Dashboard is one file: a title, a date filter applied to every tile's
// time dimension, a refresh interval and tiles.
type Dashboard struct {
	Name        string     `yaml:"-" json:"name"` // the file's name without .yml
	Title       string     `yaml:"title" json:"title"`
	Description string     `yaml:"description" json:"description,omitempty"`
	DateFilter  DateFilter `yaml:"date_filter" json:"date_filter"`
	Refresh     string     `yaml:"refresh" json:"refresh"` // a Go duration, "30s"; default 1m
	Tiles       []Tile     `yaml:"tiles" json:"tiles"`
}

// DateFilter restricts every tile (but those with date_filter: false) to a
// recent span of its explore's time dimension: an "in the past" filter.
type DateFilter struct {
	Default string   `yaml:"default" json:"default"`           // "7 days", "24 hours"; default 7 days
	Options []string `yaml:"options" json:"options,omitempty"` // other spans the page offers
}

// Tile is one box of a dashboard.
type Tile struct {
	Title string         `yaml:"title" json:"title"`
	Type  string         `yaml:"type" json:"type"`   // number, line, area, bar, table, funnel, pivot
	Width int            `yaml:"width" json:"width"` // of 12 columns; default 6
	Query semantic.Query `yaml:"query" json:"query"`
	// TimeField is the time dimension the dashboard's date filter applies
	// to; default: the first time dimension of the explore's own view.
	TimeField string `yaml:"time_field" json:"time_field,omitempty"`
	// DateFilter false: the tile ignores the dashboard's date filter (a
	// "now" number with its own filter).
	DateFilter *bool `yaml:"date_filter" json:"date_filter,omitempty"`
}

// Types are the tiles' visualizations.
var Types = []string{"number", "line", "area", "bar", "table", "funnel", "pivot"}

// pivotTypes draw a query with pivots (query.pivots): a pivot table, or a
// line or area per pivot value.
var pivotTypes = []string{"pivot", "line", "area"}

// Error is one problem of a dashboard file.
type Error = semantic.Error

// Errors is every problem found, in file order.
type Errors = semantic.Errors

// Load reads every *.yml and *.yaml file of dir as a dashboard and checks
// its tiles against the model m.
func Load(dir string, m *semantic.Model) ([]*Dashboard, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("dashboards: %q is not a directory (dashboards.dir)", dir)
	}
	return LoadFS(os.DirFS(dir), dir, m)
}

// LoadFS is Load over any file system; prefix goes before the files' names
// in errors.
func LoadFS(fsys fs.FS, prefix string, m *semantic.Model) ([]*Dashboard, error) {
	names, err := fs.Glob(fsys, "*.y*ml")
	if err != nil {
		return nil, fmt.Errorf("dashboards %s: %w", prefix, err)
	}
	sort.Strings(names)
	var out []*Dashboard
	var errs Errors
	for _, f := range names {
		if !strings.HasSuffix(f, ".yml") && !strings.HasSuffix(f, ".yaml") {
			continue
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("dashboards: %w", err)
		}
		d, err := Parse(path.Join(prefix, f), data, m)
		var es Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Parse reads one dashboard file; file names it in errors and gives the
// dashboard its name.
func Parse(file string, data []byte, m *semantic.Model) (*Dashboard, error) {
	d := &Dashboard{Name: strings.TrimSuffix(strings.TrimSuffix(path.Base(file), ".yml"), ".yaml")}
	if err := yaml.UnmarshalWithOptions(data, d, yaml.Strict()); err != nil {
		e := Error{File: file, Message: err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			e.Message = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				e.Line, e.Column = tk.Position.Line, tk.Position.Column
			}
		}
		return nil, Errors{e}
	}
	v := validator{file: file, data: data}
	if !nameRe.MatchString(d.Name) {
		v.add("", fmt.Sprintf("the file's name %q is the dashboard's URL: use letters, digits, - and _", d.Name))
	}
	if d.Title == "" {
		d.Title = d.Name
	}
	if d.Refresh == "" {
		d.Refresh = "1m"
	}
	if r, err := time.ParseDuration(d.Refresh); err != nil || r < time.Second {
		v.add("$.refresh", fmt.Sprintf("refresh %q: give a duration of 1s or more, e.g. 30s or 5m", d.Refresh))
	}
	if d.DateFilter.Default == "" {
		d.DateFilter.Default = "7 days"
	}
	if !semantic.ValidPast(d.DateFilter.Default) {
		v.add("$.date_filter.default", fmt.Sprintf("date_filter.default %q: give a span such as \"7 days\" or \"24 hours\"", d.DateFilter.Default))
	}
	for i, o := range d.DateFilter.Options {
		if !semantic.ValidPast(o) {
			v.add(fmt.Sprintf("$.date_filter.options[%d]", i), fmt.Sprintf("%q: give a span such as \"30 days\"", o))
		}
	}
	if len(d.Tiles) == 0 {
		v.add("", "a dashboard needs tiles: a list of {title, type, query: {explore, fields}}")
	}
	for i := range d.Tiles {
		v.tile(d, i, m)
	}
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return d, nil
}

type validator struct {
	file string
	data []byte
	errs Errors
}

// add reports a problem at the YAML path p ($.tiles[0].query.fields[1]),
// or at the nearest of its parents the file has.
func (v *validator) add(p, msg string) {
	e := Error{File: v.file, Message: msg, Path: strings.TrimPrefix(p, "$.")}
	for p != "" && p != "$" {
		yp, err := yaml.PathString(p)
		if err == nil {
			if n, err := yp.ReadNode(strings.NewReader(string(v.data))); err == nil && n != nil {
				if tk := n.GetToken(); tk != nil && tk.Position != nil {
					e.Line, e.Column = tk.Position.Line, tk.Position.Column
					break
				}
			}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	v.errs = append(v.errs, e)
}

func (v *validator) tile(d *Dashboard, i int, m *semantic.Model) {
	t := &d.Tiles[i]
	at := fmt.Sprintf("$.tiles[%d]", i)
	if t.Type == "" {
		t.Type = "table"
	}
	if !slices.Contains(Types, t.Type) {
		v.add(at+".type", fmt.Sprintf("tile type %q: use one of %s", t.Type, strings.Join(Types, ", ")))
	}
	switch {
	case t.Type == "pivot" && len(t.Query.Pivots) == 0:
		v.add(at+".type", "a pivot tile needs query.pivots: the selected dimensions whose values become its columns")
	case len(t.Query.Pivots) > 0 && slices.Contains(Types, t.Type) && !slices.Contains(pivotTypes, t.Type):
		v.add(at+".query.pivots", fmt.Sprintf("a %s tile does not draw pivots: use type pivot (a pivot table), line or area (a line per value)", t.Type))
	}
	if t.Width == 0 {
		t.Width = 6
	}
	if t.Width < 1 || t.Width > 12 {
		v.add(at+".width", fmt.Sprintf("width %d: give 1 to 12 (of 12 columns)", t.Width))
	}
	if m == nil {
		v.add(at+".query", "dashboards need the semantic layer's models (semantic.models) to answer their tiles")
		return
	}
	if _, ok := m.Explores[t.Query.Explore]; !ok {
		v.add(at+".query.explore", fmt.Sprintf("no explore %q: the model has %s", t.Query.Explore, strings.Join(m.Order, ", ")))
		return
	}
	if t.DateFilter == nil || *t.DateFilter {
		if t.TimeField == "" {
			t.TimeField = timeField(m, t.Query.Explore)
		}
		if t.TimeField == "" {
			v.add(at+".query.explore", fmt.Sprintf("explore %s has no time dimension for the date filter: set date_filter: false on the tile", t.Query.Explore))
			return
		}
	}
	span := d.DateFilter.Default
	if !semantic.ValidPast(span) {
		span = "7 days" // reported already
	}
	q, err := t.WithDates(span)
	if err == nil {
		_, err = m.Compile(q, semantic.DuckDB)
	}
	var qe *semantic.QueryError
	if errors.As(err, &qe) {
		p := at + ".query." + qe.Path
		if strings.HasPrefix(qe.Path, fmt.Sprintf("filters[%d]", len(t.Query.Filters))) {
			p = at + ".time_field"
		}
		v.add(p, qe.Message)
	} else if err != nil {
		v.add(at+".query", err.Error())
	}
}

// WithDates is the tile's query restricted to the past span (the
// dashboard's date filter: "7 days") on its time field.
func (t *Tile) WithDates(span string) (semantic.Query, error) {
	q := t.Query
	if t.DateFilter != nil && !*t.DateFilter {
		return q, nil
	}
	if t.TimeField == "" {
		return q, fmt.Errorf("tile %q has no time field for the date filter", t.Title)
	}
	q.Filters = append(slices.Clip(q.Filters), semantic.Filter{Field: t.TimeField, Op: "in the past", Value: span})
	return q, nil
}

// timeField is the first time dimension (not a time frame) of an
// explore's own view.
func timeField(m *semantic.Model, explore string) string {
	for _, e := range m.Describe() {
		if e.Name != explore || len(e.Views) == 0 {
			continue
		}
		for _, f := range e.Views[0].Fields {
			if f.Kind == "dimension" && f.Type == "time" && f.Timeframe == "" {
				return f.Name
			}
		}
	}
	return ""
}
