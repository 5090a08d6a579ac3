package logparse

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func mustNew(t testing.TB, format, pattern string) Parser {
	t.Helper()
	p, err := New(format, pattern)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fieldsJSON(t testing.TB, r Record) string {
	t.Helper()
	out := r.AppendFieldsJSON(nil)
	if !json.Valid(out) {
		t.Fatalf("AppendFieldsJSON wrote invalid JSON: %s", out)
	}
	return string(out)
}

const nginxLine = `203.0.113.7 - alice [10/Oct/2024:13:55:36 +0200] "GET /shop/cart?id=1 HTTP/1.1" 200 2326 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)" "198.51.100.1"`

func TestNginxCombined(t *testing.T) {
	p := mustNew(t, "nginx_combined", "")
	r, err := p.Parse([]byte(nginxLine))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 10, 10, 11, 55, 36, 0, time.UTC); !r.Time.Equal(want) || r.Time.Location() != time.UTC {
		t.Fatalf("time %v, want %v", r.Time, want)
	}
	if r.IP != "203.0.113.7" || r.Message != nginxLine {
		t.Fatalf("ip %q message %q", r.IP, r.Message)
	}
	want := `{"remote_addr":"203.0.113.7","remote_user":"alice","method":"GET","path":"/shop/cart?id=1","protocol":"HTTP/1.1","status":200,"body_bytes_sent":2326,"http_referer":"https://example.com/","http_user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}`
	if got := fieldsJSON(t, r); got != want {
		t.Fatalf("fields\n got %s\nwant %s", got, want)
	}
}

func TestAccessLogHostileAndOddLines(t *testing.T) {
	for _, tc := range []struct {
		format, line, want string
	}{
		{"nginx_combined", `::1 - - [01/Jan/2025:00:00:00 +0000] "-" 400 0 "-" "-"`,
			`{"remote_addr":"::1","request":"-","status":400,"body_bytes_sent":0}`},
		{"nginx_combined", `10.0.0.1 - - [01/Jan/2025:00:00:00 -0500] "GET /a\x22b HTTP/1.1" 404 12 "" "curl/8 \x22x\x22"`,
			`{"remote_addr":"10.0.0.1","method":"GET","path":"/a\\x22b","protocol":"HTTP/1.1","status":404,"body_bytes_sent":12,"http_user_agent":"curl/8 \\x22x\\x22"}`},
		{"apache_combined", `10.0.0.1 - bob [01/Jan/2025:00:00:00 +0000] "GET /q?\"x\" HTTP/1.0" 304 - "-" "UA \"quoted\""`,
			`{"remote_addr":"10.0.0.1","remote_user":"bob","method":"GET","path":"/q?\\\"x\\\"","protocol":"HTTP/1.0","status":304,"http_user_agent":"UA \\\"quoted\\\""}`},
		{"nginx_combined", "10.0.0.1 - - [01/Jan/2025:00:00:00 +0000] \"GET /\xff\xfe HTTP/1.1\" 200 1 \"-\" \"\xc3\x28\"",
			`{"remote_addr":"10.0.0.1","method":"GET","path":"/��","protocol":"HTTP/1.1","status":200,"body_bytes_sent":1,"http_user_agent":"�("}`},
		{"nginx_combined", `1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET  /two spaces HTTP/1.1" 200 1 "-" "-"`,
			`{"remote_addr":"1.2.3.4","request":"GET  /two spaces HTTP/1.1","status":200,"body_bytes_sent":1}`},
		{"apache_common", `1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "POST /x HTTP/2.0" 201 5`,
			`{"remote_addr":"1.2.3.4","method":"POST","path":"/x","protocol":"HTTP/2.0","status":201,"body_bytes_sent":5}`},
	} {
		r, err := mustNew(t, tc.format, "").Parse([]byte(tc.line))
		if err != nil {
			t.Errorf("%s %q: %v", tc.format, tc.line, err)
			continue
		}
		if got := fieldsJSON(t, r); got != tc.want {
			t.Errorf("%q\n got %s\nwant %s", tc.line, got, tc.want)
		}
	}
	huge := `1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET /` + strings.Repeat("a", 1<<20) + ` HTTP/1.1" 200 1 "-" "-"`
	if r, err := mustNew(t, "nginx_combined", "").Parse([]byte(huge)); err != nil || len(r.Fields[2].Value) != 1<<20+1 {
		t.Fatalf("huge line: %v", err)
	}
}

func TestAccessLogErrorsSayWhere(t *testing.T) {
	p := mustNew(t, "nginx_combined", "")
	for line, want := range map[string]string{
		``: "expected remote_addr at byte 0",
		`1.2.3.4 - - 01/Jan/2025:00:00:00 +0000]`:                                   "nginx_combined: expected '[' before time_local at byte 12",
		`1.2.3.4 - - [01/Jan/2025:00:00:00 +0000`:                                   "time_local starting at byte 12 has no closing ']'",
		`1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-"`:                    `time_local "yesterday" at byte 13`,
		`1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" OK 1 "-" "-"`:    `status "OK" at byte 58 is not a number`,
		`1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-"`:       "expected ' ' before http_user_agent at byte 67",
		`1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "open`: "http_user_agent starting at byte 68 has no closing '\"'",
	} {
		_, err := p.Parse([]byte(line))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", line, err, want)
		}
	}
}

func TestJSON(t *testing.T) {
	p := mustNew(t, "json", "")
	r, err := p.Parse([]byte(`{"ts":"2024-05-01T10:00:00.5+02:00","level":"warn","msg":"disk \"full\"","host":"web-1","n":3,"ratio":0.25,"big":1e400,"ok":true,"none":null,"tags":["a"],"ctx":{"k":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 5, 1, 8, 0, 0, 5e8, time.UTC); !r.Time.Equal(want) {
		t.Fatalf("time %v", r.Time)
	}
	if r.Message != `disk "full"` || r.Host != "web-1" {
		t.Fatalf("record %+v", r)
	}
	want := `{"level":"warn","n":3,"ratio":0.25,"big":1e400,"ok":true,"tags":["a"],"ctx":{"k":1}}`
	if got := fieldsJSON(t, r); got != want {
		t.Fatalf("fields\n got %s\nwant %s", got, want)
	}
	for rec, want := range map[string]time.Time{
		`{"time":1714557600}`:                  time.Unix(1714557600, 0),
		`{"timestamp":1714557600123}`:          time.UnixMilli(1714557600123),
		`{"@timestamp":"2024-05-01 10:00:00"}`: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
	} {
		r, err := p.Parse([]byte(rec))
		if err != nil || !r.Time.Equal(want) {
			t.Errorf("%s: time %v, %v; want %v", rec, r.Time, err, want)
		}
	}
	r, _ = p.Parse([]byte("{\"k\":\"\xff\"}"))
	if got := fieldsJSON(t, r); got != `{"k":"�"}` {
		t.Errorf("non-UTF-8 value: %s", got)
	}
	for _, bad := range []string{``, `[1]`, `"s"`, `{"a":}`, `{"a":1} x`, `{"a":1`, `{`} {
		if _, err := p.Parse([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "json: ") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestRegex(t *testing.T) {
	p := mustNew(t, "regex", `^(?P<time>\S+ \S+) \[(?P<level>\w+)\] (?P<host>\S+) (?P<ip>\S+) (?P<empty>x?)(?P<message>.*)$`)
	r, err := p.Parse([]byte("2024-05-01 10:00:00 [ERROR] db-1 10.1.2.3 connection \"reset\"\x01"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Time.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) || r.Host != "db-1" || r.IP != "10.1.2.3" || r.Message != "connection \"reset\"\x01" {
		t.Fatalf("record %+v", r)
	}
	if got := fieldsJSON(t, r); got != `{"level":"ERROR","ip":"10.1.2.3"}` {
		t.Fatalf("fields %s", got)
	}
	if _, err := p.Parse([]byte("nothing like it")); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatch: %v", err)
	}
	for _, pat := range []string{"", "(", `\d+`, `(\d+)`} {
		if _, err := New("regex", pat); err == nil {
			t.Errorf("pattern %q accepted", pat)
		}
	}
}

func TestPlainAndUnknown(t *testing.T) {
	r, err := mustNew(t, "plain", "").Parse([]byte("just text"))
	if err != nil || r.Message != "just text" || len(r.Fields) != 0 || fieldsJSON(t, r) != "{}" {
		t.Fatalf("plain: %+v %v", r, err)
	}
	if _, err := New("xml", ""); err == nil {
		t.Fatal("unknown format accepted")
	}
	if _, err := New("json", "x"); err == nil {
		t.Fatal("a pattern for json accepted")
	}
}

func TestAppendFieldsJSONEscapes(t *testing.T) {
	r := Record{Fields: []Field{
		{Name: "q\"\\\n", Kind: String, Value: "\x00\x1f\t\u2028é\xff"},
		{Name: "notnum", Kind: Int, Value: "12abc"},
		{Name: "notbool", Kind: Bool, Value: "yes"},
		{Name: "notjson", Kind: JSON, Value: "{"},
		{Name: "f", Kind: Float, Value: "-0.5e-3"},
	}}
	want := `{"q\"\\\n":"\u0000\u001f\t` + "\u2028é\ufffd" + `","notnum":"12abc","notbool":"yes","notjson":"{","f":-0.5e-3}`
	if got := fieldsJSON(t, r); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
