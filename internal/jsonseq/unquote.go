package jsonseq

import (
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// AppendUnquoted appends the text of the JSON string literal lit (quotes
// included) to dst, decoded as encoding/json decodes it: escapes resolved, a
// \u escape of an unpaired surrogate and each byte that is not valid UTF-8
// turned into U+FFFD. It fails where json.Unmarshal would, but with its own
// error.
func AppendUnquoted(dst, lit []byte) ([]byte, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return dst, errUnquote
	}
	s := lit[1 : len(lit)-1]
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			if r == len(s) {
				return dst, errUnquote
			}
			switch c := s[r]; c {
			case '"', '\\', '/':
				dst = append(dst, c)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				if rr < 0 {
					return dst, errUnquote
				}
				r += 4
				if utf16.IsSurrogate(rr) {
					// A pair is two escapes; anything else stands for U+FFFD.
					lo := rune(-1)
					if r+2 < len(s) && s[r+1] == '\\' && s[r+2] == 'u' {
						lo = hex4(s[r+3:])
					}
					if dec := utf16.DecodeRune(rr, lo); dec != utf8.RuneError {
						r += 6
						rr = dec
					} else {
						rr = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, rr)
			default:
				return dst, errUnquote
			}
			r++
		case c == '"' || c < ' ':
			return dst, errUnquote
		case c < utf8.RuneSelf:
			// A run of plain ASCII, copied at once.
			start := r
			for r++; r < len(s) && s[r] < utf8.RuneSelf && s[r] >= ' ' && s[r] != '"' && s[r] != '\\'; r++ {
			}
			dst = append(dst, s[start:r]...)
		default:
			rr, size := utf8.DecodeRune(s[r:])
			if rr == utf8.RuneError && size == 1 {
				dst = append(dst, "\ufffd"...)
			} else {
				dst = append(dst, s[r:r+size]...)
			}
			r += size
		}
	}
	return dst, nil
}

var errUnquote = errors.New("invalid JSON string literal")

// hex4 reads the four hexadecimal digits at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
