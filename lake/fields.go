package lake

import (
	"encoding/json"
	"errors"
	"fmt"
)

// eachField calls fn with the key and raw value of every top-level field of
// a JSON object. It is the archiver's hot path: lines on the bus were written
// by sluice's own stages as valid JSON, so it skips validation and decoding and
// hands out sub-slices of line (keys too, unless they hold escapes).
func eachField(line []byte, fn func(key []byte, val []byte) error) error {
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return errors.New("row is not a JSON object")
	}
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return nil
	}
	for i < len(line) {
		if line[i] != '"' {
			return fmt.Errorf("row: expected a key at byte %d", i)
		}
		end, esc := stringEnd(line, i)
		if end < 0 {
			return errors.New("row: unterminated key")
		}
		key := line[i+1 : end]
		if esc {
			var k string
			if err := json.Unmarshal(line[i:end+1], &k); err != nil {
				return fmt.Errorf("row: key: %w", err)
			}
			key = []byte(k)
		}
		i = skipSpace(line, end+1)
		if i >= len(line) || line[i] != ':' {
			return errors.New("row: expected ':'")
		}
		i = skipSpace(line, i+1)
		vend, err := valueEnd(line, i)
		if err != nil {
			return err
		}
		if err := fn(key, line[i:vend]); err != nil {
			return err
		}
		i = skipSpace(line, vend)
		if i < len(line) && line[i] == ',' {
			i = skipSpace(line, i+1)
			continue
		}
		if i < len(line) && line[i] == '}' {
			return nil
		}
		return errors.New("row: expected ',' or '}'")
	}
	return errors.New("row: unexpected end")
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the closing quote of the string starting at
// b[i], and whether it contains escapes.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j, esc
		}
	}
	return -1, esc
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("row: missing value")
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		if end < 0 {
			return 0, errors.New("row: unterminated string")
		}
		return end + 1, nil
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				if end < 0 {
					return 0, errors.New("row: unterminated string")
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
		return 0, errors.New("row: unterminated value")
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("row: expected a value at byte %d", i)
		}
		return j, nil
	}
}
