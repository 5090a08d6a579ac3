// Package nginxtest runs a real nginx for tests that tail its access log:
// non-daemon, on a free port on 127.0.0.1, everything under one directory.
// It needs nginx (Debian: nginx-light); without it tests skip, unless
// SLUICE_INTEGRATION=1, where that is a failure.
package nginxtest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bin is where Debian installs nginx.
const Bin = "/usr/sbin/nginx"

// Server is a running nginx.
type Server struct {
	Addr      string // host:port
	Dir       string // its prefix: config, pid file, error log
	AccessLog string // the combined-format access log
	out       *strings.Builder
	client    *http.Client
}

// Start runs nginx with its access log at logs/access.log under dir; it is
// stopped at cleanup.
func Start(t *testing.T, dir string) *Server {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		if os.Getenv("SLUICE_INTEGRATION") == "1" {
			t.Fatalf("SLUICE_INTEGRATION=1 but nginx is missing (%v): apt-get install -y nginx-light", err)
		}
		t.Skip("nginx is not installed (apt-get install -y nginx-light); set SLUICE_INTEGRATION=1 to make this a failure")
	}
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String(), Dir: dir, AccessLog: filepath.Join(logs, "access.log"),
		out: &strings.Builder{}, client: &http.Client{Timeout: 5 * time.Second}}
	l.Close()
	// A non-root master runs its workers as itself; root must say so.
	userLine := ""
	if os.Geteuid() == 0 {
		userLine = "user root;"
	}
	conf := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 64; }
http {
  access_log %[3]s combined;
  client_body_temp_path %[2]s/tmp;
  proxy_temp_path %[2]s/tmp;
  fastcgi_temp_path %[2]s/tmp;
  uwsgi_temp_path %[2]s/tmp;
  scgi_temp_path %[2]s/tmp;
  server {
    listen %[4]s;
    location / { return 200 "ok\n"; }
  }
}
`, userLine, dir, s.AccessLog, s.Addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Bin, "-p", dir, "-c", confPath)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", s.Addr)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %s", s.Addr, s.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Get requests path; nginx logs it.
func (s *Server) Get(t *testing.T, path string) {
	t.Helper()
	resp, err := s.client.Get("http://" + s.Addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v\nnginx: %s", path, err, s.out)
	}
	resp.Body.Close()
}

// RotateByRename moves the access log to to (logrotate's create method),
// runs between while nginx still writes to the moved file, then has nginx
// reopen its log (SIGUSR1) and waits for the new file.
func (s *Server) RotateByRename(t *testing.T, to string, between func()) {
	t.Helper()
	if err := os.Rename(s.AccessLog, to); err != nil {
		t.Fatal(err)
	}
	if between != nil {
		between()
	}
	pid, err := os.ReadFile(filepath.Join(s.Dir, "nginx.pid"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(n, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(s.AccessLog); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not reopen %s", s.AccessLog)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RotateByCopyTruncate copies the access log to to and truncates it
// (logrotate's copytruncate). Lines written between the copy and the
// truncation are lost: that is the method's nature.
func (s *Server) RotateByCopyTruncate(t *testing.T, to string) {
	t.Helper()
	data, err := os.ReadFile(s.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.AccessLog, 0); err != nil {
		t.Fatal(err)
	}
}
