package semantic

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Load reads every *.yml and *.yaml file under dir (subdirectories too, in
// name order) as one model: views and explores share one namespace across
// the files. Problems come as Errors, every one of them.
func Load(dir string) (*Model, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("semantic models: %q is not a directory (semantic.models)", dir)
	}
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS is Load over any file system; prefix goes before the files' names
// in errors (the directory the user named).
func LoadFS(fsys fs.FS, prefix string) (*Model, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("semantic models %s: %w", prefix, err)
	}
	sort.Strings(files)
	l := newLoader()
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("semantic models: %w", err)
		}
		l.file(path.Join(prefix, f), strings.TrimSuffix(strings.TrimSuffix(path.Base(f), ".yml"), ".yaml"), data)
	}
	return l.finish()
}

// Parse reads one model file's text; name is used in errors.
func Parse(name string, data []byte) (*Model, error) {
	l := newLoader()
	l.file(name, strings.TrimSuffix(strings.TrimSuffix(path.Base(name), ".yml"), ".yaml"), data)
	return l.finish()
}

// modelFile is the shape of one file.
type modelFile struct {
	Views    []*View    `yaml:"views,keyed"`
	Explores []*Explore `yaml:"explores,keyed"`
}

// pos is where a key or value is.
type pos struct {
	file      string
	line, col int
}

// loader decodes model files into one Model, remembering where every key
// and value is, for the errors of validation.
type loader struct {
	m      *Model
	errs   Errors
	values map[string]pos // by path: where the value is
	keys   map[string]pos // by path: where its key is
	cur    string         // the file being decoded
}

func newLoader() *loader {
	return &loader{m: &Model{Views: map[string]*View{}, Explores: map[string]*Explore{}},
		values: map[string]pos{}, keys: map[string]pos{}}
}

func (l *loader) file(name, model string, data []byte) {
	l.cur = name
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		e := Error{File: name, Message: "invalid YAML: " + err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			e.Message = "invalid YAML: " + ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				e.Line, e.Column = tk.Position.Line, tk.Position.Column
			}
		}
		l.errs = append(l.errs, e)
		return
	}
	var doc modelFile
	for _, d := range f.Docs {
		if d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.MappingNode); !ok {
			l.addNode(d.Body, "", "a model file is a mapping with views: and explores:")
			return
		}
		l.decode(d.Body, "", reflect.ValueOf(&doc).Elem())
	}
	for _, v := range doc.Views {
		p := "views." + v.Name
		if old, ok := l.m.Views[v.Name]; ok {
			l.addKey(p, fmt.Sprintf("view %s is defined twice (also in %s)", v.Name, old.file))
			continue
		}
		v.file = name
		l.m.Views[v.Name] = v
	}
	for _, e := range doc.Explores {
		p := "explores." + e.Name
		if old, ok := l.m.Explores[e.Name]; ok {
			l.addKey(p, fmt.Sprintf("explore %s is defined twice (also in %s)", e.Name, old.file))
			continue
		}
		e.file, e.model = name, model
		l.m.Explores[e.Name] = e
		l.m.Order = append(l.m.Order, e.Name)
	}
}

// finish validates the model and returns it, or every error found.
func (l *loader) finish() (*Model, error) {
	if len(l.errs) == 0 {
		l.validate()
	}
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool {
			a, b := l.errs[i], l.errs[j]
			if a.File != b.File {
				return a.File < b.File
			}
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		return nil, l.errs
	}
	return l.m, nil
}

// unwrap gives the node an anchor or a tag stands for.
func unwrap(n ast.Node) ast.Node {
	for {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		default:
			return n
		}
	}
}

func (l *loader) at(n ast.Node) pos {
	if n == nil {
		return pos{file: l.cur}
	}
	tk := n.GetToken()
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		tk = m.Values[0].Key.GetToken()
	}
	if tk == nil || tk.Position == nil {
		return pos{file: l.cur}
	}
	return pos{file: l.cur, line: tk.Position.Line, col: tk.Position.Column}
}

// decode fills v from node n, found at path.
func (l *loader) decode(n ast.Node, p string, v reflect.Value) {
	n = unwrap(n)
	if _, ok := n.(*ast.AliasNode); ok {
		l.addNode(n, p, "aliases (*name) are not supported in model files: write the value out")
		return
	}
	if n == nil {
		return
	}
	if _, ok := n.(*ast.NullNode); ok {
		return
	}
	l.values[p] = l.at(n)
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		l.decode(n, p, v.Elem())
	case reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			l.addNode(n, p, "must be a mapping of keys, not "+describe(n))
			return
		}
		t := v.Type()
		var names []string
		var index []int
		for i := range t.NumField() {
			if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
				names = append(names, strings.Split(tag, ",")[0])
				index = append(index, i)
			}
		}
		for _, kv := range m.Values {
			key := kv.Key.String()
			kp := join(p, key)
			l.keys[kp] = l.at(kv.Key)
			i := slices.IndexFunc(names, func(s string) bool { return s == key })
			if i < 0 {
				msg := fmt.Sprintf("unknown field %q", key)
				if s := suggest(key, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				} else {
					msg += " (the fields are " + strings.Join(names, ", ") + ")"
				}
				l.addNode(kv.Key, kp, msg)
				continue
			}
			f := t.Field(index[i])
			fv := v.Field(index[i])
			if strings.HasSuffix(f.Tag.Get("yaml"), ",keyed") {
				l.keyed(kv.Value, kp, fv)
				continue
			}
			l.decode(kv.Value, kp, fv)
		}
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			if v.Type().Elem().Kind() == reflect.String {
				// One value for a list of one.
				e := reflect.New(v.Type().Elem()).Elem()
				l.decode(n, p, e)
				v.Set(reflect.Append(v, e))
				return
			}
			l.addNode(n, p, "must be a list, not "+describe(n))
			return
		}
		for i, item := range seq.Values {
			e := reflect.New(v.Type().Elem()).Elem()
			l.decode(item, fmt.Sprintf("%s[%d]", p, i), e)
			v.Set(reflect.Append(v, e))
		}
	case reflect.String:
		switch x := n.(type) {
		case *ast.StringNode:
			v.SetString(x.Value)
		case *ast.LiteralNode:
			v.SetString(x.Value.Value)
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
			v.SetString(x.GetToken().Value)
		default:
			l.addNode(n, p, "must be text, not "+describe(n))
		}
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			l.addNode(n, p, "must be true or false, not "+describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Interface:
		val, ok := scalar(n)
		if !ok {
			if seq, isSeq := n.(*ast.SequenceNode); isSeq {
				var list []any
				for i, item := range seq.Values {
					x, ok := scalar(unwrap(item))
					if !ok {
						l.addNode(item, fmt.Sprintf("%s[%d]", p, i), "must be a text, a number or true/false, not "+describe(item))
						continue
					}
					list = append(list, x)
				}
				v.Set(reflect.ValueOf(list))
				return
			}
			l.addNode(n, p, "must be a text, a number or true/false, not "+describe(n))
			return
		}
		if val != nil {
			v.Set(reflect.ValueOf(val))
		}
	}
}

// keyed decodes a mapping of name -> object into a list of objects whose
// Name field is their key, in file order.
func (l *loader) keyed(n ast.Node, p string, v reflect.Value) {
	n = unwrap(n)
	if n == nil {
		return
	}
	if _, ok := n.(*ast.NullNode); ok {
		return
	}
	l.values[p] = l.at(n)
	m, ok := n.(*ast.MappingNode)
	if !ok {
		l.addNode(n, p, "must be a mapping of names to definitions, not "+describe(n))
		return
	}
	seen := map[string]bool{}
	for _, kv := range m.Values {
		name := kv.Key.String()
		kp := p + "." + name
		l.keys[kp] = l.at(kv.Key)
		if !nameRe(name) {
			l.addNode(kv.Key, kp, fmt.Sprintf("%q is not a usable name: use letters, digits and _, starting with a letter or _", name))
			continue
		}
		if seen[name] {
			l.addNode(kv.Key, kp, fmt.Sprintf("%s is defined twice", name))
			continue
		}
		seen[name] = true
		e := reflect.New(v.Type().Elem().Elem())
		e.Elem().FieldByName("Name").SetString(name)
		l.decode(kv.Value, kp, e)
		v.Set(reflect.Append(v, e))
	}
}

// scalar is the Go value of a scalar node: string, int64, uint64, float64,
// bool or nil.
func scalar(n ast.Node) (any, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.BoolNode:
		return x.Value, true
	case *ast.NullNode:
		return nil, true
	}
	return nil, false
}

func describe(n ast.Node) string {
	switch unwrap(n).(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode, *ast.FloatNode:
		return "a number"
	case *ast.BoolNode:
		return "true/false"
	case *ast.NullNode:
		return "null"
	}
	return strconv.Quote(n.GetToken().Value)
}

func nameRe(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

// addNode records a problem at node n.
func (l *loader) addNode(n ast.Node, p, msg string) {
	at := l.at(n)
	l.errs = append(l.errs, Error{File: at.file, Line: at.line, Column: at.col, Path: p, Message: msg})
}

// add records a problem at the value of path p (or its key, or the nearest
// enclosing value).
func (l *loader) add(p, msg string) {
	at, ok := l.values[p]
	if !ok {
		at, ok = l.keys[p]
	}
	for q := p; !ok && strings.Contains(q, "."); {
		q = q[:strings.LastIndex(q, ".")]
		at, ok = l.values[q]
	}
	l.errs = append(l.errs, Error{File: at.file, Line: at.line, Column: at.col, Path: p, Message: msg})
}

// addKey records a problem at the key of path p.
func (l *loader) addKey(p, msg string) {
	at, ok := l.keys[p]
	if !ok {
		l.add(p, msg)
		return
	}
	l.errs = append(l.errs, Error{File: at.file, Line: at.line, Column: at.col, Path: p, Message: msg})
}

// suggest is the candidate closest to s, when it is close.
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := distance(s, c)
		if len(s) >= 3 && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)) {
			d = min(d, 2)
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
