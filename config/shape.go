package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// The shape check walks the YAML tree alongside the Go types of Config (by
// their yaml tags), so that an unknown key or a value of the wrong kind is
// reported at its own line and column, all of them at once. A value that
// cannot be decoded is removed from the tree afterwards, so that the rest of
// the file can still be decoded and validated.

var (
	configType     = reflect.TypeFor[Config]()
	durationType   = reflect.TypeFor[Duration]()
	byteSizeType   = reflect.TypeFor[ByteSize]()
	stringListType = reflect.TypeFor[StringList]()
	outputsType    = reflect.TypeFor[Outputs]()
	inputsType     = reflect.TypeFor[Inputs]()
	inputType      = reflect.TypeFor[Input]()
	targetType     = reflect.TypeFor[Target]()
)

// maxDepth bounds the walk; aliases could otherwise make it loop.
const maxDepth = 64

// field is one yaml-tagged field of a struct.
type field struct {
	name string
	typ  reflect.Type
}

// yamlFields lists the keys a struct accepts, in declaration order.
func yamlFields(t reflect.Type) []field {
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields = append(fields, field{name, f.Type})
	}
	return fields
}

// check reports whether node n fits type t at path, reporting every problem
// found on the way. A false result means n cannot be decoded and its parent
// must drop it.
func (l *loader) check(n ast.Node, t reflect.Type, path string) bool {
	l.depth++
	defer func() { l.depth-- }()
	// Problems with the value as a whole are reported where it is written:
	// at the alias, not at the anchor it points to.
	at := n
	n = l.resolve(n)
	if _, ok := at.(*ast.AliasNode); !ok {
		at = n
	}
	if n == nil || n.Type() == ast.NullType || l.depth > maxDepth {
		return true
	}
	switch {
	case t == stringListType:
		if _, ok := n.(*ast.SequenceNode); ok {
			return l.check(n, reflect.TypeFor[[]string](), path)
		}
		return l.check(n, reflect.TypeFor[string](), path)
	case t == outputsType:
		if _, ok := n.(*ast.SequenceNode); ok {
			return l.check(n, reflect.TypeFor[[]Output](), path)
		}
		return l.check(n, reflect.TypeFor[Output](), path)
	case t == inputsType:
		if _, ok := n.(*ast.SequenceNode); ok {
			return l.check(n, reflect.TypeFor[[]Input](), path)
		}
		return l.check(n, inputType, path)
	case t == inputType:
		if _, ok := n.(ast.ScalarNode); ok {
			return l.check(n, reflect.TypeFor[string](), path) // a stream's name
		}
		return l.checkStruct(n, at, t, path)
	case t == targetType:
		if _, ok := n.(ast.ScalarNode); ok {
			return l.check(n, reflect.TypeFor[string](), path) // a table's name
		}
		return l.checkStruct(n, at, t, path)
	case t == durationType:
		return l.checkScalar(n, at, path, "a duration such as 72h", durationHint, func(s string) error {
			_, err := ParseDuration(s)
			return err
		})
	case t == byteSizeType:
		return l.checkScalar(n, at, path, "a size such as 1MiB", byteSizeHint, func(s string) error {
			_, err := ParseByteSize(s)
			return err
		})
	}
	switch t.Kind() {
	case reflect.Struct:
		return l.checkStruct(n, at, t, path)
	case reflect.Map:
		return l.checkMap(n, at, t, path)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			l.add(at, path, fmt.Sprintf("%s must be a list, not %s", name(path), describe(n)),
				fmt.Sprintf(`write a list, e.g. %s: [a, b], or one "- item" per line`, lastKey(path)))
			return false
		}
		ok = true
		for i, item := range seq.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			// Known by position, so that validation can point at an item.
			if v := l.resolve(item); v != nil && v.Type() != ast.NullType {
				l.values[p] = item
			}
			ok = l.check(item, t.Elem(), p) && ok
		}
		return ok
	case reflect.String:
		if _, ok := n.(ast.ScalarNode); !ok {
			l.add(at, path, fmt.Sprintf("%s must be a single value, not %s", name(path), describe(n)),
				`put the value on the same line as the key; quote it if it contains ": ", " #", "{" or "["`)
			return false
		}
		return true
	case reflect.Int, reflect.Int64:
		return l.checkScalar(n, at, path, "a whole number", "write digits only, e.g. 10000", func(s string) error {
			_, err := strconv.ParseInt(s, 10, 64)
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("%q is too large", s)
			} else if err != nil {
				return fmt.Errorf("%q is not a whole number", s)
			}
			return nil
		})
	case reflect.Bool:
		return l.checkScalar(n, at, path, "true or false", "write true or false", func(s string) error {
			if s != "true" && s != "false" {
				return fmt.Errorf("%q is not true or false", s)
			}
			return nil
		})
	case reflect.Interface:
		return true
	case reflect.Pointer:
		return l.check(n, t.Elem(), path)
	case reflect.Float64:
		return l.checkScalar(n, at, path, "a number", "write a number, e.g. 0.1", func(s string) error {
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				return fmt.Errorf("%q is not a number", s)
			}
			return nil
		})
	}
	panic(fmt.Sprintf("config: no shape check for %s at %s", t, path))
}

// checkScalar checks a scalar with parse, the same function that decoding
// uses; parse's error says what is wrong with the text.
func (l *loader) checkScalar(n, at ast.Node, path, want, hint string, parse func(string) error) bool {
	s, ok := n.(ast.ScalarNode)
	if !ok {
		l.add(at, path, fmt.Sprintf("%s must be %s, not %s", name(path), want, describe(n)), hint)
		return false
	}
	if err := parse(fmt.Sprint(s.GetValue())); err != nil {
		l.add(at, path, fmt.Sprintf("%s: %v", name(path), err), hint)
		return false
	}
	return true
}

// checkStruct checks a mapping against the fields of struct type t. Problems
// with n as a whole are reported at at.
func (l *loader) checkStruct(n, at ast.Node, t reflect.Type, path string) bool {
	fields := yamlFields(t)
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	if _, ok := n.(ast.MapNode); !ok {
		l.add(at, path, fmt.Sprintf("%s must be a mapping, not %s", name(path), describe(n)),
			fmt.Sprintf("%s takes the keys %s", name(path), strings.Join(names, ", ")))
		return false
	}
	return l.checkEntries(n, path, func(key string, kv *ast.MappingValueNode) bool {
		for _, f := range fields {
			if f.name == key {
				return l.check(kv.Value, f.typ, join(path, key))
			}
		}
		hint := fmt.Sprintf("%s takes the keys %s", name(path), strings.Join(names, ", "))
		if s := suggest(key, names); s != "" {
			hint = fmt.Sprintf("did you mean %s?", s)
		}
		where := "in " + name(path)
		if path == "" {
			where = "at the top level"
		}
		l.add(kv.Key, join(path, key), fmt.Sprintf("unknown key %q %s", key, where), hint)
		return true // goccy ignores unknown keys; nothing to drop
	}, func(merged ast.Node) bool { return l.checkStruct(merged, merged, t, path) })
}

// checkMap checks a mapping from names to values of t's element type.
func (l *loader) checkMap(n, at ast.Node, t reflect.Type, path string) bool {
	if _, ok := n.(ast.MapNode); !ok {
		l.add(at, path, fmt.Sprintf("%s must be a mapping of names to settings, not %s", name(path), describe(n)),
			fmt.Sprintf("write one \"name: {...}\" entry per line under %s:", lastKey(path)))
		return false
	}
	return l.checkEntries(n, path, func(key string, kv *ast.MappingValueNode) bool {
		return l.check(kv.Value, t.Elem(), join(path, key))
	}, func(merged ast.Node) bool { return l.checkMap(merged, merged, t, path) })
}

// checkEntries runs entry on every key of mapping n, records where each key
// and value is, and drops the entries entry rejects. Merge keys (<<: *anchor)
// are checked as if their mapping were written in place.
func (l *loader) checkEntries(n ast.Node, path string, entry func(string, *ast.MappingValueNode) bool, merge func(ast.Node) bool) bool {
	var pairs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		pairs = m.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{m}
	}
	kept := pairs[:0:0]
	for _, kv := range pairs {
		ok := true
		if kv.Key.IsMergeKey() {
			ok = merge(l.resolve(kv.Value))
		} else {
			key := keyString(kv.Key)
			p := join(path, key)
			l.keys[p] = kv.Key
			if v := l.resolve(kv.Value); v != nil && v.Type() != ast.NullType {
				l.values[p] = kv.Value
			}
			if ok = entry(key, kv); !ok {
				delete(l.values, p)
			}
		}
		if ok {
			kept = append(kept, kv)
		}
	}
	if len(kept) == len(pairs) {
		return true
	}
	m, isMapping := n.(*ast.MappingNode)
	if !isMapping {
		return false
	}
	m.Values = kept
	return true
}

// resolve looks through tags, anchors and aliases to the node that holds the
// value.
func (l *loader) resolve(n ast.Node) ast.Node {
	for range maxDepth {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			n = l.anchors[v.Value.GetToken().Value]
		default:
			return n
		}
	}
	return n
}

// collectAnchors maps anchor names to the nodes they mark.
func collectAnchors(root ast.Node) map[string]ast.Node {
	anchors := map[string]ast.Node{}
	ast.Walk(anchorVisitor(anchors), root)
	return anchors
}

type anchorVisitor map[string]ast.Node

func (a anchorVisitor) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// keyString is the text of a mapping key.
func keyString(k ast.MapKeyNode) string {
	if s, ok := k.(ast.ScalarNode); ok {
		return fmt.Sprint(s.GetValue())
	}
	return k.String()
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n ast.Node) string {
	switch n := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.StringNode:
		s := n.Value
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return strconv.Quote(s)
	case *ast.IntegerNode, *ast.FloatNode:
		return "the number " + n.GetToken().Value
	case *ast.BoolNode:
		return n.GetToken().Value
	}
	return strings.ToLower(n.Type().String())
}

// join appends a key to a YAML path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// name is how messages refer to a path.
func name(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// lastKey is the last key of a path, as the user wrote it.
func lastKey(path string) string {
	return path[strings.LastIndexByte(path, '.')+1:]
}

// suggest returns the option closest to s, or "" when none is close enough to
// be a typo.
func suggest(s string, options []string) string {
	best, bestDist := "", 0
	for _, o := range options {
		if d := editDistance(s, o); best == "" || d < bestDist {
			best, bestDist = o, d
		}
	}
	if best == "" || bestDist > 2 || bestDist*2 > len(s) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// sortedKeys returns a map's keys in order, so that errors come out the same
// on every run.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
