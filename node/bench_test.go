package node_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/server"
)

// The log benchmarks measure MiB/s of raw log from the wire or the file to
// rows queryable in the logs table, through the whole node. Run:
//
//	go test ./node -run '^$' -bench 'Syslog|Tail' -benchtime 1x
//
// Each iteration is one fresh node and 64 MiB of log, with
// lake.flush_interval 500ms.

const benchLogBytes = 64 << 20

// nginxLine is a ~200-byte access log line, as nginx writes them.
func nginxLine(i int) string {
	return fmt.Sprintf(`203.0.113.%d - - [25/Nov/2026:10:%02d:%02d +0000] "GET /products/%d?ref=home HTTP/1.1" 200 %d "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"`,
		i%250, i/60%60, i%60, i, 1000+i%9000)
}

func benchNode(b *testing.B, configure func(*config.Config)) *node.Node {
	b.Helper()
	cfg := config.Default()
	cfg.ApplyOverrides(b.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	// The last rows wait for the flush interval; the default 5 s would be
	// most of what is measured.
	cfg.Lake.FlushInterval = config.Duration(500 * time.Millisecond)
	configure(cfg)
	n, err := node.Start(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// waitLogs waits until logs holds want rows.
func waitLogs(b *testing.B, api string, want int) {
	b.Helper()
	client := &server.Client{URL: api}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		res, err := client.SQL(context.Background(), "SELECT count(*) FROM logs")
		if err == nil && fmt.Sprint(res.Rows) == fmt.Sprintf("[[%d]]", want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("logs did not reach %d rows", want)
}

// BenchmarkSyslogTCPToLogs sends RFC 5424 messages, octet-counted, over one
// TCP connection.
func BenchmarkSyslogTCPToLogs(b *testing.B) {
	var msgs []byte
	n := 0
	for len(msgs) < benchLogBytes {
		m := fmt.Sprintf(`<134>1 2026-11-25T10:00:%02d.%03dZ web-%d nginx 4242 access - %s`, n%60, n%1000, n%8, nginxLine(n))
		msgs = fmt.Appendf(msgs, "%d %s", len(m), m)
		n++
	}
	b.SetBytes(int64(len(msgs)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		nd := benchNode(b, func(cfg *config.Config) {
			cfg.Sources = map[string]config.Source{"tcp": {Type: "syslog", Listen: "tcp://127.0.0.1:0"}}
		})
		addr := strings.TrimPrefix(nd.SyslogAddrs()[0], "tcp://")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w := bufio.NewWriterSize(conn, 1<<20)
		if _, err := w.Write(msgs); err != nil {
			b.Fatal(err)
		}
		w.Flush()
		conn.Close()
		waitLogs(b, nd.APIURL(), n)
		b.StopTimer()
		nd.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkTailToLogs follows a file of nginx access log lines, parsed as
// nginx_combined.
func BenchmarkTailToLogs(b *testing.B) {
	dir := b.TempDir()
	var data []byte
	n := 0
	for len(data) < benchLogBytes {
		data = append(append(data, nginxLine(n)...), '\n')
		n++
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("access-%d.log", i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		nd := benchNode(b, func(cfg *config.Config) {
			cfg.Sources = map[string]config.Source{"nginx": {Type: "file", Paths: []string{path}, Parse: "nginx_combined"}}
		})
		waitLogs(b, nd.APIURL(), n)
		b.StopTimer()
		nd.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
