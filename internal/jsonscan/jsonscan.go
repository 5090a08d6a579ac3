// Package jsonscan reads JSON text held in a string, in one pass, for the
// hand-written parsers of records (enrich/logparse) and events (pipeline).
//
// It promises what encoding/json does: StringEnd accepts exactly the strings
// encoding/json accepts, and Unquote decodes them to the same text (escapes,
// surrogate pairs, and U+FFFD for a lone surrogate or for each byte that is
// not UTF-8). The parsers test that against encoding/json itself, by fuzzing.
package jsonscan

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// plainByte marks the bytes a JSON string holds as they are: not '"', '\\',
// a control character, or beyond ASCII.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain8 reports whether the eight bytes of w are all plain (plainByte).
func plain8(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ctrl := (w - lo*0x20) & ^w & hi // bytes < 0x20
	quote := w ^ (lo * '"')
	quote = (quote - lo) & ^quote & hi // bytes == '"'
	bs := w ^ (lo * '\\')
	bs = (bs - lo) & ^bs & hi // bytes == '\\'
	return (ctrl | quote | bs | w&hi) == 0
}

// StringEnd returns the index just past the JSON string at s[i]; ok is
// false where encoding/json would refuse it (a control character, a bad
// escape, no closing quote). decode reports escapes or bytes that are not
// UTF-8, which Unquote must handle: without them the string's contents are
// s[i+1:end-1] as they are.
func StringEnd(s string, i int) (end int, decode, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return 0, false, false
	}
	for j := i + 1; j < len(s); {
		// Eight plain bytes at a time: most strings have no escapes.
		for j+8 <= len(s) && plain8(uint64(s[j])|uint64(s[j+1])<<8|uint64(s[j+2])<<16|uint64(s[j+3])<<24|
			uint64(s[j+4])<<32|uint64(s[j+5])<<40|uint64(s[j+6])<<48|uint64(s[j+7])<<56) {
			j += 8
		}
		for j < len(s) && plainByte[s[j]] {
			j++
		}
		if j >= len(s) {
			break
		}
		switch c := s[j]; {
		case c == '"':
			return j + 1, decode, true
		case c == '\\':
			decode = true
			if j+1 >= len(s) {
				return 0, false, false
			}
			switch s[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(s) || hex4(s[j+2:j+6]) < 0 {
					return 0, false, false
				}
				j += 6
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		default:
			r, size := utf8.DecodeRuneInString(s[j:])
			if r == utf8.RuneError && size == 1 {
				decode = true
			}
			j += size
		}
	}
	return 0, false, false
}

// hex4 reads four hexadecimal digits; -1 if they are not.
func hex4(s string) rune {
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Unquote decodes the contents of a JSON string that StringEnd accepted (and
// marked decode), as encoding/json does: escapes, surrogate pairs, and
// U+FFFD for a lone surrogate or for each byte that is not UTF-8.
func Unquote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + utf8.UTFMax)
	for r := 0; r < len(v); {
		c := v[r]
		switch {
		case c == '\\':
			e := v[r+1]
			r += 2
			switch e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				rr := hex4(v[r:])
				r += 4
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(v) && v[r] == '\\' && v[r+1] == 'u' {
						if d := utf16.DecodeRune(rr, hex4(v[r+2:])); d != unicode.ReplacementChar {
							b.WriteRune(d)
							r += 6
							break
						}
					}
					rr = unicode.ReplacementChar
				}
				b.WriteRune(rr)
			default: // '"', '\\', '/'
				b.WriteByte(e)
			}
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			r++
		default:
			rr, size := utf8.DecodeRuneInString(v[r:])
			b.WriteRune(rr)
			r += size
		}
	}
	return b.String()
}
