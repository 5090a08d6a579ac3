package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStringMatchesEncodingJSON checks StringEnd and Unquote against
// json.Unmarshal; the parsers that use them fuzz the same comparison.
func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, q := range []string{
		`""`, `"plain"`, `"12345678plain12345678"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\u20AC"`,
		`"\ud83d\ude00"`, `"\ud800"`, `"\udc00\ud800"`, `"\ud800x"`, `"\ud800\u0041"`, `"\ud800\ud800\udc00"`,
		"\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", "\"é€😀\"", "\"\x7f\"",
		`"\u12"`, `"\u12g4"`, `"\x"`, `"\'"`, `"abc`, `"\`, "\"a\x00\"", "\"12345678\n\"", `abc`,
	} {
		var want string
		wantErr := json.Unmarshal([]byte(q), &want)
		end, decode, ok := StringEnd(q, 0)
		if ok != (wantErr == nil) || ok && end != len(q) {
			t.Errorf("StringEnd(%q) = %d, %v; json.Unmarshal: %v", q, end, ok, wantErr)
			continue
		}
		if !ok {
			continue
		}
		got := q[1 : end-1]
		if decode {
			got = Unquote(got)
		}
		if got != want {
			t.Errorf("%q reads as %q, want %q", q, got, want)
		}
	}
}

func TestSkipSpace(t *testing.T) {
	if got := SkipSpace(" \t\r\n\f x", 0); got != 4 {
		t.Errorf("SkipSpace = %d, want 4 (form feed is not JSON whitespace)", got)
	}
	if got := SkipSpace(strings.Repeat(" ", 3), 1); got != 3 {
		t.Errorf("SkipSpace = %d, want 3", got)
	}
}
