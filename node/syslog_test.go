package node_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
)

func TestSyslogFromTheRealLogger(t *testing.T) {
	logger, err := exec.LookPath("logger") // util-linux: the real syslog client
	need(t, "logger (util-linux)", err)
	n := startNode(t, t.TempDir(), func(cfg *config.Config) {
		cfg.Sources = map[string]config.Source{
			"udp": {Type: "syslog", Listen: "udp://127.0.0.1:0"},
			"tcp": {Type: "syslog", Listen: "tcp://127.0.0.1:0"},
		}
	})
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

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sluice test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// RFC 5425: syslog over TLS, octet-counted frames.
func TestSyslogOverTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	n := startNode(t, t.TempDir(), func(cfg *config.Config) {
		cfg.Sources = map[string]config.Source{
			"tls": {Type: "syslog", Listen: "tls://127.0.0.1:0", TLS: config.TLS{Cert: certFile, Key: keyFile}},
		}
	})
	defer n.Stop()
	u, _ := url.Parse(n.SyslogAddrs()[0])
	if u.Scheme != "tls" {
		t.Fatalf("listener %s", u)
	}
	// A plain-text client gets nowhere.
	if c, err := net.Dial("tcp", u.Host); err == nil {
		c.Write([]byte("<13>1 - h plain - - - in clear\n"))
		c.Close()
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"<34>1 2026-11-25T10:00:00Z web1 sshd 42 ID7 - failed login", "<165>1 2026-11-25T10:00:01.5Z web1 app - - [x@1 k=\"v\"] second"} {
		fmt.Fprintf(conn, "%d %s", len(m), m)
	}
	conn.Close()
	waitFor(t, n.APIURL(), "SELECT list(message ORDER BY timestamp), list(app ORDER BY timestamp), min(timestamp), count(*) FILTER (WHERE message = 'in clear') FROM logs",
		"[[[failed login second] [sshd app] 2026-11-25T10:00:00Z 0]]")
}
