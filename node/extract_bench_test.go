package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/server"
)

// BenchmarkExtractToLake measures rows/s of an extract job from PostgreSQL
// into the lake, through a whole node: each iteration is a run of a
// snapshot of 500,000 rows (the table of BenchmarkCDCToLake), from its
// submission until the run succeeded, that is until every row is committed
// to the lake and visible to SQL. Run:
//
//	SLUICE_POSTGRES_URL=postgres://… go test ./node -run '^$' -bench ExtractToLake -benchtime 3x
func BenchmarkExtractToLake(b *testing.B) {
	const rows = 500_000
	url := pgtest.URL(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	pgExec(b, conn, `CREATE TABLE bench (id bigint PRIMARY KEY, customer text, sku text, qty int, amount numeric(10,2), status text, placed timestamptz)`,
		fmt.Sprintf(`INSERT INTO bench SELECT i, 'customer ' || (i %% 9973), 'sku-' || (i %% 517), 1 + i %% 5, (i %% 10000) / 100.0,
			'placed', timestamptz '2026-11-25 10:00:00+00' + i * interval '1 ms' FROM generate_series(1, %d) i`, rows),
		`ANALYZE bench`)
	path := filepath.Join(b.TempDir(), "sluice.yaml")
	os.WriteFile(path, fmt.Appendf(nil, "jobs:\n  copy_bench:\n    extract: {from: %q, table: bench, key: id}\n    output: {lake: bench}\n    retries: 0\n", url), 0o644)
	jc, err := config.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	n := benchNode(b, func(c *config.Config) { c.Jobs = jc.Jobs })
	defer n.Stop()
	c := &server.Client{URL: n.APIURL()}
	var extract time.Duration
	b.ResetTimer()
	for i := range b.N {
		ans, err := c.SubmitRun(ctx, "copy_bench", server.RunRequest{Force: i > 0})
		if err != nil {
			b.Fatal(err)
		}
		var r jobs.Run
		for {
			if r, err = c.GetRun(ctx, ans.Run.ID); err != nil {
				b.Fatal(err)
			}
			if r.State != jobs.StateRunning && r.State != jobs.StateRetrying {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if r.State != jobs.StateSucceeded {
			b.Fatalf("run: %s %s", r.State, r.Error)
		}
		extract += r.Ended.Sub(r.Created)
		if i == 0 {
			b.Log(r.Attempts[0].Log)
		}
	}
	b.StopTimer()
	res, err := c.SQL(ctx, "SELECT count(*), count(DISTINCT id) FROM bench")
	if err != nil || fmt.Sprint(res.Rows) != fmt.Sprintf("[[%d %d]]", rows*b.N, rows) {
		b.Fatalf("the lake holds %v, want %d copies of %d rows (%v)", res.Rows, b.N, rows, err)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/extract.Seconds(), "rows/s")
}
