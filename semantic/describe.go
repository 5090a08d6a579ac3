package semantic

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

// Describe lists the explores in file order, with every field (hidden ones
// marked).
func (m *Model) Describe() []ExploreInfo {
	out := []ExploreInfo{}
	for _, name := range m.Order {
		e := m.Explores[name]
		label := e.Label
		if label == "" {
			label = title(e.Name)
		}
		info := ExploreInfo{Name: e.Name, Model: e.model, Label: label, Description: e.Description, View: e.View}
		info.Views = append(info.Views, viewInfo(e.View, m.Views[e.View], ""))
		for _, j := range e.Joins {
			info.Views = append(info.Views, viewInfo(j.Name, m.Views[j.View], j.Relationship))
		}
		out = append(out, info)
	}
	return out
}

func viewInfo(alias string, v *View, rel string) ViewInfo {
	label := v.Label
	if label == "" {
		label = title(alias)
	}
	vi := ViewInfo{Name: alias, View: v.Name, Label: label, Description: v.Description, Relationship: rel, Fields: []Field{}}
	for _, n := range v.order {
		f := *v.fields[n]
		f.View = alias
		f.Name = alias + "." + n
		vi.Fields = append(vi.Fields, f)
	}
	return vi
}
