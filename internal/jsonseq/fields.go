package jsonseq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Fields calls fn with the key and raw value of each top-level field of obj,
// in order, duplicates included. obj must already be known to be valid JSON
// (a value Split returned, or a line a sluice stage wrote): Fields finds
// boundaries without validating or decoding, and hands out sub-slices of obj
// (keys too, unless they contain escapes or invalid UTF-8: those are decoded
// as encoding/json decodes them).
func Fields(obj []byte, fn func(key, val []byte) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return fmt.Errorf("expected a key at byte %d", i)
		}
		end, esc := stringEnd(obj, i)
		if end < 0 {
			return errors.New("unterminated key")
		}
		key := obj[i+1 : end]
		// Decode as encoding/json does: escapes, and invalid UTF-8 to U+FFFD.
		if esc || !utf8.Valid(key) {
			var k string
			if err := json.Unmarshal(obj[i:end+1], &k); err != nil {
				return fmt.Errorf("key: %w", err)
			}
			key = []byte(k)
		}
		i = skipSpace(obj, end+1)
		if i >= len(obj) || obj[i] != ':' {
			return errors.New("expected ':'")
		}
		i = skipSpace(obj, i+1)
		vend, err := valueEnd(obj, i)
		if err != nil {
			return err
		}
		if err := fn(key, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
			continue
		}
		if i < len(obj) && obj[i] == '}' {
			return nil
		}
		return errors.New("expected ',' or '}'")
	}
	return errors.New("unexpected end")
}

// stringEnd returns the index of the closing quote of the string starting at
// b[i], and whether it contains escapes.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	j, q := i+1, -1 // q: the next '"' at or after j
	for j < len(b) {
		if q < j {
			k := bytes.IndexByte(b[j:], '"')
			if k < 0 {
				return -1, esc
			}
			q = j + k
		}
		k := bytes.IndexByte(b[j:q], '\\')
		if k < 0 {
			return q, esc
		}
		esc = true
		j += k + 2 // past the escaped byte, which may be that '"'
	}
	return -1, esc
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
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("expected a value at byte %d", i)
		}
		return j, nil
	}
}
