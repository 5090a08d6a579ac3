package tail

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/nginxtest"
)

// TestRealNginx follows the access log of a real nginx through both kinds
// of rotation. It needs nginx (Debian: nginx-light); without it the test
// skips, unless SLUICE_INTEGRATION=1, where that is a failure.
func TestRealNginx(t *testing.T) {
	dir := t.TempDir()
	ngx := nginxtest.Start(t, dir)
	logs := filepath.Dir(ngx.AccessLog)
	b := newBus(t)
	o := options(b, dir, filepath.Join(logs, "*.log"))
	o.Parse = "nginx_combined"
	start(t, o)
	var want []string
	requests := func(phase string, n int) {
		for i := range n {
			p := fmt.Sprintf("/%s/%d", phase, i)
			want = append(want, p)
			ngx.Get(t, p)
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
	ngx.RotateByRename(t, filepath.Join(logs, "access.log.1"), func() {
		requests("between", 20) // still written to access.log.1
	})
	requests("renamed", 50)
	waitPaths()

	// Copy-truncate, after everything was read (lines written between the
	// copy and the truncation are lost by design of copy-truncate).
	ngx.RotateByCopyTruncate(t, filepath.Join(dir, "access.log.copy"))
	requests("truncated", 50)
	waitPaths()
	time.Sleep(400 * time.Millisecond)
	exactlyOnce(t, paths(), want)
}
