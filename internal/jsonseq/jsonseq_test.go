package jsonseq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const bomText = "\xEF\xBB\xBF"

var splitTests = []struct {
	name string
	body string
	want []string
}{
	{"object", `{"a":1}`, []string{`{"a":1}`}},
	{"object with spaces", " \t{\"a\": 1}\r\n", []string{`{"a": 1}`}},
	{"empty object", `{}`, []string{`{}`}},
	{"array", `[{"a":1},{"b":2}]`, []string{`{"a":1}`, `{"b":2}`}},
	{"array with spaces", "[ {\"a\":1} ,\n\t{\"b\":2}\r\n]\n", []string{`{"a":1}`, `{"b":2}`}},
	{"empty array", `[]`, []string{}},
	{"empty array with spaces", "\n[ \r\n ]\n", []string{}},
	{"array of scalars", `[1,"x",true,false,null,-0.5e+3,0,1E-2]`,
		[]string{`1`, `"x"`, `true`, `false`, `null`, `-0.5e+3`, `0`, `1E-2`}},
	{"nested arrays not flattened", `[[1,2],[3],[]]`, []string{`[1,2]`, `[3]`, `[]`}},
	{"array element containers", `[{},[],{"a":[{}]}]`, []string{`{}`, `[]`, `{"a":[{}]}`}},
	{"ndjson", "{\"a\":1}\n{\"b\":2}", []string{`{"a":1}`, `{"b":2}`}},
	{"ndjson trailing newline", "{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
	{"ndjson crlf", "{\"a\":1}\r\n{\"b\":2}\r\n", []string{`{"a":1}`, `{"b":2}`}},
	{"ndjson blank lines", "\n\n{\"a\":1}\n\n\r\n{\"b\":2}\n\n", []string{`{"a":1}`, `{"b":2}`}},
	{"any whitespace separates", "{\"a\":1} {\"b\":2}\t{\"c\":3}\r{\"d\":4}",
		[]string{`{"a":1}`, `{"b":2}`, `{"c":3}`, `{"d":4}`}},
	{"ndjson of arrays", "[1,2]\n[3]\n", []string{`[1,2]`, `[3]`}},
	{"array then object", "[1,2]\n{\"a\":1}", []string{`[1,2]`, `{"a":1}`}},
	{"object then array", "{\"a\":1}\n[1,2]", []string{`{"a":1}`, `[1,2]`}},
	{"top-level number", `42`, []string{`42`}},
	{"top-level string", ` "s" `, []string{`"s"`}},
	{"top-level literals", "true\nfalse\nnull", []string{`true`, `false`, `null`}},
	{"top-level numbers", "1 -2.5 3e7", []string{`1`, `-2.5`, `3e7`}},
	{"nested", `{"a":{"b":[1,{"c":[]}],"d":{"e":{"f":null}}},"g":[[[]]]}`,
		[]string{`{"a":{"b":[1,{"c":[]}],"d":{"e":{"f":null}}},"g":[[[]]]}`}},
	{"nested in array", `[{"a":{"b":[1,{"c":[]}]}},[[{"x":"]"}]]]`,
		[]string{`{"a":{"b":[1,{"c":[]}]}}`, `[[{"x":"]"}]]`}},
	{"brackets in strings", `[{"s":"[{]},:"},"]","[","}{"]`,
		[]string{`{"s":"[{]},:"}`, `"]"`, `"["`, `"}{"`}},
	{"escaped quotes", `[{"s":"say \"hi\" [x]"},"\"]"]`,
		[]string{`{"s":"say \"hi\" [x]"}`, `"\"]"`}},
	{"escapes", `{"s":"\\\/\b\f\n\r\t\"\u00e9\uD83D\uDE00\u00AF\uabcf"}`,
		[]string{`{"s":"\\\/\b\f\n\r\t\"\u00e9\uD83D\uDE00\u00AF\uabcf"}`}},
	{"backslash ends string", `["a\\","b\\\\"]`, []string{`"a\\"`, `"b\\\\"`}},
	{"unicode", `{"s":"héllo 日本 😀","ключ":"значение"}`, []string{`{"s":"héllo 日本 😀","ключ":"значение"}`}},
	{"invalid utf-8 in string", "[\"\xff\xfe\",\"\xc3\"]", []string{"\"\xff\xfe\"", "\"\xc3\""}},
	{"long strings", `["0123456789abcdef\"0123456789abcdef","abcdefgh","abcdefg\\","\u0041bcdefghijklmnopq"]`,
		[]string{`"0123456789abcdef\"0123456789abcdef"`, `"abcdefgh"`, `"abcdefg\\"`, `"\u0041bcdefghijklmnopq"`}},
	{"bom object", bomText + `{"a":1}`, []string{`{"a":1}`}},
	{"bom array", bomText + "[1,{\"a\":2}]\n", []string{`1`, `{"a":2}`}},
	{"bom ndjson", bomText + "{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
	{"max depth", strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
		[]string{strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1)}},
}

var errorTests = []struct {
	name string
	body string
	// Where and what: Offset, Line, Column, Msg.
	off       int64
	line, col int
	msg       string
}{
	{"colon missing", "{\"a\":1}\n{\"b\":2}\n{\"user\":\"x\",\"id\"}", 32, 3, 17, "invalid character '}' after object key"},
	{"value for colon", `{"a" 1}`, 5, 1, 6, "invalid character '1' after object key"},
	{"trailing comma in array", `[1,]`, 3, 1, 4, "invalid character ']' looking for beginning of value"},
	{"trailing comma in object", `{"a":1,}`, 7, 1, 8, "invalid character '}' looking for beginning of object key string"},
	{"unquoted key", `{a:1}`, 1, 1, 2, "invalid character 'a' looking for beginning of object key string"},
	{"mismatched bracket", `[1}`, 2, 1, 3, "invalid character '}' after array element"},
	{"mismatched brace", `{"a":1]`, 6, 1, 7, "invalid character ']' after object key:value pair"},
	{"leading zero", `{"a":01}`, 6, 1, 7, "invalid character '1' after object key:value pair"},
	{"leading zero top-level", `01`, 1, 1, 2, "invalid character '1' after top-level value"},
	{"values not separated", `{"a":1}{"b":2}`, 7, 1, 8, "invalid character '{' after top-level value"},
	{"scalars not separated", `1"a"`, 1, 1, 2, "invalid character '\"' after top-level value"},
	{"bare minus", `[-x]`, 2, 1, 3, "invalid character 'x' in numeric literal"},
	{"bare decimal point", `[1.x]`, 3, 1, 4, "invalid character 'x' after decimal point in numeric literal"},
	{"bare exponent", `[1ex]`, 3, 1, 4, "invalid character 'x' in exponent of numeric literal"},
	{"bare exponent sign", `[1e+]`, 4, 1, 5, "invalid character ']' in exponent of numeric literal"},
	{"plus sign", `[+1]`, 1, 1, 2, "invalid character '+' looking for beginning of value"},
	{"bad literal", `[tx]`, 2, 1, 3, "invalid character 'x' in literal true (expecting 'r')"},
	{"bad null", `nul1`, 3, 1, 4, "invalid character '1' in literal null (expecting 'l')"},
	{"bad false", `falsy`, 4, 1, 5, "invalid character 'y' in literal false (expecting 'e')"},
	{"single quotes", `'a'`, 0, 1, 1, `invalid character '\'' looking for beginning of value`},
	{"control character in string", "[\"a\x01\"]", 3, 1, 4, `invalid character '\x01' in string literal`},
	{"newline in string", "{\"a\":\"b\nc\"}", 7, 1, 8, `invalid character '\n' in string literal`},
	{"bad escape", `["\q"]`, 3, 1, 4, "invalid character 'q' in string escape code"},
	{"bad unicode escape", `["\u12g4"]`, 6, 1, 7, `invalid character 'g' in \u hexadecimal character escape`},
	{"non-ascii byte", "[\xff]", 1, 1, 2, "invalid character 'ÿ' looking for beginning of value"},
	{"crlf second line", "{\"a\":1}\r\n{\"b\":x}\r\n", 14, 2, 6, "invalid character 'x' looking for beginning of value"},
	{"column counts bytes", `{"é":x}`, 6, 1, 7, "invalid character 'x' looking for beginning of value"},
	{"bad value on later line", "{\"a\":1}\n]\n", 8, 2, 1, "invalid character ']' looking for beginning of value"},
	{"bad element in array", "[\n  {\"a\":1},\n  {\"a\":}\n]", 20, 3, 8, "invalid character '}' looking for beginning of value"},
	{"bom not counted in column", bomText + `{x}`, 4, 1, 2, "invalid character 'x' looking for beginning of object key string"},
	{"partial bom", "\xEF\xBB{}", 0, 1, 1, "invalid character 'ï' looking for beginning of value"},
	{"bom inside", "{}\n" + bomText, 3, 2, 1, "invalid character 'ï' looking for beginning of value"},
	{"too deep", strings.Repeat("[", maxDepth+1), maxDepth, 1, maxDepth + 1, "invalid character '[' exceeded max depth"},
	{"too deep object", strings.Repeat(`{"a":`, maxDepth+1), 5 * maxDepth, 1, 5*maxDepth + 1, "invalid character '{' exceeded max depth"},

	{"truncated object", "{\"a\":1}\n{\"b\":", 13, 2, 6, "unexpected end of JSON input"},
	{"truncated after value", `{"a":1`, 6, 1, 7, "unexpected end of JSON input"},
	{"truncated array", "[1,\n", 4, 2, 1, "unexpected end of JSON input"},
	{"open array", "[", 1, 1, 2, "unexpected end of JSON input"},
	{"open object", "{ ", 2, 1, 3, "unexpected end of JSON input"},
	{"truncated key", `{"a`, 3, 1, 4, "unexpected end of JSON input"},
	{"truncated before colon", `{"a" `, 5, 1, 6, "unexpected end of JSON input"},
	{"truncated string", `"abc`, 4, 1, 5, "unexpected end of JSON input"},
	{"truncated escape", `"abc\`, 5, 1, 6, "unexpected end of JSON input"},
	{"truncated unicode escape", `"\u12`, 5, 1, 6, "unexpected end of JSON input"},
	{"truncated minus", `-`, 1, 1, 2, "unexpected end of JSON input"},
	{"truncated fraction", `1.`, 2, 1, 3, "unexpected end of JSON input"},
	{"truncated exponent", `1e-`, 3, 1, 4, "unexpected end of JSON input"},
	{"truncated literal", "{}\ntru", 6, 2, 4, "unexpected end of JSON input"},
}

func TestSplit(t *testing.T) {
	for _, tt := range splitTests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			got, err := Split(body)
			if err != nil {
				t.Fatalf("Split(%.60q): %v", tt.body, err)
			}
			if got == nil {
				t.Errorf("Split(%.60q) = nil, want a non-nil slice", tt.body)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Split(%.60q) = %d values %.200q, want %d", tt.body, len(got), got, len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("value %d = %.60q, want %.60q", i, got[i], tt.want[i])
				}
			}
			checkValues(t, body, got)
			n, err := Count(body)
			if n != len(got) || err != nil {
				t.Errorf("Count = %d, %v; want %d, nil", n, err, len(got))
			}
		})
	}
}

func TestSplitErrors(t *testing.T) {
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split([]byte(tt.body))
			if got != nil {
				t.Errorf("Split returned values %.200q with error %v", got, err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Split(%.60q) error = %v, want a *SyntaxError", tt.body, err)
			}
			want := SyntaxError{Offset: tt.off, Line: tt.line, Column: tt.col, Msg: tt.msg}
			if *se != want {
				t.Errorf("Split(%.60q) error = %+v, want %+v", tt.body, *se, want)
			}
			if wantText := fmt.Sprintf("line %d, column %d: %s", tt.line, tt.col, tt.msg); err.Error() != wantText {
				t.Errorf("Error() = %q, want %q", err.Error(), wantText)
			}
			n, cerr := Count([]byte(tt.body))
			if n != 0 || cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Count = %d, %v; want 0, %v", n, cerr, err)
			}
		})
	}
}

func TestSplitEmpty(t *testing.T) {
	for _, body := range []string{"", " ", "\n\r\n\t ", bomText, bomText + "\n"} {
		got, err := Split([]byte(body))
		if got != nil || !errors.Is(err, ErrEmptyBody) {
			t.Errorf("Split(%q) = %q, %v; want nil, %v", body, got, err, ErrEmptyBody)
		}
		if err != nil && err.Error() != "empty body" {
			t.Errorf("Split(%q) error text = %q, want %q", body, err.Error(), "empty body")
		}
		if n, err := Count([]byte(body)); n != 0 || !errors.Is(err, ErrEmptyBody) {
			t.Errorf("Count(%q) = %d, %v; want 0, %v", body, n, err, ErrEmptyBody)
		}
	}
}

// TestSplitValuesValid checks, over every body in the tables and some
// generated ones, that whatever Split returns is valid JSON found in order
// inside the body.
func TestSplitValuesValid(t *testing.T) {
	var bodies [][]byte
	for _, tt := range splitTests {
		bodies = append(bodies, []byte(tt.body))
	}
	for _, tt := range errorTests {
		bodies = append(bodies, []byte(tt.body))
	}
	bodies = append(bodies, eventArray(100), eventNDJSON(100))
	for _, body := range bodies {
		vals, err := Split(body)
		if err != nil {
			continue
		}
		checkValues(t, body, vals)
	}
}

// TestSplitEvents checks realistic bodies against encoding/json's own
// reading of them.
func TestSplitEvents(t *testing.T) {
	var want []json.RawMessage
	if err := json.Unmarshal(eventArray(100), &want); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"array": eventArray(100), "ndjson": eventNDJSON(100)} {
		got, err := Split(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("%s: value %d = %.80q, want %.80q", name, i, got[i], want[i])
			}
		}
	}
}

// TestSplitMany covers bodies with more values than Split gathers on the
// stack, including an array that stops being unpacked when a second value
// follows it.
func TestSplitMany(t *testing.T) {
	arr := eventArray(100)
	tests := []struct {
		name string
		body []byte
		want [][]byte
	}{
		{"array", eventArray(1000), nil},
		{"ndjson", eventNDJSON(1000), nil},
		{"array, array", append(append(bytes.Clone(arr), '\n'), arr...), [][]byte{arr, arr}},
		{"array, object", append(bytes.Clone(arr), " {}"...), [][]byte{arr, []byte("{}")}},
	}
	for _, tt := range tests {
		got, err := Split(tt.body)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		checkValues(t, tt.body, got)
		if tt.want == nil {
			if len(got) != 1000 || string(got[999]) != event(999) {
				t.Errorf("%s: %d values, want 1000 ending with event 999", tt.name, len(got))
			}
			continue
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %d values, want %d", tt.name, len(got), len(tt.want))
		}
		for i := range got {
			if !bytes.Equal(got[i], tt.want[i]) {
				t.Errorf("%s: value %d = %.60q, want %.60q", tt.name, i, got[i], tt.want[i])
			}
		}
		if n, err := Count(tt.body); n != len(got) || err != nil {
			t.Errorf("%s: Count = %d, %v; want %d", tt.name, n, err, len(got))
		}
	}
}

func TestSplitAllocs(t *testing.T) {
	body := eventArray(100)
	if n := testing.AllocsPerRun(20, func() { _, _ = Count(body) }); n != 0 {
		t.Errorf("Count allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = Split(body) }); n > 1 {
		t.Errorf("Split allocates %v times, want at most 1", n)
	}
}

// checkValues fails t unless each value is valid JSON, without surrounding
// whitespace, and the values are sub-slices of body in order without overlap.
func checkValues(t *testing.T, body []byte, vals [][]byte) {
	t.Helper()
	end := 0
	for i, v := range vals {
		if !json.Valid(v) {
			t.Fatalf("value %d %.60q is not valid JSON", i, v)
		}
		if isSpace(v[0]) || isSpace(v[len(v)-1]) {
			t.Fatalf("value %d %.60q has surrounding whitespace", i, v)
		}
		if cap(v) != len(v) {
			t.Fatalf("value %d %.60q has capacity %d beyond its length: appending to it would overwrite the body", i, v, cap(v))
		}
		// The value must start in body's memory at or after the end of the
		// previous one.
		off := end
		for off < len(body) && &body[off] != &v[0] {
			off++
		}
		if off+len(v) > len(body) {
			t.Fatalf("value %d %.60q is not a sub-slice of the body after offset %d", i, v, end)
		}
		end = off + len(v)
	}
}

// event returns a realistic collector event of about 300 bytes.
func event(i int) string {
	return fmt.Sprintf(`{"event_id":"4f1c2b9e-7d3a-4c8e-9b21-%012d","type":"page_view",`+
		`"ts":"2025-06-01T12:%02d:%02d.%03dZ","user_id":"u_%06d","session_id":"s_8c2f%04d",`+
		`"props":{"path":"/products/sku-%d?ref=\"home\"","title":"Caf\u00e9 grinder \u2014 \"Pro\"",`+
		`"price":%d.99,"in_stock":true,"tags":["kitchen","coffee"]},"ua":"Mozilla/5.0 (X11; Linux x86_64)"}`,
		i, i%60, (i*7)%60, i%1000, i*31, i%10000, i*13, 10+i%90)
}

func eventArray(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(event(i))
	}
	b.WriteByte(']')
	return b.Bytes()
}

func eventNDJSON(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		b.WriteString(event(i))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func BenchmarkSplit(b *testing.B) {
	body := eventArray(100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		vals, err := Split(body)
		if err != nil || len(vals) != 100 {
			b.Fatal(len(vals), err)
		}
	}
}

func BenchmarkCount(b *testing.B) {
	body := eventArray(100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := Count(body); err != nil || n != 100 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkJSONValid is the yardstick: encoding/json validating the same body.
func BenchmarkJSONValid(b *testing.B) {
	body := eventArray(100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
}
