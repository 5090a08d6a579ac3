package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/sluice-data/sluice/internal/jsonscan"
	"github.com/sluice-data/sluice/lake/schema"
)

// Event is one event as the steps see it: its top-level fields. Numbers are
// int64 when they are whole and fit, else float64; times read from the bus
// stay strings until a step needs them as times.
type Event = map[string]any

// Events are read and written by hand, in one pass: every event a pipeline
// reads is decoded (also those a filter then drops) and every one it keeps
// is encoded, and with encoding/json that was over a third of sluice's CPU
// in the pipeline benchmark (docs/benchmarks.md). decode and encode give
// what encoding/json gave before for every input: event_test.go compares
// them with it (decodeReference, encodeReference), also by fuzzing.

// maxDepth is how deeply encoding/json lets arrays and objects nest; decode
// refuses deeper ones as it did.
const maxDepth = 10000

// decode reads one NDJSON line into an Event: objects as map[string]any
// (the last of duplicate names wins), arrays as []any, strings decoded as
// encoding/json decodes them, numbers as int64 when strconv.ParseInt reads
// them and else float64 (strconv.ParseFloat's value, so 1e400 is +Inf).
//
// Like encoding/json's Decoder, which read events before, decode reads the
// first JSON value on the line and ignores what follows it:
// `{"a":1} {"b":2}` is the event {"a":1}.
// Decode reads one NDJSON line into an Event, as the pipelines do (the
// rollups read their streams with it too).
func Decode(line []byte) (Event, error) { return decode(line) }

func decode(line []byte) (Event, error) {
	// The event's strings are copied out of d.s, not sliced from it: windows
	// keep group values for long, and must not keep whole lines with them.
	d := decoder{s: string(line)}
	d.members = d.memberBuf[:0]
	d.elems = d.elemBuf[:0]
	i := jsonscan.SkipSpace(d.s, 0)
	if i >= len(d.s) {
		return nil, errors.New("no JSON value on the line")
	}
	if d.s[i] != '{' {
		return nil, fmt.Errorf("not a JSON object: starts with %s at byte %d", describeByte(d.s[i]), i)
	}
	ev, _, err := d.object(i, 1)
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// decoder reads the values of one line. Members and elements gather on
// stacks shared by all levels of nesting, so that each map and slice is made
// once, at its final size.
type decoder struct {
	s         string
	borrow    bool // strings are views of s, not copies (DecodeFields)
	members   []member
	elems     []any
	memberBuf [32]member
	elemBuf   [16]any
}

type member struct {
	name  string
	value any
}

// value reads the JSON value at s[i], inside depth arrays and objects, and
// returns the index just past it.
func (d *decoder) value(i, depth int) (any, int, error) {
	s := d.s
	if i >= len(s) {
		return nil, i, d.syntaxError(i, "looking for a value")
	}
	switch c := s[i]; c {
	case '{':
		return d.object(i, depth+1)
	case '[':
		return d.array(i, depth+1)
	case '"':
		return d.str(i)
	case 't':
		if strings.HasPrefix(s[i:], "true") {
			return true, i + 4, nil
		}
		return nil, i, d.literalError(i, "true")
	case 'f':
		if strings.HasPrefix(s[i:], "false") {
			return false, i + 5, nil
		}
		return nil, i, d.literalError(i, "false")
	case 'n':
		if strings.HasPrefix(s[i:], "null") {
			return nil, i + 4, nil
		}
		return nil, i, d.literalError(i, "null")
	default:
		if c == '-' || isDigit(c) {
			return d.number(i)
		}
		return nil, i, d.syntaxError(i, "looking for a value")
	}
}

// object reads the object at s[i], itself at depth.
func (d *decoder) object(i, depth int) (map[string]any, int, error) {
	if depth > maxDepth {
		return nil, i, fmt.Errorf("JSON nested deeper than %d at byte %d", maxDepth, i)
	}
	s := d.s
	i = jsonscan.SkipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return map[string]any{}, i + 1, nil
	}
	first := len(d.members)
	for {
		if i >= len(s) || s[i] != '"' {
			return nil, i, d.syntaxError(i, "looking for a member name")
		}
		name, end, err := d.name(i)
		if err != nil {
			return nil, i, err
		}
		i = jsonscan.SkipSpace(s, end)
		if i >= len(s) || s[i] != ':' {
			return nil, i, d.syntaxError(i, "after a member name")
		}
		v, end, err := d.value(jsonscan.SkipSpace(s, i+1), depth)
		if err != nil {
			return nil, i, err
		}
		d.members = append(d.members, member{name, v})
		i = jsonscan.SkipSpace(s, end)
		if i < len(s) && s[i] == ',' {
			i = jsonscan.SkipSpace(s, i+1)
			continue
		}
		if i < len(s) && s[i] == '}' {
			break
		}
		return nil, i, d.syntaxError(i, "after an object member")
	}
	m := make(map[string]any, len(d.members)-first)
	for _, mb := range d.members[first:] {
		m[mb.name] = mb.value
	}
	d.members = d.members[:first]
	return m, i + 1, nil
}

// array reads the array at s[i], itself at depth.
func (d *decoder) array(i, depth int) ([]any, int, error) {
	if depth > maxDepth {
		return nil, i, fmt.Errorf("JSON nested deeper than %d at byte %d", maxDepth, i)
	}
	s := d.s
	i = jsonscan.SkipSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return []any{}, i + 1, nil
	}
	first := len(d.elems)
	for {
		v, end, err := d.value(i, depth)
		if err != nil {
			return nil, i, err
		}
		d.elems = append(d.elems, v)
		i = jsonscan.SkipSpace(s, end)
		if i < len(s) && s[i] == ',' {
			i = jsonscan.SkipSpace(s, i+1)
			continue
		}
		if i < len(s) && s[i] == ']' {
			break
		}
		return nil, i, d.syntaxError(i, "after an array element")
	}
	a := slices.Clone(d.elems[first:])
	d.elems = d.elems[:first]
	return a, i + 1, nil
}

// str reads the string at s[i].
func (d *decoder) str(i int) (string, int, error) {
	end, escaped, ok := jsonscan.StringEnd(d.s, i)
	switch {
	case !ok:
		return "", i, fmt.Errorf("invalid JSON string at byte %d: a control character, a bad escape or no closing quote", i)
	case escaped:
		return jsonscan.Unquote(d.s[i+1 : end-1]), end, nil
	case d.borrow:
		return d.s[i+1 : end-1], end, nil
	}
	return strings.Clone(d.s[i+1 : end-1]), end, nil
}

// name reads the member name at s[i]. Names repeat from event to event, so
// each is allocated once (names caches them).
func (d *decoder) name(i int) (string, int, error) {
	end, escaped, ok := jsonscan.StringEnd(d.s, i)
	if !ok || escaped || end-i-2 > maxCachedName {
		return d.str(i)
	}
	name := d.s[i+1 : end-1]
	set := &names[maphash.String(namesSeed, name)%uint64(len(names))]
	for j := range set {
		if p := set[j].Load(); p != nil && *p == name {
			return *p, end, nil
		}
	}
	cached := strings.Clone(name)
	if set[0].CompareAndSwap(nil, &cached) {
		return cached, end, nil
	}
	set[1].Store(&cached)
	return cached, end, nil
}

// names caches member names: a hash of a name picks a set of two places, a
// name takes a free one or else the second. Any decode (from any goroutine)
// may read and replace an entry.
var (
	names     [2048][2]atomic.Pointer[string]
	namesSeed = maphash.MakeSeed()
)

// maxCachedName is the longest name names keeps.
const maxCachedName = 64

// number reads the number at s[i]: int64 when strconv.ParseInt reads it,
// else float64 as strconv.ParseFloat reads it, its range error ignored.
func (d *decoder) number(i int) (any, int, error) {
	s := d.s
	start := i
	if s[i] == '-' {
		i++
	}
	digits := i
	var n int64 // the integer, while it has at most 18 digits
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for ; i < len(s) && isDigit(s[i]); i++ {
			n = n*10 + int64(s[i]-'0')
		}
	default:
		return nil, i, d.syntaxError(i, "in a number")
	}
	integer := true
	if i < len(s) && s[i] == '.' {
		integer = false
		j := digitsEnd(s, i+1)
		if j == i+1 {
			return nil, j, d.syntaxError(j, "after a decimal point")
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
			return nil, j, d.syntaxError(j, "in an exponent")
		}
		i = j
	}
	if integer {
		if i-digits <= 18 {
			if s[start] == '-' {
				n = -n
			}
			return n, i, nil
		}
		if n, err := strconv.ParseInt(s[start:i], 10, 64); err == nil {
			return n, i, nil
		}
	}
	f, _ := strconv.ParseFloat(s[start:i], 64)
	return f, i, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

func (d *decoder) literalError(i int, lit string) error {
	j := i
	for j < len(d.s) && j-i < len(lit) && d.s[j] == lit[j-i] {
		j++
	}
	return d.syntaxError(j, "in literal "+lit)
}

// syntaxError says what is wrong at s[i], while looking for what.
func (d *decoder) syntaxError(i int, what string) error {
	if i >= len(d.s) {
		return fmt.Errorf("unexpected end of JSON %s", what)
	}
	return fmt.Errorf("invalid character %s %s at byte %d", describeByte(d.s[i]), what, i)
}

func describeByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}

// encode writes ev as one NDJSON line: the bytes json.Marshal wrote for it
// before, with names sorted and strings escaped as encoding/json escapes
// them (also <, > and &). Top-level times are written as RFC 3339 in UTC
// with microseconds, as enrich writes them, and top-level NaN and
// infinities as null. Values of other types than decode makes (and int) are
// written by json.Marshal, so a nested time, NaN or a type it refuses is
// what it always was.
func encode(buf []byte, ev Event) ([]byte, error) {
	n := len(buf)
	buf, err := appendObject(buf, ev, 0)
	if err != nil {
		return buf[:n], err
	}
	return append(buf, '\n'), nil
}

// maxEncodeDepth is how deeply appendValue nests before it hands a value to
// json.Marshal, which detects cycles (a map holding itself fails, as it
// did, instead of overflowing the stack).
const maxEncodeDepth = 100

// appendObject writes m, nested in depth arrays and objects (0: the event).
func appendObject(buf []byte, m map[string]any, depth int) ([]byte, error) {
	var membersBuf [32]member
	members := membersBuf[:0]
	for k, v := range m {
		members = append(members, member{k, v})
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.name, b.name) })
	buf = append(buf, '{')
	for i, mb := range members {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, mb.name)
		buf = append(buf, ':')
		if depth == 0 {
			switch x := mb.value.(type) {
			case time.Time:
				// Only digits, '-', ':', '.', 'T' and 'Z': nothing to escape.
				buf = append(buf, '"')
				buf = x.UTC().AppendFormat(buf, "2006-01-02T15:04:05.000000Z")
				buf = append(buf, '"')
				continue
			case float64:
				if math.IsNaN(x) || math.IsInf(x, 0) {
					buf = append(buf, "null"...)
					continue
				}
			}
		}
		var err error
		if buf, err = appendValue(buf, mb.value, depth+1); err != nil {
			return buf, err
		}
	}
	return append(buf, '}'), nil
}

// appendValue writes v, nested in depth arrays and objects, as json.Marshal
// writes it.
func appendValue(buf []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendString(buf, x), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return appendFloat(buf, x), nil
		}
	case bool:
		return strconv.AppendBool(buf, x), nil
	case nil:
		return append(buf, "null"...), nil
	case map[string]any:
		if x == nil {
			return append(buf, "null"...), nil
		}
		if depth < maxEncodeDepth {
			return appendObject(buf, x, depth)
		}
	case []any:
		if x == nil {
			return append(buf, "null"...), nil
		}
		if depth < maxEncodeDepth {
			buf = append(buf, '[')
			for i, e := range x {
				if i > 0 {
					buf = append(buf, ',')
				}
				var err error
				if buf, err = appendValue(buf, e, depth+1); err != nil {
					return buf, err
				}
			}
			return append(buf, ']'), nil
		}
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return buf, err
	}
	return append(buf, b...), nil
}

// appendFloat writes f as encoding/json writes a float64: like
// JavaScript's Number.prototype.toString, exponents from 1e21 and below
// 1e-6.
func appendFloat(buf []byte, f float64) []byte {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		buf = strconv.AppendFloat(buf, f, 'e', -1, 64)
		// e-07 → e-7
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
		return buf
	}
	return strconv.AppendFloat(buf, f, 'f', -1, 64)
}

// htmlSafe marks the ASCII bytes encoding/json writes as they are in a
// string: not '"', '\\', a control character, or <, > and & (which it
// escapes so that JSON can sit in HTML).
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// htmlSafe8 reports whether the eight bytes of w are all htmlSafe.
func htmlSafe8(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	// Bytes equal to c, by the high bit of their byte in the result.
	is := func(c uint64) uint64 {
		x := w ^ (lo * c)
		return (x - lo) & ^x & hi
	}
	ctrl := (w - lo*0x20) & ^w & hi // bytes < 0x20
	return (ctrl | is('"') | is('\\') | is('<') | is('>') | is('&') | w&hi) == 0
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string as encoding/json does (with its
// HTML escaping): bytes that are not UTF-8 as \ufffd, U+2028 and U+2029
// escaped.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight safe bytes at a time: most strings need no escapes.
		for i+8 <= len(s) && htmlSafe8(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '\\', '"':
				buf = append(buf, '\\', c)
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// asTime reads an event-time value: RFC 3339 text, a time, or epoch
// milliseconds (as the lake's schema reads its time columns).
func asTime(v any) (time.Time, bool) { return schema.AsTime(v) }

// asFloat reads a number.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// DecodeFields reads one NDJSON line as Decode does, but only the
// top-level members that index names, each into out at its index (nil for
// one the line lacks): the others are checked and stepped over, not built,
// and no map is made (a rollup needs a few fields of each event). A line
// Decode refuses, DecodeFields refuses too.
//
// The strings in out are views of line, not copies: they are valid only
// while line is, and a caller that keeps one must copy it.
func DecodeFields(line []byte, index map[string]int, out []any) error {
	clear(out)
	if len(line) == 0 {
		return errors.New("no JSON value on the line")
	}
	d := decoder{s: unsafe.String(unsafe.SliceData(line), len(line)), borrow: true}
	d.members = d.memberBuf[:0]
	d.elems = d.elemBuf[:0]
	s := d.s
	i := jsonscan.SkipSpace(s, 0)
	if i >= len(s) {
		return errors.New("no JSON value on the line")
	}
	if s[i] != '{' {
		return fmt.Errorf("not a JSON object: starts with %s at byte %d", describeByte(s[i]), i)
	}
	i = jsonscan.SkipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return nil
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return d.syntaxError(i, "looking for a member name")
		}
		end, escaped, ok := jsonscan.StringEnd(s, i)
		if !ok {
			return fmt.Errorf("invalid JSON string at byte %d: a control character, a bad escape or no closing quote", i)
		}
		name := s[i+1 : end-1]
		if escaped {
			name = jsonscan.Unquote(name)
		}
		slot, wanted := index[name]
		i = jsonscan.SkipSpace(s, end)
		if i >= len(s) || s[i] != ':' {
			return d.syntaxError(i, "after a member name")
		}
		i = jsonscan.SkipSpace(s, i+1)
		var err error
		if wanted {
			var v any
			if v, end, err = d.value(i, 1); err == nil {
				out[slot] = v
			}
		} else {
			end, err = d.skip(i, 1)
		}
		if err != nil {
			return err
		}
		i = jsonscan.SkipSpace(s, end)
		if i < len(s) && s[i] == ',' {
			i = jsonscan.SkipSpace(s, i+1)
			continue
		}
		if i < len(s) && s[i] == '}' {
			return nil
		}
		return d.syntaxError(i, "after an object member")
	}
}

// skip checks the JSON value at s[i], inside depth arrays and objects, as
// value reads it, and returns the index just past it.
func (d *decoder) skip(i, depth int) (int, error) {
	s := d.s
	if i >= len(s) {
		return i, d.syntaxError(i, "looking for a value")
	}
	switch c := s[i]; c {
	case '"':
		end, _, ok := jsonscan.StringEnd(s, i)
		if !ok {
			return i, fmt.Errorf("invalid JSON string at byte %d: a control character, a bad escape or no closing quote", i)
		}
		return end, nil
	case '{', '[':
		if depth+1 > maxDepth {
			return i, fmt.Errorf("JSON nested deeper than %d at byte %d", maxDepth, i)
		}
		closing, what := byte('}'), "after an object member"
		if c == '[' {
			closing, what = ']', "after an array element"
		}
		i = jsonscan.SkipSpace(s, i+1)
		if i < len(s) && s[i] == closing {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(s) || s[i] != '"' {
					return i, d.syntaxError(i, "looking for a member name")
				}
				end, _, ok := jsonscan.StringEnd(s, i)
				if !ok {
					return i, fmt.Errorf("invalid JSON string at byte %d: a control character, a bad escape or no closing quote", i)
				}
				i = jsonscan.SkipSpace(s, end)
				if i >= len(s) || s[i] != ':' {
					return i, d.syntaxError(i, "after a member name")
				}
				i = jsonscan.SkipSpace(s, i+1)
			}
			end, err := d.skip(i, depth+1)
			if err != nil {
				return i, err
			}
			i = jsonscan.SkipSpace(s, end)
			if i < len(s) && s[i] == ',' {
				i = jsonscan.SkipSpace(s, i+1)
				continue
			}
			if i < len(s) && s[i] == closing {
				return i + 1, nil
			}
			return i, d.syntaxError(i, what)
		}
	case 't', 'f', 'n':
		lit := map[byte]string{'t': "true", 'f': "false", 'n': "null"}[c]
		if strings.HasPrefix(s[i:], lit) {
			return i + len(lit), nil
		}
		return i, d.literalError(i, lit)
	default:
		if c == '-' || isDigit(c) {
			_, end, err := d.number(i)
			return end, err
		}
		return i, d.syntaxError(i, "looking for a value")
	}
}
