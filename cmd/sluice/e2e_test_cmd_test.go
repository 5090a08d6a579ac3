package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sluice test runs the example's test file; a wrong expectation fails with
// the difference and exit status 1.
func TestPipelineTestCommand(t *testing.T) {
	const example = "../../examples/streaming/sluice.yaml"
	out, err := exec.Command(binary, "test", "-c", example).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 passed, 0 failed") {
		t.Fatalf("sluice test on the example: %v\n%s", err, out)
	}
	wrong := filepath.Join(t.TempDir(), "wrong.test.yaml")
	os.WriteFile(wrong, []byte(`pipeline: revenue_per_minute
cases:
  - name: off by one
    input:
      - {event: purchase, event_time: "2026-11-25T10:00:10Z", country: DE, revenue: 2}
    expect:
      - {window_start: "2026-11-25T10:00:00Z", country: DE, purchases: 2, revenue: 2}
`), 0o644)
	out, err = exec.Command(binary, "test", "-c", example, wrong).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL  wrong.test.yaml: revenue_per_minute: off by one") || !strings.Contains(string(out), `"purchases":1`) {
		t.Fatalf("a failing case: %v\n%s", err, out)
	}
	os.WriteFile(wrong, []byte("pipeline: nope\ncases: []\n"), 0o644)
	if out, err = exec.Command(binary, "test", "-c", example, wrong).CombinedOutput(); err == nil || !strings.Contains(string(out), `no pipeline "nope"`) {
		t.Fatalf("an unknown pipeline: %v\n%s", err, out)
	}
}
