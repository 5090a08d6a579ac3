// Package jsonseq splits an HTTP request body into the JSON values it carries,
// for the event collector. A body is one of:
//
//   - a single JSON array: its elements are the values (nested arrays stay whole);
//   - one or more JSON values separated by whitespace: one object, or NDJSON
//     (one value per line, "\n" or "\r\n", blank lines allowed).
//
// The package promises, for every body it accepts:
//
//   - each value is a sub-slice of the body (no copies), with no surrounding
//     whitespace, and is valid JSON by the rules of encoding/json, including
//     its nesting limit of 10000; the values come in body order and do not overlap;
//   - a body that encoding/json accepts (json.Valid) is accepted;
//   - a body that is not made of valid JSON values fails with a *SyntaxError
//     that gives the line and column of the first offending byte.
//
// It does not judge what the values are: a top-level scalar ("abc", 42, true,
// null) or a scalar array element is returned like an object would be. The
// collector rejects a top-level non-object with 400; scalar array elements
// become bad rows later, where they can be reported one by one.
//
// Top-level values must be separated by at least one whitespace byte (space,
// tab, "\r", "\n"); `{"a":1}{"b":2}` is a syntax error, as it is for
// encoding/json. A leading UTF-8 byte order mark is skipped.
//
// Split and Count scan the body once with a hand-written scanner that both
// validates and finds the boundaries, since the collector runs them on every
// request (about 100k events/s on two cores).
package jsonseq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
)

// ErrEmptyBody is returned for a body that holds no value: empty, or only
// whitespace and a byte order mark.
var ErrEmptyBody = errors.New("empty body")

// maxDepth is encoding/json's nesting limit; sharing it keeps the two in
// agreement about which bodies are valid.
const maxDepth = 10000

// bom is the UTF-8 byte order mark some clients put in front of the body.
var bom = []byte{0xEF, 0xBB, 0xBF}

// Split returns the top-level values of body: the elements of a single
// top-level array, else each whitespace-separated top-level value (one
// object, or NDJSON). Only a body that is exactly one array is unpacked: in
// NDJSON whose lines are arrays, each array is one value.
//
// Each value is a sub-slice of body, trimmed of surrounding whitespace; a
// leading UTF-8 BOM is skipped. An empty array gives an empty slice and no
// error. Scalars are returned as values; see the package comment.
//
// The values share body's memory, so body must not change while they are in
// use. Each has a capacity equal to its length: appending to a value copies
// it instead of overwriting the rest of the body.
//
// The error is ErrEmptyBody or a *SyntaxError.
func Split(body []byte) ([][]byte, error) {
	s := scanner{data: body, keep: true}
	if err := s.run(); err != nil {
		return nil, err
	}
	if s.vals == nil {
		return append(make([][]byte, 0, s.nbuf), s.buf[:s.nbuf]...), nil
	}
	return append(s.vals, s.buf[:s.nbuf]...), nil
}

// Count returns len(Split(body)) and Split's error, without building the
// slice of values: it allocates nothing unless it fails.
func Count(body []byte) (int, error) {
	s := scanner{data: body}
	if err := s.run(); err != nil {
		return 0, err
	}
	return s.n, nil
}

// SyntaxError says where the body stopped being JSON.
type SyntaxError struct {
	// Offset is the index in the body of the offending byte, or the length
	// of the body if it ended in the middle of a value.
	Offset int64
	// Line and Column locate Offset, both from 1. Lines end at '\n'; Column
	// counts bytes, not characters, and not the skipped byte order mark.
	Line, Column int
	// Msg is worded as encoding/json words it, e.g. "invalid character '}'
	// after object key" or "unexpected end of JSON input".
	Msg string
}

// Error gives the position and the message, as in
// "line 3, column 17: invalid character '}' after object key".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// scanner holds the state of one pass over a body.
type scanner struct {
	data []byte
	n    int  // how many values found so far
	keep bool // collect the values, not just count them

	// The values found so far, if keep: vals, then buf[:nbuf]. The scanner
	// stays on the stack, so with buf a body of up to len(buf) values costs
	// a single allocation of the right size, and a larger one usually a
	// single allocation whose size is estimated from the first len(buf).
	vals [][]byte
	buf  [64][]byte
	nbuf int

	// unpack is set while scanning a first top-level value that is an
	// array: its elements are emitted as they complete, in case the body
	// holds nothing else. elemStart is where the current element began.
	unpack    bool
	elemStart int

	// inObject has bit d set when the container at depth d+1 is an object
	// rather than an array.
	inObject [maxDepth/64 + 1]uint64
}

// emit records the value data[start:end]. Its capacity is cut to its
// length, so that appending to it cannot overwrite the rest of the body.
func (s *scanner) emit(start, end int) {
	s.n++
	if !s.keep {
		return
	}
	if s.nbuf == len(s.buf) {
		if s.vals == nil {
			// The first len(buf) values took data[:end]; assume the
			// rest of the body is alike, and allow a little more. A
			// wild guess (tiny values, then huge ones) is held to the
			// size of the body itself, at 24 bytes a value; past the
			// guess, append grows vals as usual.
			guess := len(s.buf) * len(s.data) / end * 5 / 4
			limit := max(2*len(s.buf), len(s.data)/24)
			s.vals = make([][]byte, 0, min(guess, limit))
		}
		s.vals = append(s.vals, s.buf[:]...)
		s.nbuf = 0
	}
	s.buf[s.nbuf] = s.data[start:end:end]
	s.nbuf++
}

// run scans the whole body, emitting its values.
func (s *scanner) run() error {
	data := s.data
	i := 0
	if bytes.HasPrefix(data, bom) {
		i = len(bom)
	}
	i = skipSpace(data, i)
	if i == len(data) {
		return ErrEmptyBody
	}

	// The first value decides: an array alone in the body is unpacked, so
	// emit its elements while scanning it, and take them back if another
	// value follows.
	start := i
	s.unpack = data[i] == '['
	i, err := s.value(i)
	if err != nil {
		return err
	}
	firstEnd := i
	if !s.unpack {
		s.emit(start, firstEnd)
	}
	for {
		if i == len(data) {
			return nil
		}
		if !isSpace(data[i]) {
			return s.errorAt(i, "after top-level value")
		}
		i = skipSpace(data, i)
		if i == len(data) {
			return nil
		}
		if s.unpack {
			s.unpack = false
			s.n, s.vals, s.nbuf = 0, s.vals[:0], 0
			s.emit(start, firstEnd)
		}
		valueStart := i
		if i, err = s.value(i); err != nil {
			return err
		}
		s.emit(valueStart, i)
	}
}

// value scans the value starting at data[i], which is not whitespace, and
// returns the index just past it. While s.unpack is set, it emits the
// elements of the (array) value.
//
// It is a loop over an explicit stack rather than recursive descent, so a
// deeply nested body costs no goroutine stack.
func (s *scanner) value(i int) (int, error) {
	data := s.data
	depth := 0
	var err error
	for {
		// Here a value must begin, at or after i.
		i = skipSpace(data, i)
		if i == len(data) {
			return i, s.eof()
		}
		if depth == 1 && s.unpack {
			s.elemStart = i
		}
		switch c := data[i]; c {
		case '{':
			if depth == maxDepth {
				return i, s.errorAt(i, "exceeded max depth")
			}
			s.inObject[depth/64] |= 1 << (depth % 64)
			depth++
			i = skipSpace(data, i+1)
			if i == len(data) {
				return i, s.eof()
			}
			if data[i] == '}' {
				i++
				depth--
				break
			}
			if i, err = s.key(i); err != nil {
				return i, err
			}
			continue
		case '[':
			if depth == maxDepth {
				return i, s.errorAt(i, "exceeded max depth")
			}
			s.inObject[depth/64] &^= 1 << (depth % 64)
			depth++
			i = skipSpace(data, i+1)
			if i == len(data) {
				return i, s.eof()
			}
			if data[i] == ']' {
				i++
				depth--
				break
			}
			continue
		case '"':
			i, err = s.str(i)
		case 't':
			i, err = s.literal(i, "true")
		case 'f':
			i, err = s.literal(i, "false")
		case 'n':
			i, err = s.literal(i, "null")
		default:
			if c == '-' || isDigit(c) {
				i, err = s.number(i)
			} else {
				err = s.errorAt(i, "looking for beginning of value")
			}
		}
		if err != nil {
			return i, err
		}

		// Here a value has just ended: close containers until one goes on.
	closing:
		for {
			if depth == 0 {
				return i, nil
			}
			if depth == 1 && s.unpack {
				s.emit(s.elemStart, i)
			}
			i = skipSpace(data, i)
			if i == len(data) {
				return i, s.eof()
			}
			c := data[i]
			d := depth - 1
			if s.inObject[d/64]&(1<<(d%64)) != 0 {
				switch c {
				case ',':
					if i, err = s.key(i + 1); err != nil {
						return i, err
					}
					break closing
				case '}':
					i++
					depth--
				default:
					return i, s.errorAt(i, "after object key:value pair")
				}
			} else {
				switch c {
				case ',':
					i++
					break closing
				case ']':
					i++
					depth--
				default:
					return i, s.errorAt(i, "after array element")
				}
			}
		}
	}
}

// key scans an object key and its colon, from data[i] on (whitespace
// allowed first), and returns the index just past the colon.
func (s *scanner) key(i int) (int, error) {
	data := s.data
	i = skipSpace(data, i)
	if i == len(data) {
		return i, s.eof()
	}
	if data[i] != '"' {
		return i, s.errorAt(i, "looking for beginning of object key string")
	}
	i, err := s.str(i)
	if err != nil {
		return i, err
	}
	i = skipSpace(data, i)
	if i == len(data) {
		return i, s.eof()
	}
	if data[i] != ':' {
		return i, s.errorAt(i, "after object key")
	}
	return i + 1, nil
}

// str scans the string whose opening quote is data[i] and returns the index
// just past its closing quote. Like encoding/json it does not check that the
// bytes are valid UTF-8.
func (s *scanner) str(i int) (int, error) {
	data := s.data
	i++
	for {
		i = skipPlain(data, i)
		if i == len(data) {
			return i, s.eof()
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			i++
			if i == len(data) {
				return i, s.eof()
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for end := i + 4; i < end; i++ {
					if i == len(data) {
						return i, s.eof()
					}
					if !isHex(data[i]) {
						return i, s.errorAt(i, `in \u hexadecimal character escape`)
					}
				}
			default:
				return i, s.errorAt(i, "in string escape code")
			}
		default: // a control character
			return i, s.errorAt(i, "in string literal")
		}
	}
}

// number scans the number starting at data[i] and returns the index just
// past it. What follows the number is the caller's to judge, as "01" is the
// number 0 followed by a stray '1'.
func (s *scanner) number(i int) (int, error) {
	data := s.data
	if data[i] == '-' {
		i++
		if i == len(data) {
			return i, s.eof()
		}
		if !isDigit(data[i]) {
			return i, s.errorAt(i, "in numeric literal")
		}
	}
	if data[i] == '0' {
		i++
	} else {
		i = skipDigits(data, i+1)
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i == len(data) {
			return i, s.eof()
		}
		if !isDigit(data[i]) {
			return i, s.errorAt(i, "after decimal point in numeric literal")
		}
		i = skipDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i == len(data) {
			return i, s.eof()
		}
		if !isDigit(data[i]) {
			return i, s.errorAt(i, "in exponent of numeric literal")
		}
		i = skipDigits(data, i+1)
	}
	return i, nil
}

// literal scans the literal lit (true, false or null), whose first byte is
// data[i], and returns the index just past it.
func (s *scanner) literal(i int, lit string) (int, error) {
	data := s.data
	for j := 1; j < len(lit); j++ {
		if i+j == len(data) {
			return i + j, s.eof()
		}
		if data[i+j] != lit[j] {
			return i + j, s.errorAt(i+j, "in literal "+lit+" (expecting "+quoteChar(lit[j])+")")
		}
	}
	return i + len(lit), nil
}

func (s *scanner) eof() error {
	return s.newError(len(s.data), "unexpected end of JSON input")
}

// errorAt reports the byte data[i] as invalid in the given context, in
// encoding/json's words.
func (s *scanner) errorAt(i int, context string) error {
	return s.newError(i, "invalid character "+quoteChar(s.data[i])+" "+context)
}

func (s *scanner) newError(off int, msg string) error {
	before := s.data[:off]
	line := 1 + bytes.Count(before, []byte{'\n'})
	col := off - bytes.LastIndexByte(before, '\n')
	if line == 1 && bytes.HasPrefix(s.data, bom) {
		col -= len(bom)
	}
	return &SyntaxError{Offset: int64(off), Line: line, Column: col, Msg: msg}
}

// quoteChar formats c as encoding/json does in its error messages.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

func isSpace(c byte) bool {
	return c <= ' ' && (c == ' ' || c == '\t' || c == '\r' || c == '\n')
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

// skipPlain returns the index of the first byte at or after i that ends a
// run of plain string content: a quote, a backslash or a control character.
// It tests eight bytes at a time, as string content is most of an event's
// bytes.
func skipPlain(data []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(data); i += 8 {
		x := binary.LittleEndian.Uint64(data[i:])
		// The classic "has a zero byte" and "has a byte below n" tests; in
		// each the lowest flagged byte is exact, which is all we use.
		q := x ^ ('"' * ones)
		b := x ^ ('\\' * ones)
		m := ((q-ones)&^q | (b-ones)&^b | (x-' '*ones)&^x) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(data) && data[i] != '"' && data[i] != '\\' && data[i] >= ' ' {
		i++
	}
	return i
}
