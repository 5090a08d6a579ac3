package collect

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
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
