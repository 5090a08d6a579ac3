package main

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/s3test"
)

// The real binary with --lake s3://… on versitygw: `sluice up` archives to
// the bucket and `sluice lake verify|ls` read it back; a wrong bucket or
// secret stops either with a message that says which.
func TestLakeOnS3CLI(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t) // the children inherit it
	data := t.TempDir()
	p := startSluice(t, data, freePort(t), freePort(t), "--lake", srv.URL)
	client := &http.Client{Timeout: 10 * time.Second}
	for n := range 10 {
		if ok, err := postOnce(client, p.collector, batch("s3", n, 100)); err != nil || !ok {
			t.Fatalf("batch %d: ok=%v err=%v", n, ok, err)
		}
	}
	var out []byte
	var err error
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err = exec.Command(binary, "lake", "verify", "--lake", srv.URL).CombinedOutput()
		if err == nil && strings.Contains(string(out), "1000 rows") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice lake verify --lake %s: %v\n%s\nsluice: %s", srv.URL, err, out, p.log)
		}
	}
	p.stop(t)
	out, err = exec.Command(binary, "lake", "ls", "events", "--lake", srv.URL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "events/dt=2026-11-25/hr=10/events-") {
		t.Errorf("sluice lake ls events: %v\n%s", err, out)
	}
	// With no server, sluice sql reads the bucket through the local cache.
	out, err = exec.Command(binary, "sql", "--data", data, "--lake", srv.URL, "--format", "json", "SELECT count(*), count(DISTINCT event_id) FROM events").CombinedOutput()
	if err != nil || !strings.Contains(strings.Join(strings.Fields(string(out)), ""), `[[1000,1000]]`) {
		t.Errorf("sluice sql on the S3 lake without a server: %v\n%s", err, out)
	}
	if _, err := os.Stat(data + "/lake"); err == nil {
		t.Errorf("a lake directory was made in the data dir although the lake is on S3")
	}

	noBucket := srv.LakeURL("no-such-bucket", "lake")
	cmd := exec.Command(binary, "up", "--data", t.TempDir(), "--collector-addr", freePort(t), "--api-addr", freePort(t), "--lake", noBucket)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("sluice up --lake %s: %v\n%s", noBucket, err, out)
	}
	cmd = exec.Command(binary, "lake", "ls", "--lake", srv.URL)
	cmd.Env = append(os.Environ(), "AWS_SECRET_ACCESS_KEY=wrong")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "check AWS_SECRET_ACCESS_KEY") {
		t.Errorf("sluice lake ls with a wrong secret: %v\n%s", err, out)
	}
}
