// Package logparse turns log records (lines of tailed files) into fields:
// JSON lines, nginx/apache access logs, regular expressions with named
// groups, or plain text. Parsers are pure functions of one record: no I/O,
// safe for concurrent use, and they never panic on hostile input; a record
// they cannot read is an error that says what was wrong and at which byte.
package logparse

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/jsonseq"
)

// Parser reads one record.
type Parser interface {
	Parse(rec []byte) (Record, error)
}

// Record is a parsed log record.
type Record struct {
	Time    time.Time // UTC; zero when the record has none
	Host    string
	App     string
	Message string
	IP      string
	Fields  []Field // in the record's order
}

// Kind is how a field's Value is to be read.
type Kind uint8

// The kinds of fields.
const (
	String Kind = iota
	Int
	Float
	Bool
	JSON // Value is raw JSON (an object or array)
)

// Field is one named value of a record. Value holds text for String, the
// number's digits for Int and Float, "true"/"false" for Bool, raw JSON for
// JSON. Text may hold bytes that are not UTF-8.
type Field struct {
	Name  string
	Kind  Kind
	Value string
}

// Formats New knows.
const (
	FormatJSON           = "json"
	FormatNginxCombined  = "nginx_combined"
	FormatApacheCombined = "apache_combined"
	FormatApacheCommon   = "apache_common"
	FormatRegex          = "regex"
	FormatPlain          = "plain"
)

// New returns the parser for format; pattern is the regular expression of
// the regex format (named groups, (?P<name>…), become fields).
func New(format, pattern string) (Parser, error) {
	if pattern != "" && format != FormatRegex {
		return nil, fmt.Errorf("parse %s: a pattern is only for parse: regex", format)
	}
	switch format {
	case FormatJSON:
		return jsonParser{}, nil
	case FormatNginxCombined, FormatApacheCombined:
		return accessParser{name: format, combined: true}, nil
	case FormatApacheCommon:
		return accessParser{name: format}, nil
	case FormatRegex:
		return newRegex(pattern)
	case FormatPlain, "":
		return plainParser{}, nil
	}
	return nil, fmt.Errorf("unknown parse format %q (want json, nginx_combined, apache_combined, apache_common, regex or plain)", format)
}

type plainParser struct{}

func (plainParser) Parse(rec []byte) (Record, error) { return Record{Message: string(rec)}, nil }

// AppendFieldsJSON appends the fields as one JSON object, in order. Bytes
// that are not UTF-8 become U+FFFD; a number or JSON value that is not valid
// (which a parser never produces) is written as a string, so the output is
// always valid JSON.
func (r *Record) AppendFieldsJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, f := range r.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonseq.AppendString(dst, f.Name)
		dst = append(dst, ':')
		switch f.Kind {
		case Int, Float:
			if isJSONNumber(f.Value) {
				dst = append(dst, f.Value...)
				continue
			}
		case Bool:
			if f.Value == "true" || f.Value == "false" {
				dst = append(dst, f.Value...)
				continue
			}
		case JSON:
			if validJSON(f.Value) {
				dst = append(dst, f.Value...)
				continue
			}
		}
		dst = jsonseq.AppendString(dst, f.Value)
	}
	return append(dst, '}')
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	end, _, ok := numberEnd(s, 0)
	return ok && end == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// numberField types a JSON number: Int when it is an integer that fits.
func numberField(name, v string) Field {
	if _, integer, _ := numberEnd(v, 0); integer && fitsInt64(v) {
		return Field{Name: name, Kind: Int, Value: v}
	}
	return Field{Name: name, Kind: Float, Value: v}
}

// fitsInt64 reports whether the digits of a JSON integer (no leading zeros)
// fit in an int64, as strconv.ParseInt(v, 10, 64) would say, but without
// the error it allocates for each number that does not.
func fitsInt64(v string) bool {
	digits := strings.TrimPrefix(v, "-")
	switch {
	case len(digits) < 19:
		return true
	case len(digits) > 19:
		return false
	case len(digits) < len(v):
		return digits <= "9223372036854775808"
	}
	return digits <= "9223372036854775807"
}

// timeLayouts are tried, in order, on a timestamp from a regex group.
var timeLayouts = []string{time.RFC3339Nano, nginxTime, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.RFC1123Z, time.RFC1123, time.ANSIC}

const nginxTime = "02/Jan/2006:15:04:05 -0700"

func parseTime(s string) (time.Time, bool) {
	if t, ok := parseNginxTime(s); ok {
		return t, true
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

type regexParser struct {
	re    *regexp.Regexp
	names []string
}

func newRegex(pattern string) (Parser, error) {
	if pattern == "" {
		return nil, fmt.Errorf("parse regex: no pattern")
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("parse regex: pattern: %w", err)
	}
	named := false
	for _, n := range re.SubexpNames() {
		named = named || n != ""
	}
	if !named {
		return nil, fmt.Errorf("parse regex: pattern %q has no named groups ((?P<name>…)), so it would yield no fields", pattern)
	}
	return regexParser{re: re, names: re.SubexpNames()}, nil
}

func (p regexParser) Parse(rec []byte) (Record, error) {
	s := string(rec)
	m := p.re.FindStringSubmatchIndex(s)
	if m == nil {
		return Record{}, fmt.Errorf("regex: record does not match the pattern %q", p.re.String())
	}
	var r Record
	for g, name := range p.names {
		if name == "" || m[2*g] < 0 || m[2*g] == m[2*g+1] {
			continue
		}
		v := s[m[2*g]:m[2*g+1]]
		switch name {
		case "timestamp", "time":
			if t, ok := parseTime(v); ok && r.Time.IsZero() {
				r.Time = t
				continue
			}
		case "message", "msg":
			r.Message = v
			continue
		case "host", "hostname":
			r.Host = v
			continue
		case "app":
			r.App = v
			continue
		case "ip", "remote_addr":
			r.IP = v
		}
		r.Fields = append(r.Fields, Field{Name: name, Kind: String, Value: v})
	}
	if r.Message == "" {
		r.Message = s
	}
	return r, nil
}
