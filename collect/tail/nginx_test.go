package tail

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

const nginxBin = "/usr/sbin/nginx"

// TestRealNginx follows the access log of a real nginx through both kinds
// of rotation. It needs nginx (Debian: nginx-light); without it the test
// skips, unless SLUICE_INTEGRATION=1, where that is a failure.
func TestRealNginx(t *testing.T) {
	if _, err := os.Stat(nginxBin); err != nil {
		if os.Getenv("SLUICE_INTEGRATION") == "1" {
			t.Fatalf("SLUICE_INTEGRATION=1 but nginx is missing (%v): apt-get install -y nginx-light", err)
		}
		t.Skip("nginx is not installed (apt-get install -y nginx-light); set SLUICE_INTEGRATION=1 to make this a failure")
	}
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// A non-root master runs its workers as itself; root must say so.
	userLine := ""
	if os.Geteuid() == 0 {
		userLine = "user root;"
	}
	access := filepath.Join(logs, "access.log")
	conf := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 64; }
http {
  access_log %s combined;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  server {
    listen %s;
    location / { return 200 "ok\n"; }
  }
}
`, userLine, dir, dir, access, dir, dir, dir, dir, dir, addr)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-p", dir, "-c", confPath)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
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
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) {
		t.Helper()
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v\nnginx: %s", path, err, out)
		}
		resp.Body.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %s", addr, out)
		}
		time.Sleep(20 * time.Millisecond)
	}

	b := newBus(t)
	o := options(b, dir, filepath.Join(logs, "*.log"))
	o.Parse = "nginx_combined"
	start(t, o)
	var want []string
	requests := func(phase string, n int) {
		for i := range n {
			p := fmt.Sprintf("/%s/%d", phase, i)
			want = append(want, p)
			get(p)
		}
	}
	paths := func() []string {
		var ps []string
		for _, r := range stored(t, b) {
			if f := strings.Fields(r.text); len(f) > 6 {
				ps = append(ps, f[6])
			}
		}
		return ps
	}
	waitPaths := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(paths()) < len(want) {
			if time.Now().After(deadline) {
				t.Fatalf("stored %d of %d requests", len(paths()), len(want))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	requests("before", 50)
	waitPaths()

	// Rotation by rename: mv, then USR1 makes nginx reopen its logs.
	if err := os.Rename(access, filepath.Join(logs, "access.log.1")); err != nil {
		t.Fatal(err)
	}
	requests("between", 20) // still written to access.log.1
	pid, err := os.ReadFile(filepath.Join(dir, "nginx.pid"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(n, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(access); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not reopen %s", access)
		}
		time.Sleep(20 * time.Millisecond)
	}
	requests("renamed", 50)
	waitPaths()

	// Copy-truncate, after everything was read (lines written between the
	// copy and the truncation are lost by design of copy-truncate).
	data, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "access.log.copy"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(access, 0); err != nil {
		t.Fatal(err)
	}
	requests("truncated", 50)
	waitPaths()
	time.Sleep(400 * time.Millisecond)
	exactlyOnce(t, paths(), want)
}
