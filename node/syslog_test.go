package node_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/node"
)

// requireLogger returns the path of util-linux's logger, the real syslog
// client; CI must have it, a laptop may skip.
func requireLogger(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("logger")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("SLUICE_INTEGRATION") == "1" {
			t.Fatal("logger (util-linux) is needed for the syslog tests")
		}
		t.Skip("logger (util-linux) not found; set SLUICE_INTEGRATION=1 to make this a failure")
	}
	return p
}

func TestSyslogFromTheRealLogger(t *testing.T) {
	logger := requireLogger(t)
	cfg := config.Default()
	cfg.ApplyOverrides(t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	cfg.Lake.FlushInterval = config.Duration(300 * time.Millisecond)
	cfg.Sources = map[string]config.Source{
		"udp": {Type: "syslog", Listen: "udp://127.0.0.1:0"},
		"tcp": {Type: "syslog", Listen: "tcp://127.0.0.1:0"},
	}
	n, err := node.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	ports := map[string]string{}
	for _, a := range n.SyslogAddrs() {
		u, _ := url.Parse(a)
		_, port, _ := net.SplitHostPort(u.Host)
		ports[u.Scheme] = port
	}
	send := func(args ...string) {
		t.Helper()
		out, err := exec.Command(logger, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	send("-n", "127.0.0.1", "-P", ports["udp"], "-d", "--rfc5424", "-t", "app5424", "-p", "local3.warning",
		"--msgid", "M1", "--sd-id", "origin@32473", "--sd-param", `ip="10.0.0.1"`, "hello 5424 over udp")
	send("-n", "127.0.0.1", "-P", ports["udp"], "-d", "--rfc3164", "-t", "app3164", "-p", "user.err", "hello 3164 over udp")
	send("-n", "127.0.0.1", "-P", ports["tcp"], "-T", "--octet-count", "--rfc5424", "-t", "octets", "hello octet counting")
	send("-n", "127.0.0.1", "-P", ports["tcp"], "-T", "--rfc5424", "-t", "newline", "hello newline framing")
	// Garbage becomes a bad row, not a silent drop.
	c, err := net.Dial("udp", "127.0.0.1:"+ports["udp"])
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("<999>not syslog at all"))
	c.Close()

	api := n.APIURL()
	waitFor(t, api, "SELECT count(*) FROM logs", "[[4]]")
	res := query(t, api, `SELECT app, format, facility, severity, message, msgid, sd->'origin@32473'->>'ip', host IS NOT NULL, ip, source LIKE '%://127.0.0.1:%'
		FROM logs ORDER BY app`)
	want := []string{
		"[app3164 rfc3164 1 3 hello 3164 over udp <nil> <nil> true 127.0.0.1 true]",
		"[app5424 rfc5424 19 4 hello 5424 over udp M1 10.0.0.1 true 127.0.0.1 true]",
		"[newline rfc5424 1 5 hello newline framing <nil> <nil> true 127.0.0.1 true]",
		"[octets rfc5424 1 5 hello octet counting <nil> <nil> true 127.0.0.1 true]",
	}
	for i, row := range res.Rows {
		if got := fmt.Sprint(row); i >= len(want) || got != want[i] {
			t.Errorf("row %d: %s", i, got)
		}
	}
	// logger stamps the time it sent; the row keeps it (to the second).
	res = query(t, api, "SELECT max(abs(epoch(timestamp) - epoch(received_at))) < 5 FROM logs")
	if fmt.Sprint(res.Rows) != "[[true]]" {
		t.Errorf("timestamps: %v", res.Rows)
	}
	waitFor(t, api, "SELECT count(*) FROM bad WHERE collector = 'syslog' AND type = 'tracker_protocol'", "[[1]]")
	res = query(t, api, "SELECT payload FROM bad WHERE collector = 'syslog'")
	if !strings.Contains(fmt.Sprint(res.Rows), "not syslog at all") {
		t.Errorf("bad syslog row keeps the message: %v", res.Rows)
	}
}
