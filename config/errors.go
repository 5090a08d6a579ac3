package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a config file: what is wrong, where, and what to do
// about it.
type Error struct {
	File    string // the file name given to Load or Parse
	Line    int    // 1-based; 0 when the problem has no single position
	Column  int    // 1-based, counted in characters
	Path    string // YAML path of the offending key or value, e.g. sources.syslog.listen
	Message string // what is wrong
	Hint    string // what to do about it; may be empty
}

// Error formats the problem as file:line:column: message (hint: ...).
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", e.Hint)
	}
	return b.String()
}

// Errors is every problem found in one config file, in file order. Load and
// Parse return it (as an error) whenever a file is not usable, so that a user
// can fix everything in one go.
type Errors []Error

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
