package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads and checks the config file at path. An empty path means no file:
// the built-in defaults (Default). A file that cannot be read gives the
// os error; a file with problems gives Errors listing all of them.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse checks and decodes the text of a config file; filename is only used in
// error messages. It substitutes environment variables, checks every key and
// value against the Config types, fills in defaults and validates the result.
// Any problem makes it return nil and Errors with every problem found.
func Parse(filename string, data []byte) (*Config, error) {
	l := &loader{file: filename, values: map[string]ast.Node{}, keys: map[string]ast.Node{}}
	x, problems := expandEnv(data, os.LookupEnv)
	l.src = x
	for _, p := range problems {
		line, col := lineCol(data, p.offset)
		l.errs = append(l.errs, Error{File: filename, Line: line, Column: col, Message: p.message, Hint: p.hint})
	}
	cfg := l.decode()
	if len(l.errs) > 0 {
		return nil, l.sorted()
	}
	return cfg, nil
}

// loader holds what one Parse call learns about a file: errors so far and, by
// YAML path, where each key and value is, for the positions of later errors.
type loader struct {
	file    string
	src     *expansion
	errs    Errors
	values  map[string]ast.Node // path -> value node, only for non-null values
	keys    map[string]ast.Node // path -> key node
	anchors map[string]ast.Node
	depth   int
}

// decode parses the expanded text, checks its shape, decodes what is usable
// and validates it. It returns nil when the file could not be decoded at all.
func (l *loader) decode() *Config {
	f, err := parser.ParseBytes(l.src.text, 0)
	if err != nil {
		l.yamlError(err)
		return nil
	}
	var body ast.Node
	for _, doc := range f.Docs {
		switch {
		case doc.Body == nil:
		case body != nil:
			l.add(doc.Body, "", "the file holds more than one YAML document", "keep one document: remove the --- separators")
			return nil
		default:
			body = doc.Body
		}
	}
	var cfg Config
	if body != nil {
		l.anchors = collectAnchors(body)
		root, ok := l.resolve(body).(*ast.MappingNode)
		if !ok {
			l.add(body, "", fmt.Sprintf("the file must be a mapping of keys (data_dir, http, sources, ...), not %s", describe(l.resolve(body))),
				"start with top-level keys such as data_dir: ./sluice-data")
			return nil
		}
		l.unavailable(root)
		l.check(root, configType, "")
		hadErrors := len(l.errs) > 0
		if err := yaml.NodeToValue(root, &cfg); err != nil {
			// Parts removed after an earlier error can break aliases; the
			// earlier error is the one to report.
			if !hadErrors {
				l.yamlError(err)
			}
			return nil
		}
	}
	fillDefaults(&cfg, func(path string) bool { return l.values[path] != nil })
	l.validate(&cfg)
	return &cfg
}

// add records a problem at node n.
func (l *loader) add(n ast.Node, path, message, hint string) {
	e := Error{File: l.file, Path: path, Message: message, Hint: hint}
	if tk := nodeToken(n); tk != nil && tk.Position != nil {
		e.Line, e.Column = l.src.origPos(tk.Position.Line, tk.Position.Column)
	}
	l.errs = append(l.errs, e)
}

// addAt records a problem at the value of path (or its key, when the value was
// empty). Validation uses it: by then only paths are known.
func (l *loader) addAt(path, message, hint string) {
	n := l.values[path]
	if n == nil {
		n = l.keys[path]
	}
	// A field of a value written in short form (output: daily_revenue for
	// output.table) is at that value.
	for p := path; n == nil && strings.Contains(p, "."); {
		p = p[:strings.LastIndex(p, ".")]
		n = l.values[p]
	}
	l.add(n, path, message, hint)
}

// addAtKey records a problem at the key of path.
func (l *loader) addAtKey(path, message, hint string) {
	l.add(l.keys[path], path, message, hint)
}

// duplicateKeyRE matches the parser's message for a key given twice.
var duplicateKeyRE = regexp.MustCompile(`mapping key "(.*)" already defined at \[(\d+):(\d+)\]`)

// yamlError turns an error from the YAML library into an Error.
func (l *loader) yamlError(err error) {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		l.errs = append(l.errs, Error{File: l.file, Message: "invalid YAML: " + err.Error(), Hint: "check the syntax of the file"})
		return
	}
	message := "invalid YAML: " + strings.ReplaceAll(ye.GetMessage(), "\t", `\t`)
	hint := "check the indentation, and quote values that contain \": \" or \" #\" or start with {, [, *, & or !"
	if m := duplicateKeyRE.FindStringSubmatch(ye.GetMessage()); m != nil {
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		line, _ = l.src.origPos(line, col)
		message = fmt.Sprintf("key %q is defined twice (first on line %d)", m[1], line)
		hint = "remove or rename one of the two"
	} else if _, ok := ye.(*yaml.DuplicateKeyError); ok {
		hint = "remove one of the two; a key merged in with <<: *anchor cannot be set again"
	} else if strings.Contains(ye.GetMessage(), "\t") {
		hint = "indent with spaces: YAML does not allow tabs"
	}
	e := Error{File: l.file, Message: message, Hint: hint}
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Column = l.src.origPos(tk.Position.Line, tk.Position.Column)
	}
	l.errs = append(l.errs, e)
}

// sorted returns the errors in file order, without exact duplicates (a value
// reached through an alias can be reported from two places).
func (l *loader) sorted() Errors {
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	out := l.errs[:0]
	for i, e := range l.errs {
		if i == 0 || e != l.errs[i-1] {
			out = append(out, e)
		}
	}
	return out
}

// nodeToken is the token that best marks where a node starts: the first key
// of a block mapping, the opening bracket of a flow collection, the value of
// a scalar.
func nodeToken(n ast.Node) *token.Token {
	switch n := n.(type) {
	case nil:
		return nil
	case *ast.MappingNode:
		if !n.IsFlowStyle && len(n.Values) > 0 {
			return n.Values[0].Key.GetToken()
		}
	case *ast.MappingValueNode:
		return n.Key.GetToken()
	}
	return n.GetToken()
}
