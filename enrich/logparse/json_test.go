package logparse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// referenceParse is jsonParser.Parse as it was before the scanner: every
// member through encoding/json's Decoder, strings through json.Unmarshal.
// What it returns for a record, error text included, is what Parse must
// return.
func referenceParse(rec []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Record{}, fmt.Errorf("json: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Record{}, fmt.Errorf("json: record is not an object (starts with %s)", describe(tok))
	}
	var r Record
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("json: at byte %d: %w", dec.InputOffset(), err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Record{}, fmt.Errorf("json: member %q at byte %d: %w", name, dec.InputOffset(), err)
		}
		f, ok := referenceField(name, raw)
		if !ok {
			continue
		}
		if r.lift(f) {
			continue
		}
		r.Fields = append(r.Fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, fmt.Errorf("json: at byte %d: %w", dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Record{}, fmt.Errorf("json: more after the object at byte %d", dec.InputOffset())
	}
	return r, nil
}

func referenceField(name string, raw json.RawMessage) (Field, bool) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Field{Name: name, Kind: String, Value: string(raw)}, true
		}
		return Field{Name: name, Kind: String, Value: s}, true
	case 't', 'f':
		return Field{Name: name, Kind: Bool, Value: string(raw)}, true
	case 'n':
		return Field{}, false
	case '{', '[':
		return Field{Name: name, Kind: JSON, Value: string(raw)}, true
	}
	if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return Field{Name: name, Kind: Int, Value: string(raw)}, true
	}
	return Field{Name: name, Kind: Float, Value: string(raw)}, true
}

// depth is how deeply rec's arrays and objects nest, for a valid record.
func depth(rec []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(rec); i++ {
		switch c := rec[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// checkJSONAgainstReference fails unless Parse returns for rec what
// referenceParse does, and unless the scanner reads every record it should
// (a fallback that read everything would pass the first check alone).
func checkJSONAgainstReference(t *testing.T, rec []byte) {
	t.Helper()
	want, wantErr := referenceParse(rec)
	for _, read := range []struct {
		name  string
		parse func([]byte) (Record, error)
	}{{"Parse", jsonParser{}.Parse}, {"decodeObject", decodeObject}} {
		got, err := read.parse(rec)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%s(%q): error %v, want %v", read.name, rec, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s(%q):\n got %#v\nwant %#v", read.name, rec, got, want)
		}
	}
	_, scanned := scanObject(rec)
	switch {
	case scanned && wantErr != nil:
		t.Fatalf("scanObject read %q, which encoding/json refuses: %v", rec, wantErr)
	case !scanned && wantErr == nil && depth(rec) <= maxNesting+1:
		t.Fatalf("scanObject declined %q, which encoding/json reads", rec)
	}
}

func nested(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

var webShopLine = `{"anonymous_id":"d220894c-5a02-4334-9cef-58f4e8eac03c","app_id":"shop","category":"Home \u0026 Kitchen","country":"DE","currency":"USD","device":"desktop","event":"product_view","event_id":"33c1e633-5260-5ef7-88a2-f59b865390be","event_time":"2026-11-01T00:03:16.498Z","ip":"77.85.178.68","page_title":"Nova Chef's Knife | Sluice Shop","price":93.95,"quantity":2,"in_stock":true,"gift":false,"coupon":null,"meta":{"ab":["a",1,{"x":null}]}}`

// jsonCorpus is records the scanner must read exactly as encoding/json
// does, or refuse with the same error.
var jsonCorpus = []string{
	webShopLine,
	`{"ts":"2024-05-01T10:00:00.5+02:00","level":"warn","msg":"disk \"full\"","host":"web-1","n":3,"ratio":0.25,"big":1e400,"ok":true,"none":null,"tags":["a"],"ctx":{"k":1}}`,
	`{"ts":1714557600123,"msg":"hi","n":1.5,"o":{"a":[1,null]},"b":false}`,
	// Escapes, surrogates, invalid UTF-8.
	`{"s":"\"\\\/\b\f\n\r\t","u":"\u0000\u001f\u00e9\u20AC\uFFFF"}`,
	`{"pair":"\ud83d\ude00","upper":"\uD83D\uDE00","lone":"\ud800","low":"\udc00","rev":"\ude00\ud83d","then":"\ud83d\u0041","x":"\ud83dx","two":"\ud800\ud800","end":"a\ud800"}`,
	`{"\u006b\u0065\u0079":1,"k\"q":2,"\ud800":3,"":4}`,
	"{\"bad\":\"\xff\xfe\",\"sur\":\"\xed\xa0\x80\",\"over\":\"\xc0\xaf\",\"cut\":\"\xe2\x82\",\"ok\":\"\xe2\x82\xac\xef\xbf\xbd\x7f\"}",
	"{\"k\xff\":\"v\",\"\xe2\x82\":\"\\n\xff\"}",
	`{"a":"\'"}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"\`, `{"a":"\u`,
	"{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", "{\"a\":\"\x00\"}", "{\"a\x01\":1}",
	// Whitespace everywhere, and whitespace that is not JSON's.
	" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n1 \t\r\n, \"b\" : { \"c\" : [ 1 , 2 ] , \"d\" : { } } \n} \r\n\t ",
	"{\"a\":1}\n", "{\"a\":1}\r\n", "\xef\xbb\xbf{\"a\":1}", "{\"a\":1}\x00", "{\f\"a\":1}", "{\"a\":1}\v",
	// Duplicates, and the members lifted into the record.
	`{"a":1,"a":"x","a":null,"a":[1]}`,
	`{"msg":1,"msg":"first","message":"second","host":"h1","hostname":"h2","app":"a","service":"s","msg":null}`,
	`{"ts":"yesterday","time":1714557600,"timestamp":"2024-05-01T10:00:00Z"}`,
	`{"ts":1714557600.5,"@timestamp":-1}`, `{"ts":1e400}`, `{"ts":17145576001234567}`, `{"time":{"s":1}}`, `{"time":true}`,
	`{"host":null,"host":"h"}`, `{"app":"","app":"x"}`,
	// Numbers.
	`{"a":-0,"b":0,"c":-0.0,"d":1e400,"e":-1e-400,"f":1E+2,"g":0.5e-0,"h":12345678901234567890}`,
	`{"max":9223372036854775807,"min":-9223372036854775808,"over":9223372036854775808,"under":-9223372036854775809,"long":100000000000000000000}`,
	`{"a":01}`, `{"a":-}`, `{"a":.5}`, `{"a":+1}`, `{"a":1.}`, `{"a":1e}`, `{"a":1e+}`, `{"a":-01}`, `{"a":0x10}`,
	`{"a":NaN}`, `{"a":Infinity}`, `{"a":1.5.}`, `{"a":1 2}`,
	// Literals.
	`{"t":true,"f":false,"n":null}`, `{"a":tru}`, `{"a":truex}`, `{"a":nul}`, `{"a":nulll}`, `{"a":False}`, `{"a":t}`,
	// Nesting.
	`{"a":{},"b":[],"c":[{}],"d":{"e":[[[]]]},"f":[1,"]",{"g":"}"}],"h":{ "i" : [ 1 , { } ] }}`,
	`{"a":[1,]}`, `{"a":[,1]}`, `{"a":{"b"}}`, `{"a":{"b":}}`, `{"a":[1 2]}`, `{"a":{,}}`, `{"a":{"b":1,}}`,
	`{"a":{1:2}}`, `{"a":[}`, `{"a":{]}`, `{"a":[1}`, `{"a":{"b":1]}`, `{"a":[[]]]}`, `{"a":{"b":"\q"}}`,
	`{"a":[` + "\x01" + `]}`, `{"a":["x` + "\n" + `"]}`,
	`{"a":` + nested("[", "]", 64, "1") + `}`,
	`{"a":` + nested("[", "]", 65, "1") + `}`,
	`{"a":` + nested(`{"k":`, "}", 64, "[]") + `}`,
	`{"a":` + nested(`{"k":`, "}", 70, "{}") + `}`,
	`{"a":` + nested("[", "]", 10000, "") + `}`,
	`{"a":` + nested("[", "]", 10001, "") + `}`,
	`{"a":` + nested("[", "]", 100, "") + `,"b":2}`,
	`{"a":` + nested("[", "]", 10001, "") + `,"b":`,
	// Empty, not an object, truncated, trailing garbage.
	`{}`, ` { } `, `{ }x`, ``, ` `, "\n", `[1]`, `[`, `"s"`, `"s`, `1`, `-`, `1x`, `1.`, `null`, `true`, `tru`, `trux`,
	`x`, `]`, `}`, `:`, `,`, `"\x"`, "\"\x01\"", `{`, `{"`, `{"a`, `{"a"`, `{"a" `, `{"a":`, `{"a": `, `{"a":1`,
	`{"a":1 `, `{"a":1,`, `{"a":1, `, `{"a":"x`, `{"a":[1`, `{"a":{"b":1}`, `{"a":1,}`, `{,}`, `{,"a":1}`,
	`{"a":1,,"b":2}`, `{"a" 1}`, `{"a"::1}`, `{"a":}`, `{"a":1 "b":2}`, `{a:1}`, `{'a':1}`, `{1:1}`, `{"a":1]`,
	`{]`, `{:}`, `{}{}`, `{} {}`, `{}[`, `{} 1`, `{} 12`, `{} -`, `{} 1x`, `{} "s"`, `{} "s`, `{} x`, `{} ]`,
	`{} }`, `{} ,`, `{} :`, `{} tru`, `{} nulx`, `{}}`, `{"a":1}}`, `{"a":1} {"b":2}`, `{"a":1}` + "\n" + `{"b":2}`,
}

func TestJSONParserMatchesEncodingJSON(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range 100 {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
	}
	many.WriteString(`"last":"x"}`)
	corpus := append([]string{many.String()}, jsonCorpus...)
	for _, rec := range corpus {
		checkJSONAgainstReference(t, []byte(rec))
	}
	// Every prefix of two records, and every record with one byte changed.
	for _, rec := range []string{webShopLine, " \t{ \"a\" : \"\\ud83d\\ude00\\u0041\" , \"b\" : [ 1.5e-3 , { \"c\" : null } ] }\n"} {
		for n := range len(rec) {
			checkJSONAgainstReference(t, []byte(rec[:n]))
		}
		for i := range len(rec) {
			for _, c := range []byte{' ', '"', '\\', ',', ':', '{', '}', '[', ']', '0', 'e', '-', 'x', 0, 0xff} {
				b := []byte(rec)
				b[i] = c
				checkJSONAgainstReference(t, b)
			}
		}
	}
}

// The web-shop lines of the benchmark are all read by the scanner, with a
// few allocations each: the copy of the line, the fields, and a string
// with escapes.
func TestJSONScannerAllocations(t *testing.T) {
	lines := webShopLines(t)
	for _, l := range lines {
		if _, ok := scanObject(l); !ok {
			t.Fatalf("scanObject declined %s", l)
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(len(lines), func() {
		jsonParser{}.Parse(lines[i%len(lines)])
		i++
	})
	if allocs > 3 {
		t.Errorf("%.1f allocations a line, want at most 3", allocs)
	}
}
