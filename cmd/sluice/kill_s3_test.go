package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/s3test"
)

// Issue 4, acceptance 1: the spine's kill -9 test with the lake on S3
// (versitygw). Each flush uploads one object per partition (hours 09, 10
// and 11). A proxy in front of versitygw holds the upload of an hr=11
// object, so the first kill lands in the middle of a flush whose hr=09 and
// hr=10 objects are already stored and whose commit is not: the restarted
// sluice must rewrite that flush into the same names. Two more kills land
// wherever they land. Every acknowledged event ends in the lake exactly
// once.
func TestKillNineDuringMultiPartitionUploadToS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t) // the children inherit it
	target, _ := url.Parse(srv.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var armed atomic.Bool
	held := make(chan string, 1)
	release := make(chan struct{}) // closed once sluice is dead
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The Host header stays the proxy's: it is what the client signed.
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/events/dt=2026-11-25/hr=11/") && armed.CompareAndSwap(true, false) {
			held <- r.URL.Path
			select { // never stored: the client dies first
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	data := t.TempDir()
	collector, api := freePort(t), freePort(t)
	lakeURL := fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&use_path_style=true", srv.Bucket, srv.Prefix, front.URL, s3test.Region)
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(cfgFile, fmt.Appendf(nil, "lake:\n  url: %q\n  flush_interval: 150ms\n  max_rows: 3000\n", lakeURL), 0o644)
	p := startSluice(t, data, collector, api, "-c", cfgFile)

	rc := startClients(collector, 4, 30, threeHours)

	time.Sleep(700 * time.Millisecond)
	armed.Store(true)
	select {
	case key := <-held:
		t.Logf("holding the upload of %s; kill -9 after %d acknowledged events", key, rc.acked.Load())
	case <-time.After(30 * time.Second):
		t.Fatalf("no upload of an hr=11 object within 30s:\n%s", p.log)
	}
	p.kill(t)
	releaseOnce.Do(func() { close(release) })
	p = startSluice(t, data, collector, api, "-c", cfgFile)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.log.String(), "replaying an unfinished flush"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restart did not replay the flush cut short:\n%s", p.log)
		}
	}
	for kill := range 2 {
		time.Sleep(time.Duration(600+kill*300) * time.Millisecond)
		p.kill(t)
		t.Logf("kill -9 #%d after %d acknowledged events", kill+2, rc.acked.Load())
		p = startSluice(t, data, collector, api, "-c", cfgFile)
	}
	time.Sleep(time.Second)
	want, err := rc.stop()
	if err != nil {
		t.Fatalf("client got a non-retryable answer: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows := sql(t, data, "SELECT count(*), count(DISTINCT event_id), count(DISTINCT hr) FROM events")
		if fmt.Sprint(rows) == fmt.Sprintf("[[%d %d 3]]", want, want) {
			break
		}
		if time.Now().After(deadline) {
			m := p.metrics()
			p.kill(t)
			t.Fatalf("acknowledged %d events; events holds %v\n%s", want, rows, m)
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.stop(t)
	out, err := exec.Command(binary, "lake", "verify", "--lake", srv.URL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok: 1 tables") {
		t.Fatalf("sluice lake verify: %v\n%s", err, out)
	}
	t.Logf("all %d acknowledged events are in the S3 lake exactly once; %s", want, bytes.TrimSpace(out))
}

// threeHours is a batch of size events spread over three hours of event time.
func threeHours(prefix string, n, size int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range size {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"event_id":"%s-%d-%d","event":"page_view","event_time":"2026-11-25T%02d:%02d:00Z","price":%d}`,
			prefix, n, i, 9+i%3, i%60, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}
