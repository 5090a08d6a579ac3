package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fullFile is the config sketch of DESIGN.md without the sections this
// version does not have (sources, pipelines, rollups, jobs, semantic,
// dashboards).
const fullFile = `data_dir: ./sluice-data
http: {collector: 127.0.0.1:8080, api: 127.0.0.1:8081}
auth: {token: ${SLUICE_TOKEN}}          # API + UI; the collector stays public
bus: {url: embedded}                     # or nats://host:4222
streams: {raw: {retention: 72h}, events: {retention: 168h}}
lake: {url: ./sluice-data/lake}          # or s3://bucket/prefix
warehouse: {url: duckdb}                 # or postgres://…
`

func TestParseFullFile(t *testing.T) {
	t.Setenv("SLUICE_TOKEN", "s3cret")
	c, err := Parse("sluice.yaml", []byte(fullFile))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Auth.Token = "s3cret"
	want.Lake.URL = "./sluice-data/lake"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseEveryKey(t *testing.T) {
	src := `data_dir: /var/lib/sluice
http:
  collector: 0.0.0.0:80
  api: "[::1]:9000"
  max_body: 2MiB
  max_events: 500
  cookie: {domain: .shop.example, secure: false, same_site: Lax}
auth:
  token: abc
bus:
  url: nats://a:4222,tls://b:4222
sources: {}
streams:
  raw: {retention: 1d, max_bytes: 10GiB}
  logs: {max_bytes: 1GB}
  bad:
enrich: {dedupe_window: 1h30m, fingerprint: true, iglu: {unknown: bad}}
lake: {url: /data/lake, flush_interval: 250ms, max_rows: 1_000, max_bytes: 64MiB,
  compaction: {enabled: false, after: 2h, interval: 1m, target_bytes: 1GiB, grace: 5m}}
warehouse: {url: duckdb}
pipelines: {}
sinks:
jobs: {}
semantic: {cache: {max_age: 30s, size: 8MiB}}
`
	c, err := Parse("sluice.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		DataDir: "/var/lib/sluice",
		HTTP: HTTP{Collector: "0.0.0.0:80", API: "[::1]:9000", MaxBody: 2 * MiB, MaxEvents: 500,
			Cookie: Cookie{Enabled: true, Name: "sp", Domain: ".shop.example", Expiration: Duration(365 * 24 * time.Hour), SameSite: "Lax"}},
		Auth: Auth{Token: "abc"},
		Bus:  Bus{URL: "nats://a:4222,tls://b:4222"},
		Enrich: Enrich{DedupeWindow: Duration(90 * time.Minute), UserAgent: true, Campaign: true, Referrer: true,
			Fingerprint: true, Iglu: Iglu{Unknown: "bad"}},
		Lake: Lake{URL: "/data/lake", FlushInterval: Duration(250 * time.Millisecond), MaxRows: 1000, MaxBytes: 64 * MiB,
			Compaction: Compaction{After: Duration(2 * time.Hour), Interval: Duration(time.Minute), TargetBytes: GiB, Grace: Duration(5 * time.Minute)}},
		Warehouse: Warehouse{URL: "duckdb"},
		Jobs:      map[string]Job{},
		Semantic:  Semantic{Cache: SemanticCache{Enabled: true, MaxAge: Duration(30 * time.Second), Size: 8 * MiB}},
		Streams: map[string]Stream{
			"raw":    {Retention: Duration(24 * time.Hour), MaxBytes: 10 * GiB},
			"events": {Retention: Duration(168 * time.Hour)},
			"bad":    {Retention: Duration(720 * time.Hour)},
			"logs":   {Retention: Duration(168 * time.Hour), MaxBytes: GB},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.LakeDir() != "/data/lake" {
		t.Errorf("LakeDir = %q", c.LakeDir())
	}
}

func TestDefaults(t *testing.T) {
	d := Default()
	if d.DataDir != "./sluice-data" || d.HTTP.Collector != "127.0.0.1:8080" || d.HTTP.API != "127.0.0.1:8081" ||
		d.HTTP.MaxBody != 1<<20 || d.HTTP.MaxEvents != 10000 || d.Bus.URL != "embedded" ||
		d.Enrich.DedupeWindow.D() != 10*time.Minute || d.Lake.URL != "" || d.Lake.FlushInterval.D() != 5*time.Second ||
		d.Lake.MaxRows != 200000 || d.Warehouse.URL != "duckdb" || d.Auth.Token != "" {
		t.Errorf("Default() = %+v", d)
	}
	for name, hours := range map[string]time.Duration{"raw": 72, "events": 168, "bad": 720, "logs": 168} {
		if got := d.Streams[name].Retention.D(); got != hours*time.Hour {
			t.Errorf("stream %s retention = %v, want %v", name, got, hours*time.Hour)
		}
	}
	if len(d.Streams) != 4 {
		t.Errorf("Default() streams = %v", d.Streams)
	}
	if got := d.LakeDir(); got != filepath.Join("sluice-data", "lake") {
		t.Errorf("LakeDir() = %q", got)
	}

	// A file that sets nothing, or only empty values, is the default.
	for _, src := range []string{"", "# nothing\n", "---\n", "http:\nstreams:\nbus: {url: ''}\ndata_dir: ${UNSET_FOR_TEST:-}\n"} {
		c, err := Parse("sluice.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("%q: got %+v, want the defaults", src, c)
		}
	}
}

func TestStreamKeepsDefaultsForKeysLeftOut(t *testing.T) {
	c, err := Parse("sluice.yaml", []byte("streams:\n  raw: {max_bytes: 1GiB}\n  bad: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Streams["raw"]; got.Retention.D() != 72*time.Hour || got.MaxBytes != GiB {
		t.Errorf("raw = %+v", got)
	}
	if got := c.Streams["bad"]; got.Retention.D() != 720*time.Hour {
		t.Errorf("bad = %+v", got)
	}
	if got := c.Streams["logs"]; got.Retention.D() != 168*time.Hour {
		t.Errorf("logs = %+v", got)
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	src := `streams:
  raw: &long {retention: 30d, max_bytes: 1GiB}
  events: *long
  logs:
    <<: *long
`
	c, err := Parse("sluice.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Stream{
		"raw":    {Retention: Duration(720 * time.Hour), MaxBytes: GiB},
		"events": {Retention: Duration(720 * time.Hour), MaxBytes: GiB},
		"logs":   {Retention: Duration(720 * time.Hour), MaxBytes: GiB},
	} {
		if got := c.Streams[name]; got != want {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
}

func TestLoad(t *testing.T) {
	c, err := Load("")
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(\"\") = %+v, %v; want the defaults", c, err)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}

	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte("http:\n  colector: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("err = %#v, want one Errors entry", err)
	}
	if want := path + `:2:3: unknown key "colector" in http (hint: did you mean collector?)`; err.Error() != want {
		t.Errorf("err = %q\nwant %q", err.Error(), want)
	}
}

func TestExampleFile(t *testing.T) {
	// The example mentions ${SLUICE_TOKEN} in a comment only, which must not
	// need it set. (t.Setenv restores it after the test.)
	t.Setenv("SLUICE_TOKEN", "")
	os.Unsetenv("SLUICE_TOKEN")
	c, err := Load("testdata/sluice.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d := Default(); !reflect.DeepEqual(c, d) {
		t.Errorf("the example file must hold exactly the defaults\ngot  %+v\nwant %+v", c, d)
	}
}

func TestApplyOverrides(t *testing.T) {
	c := Default()
	c.ApplyOverrides("", "", "")
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("empty overrides changed the config: %+v", c)
	}

	c.ApplyOverrides("/tmp/run1", "127.0.0.1:0", "127.0.0.1:0")
	if c.DataDir != "/tmp/run1" || c.HTTP.Collector != "127.0.0.1:0" || c.HTTP.API != "127.0.0.1:0" {
		t.Errorf("overrides not applied: %+v", c)
	}
	if got := c.LakeDir(); got != filepath.Join("/tmp/run1", "lake") {
		t.Errorf("LakeDir() = %q; a defaulted lake must follow --data", got)
	}

	c, err := Parse("sluice.yaml", []byte("lake: {url: /srv/lake}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyOverrides("/tmp/run2", "", "")
	if got := c.LakeDir(); got != "/srv/lake" {
		t.Errorf("LakeDir() = %q; an explicit lake.url must not follow --data", got)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Column: 7, Message: "bad", Hint: "fix it"}, "a.yaml:3:7: bad (hint: fix it)"},
		{Error{File: "a.yaml", Line: 3, Column: 7, Message: "bad"}, "a.yaml:3:7: bad"},
		{Error{File: "a.yaml", Message: "bad"}, "a.yaml: bad"},
		{Error{Message: "bad"}, "bad"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	errs := Errors{{File: "f", Line: 1, Column: 2, Message: "one"}, {File: "f", Line: 3, Column: 4, Message: "two", Hint: "h"}}
	if got, want := errs.Error(), "f:1:2: one\nf:3:4: two (hint: h)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// wantErr is one expected problem: exact position and path, and fragments of
// the message and hint.
type wantErr struct {
	line, col int
	path      string
	msg, hint string
}

// parseErrors parses src and returns its Errors, failing the test when there
// are none.
func parseErrors(t *testing.T, src string) Errors {
	t.Helper()
	c, err := Parse("sluice.yaml", []byte(src))
	if err == nil {
		t.Fatalf("no error for\n%s\nconfig: %+v", src, c)
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	if c != nil {
		t.Errorf("Parse returned a config along with errors")
	}
	return errs
}

func checkErrors(t *testing.T, src string, want []wantErr) {
	t.Helper()
	errs := parseErrors(t, src)
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		e := errs[i]
		if e.File != "sluice.yaml" || e.Line != w.line || e.Column != w.col || e.Path != w.path ||
			!strings.Contains(e.Message, w.msg) || !strings.Contains(e.Hint, w.hint) {
			t.Errorf("error %d:\n got  %d:%d path=%q %q (hint: %q)\n want %d:%d path=%q %q (hint: %q)",
				i, e.Line, e.Column, e.Path, e.Message, e.Hint, w.line, w.col, w.path, w.msg, w.hint)
		}
	}
}

func TestShapeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want wantErr
	}{
		{"unknown top-level key with suggestion", "pipeline: {}\n",
			wantErr{1, 1, "pipeline", `unknown key "pipeline" at the top level`, "did you mean pipelines?"}},
		{"unknown nested key with suggestion", "http:\n  api: 127.0.0.1:1\n  colector: 127.0.0.1:2\n",
			wantErr{3, 3, "http.colector", `unknown key "colector" in http`, "did you mean collector?"}},
		{"unknown key lists the valid keys", "lake: {bucket: x}\n",
			wantErr{1, 8, "lake.bucket", `unknown key "bucket" in lake`, "lake takes the keys url, flush_interval, max_rows"}},
		{"unknown key in a stream", "streams:\n  raw:\n    retension: 1h\n",
			wantErr{3, 5, "streams.raw.retension", `unknown key "retension" in streams.raw`, "did you mean retention?"}},
		{"scalar where a mapping is expected", "http: 8080\n",
			wantErr{1, 7, "http", "http must be a mapping, not the number 8080", "http takes the keys collector, api, max_body, max_events"}},
		{"list where a mapping is expected", "streams:\n  - raw\n",
			wantErr{2, 3, "streams", "streams must be a mapping of names to settings, not a list", "under streams:"}},
		{"mapping where a string is expected", "data_dir:\n  path: /x\n",
			wantErr{2, 3, "data_dir", "data_dir must be a single value, not a mapping", "quote it"}},
		{"list where a string is expected", "bus: {url: [a, b]}\n",
			wantErr{1, 12, "bus.url", "bus.url must be a single value, not a list", ""}},
		{"word for an int", "http: {max_events: lots}\n",
			wantErr{1, 20, "http.max_events", `http.max_events: "lots" is not a whole number`, "digits only"}},
		{"fraction for an int", "lake:\n  max_rows: 1.5\n",
			wantErr{2, 13, "lake.max_rows", `lake.max_rows: "1.5" is not a whole number`, "digits only"}},
		{"mapping for an int", "lake:\n  max_rows: {a: 1}\n",
			wantErr{2, 13, "lake.max_rows", "lake.max_rows must be a whole number, not a mapping", ""}},
		{"duration without unit", "streams:\n  raw: {retention: 72}\n",
			wantErr{2, 20, "streams.raw.retention", `streams.raw.retention: "72" has no unit`, "72h or 7d"}},
		{"duration with a bad unit", "enrich:\n  dedupe_window: 10 minutes\n",
			wantErr{2, 18, "enrich.dedupe_window", `enrich.dedupe_window: "10 minutes" is not a duration`, "ms, s, m, h or d"}},
		{"negative duration", "lake: {flush_interval: -5s}\n",
			wantErr{1, 24, "lake.flush_interval", `lake.flush_interval: "-5s" is negative`, ""}},
		{"list for a duration", "lake: {flush_interval: [5s]}\n",
			wantErr{1, 24, "lake.flush_interval", "lake.flush_interval must be a duration such as 72h, not a list", ""}},
		{"bad byte size", "http:\n  max_body: 1 megabyte\n",
			wantErr{2, 13, "http.max_body", `http.max_body: "1 megabyte" is not a size`, "KiB, MiB, GiB"}},
		{"negative byte size", "streams: {bad: {max_bytes: -1}}\n",
			wantErr{1, 28, "streams.bad.max_bytes", `streams.bad.max_bytes: "-1" is negative`, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
}

// Sources are not available at all, so a shape error in one comes with that
// error too.
func TestShapeErrorsInSources(t *testing.T) {
	checkErrors(t, "sources:\n  s:\n    typ: file\n", []wantErr{
		{2, 3, "sources.s", `source "s" has no type`, ""},
		{3, 5, "sources.s.typ", `unknown key "typ" in sources.s`, "did you mean type?"},
	})
	checkErrors(t, "sources:\n  s: {type: file, paths: /var/log/x.log}\n", []wantErr{
		{2, 3, "sources.s", "a file source needs paths", ""},
		{2, 26, "sources.s.paths", `sources.s.paths must be a list, not "/var/log/x.log"`, "paths: [a, b]"},
	})
}

func TestAliases(t *testing.T) {
	// A value of the wrong kind is reported where the alias is used.
	checkErrors(t, "http:\n  collector: &addr 127.0.0.1:9000\nbus: *addr\n", []wantErr{
		{3, 6, "bus", `bus must be a mapping, not "127.0.0.1:9000"`, "bus takes the keys url"},
	})
	// Keys are reported where they are written, in the anchored mapping.
	checkErrors(t, "streams:\n  raw: &r {retention: 1h}\nhttp: *r\n", []wantErr{
		{2, 12, "http.retention", `unknown key "retention" in http`, ""},
	})
}

func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want wantErr
	}{
		{"unclosed flow sequence", "data_dir: x\nsources: {s: {paths: [a, b}}\n",
			wantErr{2, 27, "", "invalid YAML: ',' or ']' must be specified", "check the indentation"}},
		{"unclosed quote", "data_dir: \"./x\nhttp: {}\n",
			wantErr{1, 11, "", "invalid YAML: could not find end character of double-quoted text", ""}},
		{"tab indentation", "http:\n\tapi: 127.0.0.1:1\n",
			wantErr{2, 1, "", "invalid YAML: ", "indent with spaces"}},
		{"duplicate key", "http:\n  api: 127.0.0.1:1\n  api: 127.0.0.1:2\n",
			wantErr{3, 3, "", `key "api" is defined twice (first on line 2)`, "remove or rename one"}},
		{"two documents", "data_dir: a\n---\ndata_dir: b\n",
			wantErr{3, 1, "", "more than one YAML document", "remove the --- separators"}},
		{"not a mapping", "- data_dir\n- http\n",
			wantErr{1, 1, "", "the file must be a mapping of keys (data_dir, http, sources, ...), not a list", "top-level keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want wantErr
	}{
		{"data dir URL", "data_dir: s3://bucket/x\n",
			wantErr{1, 11, "data_dir", `data_dir must be a local directory, not "s3://bucket/x"`, "lake.url"}},
		{"collector not host:port", "http:\n  collector: 8080\n",
			wantErr{2, 14, "http.collector", `http.collector: "8080" is not host:port`, "e.g. 127.0.0.1:8080, or :8080"}},
		{"api port out of range", "http: {api: '127.0.0.1:99999'}\n",
			wantErr{1, 13, "http.api", `http.api: port "99999" is not a number from 0 to 65535`, "host:port"}},
		{"api beyond loopback without token", "http:\n  api: 0.0.0.0:8081\n",
			wantErr{2, 8, "http.api", "http.api listens on 0.0.0.0:8081, beyond this machine, but auth.token is empty", "set auth.token"}},
		{"max_body too small", "http: {max_body: 512}\n",
			wantErr{1, 18, "http.max_body", "http.max_body is 512; it must be between 1KiB and 64MiB", "1MiB"}},
		{"max_body too large", "http: {max_body: 128MiB}\n",
			wantErr{1, 18, "http.max_body", "http.max_body is 128MiB; it must be between 1KiB and 64MiB", ""}},
		{"max_events 0", "http:\n  max_events: 0\n",
			wantErr{2, 15, "http.max_events", "http.max_events is 0; it must be at least 1", ""}},
		{"bus URL", "bus: {url: kafka://k:9092}\n",
			wantErr{1, 12, "bus.url", `bus.url "kafka://k:9092" is neither embedded nor a nats:// or tls:// URL`, "nats://host:4222"}},
		{"bus URL without host", "bus:\n  url: nats://\n",
			wantErr{2, 8, "bus.url", "neither embedded nor", ""}},
		{"unknown stream", "streams:\n  event: {retention: 1h}\n",
			wantErr{2, 3, "streams.event", `unknown stream "event"`, "did you mean events? the streams are raw, events, bad, logs"}},
		{"unknown stream without suggestion", "streams: {clicks: {}}\n",
			wantErr{1, 11, "streams.clicks", `unknown stream "clicks"`, "the streams are raw, events, bad, logs"}},
		{"zero retention", "streams:\n  logs:\n    retention: 0s\n",
			wantErr{3, 16, "streams.logs.retention", "streams.logs.retention is 0s; it must be greater than 0", "e.g. 168h"}},
		{"zero dedupe window", "enrich: {dedupe_window: 0}\n",
			wantErr{1, 25, "enrich.dedupe_window", "enrich.dedupe_window must be greater than 0", ""}},
		{"retention of an unknown table", "lake:\n  retention: {evnets: 30d}\n",
			wantErr{2, 15, "lake.retention.evnets", `no table "evnets" in the lake`, "events, bad, logs"}},
		{"retention too short", "lake:\n  retention: {logs: 10m}\n",
			wantErr{2, 21, "lake.retention.logs", "keep a table at least 1h", ""}},
		{"file without paths", "sources:\n  tail: {type: file, parse: nginx_combined}\n",
			wantErr{2, 3, "sources.tail", "a file source needs paths", "globs"}},
		{"file with an unknown format", "sources:\n  tail: {type: file, paths: [a.log], parse: ngnix_combined}\n",
			wantErr{2, 45, "sources.tail.parse", `unknown format "ngnix_combined"`, "did you mean nginx_combined?"}},
		{"file regex without pattern", "sources:\n  tail: {type: file, paths: [a.log], parse: regex}\n",
			wantErr{2, 3, "sources.tail", "parse: regex needs pattern", "pattern:"}},
		{"file pattern without groups", "sources:\n  tail: {type: file, paths: [a.log], parse: regex, pattern: 'a+'}\n",
			wantErr{2, 61, "sources.tail.pattern", "pattern has no named groups", "(?P<name>"}},
		{"file bad pattern", "sources:\n  tail: {type: file, paths: [a.log], parse: regex, pattern: '(?P<x>'}\n",
			wantErr{2, 61, "sources.tail.pattern", "pattern is not a regular expression", ""}},
		{"file bad multiline", "sources:\n  tail: {type: file, paths: [a.log], multiline: '['}\n",
			wantErr{2, 49, "sources.tail.multiline", "multiline is not a regular expression", ""}},
		{"file to events", "sources:\n  tail: {type: file, paths: [a.log], stream: events}\n",
			wantErr{2, 46, "sources.tail.stream", "records cannot go to the events stream", "a name of your own"}},
		{"file to a bad name", "sources:\n  tail: {type: file, paths: [a.log], stream: Web-Logs}\n",
			wantErr{2, 46, "sources.tail.stream", `stream name "Web-Logs" is not usable`, "lower-case"}},
		{"file with listen", "sources:\n  tail: {type: file, paths: [a.log], listen: 'udp://:1'}\n",
			wantErr{2, 46, "sources.tail.listen", "listen does not apply to a file source", "remove it"}},
		{"syslog without listen", "sources:\n  s: {type: syslog}\n",
			wantErr{2, 3, "sources.s", "a syslog source needs listen", "udp://127.0.0.1:5514"}},
		{"syslog bad scheme", "sources:\n  s: {type: syslog, listen: \"http://127.0.0.1:5514\"}\n",
			wantErr{2, 29, "sources.s.listen", "is not udp://, tcp:// or tls://host:port", ""}},
		{"syslog without port", "sources:\n  s: {type: syslog, listen: \"udp://127.0.0.1\"}\n",
			wantErr{2, 29, "sources.s.listen", "has no port", ""}},
		{"syslog with file keys", "sources:\n  s: {type: syslog, listen: \"udp://:5514\", paths: [a]}\n",
			wantErr{2, 51, "sources.s.paths", "paths does not apply to a syslog source", ""}},
		{"unknown source type", "sources:\n  k: {type: kafka}\n",
			wantErr{2, 13, "sources.k.type", `unknown source type "kafka"`, "the source types are syslog, file, postgres_cdc"}},
		{"misspelt source type", "sources:\n  k: {type: sylog}\n",
			wantErr{2, 13, "sources.k.type", `unknown source type "sylog"`, "did you mean syslog?"}},
		{"source without type", "sources:\n  k: {paths: [a]}\n",
			wantErr{2, 3, "sources.k", `source "k" has no type`, "syslog, file, postgres_cdc"}},
		{"postgres warehouse URL that does not parse", "warehouse:\n  url: postgres://u:s3cret@h:port/db\n",
			wantErr{2, 8, "warehouse.url", "warehouse.url is not a PostgreSQL URL: cannot parse `postgres://u:xxxxx@h:port/db`: invalid port", "postgres://user:password@host:5432/database"}},
		{"unknown warehouse", "warehouse: {url: sqlite}\n",
			wantErr{1, 18, "warehouse.url", `unknown warehouse "sqlite"`, "duckdb"}},
		{"s3 lake with an unknown parameter", "lake:\n  url: s3://bucket/prefix?region=x&path_style=true\n",
			wantErr{2, 8, "lake.url", `lake.url has an unknown parameter "path_style"`, "use_path_style"}},
		{"s3 lake without a bucket", "lake:\n  url: s3:///prefix?region=x\n",
			wantErr{2, 8, "lake.url", `lake.url "s3:///prefix?region=x" names no bucket`, "s3://bucket/prefix"}},
		{"s3 lake with credentials", "lake:\n  url: s3://AKIA:secret@bucket/prefix\n",
			wantErr{2, 8, "lake.url", "lake.url must not hold credentials", "AWS_ACCESS_KEY_ID"}},
		{"s3 lake that is not a URL", "lake:\n  url: s3://bucket/%zz\n",
			wantErr{2, 8, "lake.url", "is not a URL", "s3://bucket/prefix"}},
		{"lake URL with another scheme", "lake: {url: 'gs://bucket/lake'}\n",
			wantErr{1, 13, "lake.url", `lake.url must be a directory path or s3://, not "gs://bucket/lake"`, "s3://bucket/prefix"}},
		{"remote file URL", "lake: {url: 'file://host/srv/lake'}\n",
			wantErr{1, 13, "lake.url", `lake.url "file://host/srv/lake" is not a local file URL`, "file:///absolute/path"}},
		{"flush interval too short", "lake: {flush_interval: 50ms}\n",
			wantErr{1, 24, "lake.flush_interval", "lake.flush_interval is 50ms; it must be at least 100ms", ""}},
		{"max rows 0", "lake: {max_rows: 0}\n",
			wantErr{1, 18, "lake.max_rows", "lake.max_rows is 0; it must be at least 1", ""}},
		{"explore cache age 0", "semantic: {cache: {max_age: 0s}}\n",
			wantErr{1, 29, "semantic.cache.max_age", "semantic.cache.max_age is 0s; it must be more than 0", "semantic.cache.enabled: false"}},
		{"explore cache too small", "semantic: {cache: {size: 1KiB}}\n",
			wantErr{1, 26, "semantic.cache.size", "semantic.cache.size is 1KiB; it must be at least 1MiB", "64MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
}

func TestUnavailableSections(t *testing.T) {
	for _, key := range unavailableSections {
		t.Run(key, func(t *testing.T) {
			src := "data_dir: ./d\n" + key + ":\n  x: {a: 1}\n"
			checkErrors(t, src, []wantErr{{2, 1, key, key + " are not available in this version of sluice", "remove the " + key + " section"}})
			// A list is reported the same way, not as a shape error.
			checkErrors(t, key+": [a]\n", []wantErr{{1, 1, key, key + " are not available", ""}})
		})
	}
	// Empty sections are fine.
	for _, src := range []string{"pipelines: {}\n", "jobs: {}\n", "rollups:\n"} {
		if _, err := Parse("sluice.yaml", []byte(src)); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

func TestDesignSketchReportsEverythingUnavailable(t *testing.T) {
	t.Setenv("SLUICE_TOKEN", "t")
	src := `data_dir: ./sluice-data
http: {collector: 127.0.0.1:8080, api: 127.0.0.1:8081}
auth: {token: ${SLUICE_TOKEN}}          # API + UI; the collector stays public
bus: {url: embedded}                     # or nats://host:4222
sources:                                 # name -> {type, ...}; the HTTP collector is on by default
  syslog_udp: {type: syslog, listen: "udp://127.0.0.1:5514"}
  syslog_tcp: {type: syslog, listen: "tcp://127.0.0.1:5514"}
  nginx: {type: file, paths: ["/var/log/nginx/*.log"], parse: nginx_combined, stream: logs}
  orders_cdc: {type: postgres_cdc, url: "postgres://…", tables: [orders]}
streams: {raw: {retention: 72h}, events: {retention: 168h}}
pipelines:                               # name -> {from, steps, to}
  revenue:
    from: events
    steps:
      - filter: 'event == "purchase"'
      - window: {type: tumbling, size: 1m, group_by: [country], aggregates: {purchases: count(), revenue: sum(revenue)}}
    to: {table: revenue_per_minute}
lake: {url: ./sluice-data/lake}          # or s3://bucket/prefix?endpoint=…&use_path_style=true&region=…
warehouse: {url: duckdb}                 # or postgres://…
rollups: {pageviews_1m: {from: events, filter: 'event == "page_view"', granularity: 1m, dimensions: [country, page_url], metrics: {views: count(), visitors: distinct(user_id)}}}
jobs: {daily_revenue: {schedule: "@daily", params: {date: date}, requires: [...], sql: "...", output: "..."}}
semantic: {models: ./models}             # LookML-like YAML files
dashboards: {dir: ./dashboards}
`
	// The sources, the pipeline and the rollup of the sketch are valid.
	checkErrors(t, src, []wantErr{
		{21, 77, "jobs.daily_revenue.requires[0]", `jobs.daily_revenue.requires[0] must be a mapping, not "..."`, ""},
		{21, 103, "jobs.daily_revenue.output.table", `jobs.daily_revenue.output.table "...": use letters, digits and _`, ""},
		{22, 20, "semantic.models", `semantic.models "./models" is not a directory`, ""},
		{23, 19, "dashboards.dir", `dashboards.dir "./dashboards" is not a directory`, ""},
	})
}

func TestAllErrorsAtOnce(t *testing.T) {
	src := `data_dir: ./data
htp: {}
http:
  collector: localhost
  max_events: many
bus: {url: embeded}
streams:
  raw: {retention: forever}
  clicks: {}
lake:
  url: s3://b/p?endpont=x
  flush_interval: 1ms
warehouse: {url: "${WAREHOUSE_URL_FOR_TEST}"}
jobs: {nightly: {sql: "select 1 {{", output: nightly}}
`
	os.Unsetenv("WAREHOUSE_URL_FOR_TEST")
	checkErrors(t, src, []wantErr{
		{2, 1, "htp", `unknown key "htp" at the top level`, "did you mean http?"},
		{4, 14, "http.collector", `"localhost" is not host:port`, ""},
		{5, 15, "http.max_events", `"many" is not a whole number`, ""},
		{6, 12, "bus.url", `bus.url "embeded" is neither embedded`, ""},
		{8, 20, "streams.raw.retention", `"forever" is not a duration`, ""},
		{9, 3, "streams.clicks", `unknown stream "clicks"`, ""},
		{11, 8, "lake.url", `unknown parameter "endpont"`, ""},
		{12, 19, "lake.flush_interval", "it must be at least 100ms", ""},
		{13, 19, "", "environment variable WAREHOUSE_URL_FOR_TEST is not set", "${WAREHOUSE_URL_FOR_TEST:-default}"},
		{14, 23, "jobs.nightly.sql", "jobs.nightly.sql: template: jobs.nightly.sql:1: unclosed action", "templates use Go's text/template"},
	})
}

func TestCheckOverrides(t *testing.T) {
	c := Default()
	c.ApplyOverrides("", "127.0.0.1:0", "0.0.0.0:9")
	if err := c.CheckOverrides(); err == nil || !strings.Contains(err.Error(), "auth.token") {
		t.Errorf("open API without token: %v", err)
	}
	c.Auth.Token = "t"
	if err := c.CheckOverrides(); err != nil {
		t.Errorf("with token: %v", err)
	}
	c.ApplyOverrides("", "nonsense", "")
	if err := c.CheckOverrides(); err == nil || !strings.Contains(err.Error(), "--collector-addr") {
		t.Errorf("bad address: %v", err)
	}
	c = Default()
	c.Lake.URL = "s3://bucket/lake?region=x&bogus=1" // as --lake sets it
	if err := c.CheckOverrides(); err == nil || !strings.Contains(err.Error(), "--lake") || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("--lake s3://…&bogus=1: %v", err)
	}
	c.Lake.URL = "ftp://host/lake"
	if err := c.CheckOverrides(); err == nil || !strings.Contains(err.Error(), "--lake") || !strings.Contains(err.Error(), "s3://") {
		t.Errorf("--lake ftp://: %v", err)
	}
	c.Lake.URL = "/srv/lake"
	if err := c.CheckOverrides(); err != nil || c.LakeDir() != "/srv/lake" {
		t.Errorf("--lake DIR: %v, %s", err, c.LakeDir())
	}
}

func TestLakeURL(t *testing.T) {
	for _, tt := range []struct {
		url, wantURL, wantDir string
		remote                bool
	}{
		{"", "/data/lake", "/data/lake", false},
		{"/srv/lake", "/srv/lake", "/srv/lake", false},
		{"file:///srv/lake", "file:///srv/lake", "/srv/lake", false},
		// The lake is in the bucket; the data dir holds a local copy for
		// the warehouse.
		{"s3://bucket/lake?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true",
			"s3://bucket/lake?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true", "/data/lake-cache", true},
	} {
		c, err := Parse("sluice.yaml", []byte("data_dir: /data\nlake: {url: '"+tt.url+"'}\n"))
		if err != nil {
			t.Errorf("lake.url %q: %v", tt.url, err)
			continue
		}
		if c.LakeURL() != tt.wantURL || c.LakeDir() != tt.wantDir || c.LakeIsRemote() != tt.remote {
			t.Errorf("lake.url %q: LakeURL %q, LakeDir %q, remote %v; want %q, %q, %v",
				tt.url, c.LakeURL(), c.LakeDir(), c.LakeIsRemote(), tt.wantURL, tt.wantDir, tt.remote)
		}
	}
}

func TestWarehouseURL(t *testing.T) {
	for _, u := range []string{"duckdb", "postgres://sluice:pw@127.0.0.1:5432/sluice?sslmode=disable", "postgresql://db.internal/analytics?search_path=sluice"} {
		c, err := Parse("sluice.yaml", []byte("warehouse: {url: '"+u+"'}\n"))
		if err != nil || c.Warehouse.URL != u {
			t.Errorf("warehouse.url %q: %v", u, err)
		}
	}
}

func TestEnrichmentSwitches(t *testing.T) {
	c, err := Parse("s.yaml", []byte("enrich:\n  useragent: false\n  anonymize_ip: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enrich.UserAgent || !c.Enrich.Campaign || !c.Enrich.Referrer || !c.Enrich.AnonymizeIP {
		t.Errorf("switches: %+v", c.Enrich)
	}
	_, err = Parse("s.yaml", []byte("enrich:\n  referrer: maybe\n"))
	if err == nil || !strings.Contains(err.Error(), "s.yaml:2:13") || !strings.Contains(err.Error(), "true or false") {
		t.Errorf("bad bool: %v", err)
	}
}

func TestPipelineErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      wantErr
	}{
		{"unknown stream", "pipelines:\n  p: {from: evnts, to: {stream: out}}\n",
			wantErr{2, 13, "pipelines.p.from", `pipeline p reads "evnts", which is no stream`, "the streams are"}},
		{"raw", "pipelines:\n  p: {from: raw, to: {stream: out}}\n",
			wantErr{2, 13, "pipelines.p.from", "pipeline p reads raw", ""}},
		{"no to", "pipelines:\n  p: {from: events}\n",
			wantErr{2, 3, "pipelines.p", "pipeline p has no to", ""}},
		{"two keys in a step", "pipelines:\n  p:\n    from: events\n    steps:\n      - {filter: 'true', drop: [a]}\n    to: {stream: out}\n",
			wantErr{5, 26, "pipelines.p.steps[0].drop", "pipelines.p.steps[0] must have exactly one of filter", ""}},
		{"bad expression", "pipelines:\n  p:\n    from: events\n    steps:\n      - filter: 'event =='\n    to: {stream: out}\n",
			wantErr{5, 17, "pipelines.p.steps[0].filter", "pipelines.p.steps[0].filter: unexpected token EOF", ""}},
		{"unknown function", "pipelines:\n  p:\n    from: events\n    steps:\n      - set: {x: 'lowr(event)'}\n    to: {stream: out}\n",
			wantErr{5, 18, "pipelines.p.steps[0].set.x", "pipelines.p.steps[0].set.x: lowr is not a function", ""}},
		{"bad aggregate", "pipelines:\n  p:\n    from: events\n    steps:\n      - window: {type: tumbling, size: 1m, aggregates: {n: cnt()}}\n    to: {table: t}\n",
			wantErr{5, 60, "pipelines.p.steps[0].window.aggregates.n", `pipelines.p.steps[0].window.aggregates.n: "cnt()": unknown aggregate cnt`, ""}},
		{"hopping every", "pipelines:\n  p:\n    from: events\n    steps:\n      - window: {type: hopping, size: 5m, every: 2m, aggregates: {n: count()}}\n    to: {table: t}\n",
			wantErr{5, 50, "pipelines.p.steps[0].window.every", "pipelines.p.steps[0].window.every must divide size", ""}},
		{"lake table name", "pipelines:\n  p: {from: events, to: {table: events}}\n",
			wantErr{2, 33, "pipelines.p.to.table", `pipelines.p.to.table "events" is a lake table's`, ""}},
		{"built-in stream out", "pipelines:\n  p: {from: events, to: {stream: events}}\n",
			wantErr{2, 34, "pipelines.p.to.stream", `pipelines.p.to.stream "events": a pipeline writes a new stream`, ""}},
		{"sample rate", "pipelines:\n  p:\n    from: events\n    steps:\n      - sample: {rate: 1.5}\n    to: {stream: out}\n",
			wantErr{5, 24, "pipelines.p.steps[0].sample.rate", "pipelines.p.steps[0].sample.rate is 1.5; it must be above 0 and at most 1", ""}},
		{"lake output without a time", "pipelines:\n  a: {from: events, to: {stream: mid}}\n  p: {from: mid, to: {lake: out}}\n",
			wantErr{3, 29, "pipelines.p.to.lake", "pipelines.p.to.lake out: no time column to partition it by", "name the time field: {lake: out, time: FIELD}"}},
		{"lake output named like a stream output", "pipelines:\n  a: {from: events, to: {stream: out}}\n  p: {from: events, to: {lake: out}}\n",
			wantErr{2, 34, "pipelines.a.to.stream", `pipelines.a.to.stream "out" is also a lake output`, ""}},
		{"lake output with two times", "pipelines:\n  a: {from: events, to: {lake: out}}\n  p: {from: events, to: {lake: out, time: received_at}}\n",
			wantErr{3, 43, "pipelines.p.to.time", "pipelines.p.to: lake table out is partitioned by event_time elsewhere, received_at here", ""}},
		{"lake output over a lake table", "pipelines:\n  p: {from: events, to: {lake: logs}}\n",
			wantErr{2, 32, "pipelines.p.to.lake", `pipelines.p.to.lake "logs": a pipeline writes a lake table of its own`, ""}},
		{"time on a table output", "pipelines:\n  p: {from: events, to: {table: t, time: x}}\n",
			wantErr{2, 42, "pipelines.p.to.time", "pipelines.p.to.time is the partition column of a lake table", ""}},
		{"too many workers", "pipelines:\n  p: {from: events, workers: 65, to: {stream: out}}\n",
			wantErr{2, 30, "pipelines.p.workers", "pipelines.p.workers is 65; it must be between 1 and 64", ""}},
		{"workers and a global window", "pipelines:\n  p:\n    from: events\n    workers: 2\n    steps:\n      - window: {type: tumbling, size: 1m, aggregates: {n: count()}}\n    to: {table: t}\n",
			wantErr{4, 14, "pipelines.p.workers", "pipeline p: steps[0]: a window without group_by is one aggregate, which cannot be split between 2 workers", ""}},
		{"workers keyed off the window's groups", "pipelines:\n  p:\n    from: events\n    workers: 2\n    key: user_id\n    steps:\n      - window: {type: tumbling, size: 1m, group_by: [country], aggregates: {n: count()}}\n    to: {table: t}\n",
			wantErr{4, 14, "pipelines.p.workers", "pipeline p: steps[0]: the window groups by [country], so key must be some of those fields, not [user_id]", ""}},
		{"workers and a global throttle", "pipelines:\n  p:\n    from: events\n    workers: 3\n    steps:\n      - throttle: {threshold: 5}\n    to: {stream: out}\n",
			wantErr{4, 14, "pipelines.p.workers", "a throttle without a key is one limit, which cannot be split between 3 workers", ""}},
		{"workers and dedupe", "pipelines:\n  p:\n    from: events\n    workers: 3\n    key: user_id\n    steps:\n      - dedupe: {key: event_id}\n    to: {stream: out}\n",
			wantErr{4, 14, "pipelines.p.workers", "dedupe remembers [event_id], so key must be some of those fields, not [user_id]", ""}},
		{"workers reading Kafka", "pipelines:\n  p: {from: 'kafka://127.0.0.1:9092/t?group=g', workers: 2, to: {stream: out}}\n",
			wantErr{2, 58, "pipelines.p.workers", "pipeline p reads Kafka with 2 workers; a Kafka input shares its partitions through its consumer group instead", "leave workers at 1; a standby process takes over when this one stops"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
	// A pipeline may read another's output stream; from and to take one or a list.
	ok := "pipelines:\n  a: {from: [events, logs], to: [{stream: mid}, {table: t1}]}\n  b: {from: mid, steps: [{keep: [x]}], to: {table: t2}}\n"
	c, err := Parse("sluice.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Pipelines["a"].From, c.Pipelines["a"].To, c.PipelineStreams()) != "[events logs] [stream mid table t1] [mid]" {
		t.Errorf("decoded %+v", c.Pipelines)
	}
	// A lake output's time: window_start after a window, the input's time
	// column before it (events, logs, another lake output's).
	c, err = Parse("sluice.yaml", []byte(`pipelines:
  a:
    from: events
    steps:
      - route: [{if: 'true', to: {lake: raw_copy}}]
      - window: {type: tumbling, size: 1m, aggregates: {n: count()}}
    to: {lake: per_minute}
  b: {from: logs, to: {lake: log_copy}}
  c: {from: raw_copy, to: {lake: copy_of_copy}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.LakeOutputs(), c.PipelineStreams()); got != "map[copy_of_copy:event_time log_copy:timestamp per_minute:window_start raw_copy:event_time] [copy_of_copy log_copy per_minute raw_copy]" {
		t.Errorf("lake outputs: %s", got)
	}
	// Workers split by the window's groups when no key is given.
	c, err = Parse("sluice.yaml", []byte("pipelines:\n  p:\n    from: events\n    workers: 4\n    steps:\n      - window: {type: tumbling, size: 1m, group_by: [user_id, country], aggregates: {n: count()}}\n    to: {table: t}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k := c.Pipelines["p"].PartitionKey(); fmt.Sprint(k) != "[user_id country]" {
		t.Errorf("partition key %v", k)
	}
	if _, err := Parse("sluice.yaml", []byte("pipelines:\n  p:\n    from: events\n    workers: 4\n    key: user_id\n    steps:\n      - dedupe: {key: [user_id, event_id]}\n      - window: {type: tumbling, size: 1m, group_by: [user_id, country], aggregates: {n: count()}}\n    to: {table: t}\n")); err != nil {
		t.Errorf("key user_id splits both the dedupe and the window: %v", err)
	}
}
