package collect

import (
	"bytes"
	"encoding/json"
	"testing"
)

// countTP2 counts the events of the last "data" (as enrich reads it), and
// refuses an envelope without an array there.
func TestCountTP2(t *testing.T) {
	for _, tc := range []struct {
		body string
		n    int
		ok   bool
	}{
		{`{"schema":"s","data":[{"e":"pv"},{"e":"se"}]}`, 2, true},
		{`{"data":[]}`, 0, true},
		{` {"data":[{"a":"[,]"},{"b":"}"}], "schema":"s"}`, 2, true},
		{`{"data":[{"e":"pv"}],"data":[{"e":"pv"},{"e":"pv"},{"e":"pv"}]}`, 3, true},
		{`{"data":[{"e":"pv"}],"data":5}`, 0, false},
		{`{"data":5,"data":[{"e":"pv"}]}`, 1, true},
		{`{"schema":"s"}`, 0, false},
		{`{"data":{"e":"pv"}}`, 0, false},
		{`[{"e":"pv"}]`, 0, false},
		{`{"data":[{"e":"pv"}]} {"data":[]}`, 0, false},
		{`{"data":[{"e":"pv"}`, 0, false},
	} {
		n, err := countTP2([]byte(tc.body))
		if (err == nil) != tc.ok || n != tc.n {
			t.Errorf("countTP2(%s) = %d, %v; want %d, ok %v", tc.body, n, err, tc.n, tc.ok)
		}
	}
}

// FuzzCountTP2 holds countTP2 to encoding/json: a body is counted when it
// is one JSON object whose last "data" is an array, as many as the array
// holds; anything else is refused.
func FuzzCountTP2(f *testing.F) {
	for _, s := range []string{`{"schema":"s","data":[{"e":"pv"},{"e":"se"}]}`, `{"data":[]}`, `{"d\u0061ta":[1,2]}`,
		`{"data":[{"e":"pv"}],"data":5}`, `{"data":[{"a":"\"]"}]}`, `[1]`, `{"data":[1,]}`, "\ufeff{\"data\":[{}]}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := countTP2(body)
		want, ok := -1, false
		var env map[string]json.RawMessage
		trimmed := bytes.TrimLeft(body, " \t\r\n\ufeff")
		if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &env) == nil {
			var items []json.RawMessage
			if data, has := env["data"]; has && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("[")) && json.Unmarshal(data, &items) == nil {
				want, ok = len(items), true
			}
		}
		if ok != (err == nil) || ok && n != want {
			t.Fatalf("countTP2(%q) = %d, %v; encoding/json: %d, ok %v", body, n, err, want, ok)
		}
	})
}
