package pipeline

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-data/sluice/config"
)

func mustStep(t *testing.T, s config.Step) step {
	t.Helper()
	st, err := newStep(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ev(t *testing.T, js string) Event {
	t.Helper()
	e, err := decode([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSteps(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		step config.Step
		in   string
		want string // fmt of the event after the step; "dropped"; "error"; "route:<stream>"
	}{
		{"filter keeps", config.Step{Filter: `event == "buy" && qty > 2`}, `{"event":"buy","qty":3}`, "map[event:buy qty:3]"},
		{"filter drops", config.Step{Filter: `event == "buy" && qty > 2`}, `{"event":"buy","qty":2}`, "dropped"},
		{"filter on an absent field", config.Step{Filter: `coupon != nil`}, `{"event":"buy"}`, "dropped"},
		{"filter runtime error", config.Step{Filter: `int(qty) > 1`}, `{"qty":"many"}`, "error"},
		{"set", config.Step{Set: map[string]string{"total": "price * qty", "big": "qty >= 10", "kind": `upper(event)`}}, `{"event":"buy","price":2.5,"qty":10}`,
			"map[big:true event:buy kind:BUY price:2.5 qty:10 total:25]"},
		{"set integer stays integer", config.Step{Set: map[string]string{"n": "qty * 2"}}, `{"qty":21}`, "map[n:42 qty:21]"},
		{"set division by zero", config.Step{Set: map[string]string{"r": "1.0 / qty"}}, `{"qty":0}`, "error"},
		{"drop", config.Step{Drop: []string{"ip", "useragent"}}, `{"ip":"1.2.3.4","useragent":"x","event":"e"}`, "map[event:e]"},
		{"keep", config.Step{Keep: []string{"event", "missing"}}, `{"ip":"1.2.3.4","event":"e"}`, "map[event:e]"},
		{"rename", config.Step{Rename: map[string]string{"qty": "quantity"}}, `{"qty":1}`, "map[quantity:1]"},
		{"parse json", config.Step{Parse: &config.ParseStep{Field: "message", Format: "json"}}, `{"message":"{\"status\":500,\"path\":\"/x\"}"}`,
			"map[message:{\"status\":500,\"path\":\"/x\"} path:/x status:500]"},
		{"parse json into", config.Step{Parse: &config.ParseStep{Field: "m", Format: "json", Into: "p"}}, `{"m":"{\"a\":1}"}`, "map[m:{\"a\":1} p:map[a:1]]"},
		{"parse bad json", config.Step{Parse: &config.ParseStep{Field: "m", Format: "json"}}, `{"m":"{oops"}`, "error"},
		{"parse regex", config.Step{Parse: &config.ParseStep{Field: "m", Format: "regex", Pattern: `^(?P<verb>[A-Z]+) (?P<path>\S+)`}}, `{"m":"GET /a?b=1 HTTP/1.1"}`,
			"map[m:GET /a?b=1 HTTP/1.1 path:/a?b=1 verb:GET]"},
		{"parse regex no match", config.Step{Parse: &config.ParseStep{Field: "m", Format: "regex", Pattern: `^(?P<n>\d+)$`}}, `{"m":"x"}`, "error"},
		{"parse kv", config.Step{Parse: &config.ParseStep{Field: "m", Format: "kv"}}, `{"m":"user=ann action=\"log in\" ok=1"}`,
			"map[action:log in m:user=ann action=\"log in\" ok=1 ok:1 user:ann]"},
		{"parse timestamp", config.Step{Parse: &config.ParseStep{Field: "ts", Format: "timestamp", Layout: "02/Jan/2006:15:04:05 -0700", Into: "event_time"}},
			`{"ts":"25/Nov/2026:10:00:00 +0100"}`, "map[event_time:2026-11-25 09:00:00 +0000 UTC ts:25/Nov/2026:10:00:00 +0100]"},
		{"parse unix_ms", config.Step{Parse: &config.ParseStep{Field: "ts", Format: "timestamp", Layout: "unix_ms"}}, `{"ts":1764064800000}`,
			"map[ts:2025-11-25 10:00:00 +0000 UTC]"},
		{"parse text of a number", config.Step{Parse: &config.ParseStep{Field: "m", Format: "kv"}}, `{"m":5}`, "error"},
		{"route", config.Step{Route: []config.Route{{If: "qty > 5", To: config.Outputs{{Stream: "big"}}}, {If: "qty > 1", To: config.Outputs{{Stream: "mid"}}}}},
			`{"qty":3}`, "route:mid"},
		{"route none", config.Step{Route: []config.Route{{If: "qty > 5", To: config.Outputs{{Stream: "big"}}}}}, `{"qty":3}`, "map[qty:3]"},
		{"sample by key keeps all at 1", config.Step{Sample: &config.SampleStep{Rate: 1, Key: []string{"u"}}}, `{"u":"x"}`, "map[u:x]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, to, err := mustStep(t, tc.step).apply(ev(t, tc.in), now)
			var got string
			switch {
			case err != nil:
				got = "error"
			case to != nil:
				got = "route:" + to[0].Stream
			case out == nil:
				got = "dropped"
			default:
				got = fmt.Sprint(out)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s (err %v)", got, tc.want, err)
			}
		})
	}
}

func TestDedupe(t *testing.T) {
	s := mustStep(t, config.Step{Dedupe: &config.DedupeStep{Key: []string{"id"}, Window: config.Duration(time.Minute)}})
	now := time.Now()
	kept := 0
	for i, at := range []time.Duration{0, time.Second, 30 * time.Second, 61 * time.Second, 62 * time.Second} {
		out, _, _ := s.apply(ev(t, `{"id":"a"}`), now.Add(at))
		if out != nil {
			kept++
		}
		if i == 1 && out != nil {
			t.Error("a repeat within the window was kept")
		}
	}
	if kept != 2 {
		t.Errorf("kept %d of the repeats, want the first and the one after the window", kept)
	}
}

func TestSampleByKeyIsStable(t *testing.T) {
	s := mustStep(t, config.Step{Sample: &config.SampleStep{Rate: 0.3, Key: []string{"user"}}})
	kept := 0
	for i := range 10000 {
		e := ev(t, fmt.Sprintf(`{"user":"u%d"}`, i%1000))
		first, _, _ := s.apply(e, time.Now())
		again, _, _ := s.apply(ev(t, fmt.Sprintf(`{"user":"u%d"}`, i%1000)), time.Now())
		if (first == nil) != (again == nil) {
			t.Fatal("the same key was kept once and dropped once")
		}
		if first != nil {
			kept++
		}
	}
	if kept < 2500 || kept > 3500 {
		t.Errorf("kept %d of 10000 at rate 0.3", kept)
	}
}

func TestDecodeEncode(t *testing.T) {
	e := ev(t, `{"i":9007199254740993,"f":1.5,"s":"x","n":null,"o":{"a":[1,2.5]}}`)
	if e["i"] != int64(9007199254740993) || e["f"] != 1.5 {
		t.Fatalf("numbers: %#v", e)
	}
	e["t"] = time.Date(2026, 11, 25, 10, 0, 0, 123000, time.UTC)
	b, err := encode(nil, e)
	if err != nil || !strings.Contains(string(b), `"t":"2026-11-25T10:00:00.000123Z"`) || !strings.Contains(string(b), `"i":9007199254740993`) {
		t.Fatalf("encode: %s %v", b, err)
	}
	for _, bad := range []string{``, `[1]`, `"x"`, `{"a":`, `null`} {
		if _, err := decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzParseKV(f *testing.F) {
	for _, s := range []string{`a=1 b="x y" c=`, `="x"`, `a="unterminated`, `k=v;k2=v2,k3="q\"uote"`, "\x00=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parseKV(s) {
			if k == "" || strings.ContainsAny(k, " \t") {
				t.Fatalf("key %q from %q", k, s)
			}
			if utf8.ValidString(s) && !utf8.ValidString(k+v) {
				t.Fatalf("invalid UTF-8 out of valid input %q", s)
			}
		}
	})
}
