package logparse

import (
	"encoding/json"
	"strings"
	"testing"
)

// check runs p on rec: it must not panic, and what it returns must encode
// to valid JSON.
func check(t *testing.T, p Parser, rec []byte) {
	r, err := p.Parse(rec)
	if err != nil {
		return
	}
	if out := r.AppendFieldsJSON(nil); !json.Valid(out) {
		t.Fatalf("%q: invalid JSON %s", rec, out)
	}
}

func FuzzNginx(f *testing.F) {
	f.Add([]byte(nginxLine))
	f.Add([]byte(`::1 - - [01/Jan/2025:00:00:00 +0000] "-" 400 0 "-" "-"`))
	f.Add([]byte(`1.2.3.4 - - [31/Feb/2025:25:00:00 +9999] "GET \" HTTP/1.1" 200 - "\\" "x"`))
	combined, _ := New("nginx_combined", "")
	common, _ := New("apache_common", "")
	f.Fuzz(func(t *testing.T, rec []byte) {
		check(t, combined, rec)
		check(t, common, rec)
	})
}

func FuzzJSON(f *testing.F) {
	f.Add([]byte(`{"ts":1714557600123,"msg":"hi","n":1.5,"o":{"a":[1,null]},"b":false}`))
	f.Add([]byte(`{"time":"2024-05-01T10:00:00Z","host":7}`))
	f.Add([]byte(`{"a":"\ud800"}`))
	p, _ := New("json", "")
	f.Fuzz(func(t *testing.T, rec []byte) { check(t, p, rec) })
}

// FuzzJSONParser compares the JSON parser with the encoding/json reading
// it replaced (referenceParse).
func FuzzJSONParser(f *testing.F) {
	for _, rec := range jsonCorpus {
		// Minimizing what grows out of the 20 kB records nested 10,000
		// deep would stall the fuzzer for minutes.
		if len(rec) < 1000 {
			f.Add([]byte(rec))
		}
	}
	f.Fuzz(func(t *testing.T, rec []byte) { checkJSONAgainstReference(t, rec) })
}

func FuzzRegex(f *testing.F) {
	f.Add(`(?P<time>\S+) (?P<message>.*)`, []byte("2024-05-01T10:00:00Z hello"))
	f.Add(`(?P<a>x*)(?P<ip>\d+)?`, []byte("xx12"))
	f.Fuzz(func(t *testing.T, pattern string, rec []byte) {
		// Counted repetitions of long patterns compile and match slowly
		// enough to stall the fuzzer; the parser is not what they test.
		if len(pattern) > 64 || strings.Contains(pattern, "{") || len(rec) > 4096 {
			return
		}
		p, err := New("regex", pattern)
		if err != nil {
			return
		}
		check(t, p, rec)
	})
}
