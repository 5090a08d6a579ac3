package jsonseq

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// maxSeed leaves the nesting-limit bodies (10 KB and more) out of the seed
// corpus: minimizing an input of that size takes the fuzzer's whole budget.
// The table tests cover the limit.
const maxSeed = 1 << 10

func FuzzSplit(f *testing.F) {
	for _, tt := range splitTests {
		if len(tt.body) <= maxSeed {
			f.Add([]byte(tt.body))
		}
	}
	for _, tt := range errorTests {
		if len(tt.body) <= maxSeed {
			f.Add([]byte(tt.body))
		}
	}
	f.Add(eventArray(2))
	f.Add(eventNDJSON(2))
	f.Fuzz(func(t *testing.T, body []byte) {
		vals, err := Split(body)
		n, cerr := Count(body)
		if n != len(vals) || (err == nil) != (cerr == nil) || err != nil && err.Error() != cerr.Error() {
			t.Fatalf("Count = %d, %v; Split gave %d values, %v", n, cerr, len(vals), err)
		}
		valid := json.Valid(body)
		if err != nil {
			if valid {
				t.Fatalf("json.Valid accepts the body, Split says: %v", err)
			}
			if vals != nil {
				t.Fatalf("Split returned values with error %v", err)
			}
			if errors.Is(err, ErrEmptyBody) {
				if len(bytes.Trim(bytes.TrimPrefix(body, bom), " \t\r\n")) != 0 {
					t.Fatalf("ErrEmptyBody for a body that is not blank")
				}
				return
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is neither ErrEmptyBody nor a *SyntaxError", err, err)
			}
			if se.Offset < 0 || se.Offset > int64(len(body)) || se.Line < 1 || se.Column < 1 {
				t.Fatalf("error position out of range: %+v for a body of %d bytes", *se, len(body))
			}
			compareJSONError(t, body, se)
			return
		}
		checkValues(t, body, vals)
		if !valid {
			return
		}
		trimmed := bytes.Trim(body, " \t\r\n")
		if trimmed[0] != '[' {
			if len(vals) != 1 || !bytes.Equal(vals[0], trimmed) {
				t.Fatalf("a valid non-array body gave %d values %.200q, want it whole", len(vals), vals)
			}
			return
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			t.Fatal(err)
		}
		if len(vals) != len(elems) {
			t.Fatalf("a valid array of %d elements gave %d values", len(elems), len(vals))
		}
		for i := range vals {
			if !bytes.Equal(vals[i], elems[i]) {
				t.Fatalf("element %d = %.60q, encoding/json reads %.60q", i, vals[i], elems[i])
			}
		}
	})
}

// compareJSONError checks Split's error against encoding/json's for the same
// body. They must agree unless encoding/json stopped at a second top-level
// value, which Split accepts after whitespace.
func compareJSONError(t *testing.T, body []byte, se *SyntaxError) {
	t.Helper()
	ref, shift := body, 0
	if bytes.HasPrefix(body, bom) {
		ref, shift = body[len(bom):], len(bom)
	}
	var raw json.RawMessage
	jerr := json.Unmarshal(ref, &raw)
	var jse *json.SyntaxError
	if !errors.As(jerr, &jse) {
		t.Fatalf("encoding/json accepts %q after the BOM, Split says: %v", ref, se)
	}
	// encoding/json's Offset counts the offending byte. At the end of the
	// input it feeds itself a space, and may complain of that instead of
	// the end; a real trailing space would have been accepted before it.
	msg, pos := jse.Error(), int(jse.Offset)-1
	if int(jse.Offset) == len(ref) && strings.HasPrefix(msg, "invalid character ' '") && (len(ref) == 0 || ref[len(ref)-1] != ' ') {
		msg = "unexpected end of JSON input"
	}
	if msg == "unexpected end of JSON input" {
		pos = len(ref)
	}
	pos += shift
	if strings.HasSuffix(msg, "after top-level value") && isSpace(body[pos-1]) {
		if se.Offset < int64(pos) {
			t.Fatalf("Split: %v at offset %d, before encoding/json's %q at %d", se, se.Offset, msg, pos)
		}
		return
	}
	if se.Msg != msg || se.Offset != int64(pos) {
		t.Fatalf("Split: %q at offset %d; encoding/json: %q at %d", se.Msg, se.Offset, msg, pos)
	}
}
