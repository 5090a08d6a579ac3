package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/s3test"
)

// SQL over a lake on S3 (versitygw): the warehouse reads the objects
// through its local cache, the same answers as from a directory; a
// compaction on S3 keeps them; a node started with an empty cache fetches
// what its views need again.
func TestSQLOverS3Lake(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	dir := t.TempDir()
	withS3 := func(c *config.Config) {
		c.Lake.URL = srv.URL
		c.Lake.MaxRows = 50 // several files per partition
		c.Lake.Compaction.Grace = config.Duration(time.Second)
	}
	n := startNode(t, dir, withS3)
	defer func() { n.Stop() }()
	api := n.APIURL()
	postHours(t, n.CollectorURL(), 0, 300)
	postHours(t, n.CollectorURL(), 300, 300)
	const want = "[[600 179700 2]]" // count, sum(n) over 0..599, hours
	q := "SELECT count(*), sum(n), count(DISTINCT hr) FROM events"
	waitFor(t, api, q, want)
	if _, err := os.Stat(filepath.Join(dir, "lake-cache", "events")); err != nil {
		t.Fatalf("no local cache of the S3 lake: %v", err)
	}

	// Both hours (2026-11-25) are long closed: one pass merges each into
	// one object.
	r, err := n.Compact(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Partitions != 2 || r.Rows != 600 {
		t.Fatalf("compaction on S3: %+v", r)
	}
	waitFor(t, api, q, want)
	time.Sleep(1100 * time.Millisecond)
	if r, err = n.Compact(context.Background(), time.Now()); err != nil || r.Finished != 2 {
		t.Fatalf("settling: %+v %v", r, err)
	}
	if keys := srv.Keys("lake/events/"); len(keys) != 2 {
		t.Fatalf("objects after compaction: %v", keys)
	}
	waitFor(t, api, q, want)
	n.Stop()

	// A fresh cache: the views fetch what they read.
	if err := os.RemoveAll(filepath.Join(dir, "lake-cache")); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, withS3)
	waitFor(t, n.APIURL(), q, want)
	waitFor(t, n.APIURL(), "SELECT hr, count(*) FROM events GROUP BY hr ORDER BY hr", "[[9 300] [10 300]]")
}
