package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/config"
)

func appendFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// Tailed files land parsed: nginx lines in logs with typed fields, JSON
// lines in a stream (and table) of their own, multi-line records whole, and
// a line that does not parse as a bad row while its neighbours land.
func TestTailedFilesLandParsed(t *testing.T) {
	logs := t.TempDir()
	access, app := filepath.Join(logs, "access.log"), filepath.Join(logs, "app-1.jsonl")
	appendFile(t, access,
		`203.0.113.9 - alice [25/Nov/2026:10:00:01 +0100] "GET /cart?id=7 HTTP/1.1" 200 512 "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)"`,
		`this is not an access log line`,
		`198.51.100.2 - - [25/Nov/2026:10:00:02 +0100] "POST /api/pay HTTP/2.0" 502 0 "-" "curl/8.5.0"`)
	appendFile(t, app, `{"time":"2026-11-25T09:00:03Z","level":"warn","message":"slow","ms":812.5,"user":{"id":7}}`)
	trace := filepath.Join(logs, "trace.log")
	appendFile(t, trace, "2026-11-25 10:00:00 ERROR boom", "  at a()", "  at b()", "2026-11-25 10:00:01 INFO fine")

	n := startNode(t, t.TempDir(), func(cfg *config.Config) {
		cfg.Sources = map[string]config.Source{
			"nginx":  {Type: "file", Paths: []string{filepath.Join(logs, "*.log")}, Parse: "nginx_combined"},
			"app":    {Type: "file", Paths: []string{filepath.Join(logs, "app-*.jsonl")}, Parse: "json", Stream: "app_logs"},
			"traces": {Type: "file", Paths: []string{trace}, Parse: "regex", Pattern: `^(?P<time>\S+ \S+) (?P<level>\w+) (?P<message>(?s:.*))$`, Multiline: `^\d{4}-`, Stream: "traces"},
		}
		cfg.Streams["app_logs"] = config.Stream{Retention: config.Duration(3600e9)}
	})
	defer n.Stop()
	api := n.APIURL()
	waitFor(t, api, "SELECT count(*) FROM logs WHERE app = 'nginx'", "[[2]]")
	waitFor(t, api, `SELECT timestamp, ip, fields->>'method', fields->>'path', (fields->>'status')::INT, (fields->>'body_bytes_sent')::INT, fields->>'remote_user', format
		FROM logs WHERE app = 'nginx' AND fields IS NOT NULL ORDER BY timestamp`,
		"[[2026-11-25T09:00:01Z 203.0.113.9 GET /cart?id=7 200 512 alice nginx_combined] [2026-11-25T09:00:02Z 198.51.100.2 POST /api/pay 502 0 <nil> nginx_combined]]")
	// trace.log matches *.log too: its lines are not access log lines.
	waitFor(t, api, "SELECT count(*) FROM bad WHERE type = 'collector_payload_format'", "[[5]]")
	res := query(t, api, "SELECT message, payload FROM bad WHERE payload LIKE 'this is%'")
	if got := fmt.Sprint(res.Rows); !strings.Contains(got, "source nginx") || !strings.Contains(got, "access.log") {
		t.Errorf("bad row does not say where it came from: %s", got)
	}

	waitFor(t, api, `SELECT timestamp, message, fields->>'level', (fields->>'ms')::DOUBLE, fields->'user'->>'id', app FROM app_logs`,
		"[[2026-11-25T09:00:03Z slow warn 812.5 7 app]]")
	waitFor(t, api, `SELECT message, fields->>'level' FROM traces ORDER BY timestamp`,
		"[[boom\n  at a()\n  at b() ERROR] [fine INFO]]")

	// Lines appended later follow.
	appendFile(t, access, `192.0.2.1 - - [25/Nov/2026:10:05:00 +0000] "GET / HTTP/1.1" 304 0 "-" "bot"`)
	waitFor(t, api, "SELECT count(*) FROM logs WHERE ip = '192.0.2.1'", "[[1]]")
}
