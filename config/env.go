package config

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"unicode/utf8"
)

// envNameRE is what may stand between ${ and } (or :-).
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expansion is sluice.yaml after ${VAR} substitution, with enough bookkeeping
// to map a position in the expanded text back to the file the user wrote.
type expansion struct {
	orig, text []byte
	edits      []edit // in increasing order
}

// edit records that orig[inStart:inEnd] became text[outStart:outEnd].
type edit struct {
	inStart, inEnd, outStart, outEnd int
}

// envProblem is a bad or unset variable at a byte offset of the original text.
type envProblem struct {
	offset        int
	message, hint string
}

// expandEnv replaces ${VAR} and ${VAR:-default} in src with values from
// lookup, and $${ with a literal ${. Lines that are comments (first non-blank
// character #) are left alone, so that commented-out examples need no
// variables. Unset variables without a default are reported and replaced by
// nothing, so that the rest of the file can still be checked.
func expandEnv(src []byte, lookup func(string) (string, bool)) (*expansion, []envProblem) {
	x := &expansion{orig: src}
	var out bytes.Buffer
	var problems []envProblem
	lineStart := true
	inComment := false
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			lineStart, inComment = true, false
		case lineStart && (c == ' ' || c == '\t'):
		case lineStart:
			lineStart, inComment = false, c == '#'
		}
		if c != '$' || inComment {
			out.WriteByte(c)
			i++
			continue
		}
		rest := src[i:]
		if bytes.HasPrefix(rest, []byte("$${")) {
			x.edits = append(x.edits, edit{i, i + 3, out.Len(), out.Len() + 2})
			out.WriteString("${")
			i += 3
			continue
		}
		if !bytes.HasPrefix(rest, []byte("${")) {
			out.WriteByte(c)
			i++
			continue
		}
		end := bytes.IndexAny(rest, "}\n")
		if end < 0 || rest[end] != '}' {
			problems = append(problems, envProblem{i, "${ is not closed by } on the same line",
				"write ${NAME} or ${NAME:-default}, or $${ for a literal ${"})
			out.WriteByte(c)
			i++
			continue
		}
		ref := string(rest[:end+1])
		name, def, hasDef := string(rest[2:end]), "", false
		if j := bytes.Index(rest[2:end], []byte(":-")); j >= 0 {
			name, def, hasDef = string(rest[2:2+j]), string(rest[2+j+2:end]), true
		}
		var value string
		switch v, ok := lookup(name); {
		case !envNameRE.MatchString(name):
			problems = append(problems, envProblem{i, fmt.Sprintf("%s is not a valid variable reference", ref),
				"names are letters, digits and _, e.g. ${SLUICE_TOKEN} or ${SLUICE_TOKEN:-default}; write $${ for a literal ${"})
		case hasDef && v == "":
			value = def
		case ok:
			value = v
		default:
			problems = append(problems, envProblem{i, fmt.Sprintf("environment variable %s is not set", name),
				fmt.Sprintf("export %s, or write ${%s:-default} to use a default", name, name)})
		}
		x.edits = append(x.edits, edit{i, i + end + 1, out.Len(), out.Len() + len(value)})
		out.WriteString(value)
		i += end + 1
	}
	x.text = out.Bytes()
	return x, problems
}

// origPos maps a 1-based line and column (in characters) of the expanded text
// to the same place in the original text. A position inside a substituted
// value maps to the ${ that produced it.
func (x *expansion) origPos(line, col int) (int, int) {
	if len(x.edits) == 0 {
		return line, col
	}
	off := offsetOf(x.text, line, col)
	in := off
	if i := sort.Search(len(x.edits), func(i int) bool { return x.edits[i].outStart > off }) - 1; i >= 0 {
		e := x.edits[i]
		if off < e.outEnd {
			in = e.inStart
		} else {
			in = off - e.outEnd + e.inEnd
		}
	}
	return lineCol(x.orig, in)
}

// offsetOf turns a 1-based line and character column into a byte offset.
func offsetOf(text []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		nl := bytes.IndexByte(text[off:], '\n')
		if nl < 0 {
			return len(text)
		}
		off += nl + 1
	}
	for c := 1; c < col && off < len(text) && text[off] != '\n'; c++ {
		_, size := utf8.DecodeRune(text[off:])
		off += size
	}
	return off
}

// lineCol turns a byte offset into a 1-based line and character column.
func lineCol(text []byte, off int) (int, int) {
	off = min(off, len(text))
	before := text[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[lineStart:]) + 1
}
