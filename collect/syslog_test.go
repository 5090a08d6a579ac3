package collect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

func frames(t *testing.T, stream string) (msgs []string, cuts []bool, err error) {
	t.Helper()
	r := bufio.NewReaderSize(strings.NewReader(stream), 64<<10)
	for {
		m, cut, err := readFrame(r)
		if len(m) > 0 {
			msgs = append(msgs, string(m))
			cuts = append(cuts, cut)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return msgs, cuts, err
		}
	}
}

func TestReadFrame(t *testing.T) {
	long := strings.Repeat("x", maxSyslogMessage+10)
	cases := []struct {
		name   string
		stream string
		want   []string
		cut    []bool
		err    bool
	}{
		{"octet counting", "11 <13>1 - a b12 <13>1 - - cd", []string{"<13>1 - a b", "<13>1 - - cd"}, []bool{false, false}, false},
		{"newline", "<13>one\n<13>two\r\n\n<13>three", []string{"<13>one", "<13>two", "<13>three"}, []bool{false, false, false}, false},
		{"mixed", "5 <1>ab<2>line\n", []string{"<1>ab", "<2>line"}, []bool{false, false}, false},
		{"long line is cut, the next still read", long + "\n<1>next\n", []string{long[:maxSyslogMessage], "<1>next"}, []bool{true, false}, false},
		{"long octet frame is cut", "65546 " + long + "<1>after\n", []string{long[:maxSyslogMessage], "<1>after"}, []bool{true, false}, false},
		{"truncated octet frame", "20 <1>short", nil, nil, true},
		{"bad count", "9999999999999999999999 x", nil, nil, true},
	}
	for _, c := range cases {
		msgs, cuts, err := frames(t, c.stream)
		if (err != nil) != c.err {
			t.Errorf("%s: err %v", c.name, err)
			continue
		}
		if c.err {
			continue
		}
		if strings.Join(msgs, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: got %d messages %.60q", c.name, len(msgs), msgs)
		}
		for i := range cuts {
			if i < len(c.cut) && cuts[i] != c.cut[i] {
				t.Errorf("%s: message %d cut=%v", c.name, i, cuts[i])
			}
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	for _, s := range []string{"11 <13>1 - a b", "<13>one\n<13>two\r\n", "5 <1>ab<2>line\n", "0 x", "\n\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 64<<10)
		total := 0
		for i := 0; i < len(data)+1; i++ {
			m, _, err := readFrame(r)
			if len(m) > maxSyslogMessage {
				t.Fatalf("message of %d bytes", len(m))
			}
			total += len(m)
			if err != nil {
				break
			}
		}
		if total > len(data) {
			t.Fatalf("read %d bytes of messages from %d", total, len(data))
		}
	})
}

// BenchmarkSyslogTCP measures syslog over TCP (octet counting, one
// connection) into the durable raw stream: MiB/s of raw log.
//
//	go test ./collect -run '^$' -bench SyslogTCP
func BenchmarkSyslogTCP(b *testing.B) {
	var msgs []byte
	n := 0
	for len(msgs) < 16<<20 {
		m := fmt.Sprintf(`<134>1 2026-11-25T10:00:%02d.%03dZ web-%d nginx 4242 access - 203.0.113.%d - - [25/Nov/2026:10:00:00 +0000] "GET /products/%d?ref=home HTTP/1.1" 200 %d "https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"`,
			n%60, n%1000, n%8, n%250, n, 1000+n%9000)
		msgs = fmt.Appendf(msgs, "%d %s", len(m), m)
		n++
	}
	b.SetBytes(int64(len(msgs)))
	for b.Loop() {
		b.StopTimer()
		bs, err := bus.Open(context.Background(), bus.Options{Dir: b.TempDir(), Streams: map[string]bus.StreamConfig{sluice.StreamRaw: {}}, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		c := New(Options{Store: bs, Logger: quiet})
		s, err := c.ListenSyslog("tcp://127.0.0.1:0", nil)
		if err != nil {
			b.Fatal(err)
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.Addr(), "tcp://"))
		if err != nil {
			b.Fatal(err)
		}
		before := testutil.ToFloat64(syslogMessages)
		b.StartTimer()
		if _, err := conn.Write(msgs); err != nil {
			b.Fatal(err)
		}
		conn.Close()
		// Wait until every message was read and queued; Close on the
		// collector returns once all queued are stored.
		for testutil.ToFloat64(syslogMessages) < before+float64(n) {
			time.Sleep(time.Millisecond)
		}
		s.Close()
		c.Close()
		b.StopTimer()
		info, _ := bs.Info(context.Background(), sluice.StreamRaw)
		if info.Msgs == 0 {
			b.Fatal("nothing stored")
		}
		bs.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
