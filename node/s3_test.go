package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/s3test"
	"github.com/sluice-data/sluice/lake"
)

// The lake on a real S3 server (versitygw, which checks signatures): events
// posted to the collector end up as hive-partitioned Parquet objects under
// the URL's prefix, listed by the aws CLI like any bucket; a restarted node
// goes on from the committed position without doubling a row.
func TestLakeOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	dir := t.TempDir()
	withS3 := func(c *config.Config) { c.Lake.URL = srv.URL }
	ctx := context.Background()
	store, err := lake.Open(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	n := startNode(t, dir, withS3)
	postHours(t, n.CollectorURL(), 0, 300)
	waitForLakeRows(t, store, "events", 300)
	n.Stop()

	// Started again on the same lake: the next rows follow the committed
	// ones, in new files.
	n = startNode(t, dir, withS3)
	postHours(t, n.CollectorURL(), 300, 200)
	waitForLakeRows(t, store, "events", 500)
	n.Stop()

	infos, problems, err := lake.Verify(ctx, store)
	if err != nil || len(problems) > 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}
	for _, ti := range infos {
		t.Logf("%s: %d files, committed through %d", ti.Table, len(ti.Files), ti.Committed)
	}

	// What any S3 client sees: the objects under the prefix, partitioned.
	keyRe := regexp.MustCompile(`^lake/events/dt=2026-11-25/hr=(09|10)/events-\d+-\d+\.parquet$`)
	hours := map[string]int{}
	for _, k := range srv.Keys("lake/events/") {
		m := keyRe.FindStringSubmatch(k)
		if m == nil {
			t.Errorf("unexpected object %s", k)
			continue
		}
		hours[m[1]]++
	}
	if hours["09"] == 0 || hours["10"] == 0 {
		t.Errorf("objects per hour: %v; want both hours", hours)
	}
	if keys := srv.Keys("lake/_sluice/commits/"); !strings.Contains(strings.Join(keys, " "), "lake/_sluice/commits/events.json") {
		t.Errorf("commit records: %q", keys)
	}

	// The aws CLI (Debian's awscli), signing with the same credentials.
	const aws = "/usr/bin/aws"
	_, err = os.Stat(aws)
	need(t, "the aws CLI (apt-get install awscli)", err)
	cmd := exec.Command(aws, "--endpoint-url", srv.Endpoint, "s3", "ls", "--recursive", "s3://"+srv.Bucket+"/"+srv.Prefix+"/")
	cmd.Env = append(os.Environ(), srv.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws s3 ls: %v\n%s", err, out)
	}
	listed := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line) // date time size key
		if len(f) == 4 && keyRe.MatchString(f[3]) {
			listed++
		}
	}
	if listed != hours["09"]+hours["10"] {
		t.Errorf("aws s3 ls lists %d Parquet files, the server holds %d:\n%s", listed, hours["09"]+hours["10"], out)
	}
}

// postHours posts n events with ids from first, spread over two hours of
// event time.
func postHours(t *testing.T, collector string, first, n int) {
	t.Helper()
	var body bytes.Buffer
	for i := first; i < first+n; i++ {
		json.NewEncoder(&body).Encode(map[string]any{
			"event_id": fmt.Sprintf("s3-%d", i), "event": "page_view", "n": i,
			"event_time": time.Date(2026, 11, 25, 9+i%2, i%60, 0, 0, time.UTC).Format(time.RFC3339),
		})
	}
	if code, msg := post(t, collector, "application/x-ndjson", body.Bytes()); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
}

// waitForLakeRows waits until the committed files of table hold rows rows.
func waitForLakeRows(t *testing.T, store lake.Store, table string, rows int64) {
	t.Helper()
	var got int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ti, err := lake.Inspect(context.Background(), store, table)
		if err != nil {
			t.Fatal(err)
		}
		got = 0
		for _, f := range ti.Files {
			if f.Live {
				got += f.Rows
			}
		}
		if got == rows {
			return
		}
	}
	t.Fatalf("%s holds %d rows in the lake, want %d", table, got, rows)
}
