package jsonseq

import (
	"fmt"
	"strings"
	"testing"
)

// keyFields is what ks.Fields yields for line, keys by name.
func keyFields(ks *Keys, line []byte) ([]field, error) {
	var out []field
	err := ks.Fields(line, func(k int, v []byte) error {
		out = append(out, field{ks.Name(k), string(v)})
		return nil
	})
	return out, err
}

// rawFields is what Fields yields for line, values as they are.
func rawFields(line []byte) ([]field, error) {
	var out []field
	err := Fields(line, func(k, v []byte) error {
		out = append(out, field{string(k), string(v)})
		return nil
	})
	return out, err
}

// Keys.Fields reads what Fields reads, whatever it guessed from the objects
// before: each object is read after every other, by one Keys.
func TestKeysAgreeWithFields(t *testing.T) {
	lines := append([]string{
		`{"a":1,"b":2,"c":3}`,
		`{"a":1,"c":3}`,
		`{"b":2,"a":1,"c":3,"d":4}`,
		`{"a":1,"ab":2,"a\u0062":3,"a":4}`,
		`{"ab":1,"abc":2}`,
		`{"abc":1,"ab":2}`,
		`{"a" :1, "b"` + "\n" + `:2}`,
		`{"ab`,
		`{"a":1,"ab":`,
	}, objects...)
	lines = append(lines, `{"a":1,"b":2,"c":3}`, `{"a":1`, `{}`)
	for _, bad := range []string{`{"a":1,"b"`, `{"a":1,"b":2`, `{"a":1 "b":2}`, `[1]`} {
		lines = append(lines, bad)
	}
	var ks Keys
	for range 3 {
		for _, a := range lines {
			for _, b := range lines {
				for _, line := range []string{a, b} {
					want, werr := rawFields([]byte(line))
					got, gerr := keyFields(&ks, []byte(line))
					if (werr == nil) != (gerr == nil) || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
						t.Fatalf("Keys.Fields(%q) after %q:\n got %q, %v\nwant %q, %v", line, a, got, gerr, want, werr)
					}
				}
			}
		}
	}
}

func TestKeysNumbers(t *testing.T) {
	var ks Keys
	if ks.Add("a") != 0 || ks.Add(`we"ird`) != 1 || ks.Add("a") != 0 || ks.Len() != 2 {
		t.Fatalf("Add numbers a, we\"ird, a as %d %d %d", ks.Add("a"), ks.Add(`we"ird`), ks.Add("a"))
	}
	var got []int
	for range 2 {
		err := ks.Fields([]byte(`{"we\"ird":1,"a":2,"new":3}`), func(k int, _ []byte) error {
			got = append(got, k)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[1 0 2 1 0 2]" || ks.Name(2) != "new" {
		t.Errorf("keys numbered %v, key 2 is %q", got, ks.Name(2))
	}
}

func FuzzKeys(f *testing.F) {
	for _, o := range objects {
		f.Add([]byte(o), []byte(`{"a":1,"b":2}`))
	}
	f.Add([]byte(`{"event_id":"x","event_time":"t"}`), []byte(`{"event_id":"y","event_timex":"t"}`))
	f.Fuzz(func(t *testing.T, first, line []byte) {
		var ks Keys
		keyFields(&ks, first)
		want, werr := rawFields(line)
		got, gerr := keyFields(&ks, line)
		if (werr == nil) != (gerr == nil) || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("Keys.Fields(%q) after %q:\n got %q, %v\nwant %q, %v", line, first, got, gerr, want, werr)
		}
	})
}

// stringEnd finds the closing quote a byte-by-byte scan finds, wherever the
// quotes and backslashes fall in its eight-byte words and past its first 32
// bytes (where it changes method).
func TestStringEndAtEveryOffset(t *testing.T) {
	naive := func(b []byte) int {
		for j := 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j
			}
		}
		return -1
	}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 31, 32, 33, 40, 47, 70} {
		for at := range n + 1 {
			for _, c := range []string{`"`, `\\`, `\"`, "é", `\`} {
				s := []byte(`"` + strings.Repeat("a", at) + c + strings.Repeat("b", n-at) + `"`)
				for _, b := range [][]byte{s, s[:len(s)-1]} {
					if got, _ := stringEnd(b, 0); got != naive(b) {
						t.Errorf("stringEnd(%q) = %d, want %d", b, got, naive(b))
					}
				}
			}
		}
	}
}
