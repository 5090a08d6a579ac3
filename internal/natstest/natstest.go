// Package natstest runs a real nats-server, a separate process, for tests of
// `bus.url: nats://…`.
//
// The server is $SLUICE_NATS_SERVER, else the `nats-server` on PATH
// (Debian's package nats-server, which CI installs), else one built from the
// nats-server module in go.mod (so from the module cache, without network)
// once per test binary, which TestMain removes with RemoveBinary. Start runs
// it on free ports on 127.0.0.1 with JetStream on a file store; from 2.10 on
// the store fsyncs every write (sync_interval: always), as
// docs/operations.md asks of production. Either way what the server
// acknowledged survives its SIGKILL. When the server cannot be found, built
// or started, tests skip, unless CI=true or SLUICE_INTEGRATION=1, where that
// is a failure.
package natstest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
	// syncAlways: the server takes sync_interval (2.10 on; Debian
	// bookworm's 2.9 does not, and writes each message to the OS before
	// acknowledging it, which a SIGKILL of the server does not lose).
	syncAlways bool
}

// Required says whether a server that cannot be built or started is a
// failure rather than a reason to skip: in CI (CI=true) and with
// SLUICE_INTEGRATION=1.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("SLUICE_INTEGRATION") == "1"
}

// unavailable skips the test, or fails it when Required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("external NATS server unavailable (required with CI=true or SLUICE_INTEGRATION=1): %s", msg)
	}
	t.Skipf("external NATS server unavailable (set SLUICE_INTEGRATION=1 to make this a failure): %s", msg)
}

// Binary returns the path of the nats-server the tests run:
// $SLUICE_NATS_SERVER, else the one on PATH, else one built once per test
// binary.
func Binary(t testing.TB) string {
	t.Helper()
	bin.once.Do(func() {
		defer func() {
			if bin.err == nil {
				bin.syncAlways, bin.err = hasSyncInterval(bin.path)
			}
		}()
		if p := os.Getenv("SLUICE_NATS_SERVER"); p != "" {
			bin.path = p
			return
		}
		if p, err := exec.LookPath("nats-server"); err == nil {
			bin.path = p
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			bin.err = fmt.Errorf("go command not found: %w", err)
			return
		}
		bin.dir, err = os.MkdirTemp("", "sluice-nats-server-")
		if err != nil {
			bin.err = err
			return
		}
		path := filepath.Join(bin.dir, "nats-server")
		cmd := exec.Command(goBin, "build", "-o", path, "github.com/nats-io/nats-server/v2")
		if out, err := cmd.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("go build github.com/nats-io/nats-server/v2: %v\n%s", err, out)
			return
		}
		bin.path = path
	})
	if bin.err != nil {
		unavailable(t, "%v", bin.err)
	}
	return bin.path
}

// hasSyncInterval tells whether a nats-server is 2.10 or later, from its
// --version ("nats-server: v2.9.10").
func hasSyncInterval(path string) (bool, error) {
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("%s --version: %v\n%s", path, err, out)
	}
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), " v")
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false, fmt.Errorf("%s --version: no version in %q", path, out)
	}
	return major > 2 || major == 2 && minor >= 10, nil
}

// RemoveBinary deletes the binary Binary built; TestMain calls it after
// the tests ran.
func RemoveBinary() {
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
}

// Server is a running nats-server process.
type Server struct {
	bin      string
	conf     string
	port     int
	httpPort int

	cmd    *exec.Cmd
	logs   *logBuffer
	exited chan struct{}
}

// Start runs a server with its store in a temporary directory; it is killed
// at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	path := Binary(t)
	dir := t.TempDir()
	var err error
	for range 3 { // a free port may be taken between Close and listen
		s := &Server{bin: path, port: freePort(t), httpPort: freePort(t), conf: filepath.Join(dir, "nats.conf")}
		sync := ""
		if bin.syncAlways {
			sync = "sync_interval: always"
		}
		conf := fmt.Sprintf(`server_name: sluice_test
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  %s
}
`, s.port, s.httpPort, filepath.Join(dir, "store"), sync)
		if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if err = s.Restart(); err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		if !errors.Is(err, errExited) {
			break
		}
	}
	unavailable(t, "%v", err)
	return nil
}

// URL is the server's client URL, nats://127.0.0.1:PORT.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Logs is what the server printed since it last started.
func (s *Server) Logs() string { return s.logs.String() }

var errExited = errors.New("nats-server exited at start")

// Restart starts the server again after Kill, on the same ports and store,
// and waits until it is healthy (JetStream ready).
func (s *Server) Restart() error {
	s.logs = &logBuffer{}
	s.cmd = exec.Command(s.bin, "-c", s.conf)
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	health := fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("%w:\n%s", errExited, s.logs)
		default:
		}
		resp, err := client.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("nats-server not healthy within 20s:\n%s", s.logs)
}

// Kill ends the server with SIGKILL, like a crash or power loss of its
// host, and waits until it is gone.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logBuffer is the server's output, written by the process while a test
// reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
