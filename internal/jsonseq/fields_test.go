package jsonseq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

type field struct{ key, val string }

// fields is what Fields yields for line, values compacted.
func fields(line []byte) ([]field, error) {
	var out []field
	err := Fields(line, func(k, v []byte) error {
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			return fmt.Errorf("value %q of key %q is not one JSON value: %w", v, k, err)
		}
		out = append(out, field{string(k), c.String()})
		return nil
	})
	return out, err
}

// reference is what encoding/json reads from an object: its fields in order,
// duplicates included, values compacted.
func reference(line []byte) ([]field, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v %v", tok, err)
	}
	var out []field
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, err
		}
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			return nil, err
		}
		out = append(out, field{tok.(string), c.String()})
	}
	return out, nil
}

var objects = []string{
	`{}`,
	` { } `,
	"\t{\r\n}\n",
	`{"a":1}`,
	`{"a":1}` + "\n",
	`{ "a" : 1 , "b" : "x" }`,
	"{\n\t\"a\"\t:\r\n-1.5e+10\n,\"b\":\ttrue}",
	`{"i":-0,"f":1E-7,"g":0.5,"big":123456789012345678901234567890,"t":true,"n":false,"z":null}`,
	`{"a\"b":1,"c\\d":2,"\u00e9":3,"\n":4,"\/":5,"\ud83c\udf89":6,"\ud800":7}`,
	`{"東京":"大阪","emoji 🎉":"✓"}`,
	`{"s":"}{,:[]\"","t":"\\","u":"\\\"","v":"a\\\\"}`,
	`{"a":{"b":[1,{"c":"]"}]},"d":[],"e":{},"f":[[[]]],"g":"{"}`,
	`{"a":1,"a":2,"A":3}`,
	`{"":""}`,
	`{"a":[1 , 2 ,3 ],"b":{ "c" : { } }}`,
	`{"event_id":"id-1","event_time":"2026-11-25T10:00:00.000000Z","received_at":"2026-11-25T10:00:00.123456Z","collector":"http","event":"page_view","price":1.5,"tags":["a","b"],"meta":{"k":"v"}}`,
	"{\"raw\":\"a\xffb\",\"ctl\":\"\\u0000\\u001f\"}",
}

func TestEachFieldAgreesWithEncodingJSON(t *testing.T) {
	for _, o := range objects {
		want, err := reference([]byte(o))
		if err != nil {
			t.Fatalf("reference(%q): %v", o, err)
		}
		got, err := fields([]byte(o))
		if err != nil {
			t.Errorf("Fields(%q): %v", o, err)
			continue
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("Fields(%q):\n got %q\nwant %q", o, got, want)
		}
	}
}

func TestEachFieldRefusesWhatIsNotAnObject(t *testing.T) {
	for _, line := range []string{
		``, ` `, `[]`, `"s"`, `1`, `null`, `{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{"a" 1}`, `{a:1}`,
		`{"a":"x`, `{"a":[1,2}`, `{"a":{"b":1}`, `{"a":1 "b":2}`, `{"a":}`, `{"a\":1}`,
	} {
		if got, err := fields([]byte(line)); err == nil {
			t.Errorf("Fields(%q) = %q, want an error", line, got)
		}
	}
}

// Fields stops at the first error its callback returns.
func TestEachFieldStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Fields([]byte(`{"a":1,"b":2,"c":3}`), func(k, _ []byte) error {
		n++
		if string(k) == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("Fields went on after its callback failed: %v after %d fields", err, n)
	}
}

func FuzzFields(f *testing.F) {
	for _, o := range objects {
		f.Add([]byte(o))
	}
	f.Add([]byte(`{"event_id":"id-1","event_time":"2026-11-25T10:01:00.000000Z","collector":"http","price":1.5,"meta":{"k":[1,2]}}`))
	f.Add([]byte(`{"a":[{"b":"\"}"}],"c":"\\"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(line, &m) != nil || !strings.HasPrefix(strings.TrimLeft(string(line), " \t\r\n"), "{") {
			return
		}
		got, err := fields(line)
		if err != nil {
			t.Fatalf("Fields(%q): %v; encoding/json reads it", line, err)
		}
		want, err := reference(line)
		if err != nil {
			t.Fatalf("reference(%q): %v", line, err)
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("Fields(%q):\n got %q\nwant %q", line, got, want)
		}
		// And the same fields as json.Unmarshal, where a repeated key is its last value.
		last := map[string]string{}
		for _, f := range got {
			last[f.key] = f.val
		}
		if len(last) != len(m) {
			t.Fatalf("Fields(%q) has %d distinct keys, json.Unmarshal %d", line, len(last), len(m))
		}
		for k, v := range m {
			var c bytes.Buffer
			json.Compact(&c, v)
			if last[k] != c.String() {
				t.Fatalf("Fields(%q): %q = %q, json.Unmarshal %q", line, k, last[k], c.String())
			}
		}
	})
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain ascii text, longer than eight bytes", `quo"te`, `back\slash`, "tab\tnew\nline\r",
		"\x00\x01\x1f\x7f", "héllo wörld ✓ 😀", "bad \xff\xfe utf8", "12345678\"2345678\\", strings.Repeat("a", 7) + "\n", "\u2028\u2029"} {
		got := AppendString(nil, s)
		var back, want string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q: %s is not JSON: %v", s, got, err)
			continue
		}
		// encoding/json writes each invalid byte as U+FFFD, too.
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
		if back != want {
			t.Errorf("%q: round trip %q, want %q", s, back, want)
		}
	}
	// Every single byte, alone and inside plain text.
	for b := 0; b < 256; b++ {
		for _, s := range []string{string([]byte{byte(b)}), "abcdefgh" + string([]byte{byte(b)}) + "ijklmnop"} {
			if got := AppendString(nil, s); !json.Valid(got) {
				t.Errorf("byte %#x: %q is not JSON", b, got)
			}
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "https://shop.example/products/42?utm_source=newsletter&utm_medium=email Mozilla/5.0 (X11; Linux x86_64)"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}

// AppendString writes the one text that is valid UTF-8 JSON, decodes to
// what encoding/json makes of s (each invalid byte becomes U+FFFD), and
// escapes only what must be: '"', '\\', control bytes (\n, \r and \t
// short, the others as \u00xx, lower-case hex).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text, longer than eight bytes", `quo"te`, "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 😀", "bad \xff\xfe utf8", "12345678\"2345678\\", "\xed\xa0\x80 surrogate", "abcdefg\xf0\x9f\x98", "<&> \u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString([]byte("x"), s)
		if got[0] != 'x' {
			t.Fatalf("AppendString(%q) overwrote dst: %q", s, got)
		}
		got = got[1:]
		var dec, want string
		marshaled, _ := json.Marshal(s)
		if err := json.Unmarshal(got, &dec); err != nil || json.Unmarshal(marshaled, &want) != nil || dec != want {
			t.Fatalf("AppendString(%q) = %q: decodes to %q (%v), want %q", s, got, dec, err, want)
		}
		if !utf8.Valid(got) {
			t.Fatalf("AppendString(%q) = %q: not UTF-8", s, got)
		}
		in := got[1 : len(got)-1]
		for i := 0; i < len(in); i++ {
			switch c := in[i]; {
			case c < 0x20:
				t.Fatalf("AppendString(%q) = %q: raw control byte", s, got)
			case c != '\\':
			case i+1 < len(in) && strings.IndexByte(`"\nrt`, in[i+1]) >= 0:
				i++
			case i+5 < len(in) && string(in[i+1:i+4]) == "u00" && strings.IndexByte("01", in[i+4]) >= 0 && strings.IndexByte(hexDigits, in[i+5]) >= 0 &&
				!strings.Contains(`\u000a\u000d\u0009`, string(in[i:i+6])):
				i += 5
			default:
				t.Fatalf("AppendString(%q) = %q: an escape at byte %d that is not needed", s, got, i)
			}
		}
	})
}

// AppendUnquoted decodes what json.Unmarshal decodes into a string, to the
// same text, and refuses what it refuses.
func FuzzAppendUnquoted(f *testing.F) {
	for _, s := range []string{`""`, `"plain"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u00E9 é"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83d\u0041"`,
		`"\udc00\ud800"`, `"\ud800\ud800\udc00"`, "\"bad \xff\xfe\"", "\"\xed\xa0\x80\"", `"\x"`, `"\u12"`, `"\'"`, "\"ctl\x01\"", `"a"b"`, `"a`, `"\`, `"\ud800\u"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, lit []byte) {
		var want string
		werr := json.Unmarshal(lit, &want)
		if len(lit) == 0 || lit[0] != '"' || len(bytes.TrimRight(lit, " \t\r\n")) != len(lit) {
			return // not a string literal alone, which is all AppendUnquoted reads
		}
		got, err := AppendUnquoted([]byte("x"), lit)
		if (err == nil) != (werr == nil) {
			t.Fatalf("AppendUnquoted(%q): %v; json.Unmarshal: %v", lit, err, werr)
		}
		if err == nil && string(got) != "x"+want {
			t.Fatalf("AppendUnquoted(%q) = %q, want %q", lit, got[1:], want)
		}
	})
}

// Elements hands out what a JSON array holds, as encoding/json reads it.
func FuzzElements(f *testing.F) {
	for _, s := range []string{`[]`, ` [ ] `, `[1]`, `[1,2 , 3 ]`, `[{"a":[1,"]"]},"x",null,true,-1.5e3,[[]]]`, `[ "a\"]" ,{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, arr []byte) {
		var want []json.RawMessage
		if json.Unmarshal(arr, &want) != nil || want == nil {
			return
		}
		var got []string
		if err := Elements(arr, func(v []byte) error { got = append(got, string(v)); return nil }); err != nil {
			t.Fatalf("Elements(%q): %v", arr, err)
		}
		if len(got) != len(want) {
			t.Fatalf("Elements(%q): %d elements, want %d", arr, len(got), len(want))
		}
		for i := range got {
			if got[i] != strings.TrimSpace(string(want[i])) {
				t.Fatalf("Elements(%q)[%d] = %q, want %q", arr, i, got[i], want[i])
			}
		}
	})
}

// String finds the end of a string literal as encoding/json does, and calls
// it plain only when AppendString writes its text back byte for byte.
func FuzzString(f *testing.F) {
	for _, s := range []string{`""`, `"plain"`, `"a longer plain string, past eight bytes"`, `"esc\"aped"`, `"\\"`, `"café"`, `"12345678é"`,
		`"1234567\\8"`, `"x\u00e9"`, `"ab" , "cd"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != '"' {
			return
		}
		d := json.NewDecoder(bytes.NewReader(b))
		var text string
		if d.Decode(&text) != nil {
			return
		}
		end, plain := String(b, 0)
		if want := int(d.InputOffset()); end != want {
			t.Fatalf("String(%q) ends at %d, want %d", b, end, want)
		}
		lit := b[:end]
		if plain != (bytes.IndexByte(lit, '\\') < 0 && ascii(lit)) {
			t.Fatalf("String(%q): plain %v", lit, plain)
		}
		if plain && string(AppendString(nil, text)) != string(lit) {
			t.Fatalf("String(%q) is plain, but AppendString writes %q", lit, AppendString(nil, text))
		}
	})
}
