package jsonseq

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// Fields calls fn with the key and raw value of each top-level field of obj,
// in order, duplicates included. obj must already be known to be valid JSON
// (a value Split returned, or a line a sluice stage wrote): Fields finds
// boundaries without validating or decoding, and hands out sub-slices of obj
// (keys too, unless they contain escapes or invalid UTF-8: those are decoded
// as encoding/json decodes them).
func Fields(obj []byte, fn func(key, val []byte) error) error {
	_, err := Members(obj, 0, func(key []byte, at int) (int, error) {
		end, err := valueEnd(obj, at)
		if err != nil {
			return 0, err
		}
		return end, fn(key, obj[at:end])
	})
	return err
}

// Members is Fields for reading a document in one pass: it calls fn with
// the key of each member of the object that starts at b[i] (after
// whitespace) and the index where the member's value starts; fn reads the
// value, or skips it with Skip, and returns the index just past it. Members
// returns the index just past the object; b may go on after it. Like
// Fields, it needs b to be valid JSON, and stops at fn's first error.
func Members(b []byte, i int, fn func(key []byte, at int) (int, error)) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return 0, errors.New("not a JSON object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return 0, fmt.Errorf("expected a key at byte %d", i)
		}
		end, esc := stringEnd(b, i)
		if end < 0 {
			return 0, errors.New("unterminated key")
		}
		key := b[i+1 : end]
		// Decode as encoding/json does: escapes, and invalid UTF-8 to U+FFFD.
		if esc || !ascii(key) && !utf8.Valid(key) {
			k, err := AppendUnquoted(nil, b[i:end+1])
			if err != nil {
				var s string
				return 0, fmt.Errorf("key: %w", json.Unmarshal(b[i:end+1], &s))
			}
			key = k
		}
		i = skipSpace(b, end+1)
		if i >= len(b) || b[i] != ':' {
			return 0, errors.New("expected ':'")
		}
		vend, err := fn(key, skipSpace(b, i+1))
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		return 0, errors.New("expected ',' or '}'")
	}
	return 0, errors.New("unexpected end")
}

// Items is Members for the elements of the array that starts at b[i]: fn
// gets the index where each element starts and returns the index just past
// it.
func Items(b []byte, i int, fn func(at int) (int, error)) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '[' {
		return 0, errors.New("not a JSON array")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for i < len(b) {
		end, err := fn(i)
		if err != nil {
			return 0, err
		}
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		return 0, errors.New("expected ',' or ']'")
	}
	return 0, errors.New("unexpected end")
}

// Skip returns the index just past the value that starts at b[i], which
// must be valid JSON.
func Skip(b []byte, i int) (int, error) { return valueEnd(b, i) }

// String returns the index just past the string literal that starts at
// b[i], which must be valid JSON, and whether its text is plain: ASCII
// without escapes, so that the bytes between the quotes are the text, and
// AppendString writes it back as it is. Most strings of an event are plain,
// and are then read in one pass.
func String(b []byte, i int) (end int, plain bool) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	j := i + 1
	for ; j+8 <= len(b); j += 8 {
		w := binary.LittleEndian.Uint64(b[j:])
		q := w ^ ('"' * ones)
		bs := w ^ ('\\' * ones)
		// As in skipPlain, the lowest flagged byte is exact.
		if m := ((q-ones)&^q | (bs-ones)&^bs | w) & highs; m != 0 {
			j += bits.TrailingZeros64(m) / 8
			break
		}
	}
	for ; j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] < utf8.RuneSelf; j++ {
	}
	if j < len(b) && b[j] == '"' {
		return j + 1, true
	}
	end, _ = stringEnd(b, j-1) // from the byte that is not plain, as if it opened the string
	if end < 0 {
		return len(b), false
	}
	return end + 1, false
}

func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// stringEnd returns the index of the closing quote of the string starting at
// b[i], and whether it contains escapes.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; ; j += 2 { // past a backslash and the byte it escapes, which may be '"'
		j = quoteOrBackslash(b, j)
		if j >= len(b) {
			return -1, esc
		}
		if b[j] == '"' {
			return j, esc
		}
		esc = true
	}
}

// quoteOrBackslash returns the index of the first '"' or '\\' at or after j,
// or len(b). Most strings of an event are short: they are tested eight bytes
// at a time in line; past 32 bytes, bytes.IndexByte's vector search pays for
// its two calls.
func quoteOrBackslash(b []byte, j int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for end := j + 32; j+8 <= len(b); j += 8 {
		if j == end {
			q := bytes.IndexByte(b[j:], '"')
			if q < 0 {
				q = len(b) - j
			}
			if k := bytes.IndexByte(b[j:j+q], '\\'); k >= 0 {
				return j + k
			}
			return j + q
		}
		w := binary.LittleEndian.Uint64(b[j:])
		q := w ^ ('"' * ones)
		bs := w ^ ('\\' * ones)
		// As in skipPlain, the lowest flagged byte is exact.
		if m := ((q-ones)&^q | (bs-ones)&^bs) & highs; m != 0 {
			return j + bits.TrailingZeros64(m)/8
		}
	}
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	return j
}

// Elements calls fn with each element of the array arr, in order. Like
// Fields, it needs arr to be valid JSON, and hands out sub-slices of it
// without surrounding whitespace. It stops at the first error fn returns.
func Elements(arr []byte, fn func(v []byte) error) error {
	_, err := Items(arr, 0, func(at int) (int, error) {
		end, err := valueEnd(arr, at)
		if err != nil {
			return 0, err
		}
		return end, fn(arr[at:end:end])
	})
	return err
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("missing value")
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		if end < 0 {
			return 0, errors.New("unterminated string")
		}
		return end + 1, nil
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				if end < 0 {
					return 0, errors.New("unterminated string")
				}
				j = end
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated value")
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("expected a value at byte %d", i)
		}
		return j, nil
	}
}
