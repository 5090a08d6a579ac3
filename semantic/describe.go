package semantic

import "time"

// ExploreInfo describes an explore for the UI: its views and their fields.
type ExploreInfo struct {
	Name        string     `json:"name"`
	Model       string     `json:"model"` // the model file's name, without .yml
	Label       string     `json:"label"`
	Description string     `json:"description,omitempty"`
	View        string     `json:"view"` // the view it starts from
	Views       []ViewInfo `json:"views"`
}

// ViewInfo is a view as an explore has it: under its join's name.
type ViewInfo struct {
	Name         string  `json:"name"` // how fields name it: name.field
	View         string  `json:"view"`
	Label        string  `json:"label"`
	Description  string  `json:"description,omitempty"`
	Relationship string  `json:"relationship,omitempty"` // of its join
	Fields       []Field `json:"fields"`
}

// Describe lists the explores in file order, with every field they can
// query (hidden ones marked).
func (m *Model) Describe() []ExploreInfo {
	out := []ExploreInfo{}
	for _, name := range m.Order {
		e := m.Explores[name]
		label := e.Label
		if label == "" {
			label = title(e.Name)
		}
		info := ExploreInfo{Name: e.Name, Model: e.model, Label: label, Description: e.Description, View: e.View}
		c := m.compiler(e, DuckDB, time.Now())
		info.Views = append(info.Views, c.viewInfo(e.View, ""))
		for _, j := range e.Joins {
			info.Views = append(info.Views, c.viewInfo(j.Name, j.Relationship))
		}
		out = append(out, info)
	}
	return out
}

// viewInfo lists the fields of a view as an explore has it, but for
// measures made of views the explore does not join.
func (c *compiler) viewInfo(alias string, rel string) ViewInfo {
	v := c.aliases[alias]
	label := v.Label
	if label == "" {
		label = title(alias)
	}
	vi := ViewInfo{Name: alias, View: v.Name, Label: label, Description: v.Description, Relationship: rel, Fields: []Field{}}
	for _, n := range v.order {
		if v.fields[n].measure != nil {
			if _, err := c.parts(ref{alias: alias, view: v, field: v.fields[n]}); err != nil {
				continue
			}
		}
		f := *v.fields[n]
		f.View = alias
		f.Name = alias + "." + n
		vi.Fields = append(vi.Fields, f)
	}
	return vi
}
