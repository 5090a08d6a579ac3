package logparse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/jsonscan"
)

// jsonParser reads one JSON object per record. Its top-level members become
// fields, typed; "time", "timestamp", "@timestamp" or "ts" (RFC 3339, or
// epoch seconds or milliseconds) become Time, "message"/"msg" Message,
// "host"/"hostname" Host, "app"/"service" App. null members are left out.
//
// Records are read in one pass over their bytes (scanObject): names and
// values are substrings of one copy of the record, so a record costs a few
// allocations however many members it has. What that pass declines (any
// malformed record, and values nested deeper than 64) is read by
// decodeObject, with encoding/json: its errors are the ones users have
// always seen, text and byte offset, which the scanner does not imitate.
type jsonParser struct{}

func (jsonParser) Parse(rec []byte) (Record, error) {
	if r, ok := scanObject(rec); ok {
		return r, nil
	}
	return decodeObject(rec)
}

// scanObject reads a record that is one JSON object, whitespace around it
// allowed, exactly as decodeObject does; ok is false for anything else.
func scanObject(rec []byte) (Record, bool) {
	s := string(rec)
	var r Record
	// Fields gather on the stack; the record gets a copy of the right size.
	var buf [32]Field
	fields := buf[:0]
	i := jsonscan.SkipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return Record{}, false
	}
	i = jsonscan.SkipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			name, end, ok := scanString(s, i)
			if !ok {
				return Record{}, false
			}
			i = jsonscan.SkipSpace(s, end)
			if i >= len(s) || s[i] != ':' {
				return Record{}, false
			}
			i = jsonscan.SkipSpace(s, i+1)
			f, null, end, ok := scanMember(name, s, i)
			if !ok {
				return Record{}, false
			}
			if !null && !r.lift(f) {
				fields = append(fields, f)
			}
			i = jsonscan.SkipSpace(s, end)
			if i < len(s) && s[i] == ',' {
				i = jsonscan.SkipSpace(s, i+1)
				continue
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			return Record{}, false
		}
	}
	if jsonscan.SkipSpace(s, i) != len(s) {
		return Record{}, false
	}
	if len(fields) > 0 {
		r.Fields = append([]Field(nil), fields...)
	}
	return r, true
}

// scanMember types the value at s[i] as jsonField does, and returns the
// index just past it; null reports a null value.
func scanMember(name, s string, i int) (f Field, null bool, end int, ok bool) {
	if i >= len(s) {
		return Field{}, false, 0, false
	}
	switch s[i] {
	case '"':
		v, end, ok := scanString(s, i)
		return Field{Name: name, Kind: String, Value: v}, false, end, ok
	case '{', '[':
		end, ok := nestedEnd(s, i)
		if !ok {
			return Field{}, false, 0, false
		}
		return Field{Name: name, Kind: JSON, Value: s[i:end]}, false, end, true
	case 't':
		ok := strings.HasPrefix(s[i:], "true")
		return Field{Name: name, Kind: Bool, Value: "true"}, false, i + 4, ok
	case 'f':
		ok := strings.HasPrefix(s[i:], "false")
		return Field{Name: name, Kind: Bool, Value: "false"}, false, i + 5, ok
	case 'n':
		return Field{}, true, i + 4, strings.HasPrefix(s[i:], "null")
	}
	end, _, ok = numberEnd(s, i)
	if !ok {
		return Field{}, false, 0, false
	}
	return numberField(name, s[i:end]), false, end, true
}

// scanString returns the contents of the JSON string at s[i], decoded as
// encoding/json decodes them, and the index just past it.
func scanString(s string, i int) (v string, end int, ok bool) {
	end, decode, ok := jsonscan.StringEnd(s, i)
	if !ok {
		return "", 0, false
	}
	v = s[i+1 : end-1]
	if decode {
		v = jsonscan.Unquote(v)
	}
	return v, end, true
}

// numberEnd returns the index just past the JSON number at s[i], and
// whether it is an integer (no fraction, no exponent).
func numberEnd(s string, i int) (end int, integer, ok bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digitsEnd(s, i+1)
	default:
		return 0, false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		j := digitsEnd(s, i+1)
		if j == i+1 {
			return 0, false, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digitsEnd(s, i)
		if j == i {
			return 0, false, false
		}
		i = j
	}
	return i, integer, true
}

func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// maxNesting is the depth of arrays and objects in a member's value that
// nestedEnd reads; deeper ones (which encoding/json reads up to 10,000)
// are left to decodeObject.
const maxNesting = 64

// nestedEnd returns the index just past the object or array at s[i]; ok is
// false where encoding/json would refuse it, or where it nests deeper than
// maxNesting.
func nestedEnd(s string, i int) (end int, ok bool) {
	var objects uint64 // bit d is set when the container at depth d+1 is an object
	depth := 0
	for {
		// At the start of a value.
		if i >= len(s) {
			return 0, false
		}
		switch c := s[i]; c {
		case '{', '[':
			i = jsonscan.SkipSpace(s, i+1)
			if i < len(s) && (s[i] == '}' && c == '{' || s[i] == ']' && c == '[') {
				i++ // empty: a whole value
				break
			}
			if depth == maxNesting {
				return 0, false
			}
			objects <<= 1
			if c == '{' {
				objects |= 1
			}
			depth++
			if c == '{' {
				if i, ok = keyEnd(s, i); !ok {
					return 0, false
				}
			}
			continue
		case '"':
			if i, _, ok = jsonscan.StringEnd(s, i); !ok {
				return 0, false
			}
		case 't':
			if !strings.HasPrefix(s[i:], "true") {
				return 0, false
			}
			i += 4
		case 'f':
			if !strings.HasPrefix(s[i:], "false") {
				return 0, false
			}
			i += 5
		case 'n':
			if !strings.HasPrefix(s[i:], "null") {
				return 0, false
			}
			i += 4
		default:
			if i, _, ok = numberEnd(s, i); !ok {
				return 0, false
			}
		}
		// After a value: close containers until a ',' leads to the next value.
		for {
			if depth == 0 {
				return i, true
			}
			i = jsonscan.SkipSpace(s, i)
			if i >= len(s) {
				return 0, false
			}
			object := objects&1 == 1
			if s[i] == ',' {
				i = jsonscan.SkipSpace(s, i+1)
				if object {
					if i, ok = keyEnd(s, i); !ok {
						return 0, false
					}
				}
				break
			}
			if !(s[i] == '}' && object || s[i] == ']' && !object) {
				return 0, false
			}
			i++
			objects >>= 1
			depth--
		}
	}
}

// keyEnd returns the index of the value after the object key at s[i] and
// its ':'.
func keyEnd(s string, i int) (int, bool) {
	i, _, ok := jsonscan.StringEnd(s, i)
	if !ok {
		return 0, false
	}
	i = jsonscan.SkipSpace(s, i)
	if i >= len(s) || s[i] != ':' {
		return 0, false
	}
	return jsonscan.SkipSpace(s, i+1), true
}

// decodeObject reads a record with encoding/json's Decoder, as Parse did
// before scanObject. Parse gives it the records the scanner declines, so its
// errors still say what they always said.
func decodeObject(rec []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Record{}, fmt.Errorf("json: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Record{}, fmt.Errorf("json: record is not an object (starts with %s)", describe(tok))
	}
	var r Record
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("json: at byte %d: %w", dec.InputOffset(), err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Record{}, fmt.Errorf("json: member %q at byte %d: %w", name, dec.InputOffset(), err)
		}
		f, ok := jsonField(name, raw)
		if !ok {
			continue
		}
		if r.lift(f) {
			continue
		}
		r.Fields = append(r.Fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, fmt.Errorf("json: at byte %d: %w", dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Record{}, fmt.Errorf("json: more after the object at byte %d", dec.InputOffset())
	}
	return r, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return "'" + v.String() + "'"
	case string:
		return "a string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// jsonField types one member; ok is false for null.
func jsonField(name string, raw json.RawMessage) (Field, bool) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Field{Name: name, Kind: String, Value: string(raw)}, true
		}
		return Field{Name: name, Kind: String, Value: s}, true
	case 't', 'f':
		return Field{Name: name, Kind: Bool, Value: string(raw)}, true
	case 'n':
		return Field{}, false
	case '{', '[':
		return Field{Name: name, Kind: JSON, Value: string(raw)}, true
	}
	return numberField(name, string(raw)), true
}

// lift moves a well-known member into the record's own columns.
func (r *Record) lift(f Field) bool {
	switch f.Name {
	case "time", "timestamp", "@timestamp", "ts":
		if !r.Time.IsZero() {
			return false
		}
		if t, ok := jsonTime(f); ok {
			r.Time = t
			return true
		}
	case "message", "msg":
		if f.Kind == String && r.Message == "" {
			r.Message = f.Value
			return true
		}
	case "host", "hostname":
		if f.Kind == String && r.Host == "" {
			r.Host = f.Value
			return true
		}
	case "app", "service":
		if f.Kind == String && r.App == "" {
			r.App = f.Value
			return true
		}
	}
	return false
}

func jsonTime(f Field) (time.Time, bool) {
	switch f.Kind {
	case String:
		return parseTime(f.Value)
	case Int, Float:
		if n, err := strconv.ParseInt(f.Value, 10, 64); err == nil && n >= 0 && n < 1e17 {
			if n >= 1e11 { // milliseconds (1e11 s is the year 5138)
				return time.UnixMilli(n).UTC(), true
			}
			return time.Unix(n, 0).UTC(), true
		}
		v, err := strconv.ParseFloat(f.Value, 64)
		if err != nil || v < 0 || v > 1e17 || math.IsNaN(v) {
			return time.Time{}, false
		}
		if v >= 1e11 { // milliseconds (1e11 s is the year 5138)
			v /= 1000
		}
		sec := math.Floor(v)
		return time.Unix(int64(sec), int64((v-sec)*1e9)).UTC(), true
	}
	return time.Time{}, false
}

// validJSON checks a JSON field's value before it is written raw.
func validJSON(s string) bool { return json.Valid([]byte(s)) }
