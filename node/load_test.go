package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/server"
)

// A load job copies a lake table into a PostgreSQL database by COPY: the
// first run every hour of it, a run after nothing changed nothing, a run
// after a new hour arrived that hour.
func TestLoadJob(t *testing.T) {
	url := pgtest.URL(t)
	n := startNode(t, t.TempDir(), withJobs(t, fmt.Sprintf(`
jobs:
  load_events:
    load: {from: events, to: %q}
`, url)))
	defer n.Stop()
	api, coll := n.APIURL(), n.CollectorURL()
	c := &server.Client{URL: api}
	ctx := context.Background()
	send := func(hours ...int) {
		var b strings.Builder
		for _, h := range hours {
			for i := range 50 {
				fmt.Fprintf(&b, `{"event_id":"e%d-%d","event":"purchase","event_time":"2026-11-25T%02d:%02d:00Z","country":"DE","revenue":%d.5}`+"\n", h, i, h, i, i)
			}
		}
		if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
			t.Fatalf("post: %d %s", code, msg)
		}
	}
	run := func() jobs.Run {
		t.Helper()
		ans, err := c.SubmitRun(ctx, "load_events", server.RunRequest{})
		if err != nil {
			t.Fatal(err)
		}
		r := waitRun(t, c, ans.Run.ID)
		if r.State != jobs.StateSucceeded {
			t.Fatalf("load: %s %s\n%s", r.State, r.Error, r.Attempts[0].Log)
		}
		return r
	}
	pgCount := func() string {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n, hours int
		var revenue float64
		if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT hr), sum(revenue) FROM events").Scan(&n, &hours, &revenue); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(n, " ", hours, " ", revenue)
	}
	send(10, 11)
	waitFor(t, api, "SELECT count(*) FROM events", "[[100]]")
	if r := run(); !strings.Contains(r.Attempts[0].Log, "2 partitions (hours) loaded, 100 rows") {
		t.Errorf("first load:\n%s", r.Attempts[0].Log)
	}
	if got := pgCount(); got != "100 2 2500" {
		t.Fatalf("PostgreSQL's events: %s", got)
	}
	if r := run(); !strings.Contains(r.Attempts[0].Log, "0 partitions (hours) loaded, 0 rows") {
		t.Errorf("a load with nothing new:\n%s", r.Attempts[0].Log)
	}
	send(12)
	waitFor(t, api, "SELECT count(*) FROM events", "[[150]]")
	time.Sleep(100 * time.Millisecond)
	if r := run(); !strings.Contains(r.Attempts[0].Log, "1 partitions (hours) loaded, 50 rows") {
		t.Errorf("a load after a new hour:\n%s", r.Attempts[0].Log)
	}
	if got := pgCount(); got != "150 3 3750" {
		t.Fatalf("PostgreSQL's events: %s", got)
	}
}
