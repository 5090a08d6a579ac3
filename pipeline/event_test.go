package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// decodeReference is decode as it was before its parser: encoding/json's
// Decoder with UseNumber, then numbers made int64 or float64. decode must
// return what it returns for every line, and fail where it fails.
func decodeReference(line []byte) (Event, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var ev Event
	if err := d.Decode(&ev); err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	for k, v := range ev {
		ev[k] = normalizeReference(v)
	}
	return ev, nil
}

func normalizeReference(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeReference(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeReference(e)
		}
	}
	return v
}

// encodeReference is encode as it was before its writer: json.Marshal of a
// copy of the event with times formatted and NaN and infinities made null.
// encode must write the same bytes for every event, and fail where it fails.
func encodeReference(buf []byte, ev Event) ([]byte, error) {
	out := make(map[string]any, len(ev))
	for k, v := range ev {
		switch x := v.(type) {
		case time.Time:
			out[k] = x.UTC().Format("2006-01-02T15:04:05.000000Z")
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				out[k] = nil
			} else {
				out[k] = x
			}
		default:
			out[k] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return buf, err
	}
	buf = append(buf, b...)
	return append(buf, '\n'), nil
}

// decodeCorpus holds lines whose reading is easy to get wrong.
var decodeCorpus = []string{
	`{}`, ` {"a":1} `, "\t{\r\n\"a\"\t:\n1 ,\"b\" : [ 1 , 2 ] }\r\n", `{ }`, `{"":""}`,
	// Like encoding/json's Decoder: the first value counts, the rest of the
	// line is ignored.
	`{"a":1}garbage`, `{"a":1}}`, `{"a":1} {"b":2}`, `{"a":1},`, "{\"a\":1}\xff",
	// Not an object, or not JSON.
	``, ` `, "\n", `null`, ` null `, `nul`, `nullx`, `true`, `1`, `-1`, `"x"`, `[]`, `[{"a":1}]`, `]`, `}`,
	"\xef\xbb\xbf{}", `{"a":1`, `{"a":`, `{"a"`, `{"a`, `{`, `{"a":}`, `{"a" 1}`, `{"a":1 "b":2}`,
	`{,}`, `{"a":1,}`, `{1:2}`, `{a:1}`, `{'a':1}`, `{"a":1,,"b":2}`, "{\"a\":1\x00}", "\f{}",
	`{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`, `{"a":[}`, `{"a":{]}`, `{"a":[1}`, `{"a":{"b":1]}`,
	`{"a":tru}`, `{"a":truex}`, `{"a":True}`, `{"a":nulll}`, `{"a":fals}`, `{"a":undefined}`,
	// Numbers: int64 when strconv.ParseInt reads them, else float64.
	`{"a":0,"b":-0,"c":-0.0,"d":0.0,"e":1.0,"f":1e2,"g":1E+2,"h":1e-2,"i":0e0,"j":-0e-0}`,
	`{"a":1e400,"b":-1e400,"c":1e-400,"d":-1e-400,"e":1.7976931348623157e308,"f":4.9e-324}`,
	`{"a":9223372036854775807,"b":9223372036854775808,"c":-9223372036854775808,"d":-9223372036854775809}`,
	`{"a":999999999999999999,"b":-999999999999999999,"c":1000000000000000000,"d":12345678901234567890123}`,
	`{"a":0.1,"b":12.5,"c":93.95,"d":1.5e300,"e":123456789012345678901234567890.5,"f":0.30000000000000004}`,
	`{"a":01}`, `{"a":-}`, `{"a":--1}`, `{"a":.1}`, `{"a":1.}`, `{"a":1.e1}`, `{"a":1e}`, `{"a":1e+}`,
	`{"a":+1}`, `{"a":NaN}`, `{"a":Infinity}`, `{"a":-Infinity}`, `{"a":0x10}`, `{"a":1_000}`, `{"a":00}`,
	// Strings, decoded as encoding/json decodes them.
	`{"a":"\u00e9\ud83d\ude00\ud800\udc00\"\\\/\b\f\n\r\t"}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`,
	`{"a":"\ud800x"}`, `{"a":"\ud800\u0041"}`, `{"a":"\ud800\ud800\udc00"}`, `{"a":"\uDBFF\uDFFF"}`,
	`{"a":"\u0000"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"\x"}`, `{"a":"\'"}`, `{"a":"\`, `{"a":"abc`,
	"{\"a\":\"\xff\xfe\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
	"{\"a\":\"é€😀\u2028\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", "{\"a\":\"\x7f\"}",
	`{"a":"Home \u0026 Kitchen <b>"}`, `{"a":"12345678901234567890\"12345678"}`,
	// Names: duplicates (the last wins), escapes, long ones.
	`{"a":1,"a":2}`, `{"a":{"b":1,"b":[]},"a":{"c":2}}`, `{"\u0061":1,"a":2}`, `{"a\u0000b":1}`,
	"{\"\xff\":1}", `{"\ud800":1,"\ufffd":2}`, `{"<>&":1}`,
	`{"` + strings.Repeat("n", 64) + `":1,"` + strings.Repeat("n", 65) + `":2}`,
	// Nesting.
	`{"a":[],"b":{},"c":[[]],"d":[{}],"e":{"f":{"g":{}}}}`, `{"a":[1,"x",null,true,false,{"y":[]},[2.5]]}`,
	`{"fields":{"event":"product_view","price":12.5,"quantity":2,"tags":["a","b"],"meta":{"ab":null}}}`,
}

// deepLines nest arrays and objects around encoding/json's limit.
func deepLines() []string {
	var lines []string
	for _, n := range []int{maxDepth - 2, maxDepth - 1, maxDepth} {
		lines = append(lines,
			`{"a":`+strings.Repeat("[", n)+strings.Repeat("]", n)+`}`,
			`{"a":`+strings.Repeat(`{"b":`, n)+`1`+strings.Repeat("}", n)+`}`,
			`{"a":`+strings.Repeat(`[{"b":`, n/2)+`{}`+strings.Repeat("}]", n/2)+`}`)
	}
	return lines
}

// sameValue reports whether a and b are the same decoded value: the same
// types, floats with the same bits (-0 is not 0), nil maps and slices apart
// from empty ones.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b) && a == b
}

// checkDecode fails unless decode reads line as decodeReference does: the
// same Event, or an error for both.
func checkDecode(t *testing.T, line []byte) {
	t.Helper()
	want, wantErr := decodeReference(line)
	got, err := decode(line)
	switch {
	case wantErr != nil && err == nil:
		t.Fatalf("decode(%s) = %s, want an error like %v", short(line), short(got), wantErr)
	case wantErr == nil && err != nil:
		t.Fatalf("decode(%s): %v, want %s", short(line), err, short(want))
	case err == nil && (got == nil || !sameValue(got, want)):
		t.Fatalf("decode(%s):\n got %s\nwant %s", short(line), short(got), short(want))
	}
	checkDecodeOnly(t, line, got, err)
}

// checkDecodeOnly compares DecodeFields with decode's event (full, err): the
// same error or none, and the kept members only, for a few sets of names.
func checkDecodeOnly(t *testing.T, line []byte, full Event, fullErr error) {
	t.Helper()
	names := slices.Sorted(maps.Keys(full))
	for k, keep := range []map[string]bool{
		{},
		{"a": true, "missing": true},
		func() map[string]bool {
			m := map[string]bool{}
			for i, n := range names {
				if i%2 == 0 {
					m[n] = true
				}
			}
			return m
		}(),
	} {
		index := map[string]int{}
		for _, n := range slices.Sorted(maps.Keys(keep)) {
			index[n] = len(index)
		}
		out := make([]any, len(index))
		for i := range out {
			out[i] = "stale" // DecodeFields clears what it is given
		}
		err := DecodeFields(line, index, out)
		if (err == nil) != (fullErr == nil) {
			t.Fatalf("DecodeFields(%s, set %d): error %v, decode's %v", short(line), k, err, fullErr)
		}
		if err != nil {
			continue
		}
		got := Event{}
		for n, i := range index {
			if _, ok := full[n]; ok || out[i] != nil {
				got[n] = out[i]
			}
		}
		want := Event{}
		for n, v := range full {
			if keep[n] {
				want[n] = v
			}
		}
		if !sameValue(got, want) {
			t.Fatalf("DecodeFields(%s, set %d):\n got %s\nwant %s", short(line), k, short(got), short(want))
		}
	}
}

// short prints v (Go syntax), cut short: some test lines nest 10,000 deep.
func short(v any) string {
	s := fmt.Sprintf("%#v", v)
	if b, ok := v.([]byte); ok {
		s = strconv.Quote(string(b))
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, line := range decodeCorpus {
		checkDecode(t, []byte(line))
	}
	for _, line := range deepLines() {
		checkDecode(t, []byte(line))
	}
	for _, line := range benchRows(t) {
		checkDecode(t, line)
	}
}

func TestDecodeNumbers(t *testing.T) {
	// What decode has always made of numbers, spelled out.
	ev, err := decode([]byte(`{"a":-0,"b":1.0,"c":1e400,"d":-0.0,"e":9223372036854775808,"f":1e-400}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{"a": int64(0), "b": float64(1), "c": math.Inf(1), "d": math.Copysign(0, -1),
		"e": float64(1 << 63), "f": float64(0)}
	if !sameValue(ev, want) {
		t.Fatalf("got %#v\nwant %#v", ev, want)
	}
}

func TestDecodeErrorsSayWhere(t *testing.T) {
	for line, want := range map[string]string{
		`{"a":1,}`:         `invalid character '}' looking for a member name at byte 7`,
		`{"a":tru}`:        `invalid character '}' in literal true at byte 8`,
		`{"a":1`:           `unexpected end of JSON after an object member`,
		`[1]`:              `not a JSON object: starts with '[' at byte 0`,
		`null`:             `not a JSON object: starts with 'n' at byte 0`,
		"{\"a\":\"\x01\"}": `invalid JSON string at byte 5: a control character, a bad escape or no closing quote`,
	} {
		if _, err := decode([]byte(line)); err == nil || err.Error() != want {
			t.Errorf("decode(%q): error %v, want %s", line, err, want)
		}
	}
}

// checkEncode fails unless encode writes ev as encodeReference does: the
// same bytes after what buf held, or the same error and buf unchanged.
func checkEncode(t *testing.T, ev Event) {
	t.Helper()
	prefix := []byte("{\"before\":1}\n")
	want, wantErr := encodeReference(bytes.Clone(prefix), ev)
	got, err := encode(bytes.Clone(prefix), ev)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("encode(%s): error %v, want %v", short(ev), err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode(%s):\n got %s\nwant %s", short(ev), short(got), short(want))
	}
}

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("no") }

type htmlMarshaler struct{}

func (htmlMarshaler) MarshalJSON() ([]byte, error) { return []byte(` {"<a>" : [1, 2]} `), nil }

// encodeCorpus holds events whose writing is easy to get wrong: values of
// every type steps make, and some they don't.
func encodeCorpus() []Event {
	paris, _ := time.LoadLocation("Europe/Paris")
	t := time.Date(2026, 11, 2, 1, 2, 3, 456789123, paris)
	cycle := map[string]any{}
	cycle["self"] = cycle
	deep := any("bottom")
	for range 150 {
		deep = map[string]any{"d": []any{deep, 1}}
	}
	strs := []string{"", "plain", "\"\\/", "\b\f\n\r\t\x00\x01\x1f\x7f", "<script>&amp;</script>",
		"\u2028\u2029", "é€😀", "\xff", "a\xc3", "\xed\xa0\x80", "12345678<12345678>12345678&",
		"Home & Kitchen", strings.Repeat("long, plain text ", 10) + "\u2029"}
	strVals := map[string]any{}
	for i, s := range strs {
		strVals[s] = s
		strVals[fmt.Sprint(i)] = []any{s}
	}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 12.5, 1e20, 1e21, 123456789e13, 1e-6, 9.99e-7,
		1e-7, 5e-324, math.MaxFloat64, -1e21, -1e-7, 1.5e-10, 1e100, float64(1 << 53), 3.0000000000000004}
	floatVals := map[string]any{}
	for i, f := range floats {
		floatVals[fmt.Sprint(i)] = f
	}
	return []Event{
		nil, {}, strVals, floatVals,
		{"floats": floatVals, "list": []any{1.5e-8, 2e21}},
		{"t": t, "utc": t.UTC(), "zero": time.Time{}, "y10000": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
			"neg": time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"nested time": map[string]any{"t": t}, "in list": []any{t}},
		{"nan": math.NaN(), "inf": math.Inf(1), "-inf": math.Inf(-1)},
		{"nested nan": map[string]any{"x": math.NaN()}},
		{"listed inf": []any{math.Inf(-1)}},
		{"int": 1, "int32": int32(-2), "int8": int8(3), "uint64": uint64(math.MaxUint64), "uint8": uint8(4),
			"float32": float32(0.1), "bool": true, "false": false, "nil": nil, "int64": int64(math.MinInt64)},
		{"number": json.Number("12.50"), "raw": json.RawMessage(` {"<a>" : 1} `), "bytes": []byte("<hi>")},
		{"bad number": json.Number("1x")},
		{"strings": []string{"<a>", "b"}, "map": map[string]string{"b": "<", "a": ">"}, "ints": []int{1, 2}},
		{"nil map": map[string]any(nil), "nil list": []any(nil), "nil strings": []string(nil), "empty": []any{}},
		{"struct": struct {
			A string `json:"a"`
			B int
		}{"<", 1}, "ptr": &t, "marshaler": htmlMarshaler{}},
		{"a": 1, "failing": failingMarshaler{}, "z": math.NaN()},
		{"chan": make(chan int)},
		{"func": func() {}},
		{"cycle": cycle},
		{"deep": deep},
		{"<>&": 1, "\u2028": 2, "\xff": 3, "": 4, "B": 5, "a": 6, "aa": 7, "é": 8, "\x00": 9},
		{"event": Event{"inner": Event{"x": int64(1)}}},
	}
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	for _, ev := range encodeCorpus() {
		checkEncode(t, ev)
	}
	for _, line := range append(decodeCorpus, deepLines()...) {
		if ev, err := decodeReference([]byte(line)); err == nil {
			checkEncode(t, ev)
		}
	}
	for _, line := range benchRows(t) {
		ev, err := decodeReference(line)
		if err != nil {
			t.Fatal(err)
		}
		checkEncode(t, ev)
		checkEncode(t, withTimes(ev).(Event))
	}
}

// withTimes turns the strings in v that are RFC 3339 times into times.
func withTimes(v any) any {
	switch x := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return t
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = withTimes(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withTimes(e)
		}
		return out
	}
	return v
}

// FuzzDecode compares decode with encoding/json's reading of the line
// (decodeReference).
func FuzzDecode(f *testing.F) {
	for _, line := range decodeCorpus {
		f.Add([]byte(line))
	}
	f.Fuzz(checkDecode)
}

// FuzzEncode reads arbitrary JSON objects as decode does, then compares
// encode with json.Marshal (encodeReference), with the RFC 3339 strings in
// them as they are and turned into times.
func FuzzEncode(f *testing.F) {
	for _, line := range decodeCorpus {
		f.Add([]byte(line))
	}
	f.Add([]byte(`{"t":"2026-11-02T01:02:03.4+01:00","n":{"t":"0001-01-01T00:00:00Z"},"l":["2026-11-02T01:02:03Z"]}`))
	f.Add([]byte(`{"a":1e400,"b":[1e400]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := decodeReference(line)
		if err != nil {
			return
		}
		checkEncode(t, ev)
		checkEncode(t, withTimes(ev).(Event))
	})
}

func TestDecodeConcurrently(t *testing.T) {
	// Decoders share the cache of names.
	rows := benchRows(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, line := range rows {
				checkDecode(t, line)
			}
		})
	}
	wg.Wait()
}

func TestEventAllocations(t *testing.T) {
	line := benchRows(t)[0]
	ev, err := decode(line)
	if err != nil {
		t.Fatal(err)
	}
	// Each string value is copied and boxed; besides, the line is copied
	// and the maps made. Names come from the cache.
	strs := 0
	var count func(v any)
	count = func(v any) {
		switch x := v.(type) {
		case string:
			strs++
		case map[string]any:
			for _, e := range x {
				count(e)
			}
		}
	}
	count(ev)
	if n, most := testing.AllocsPerRun(100, func() { _, _ = decode(line) }), float64(2*strs+8); n > most {
		t.Errorf("decode: %v allocations, want at most %v", n, most)
	}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { _, _ = encode(buf, ev) }); n != 0 {
		t.Errorf("encode: %v allocations, want none", n)
	}
}
