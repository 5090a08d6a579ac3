package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/server"
)

// Issue 4, acceptance 3: a partition of 1,000 small files is compacted while
// queries run through the SQL API; every query returns the same count and
// sum, and afterwards the partition has one file.
func TestCompactionUnderQueries(t *testing.T) {
	data := t.TempDir()
	n := startNode(t, data, func(c *config.Config) {
		c.Lake.MaxRows = 10
		c.Lake.FlushInterval = config.Duration(100 * time.Millisecond)
		c.Lake.Compaction.Interval = config.Duration(time.Hour) // passes are started by the test
		c.Lake.Compaction.Grace = config.Duration(3 * time.Second)
	})
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	store, err := lake.NewDir(data + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	partition := "events/" + lake.PartitionDir("events", hour)[len("events/"):]
	files := func() int {
		t.Helper()
		fs, err := lake.LiveFiles(context.Background(), store, "events")
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, f := range fs {
			if strings.HasPrefix(f.Key, partition+"/") {
				c++
			}
		}
		return c
	}

	// Batches of 10 events in one hour, one request at a time: about one
	// file per request (lake.max_rows: 10), until the partition holds 1,000.
	sent, sum := 0, 0
	for files() < 1000 && sent < 50000 {
		for range 100 {
			var b strings.Builder
			b.WriteByte('[')
			for i := range 10 {
				if i > 0 {
					b.WriteByte(',')
				}
				sent++
				sum += sent % 97
				fmt.Fprintf(&b, `{"event":"buy","event_id":"e%d","event_time":%q,"price":%d}`, sent, hour.Add(time.Duration(sent)*time.Millisecond).Format(time.RFC3339Nano), sent%97)
			}
			b.WriteByte(']')
			if code, msg := post(t, coll, "application/json", []byte(b.String())); code != 200 {
				t.Fatalf("post: %d %s", code, msg)
			}
		}
		waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", sent))
	}
	before := files()
	if before < 1000 {
		t.Fatalf("only %d files after %d events", before, sent)
	}
	want := fmt.Sprintf("[[%d %d]]", sent, sum)
	waitFor(t, api, "SELECT count(*), sum(price) FROM events", want)
	// The catalog's statistics, from the files' footers.
	stats := "SELECT files, rows, partitions, first_hour = last_hour FROM sluice_tables WHERE table_name = 'events'"
	waitFor(t, api, stats, fmt.Sprintf("[[%d %d 1 true]]", before, sent))

	// Two clients query without pause while the partition is compacted and
	// its old files are deleted.
	ctx, stop := context.WithCancel(context.Background())
	var queries atomic.Int64
	var wrong sync.Map
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &server.Client{URL: api}
			for ctx.Err() == nil {
				res, err := c.SQL(context.Background(), "SELECT count(*), sum(price) FROM events")
				queries.Add(1)
				if err != nil {
					wrong.Store("error: "+err.Error(), true)
				} else if got := fmt.Sprint(res.Rows); got != want {
					wrong.Store(got, true)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	r, err := n.Compact(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Partitions != 1 || r.Inputs != before || r.Rows != int64(sent) {
		t.Errorf("compaction report %+v; want 1 partition, %d files, %d rows", r, before, sent)
	}
	duringSwap := queries.Load()
	time.Sleep(3500 * time.Millisecond) // the grace period
	r, err = n.Compact(context.Background(), time.Now())
	if err != nil || r.Finished != 1 || r.Partitions != 0 {
		t.Errorf("second pass %+v (%v); want the first one settled and nothing else", r, err)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	wrong.Range(func(k, _ any) bool {
		t.Errorf("a query during compaction returned %v, want %s", k, want)
		return true
	})
	if q := queries.Load(); duringSwap < 2 || q-duringSwap < 4 {
		t.Errorf("only %d queries ran before and %d after the swap", duringSwap, q-duringSwap)
	}
	t.Logf("%d events, %d files merged into 1; %d queries during compaction all answered %s", sent, before, queries.Load(), want)
	left, err := store.List(context.Background(), partition+"/")
	if err != nil || len(left) != 1 || !strings.HasSuffix(left[0], ".compacted.parquet") {
		t.Fatalf("partition after compaction: %v %v", left, err)
	}
	waitFor(t, api, "SELECT count(*), sum(price) FROM events", want)
	waitFor(t, api, stats, fmt.Sprintf("[[1 %d 1 true]]", sent))
}
