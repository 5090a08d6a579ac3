package collect

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice"
)

// maxSyslogMessage bounds one syslog message (RFC 5425 asks receivers to take
// at least 2 KiB, and 8 KiB or more is common); longer ones are cut there and
// flagged, so enrich turns them into size_violation bad rows.
const maxSyslogMessage = 64 << 10

// Syslog is a syslog listener: UDP (one message per datagram), or TCP and TLS
// (RFC 6587 octet counting or newline framing, told apart per message). Syslog has
// no acknowledgements, so messages are handed to the collector's group commit
// without waiting; when the bus cannot keep up, reading slows down. Messages
// that arrive together from one sender share a records payload (parse:
// syslog); enrich parses each.
type Syslog struct {
	c       *Collector
	source  string // the listen URL, recorded on every payload
	pc      net.PacketConn
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
}

// ListenSyslog starts a syslog listener on listen: "udp://host:port",
// "tcp://host:port", or "tls://host:port" (RFC 5425) with tlsConf.
func (c *Collector) ListenSyslog(listen string, tlsConf *tls.Config) (*Syslog, error) {
	u, err := url.Parse(listen)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("syslog listen %q: want udp://host:port or tcp://host:port", listen)
	}
	s := &Syslog{c: c, conns: map[net.Conn]struct{}{}}
	switch u.Scheme {
	case "udp":
		if s.pc, err = net.ListenPacket("udp", u.Host); err != nil {
			return nil, fmt.Errorf("syslog %s: %w", listen, err)
		}
		s.source = "udp://" + s.pc.LocalAddr().String()
		s.wg.Add(1)
		go s.serveUDP()
	case "tcp", "tls":
		if u.Scheme == "tls" && tlsConf == nil {
			return nil, fmt.Errorf("syslog %s: tls:// needs a certificate and key", listen)
		}
		if s.ln, err = net.Listen("tcp", u.Host); err != nil {
			return nil, fmt.Errorf("syslog %s: %w", listen, err)
		}
		if u.Scheme == "tls" {
			s.ln = tls.NewListener(s.ln, tlsConf)
		}
		s.source = u.Scheme + "://" + s.ln.Addr().String()
		s.wg.Add(1)
		go s.serveTCP()
	default:
		return nil, fmt.Errorf("syslog listen %q: the scheme must be udp, tcp or tls", listen)
	}
	return s, nil
}

// Addr is the listener's URL, with the port actually bound.
func (s *Syslog) Addr() string { return s.source }

// Close stops listening and waits for the readers; messages already read are
// in the collector's queue (Close the collector after this).
func (s *Syslog) Close() {
	s.mu.Lock()
	s.stopped = true
	if s.pc != nil {
		s.pc.Close()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Syslog) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	// Datagrams that arrive within udpGather of the first one waiting are
	// stored together, one records payload per sender.
	batches := map[string][]byte{}
	size := 0
	flush := func() {
		for host, body := range batches {
			s.storeRecords(body, host)
		}
		clear(batches)
		size = 0
	}
	for {
		if size > 0 {
			_ = s.pc.SetReadDeadline(time.Now().Add(udpGather))
		} else {
			_ = s.pc.SetReadDeadline(time.Time{})
		}
		n, addr, err := s.pc.ReadFrom(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				flush()
				continue
			}
			flush()
			if s.isStopped() {
				return
			}
			s.c.log.Warn("syslog: read", "source", s.source, "err", err)
			continue
		}
		host, _, _ := net.SplitHostPort(addr.String())
		msg := bytes.TrimRight(buf[:n], "\r\n")
		if len(msg) == 0 {
			continue
		}
		batches[host] = sluice.AppendRecord(batches[host], msg, false)
		if size += n; size >= syslogBatch {
			flush()
		}
	}
}

// udpGather is how long a UDP listener waits for more datagrams before it
// stores those it has.
const udpGather = 2 * time.Millisecond

func (s *Syslog) serveTCP() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.isStopped() {
				return
			}
			s.c.log.Warn("syslog: accept", "source", s.source, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveConn(conn)
	}
}

func (s *Syslog) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	r := bufio.NewReaderSize(conn, 256<<10)
	// Messages that arrive together travel together: one payload holds
	// what was read without waiting, up to syslogBatch bytes.
	var batch []byte
	for {
		msg, cut, err := readFrame(r)
		if len(msg) > 0 {
			batch = sluice.AppendRecord(batch, msg, cut)
		}
		if len(batch) > 0 && (err != nil || r.Buffered() == 0 || len(batch) >= syslogBatch) {
			s.storeRecords(batch, host)
			batch = nil
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !s.isStopped() {
				s.c.log.Warn("syslog: connection", "source", s.source, "peer", host, "err", err)
			}
			return
		}
	}
}

// readFrame reads one message from a TCP stream: "LEN SP MSG" (octet
// counting) when it starts with a digit, else up to the next newline.
func readFrame(r *bufio.Reader) (msg []byte, cut bool, err error) {
	first, err := r.Peek(1)
	if err != nil {
		return nil, false, err
	}
	if first[0] >= '1' && first[0] <= '9' {
		head, err := r.ReadString(' ')
		if err != nil {
			return nil, false, err
		}
		n, perr := strconv.Atoi(strings.TrimSuffix(head, " "))
		if perr != nil || n <= 0 {
			return nil, false, fmt.Errorf("bad octet count %q", head)
		}
		keep := min(n, maxSyslogMessage)
		msg = make([]byte, keep)
		if _, err := io.ReadFull(r, msg); err != nil {
			return nil, false, err
		}
		if n > keep {
			if _, err := r.Discard(n - keep); err != nil {
				return msg, true, err
			}
		}
		return msg, n > keep, nil
	}
	for {
		line, err := r.ReadSlice('\n')
		if len(msg)+len(line) > maxSyslogMessage {
			room := maxSyslogMessage - len(msg)
			msg = append(msg, line[:max(room, 0)]...)
			cut = true
		} else {
			msg = append(msg, line...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		msg = []byte(strings.TrimRight(string(msg), "\r\n"))
		if len(msg) == 0 && err == nil {
			continue // a blank line between messages
		}
		return msg, cut, err
	}
}

func (s *Syslog) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// syslogBatch bounds the messages of one TCP connection that share a payload.
const syslogBatch = 1 << 20

// storeRecords hands messages of one sender, framed as records, to the
// collector's group commit; enrich parses each as syslog.
func (s *Syslog) storeRecords(body []byte, ip string) {
	n := 0
	_ = sluice.ReadRecords(body, func([]byte, bool) error { n++; return nil })
	s.enqueue(&pending{
		payload: sluice.Payload{
			ReceivedAt: time.Now().UTC(), Collector: "syslog", Path: s.source, ContentType: sluice.ContentTypeRecords,
			IP: ip, Body: body, Headers: map[string]string{sluice.HeaderParse: sluice.ParseSyslog, sluice.HeaderSource: s.source},
		},
		events: n,
		done:   make(chan error, 1),
	}, n)
}

func (s *Syslog) enqueue(p *pending, messages int) {
	s.c.mu.RLock()
	defer s.c.mu.RUnlock()
	if s.c.closed {
		s.c.log.Warn("syslog: messages arrived after shutdown began; not stored", "source", s.source, "peer", p.payload.IP, "messages", messages)
		return
	}
	syslogMessages.Add(float64(messages))
	s.c.queue <- p
}
