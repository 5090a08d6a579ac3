package jsonseq

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Keys numbers the keys of JSON objects, for reading many objects that
// mostly list the same keys in the same order (the lines a sluice stage
// writes). Fields guesses each key from the one before it in the previous
// object and checks the guess by comparing bytes, so a known key costs
// neither decoding nor a map lookup. The zero value holds no keys.
type Keys struct {
	names []string
	plain []bool // the name is its own JSON text: no escapes, valid UTF-8
	index map[string]int
	// after[k+1] is the key that followed key k in the last object that had
	// k; after[0] is the first key of the last object. -1: none yet.
	after []int
}

// Add returns the number of name, numbering it if it is new.
func (ks *Keys) Add(name string) int {
	if k, ok := ks.index[name]; ok {
		return k
	}
	if ks.index == nil {
		ks.index = map[string]int{}
		ks.after = append(ks.after, -1)
	}
	k := len(ks.names)
	ks.index[name] = k
	ks.names = append(ks.names, name)
	ks.plain = append(ks.plain, isPlain(name))
	ks.after = append(ks.after, -1)
	return k
}

// Len is how many keys are numbered.
func (ks *Keys) Len() int { return len(ks.names) }

// Name is the key numbered k.
func (ks *Keys) Name(k int) string { return ks.names[k] }

// Fields is Fields with each key given as its number; a key seen for the
// first time is numbered (Add). Duplicate keys come as often as they appear.
func (ks *Keys) Fields(obj []byte, fn func(key int, val []byte) error) error {
	if ks.index == nil {
		ks.index = map[string]int{}
		ks.after = append(ks.after, -1)
	}
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	prev := -1
	for i < len(obj) {
		if obj[i] != '"' {
			return fmt.Errorf("expected a key at byte %d", i)
		}
		k, end := ks.guess(obj, i, prev)
		if k < 0 {
			var err error
			if k, end, err = ks.key(obj, i); err != nil {
				return err
			}
			ks.after[prev+1] = k
		}
		prev = k
		i = skipSpace(obj, end+1)
		if i >= len(obj) || obj[i] != ':' {
			return errors.New("expected ':'")
		}
		i = skipSpace(obj, i+1)
		var vend int
		if i < len(obj) && obj[i] == '"' {
			if vend, _ = stringEnd(obj, i); vend < 0 {
				return errors.New("unterminated string")
			}
			vend++
		} else {
			var err error
			if vend, err = valueEnd(obj, i); err != nil {
				return err
			}
		}
		if err := fn(k, obj[i:vend]); err != nil {
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

// guess returns the number of the key whose string starts at obj[i] and the
// index of its closing quote, if it is the key that followed prev last time;
// else -1.
func (ks *Keys) guess(obj []byte, i, prev int) (int, int) {
	k := ks.after[prev+1]
	if k < 0 || !ks.plain[k] {
		return -1, 0
	}
	name := ks.names[k]
	end := i + 1 + len(name)
	if end < len(obj) && obj[end] == '"' && string(obj[i+1:end]) == name {
		return k, end
	}
	return -1, 0
}

// key reads the key whose string starts at obj[i], as Fields does, and
// returns its number and the index of its closing quote.
func (ks *Keys) key(obj []byte, i int) (int, int, error) {
	end, esc := stringEnd(obj, i)
	if end < 0 {
		return 0, 0, errors.New("unterminated key")
	}
	key := obj[i+1 : end]
	if esc || !utf8.Valid(key) {
		var s string
		if err := json.Unmarshal(obj[i:end+1], &s); err != nil {
			return 0, 0, fmt.Errorf("key: %w", err)
		}
		return ks.Add(s), end, nil
	}
	if k, ok := ks.index[string(key)]; ok {
		return k, end, nil
	}
	return ks.Add(string(key)), end, nil
}

// isPlain reports whether name, between quotes, is its JSON text.
func isPlain(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(name)
}
