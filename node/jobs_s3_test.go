package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/s3test"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/server"
)

// Objects as targets: a job requires an object and writes one with the
// aws CLI; complete when the object exists.
func TestJobsObjectTargets(t *testing.T) {
	srv := s3test.Start(t)
	if _, err := exec.LookPath("aws"); err != nil {
		if os.Getenv("SLUICE_INTEGRATION") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("the aws CLI is missing: %v", err)
		}
		t.Skip("the aws CLI is missing (Debian awscli); set SLUICE_INTEGRATION=1 to make this a failure")
	}
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	obj := func(key string) string {
		return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&use_path_style=true", srv.Bucket, key, srv.Endpoint, s3test.Region)
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
jobs:
  upload:
    params: {date: date}
    retries: 0
    requires: [{file: '%s'}]
    shell: {command: 'echo "report {{.date}}" | aws --endpoint-url %s s3 cp - "$SLUICE_OUTPUT"'}
    output: {file: '%s'}
`, obj("in/{{.date}}"), srv.Endpoint, obj("out/{{.date}}.txt"))), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), withConfigFile(t, cfgFile))
	defer n.Stop()
	c := &server.Client{URL: n.APIURL()}
	ctx := context.Background()
	p := map[string]string{"date": "2026-11-01"}

	ans, err := c.SubmitRun(ctx, "upload", server.RunRequest{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateFailed || !strings.Contains(r.Error, "in/2026-11-01") || !strings.Contains(r.Error, "is missing") {
		t.Fatalf("without its input: %s %q", r.State, r.Error)
	}
	store, err := lake.OpenS3(ctx, fmt.Sprintf("s3://%s?endpoint=%s&region=%s&use_path_style=true", srv.Bucket, srv.Endpoint, s3test.Region))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "in/2026-11-01", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ans, err = c.SubmitRun(ctx, "upload", server.RunRequest{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateSucceeded {
		t.Fatalf("with its input: %s %q %+v", r.State, r.Error, r.Attempts)
	}
	if b, err := store.Get(ctx, "out/2026-11-01.txt"); err != nil || string(b) != "report 2026-11-01\n" {
		t.Fatalf("the output object: %q, %v", b, err)
	}
	if ans, err := c.SubmitRun(ctx, "upload", server.RunRequest{Params: p}); err != nil || !ans.Complete {
		t.Fatalf("a third time: %+v, %v", ans, err)
	}
}
