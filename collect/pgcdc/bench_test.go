package pgcdc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkCDC measures changes/s from PostgreSQL's WAL to the durable bus:
// each iteration inserts benchRows rows (in transactions of benchTx rows)
// while the source is stopped, then times a source catching up until every
// change is stored on the stream (fsynced). Run:
//
//	SLUICE_POSTGRES_URL=postgres://… go test ./collect/pgcdc -run '^$' -bench CDC -benchtime 3x
//
// PostgreSQL runs on the same machine; its walsender decodes the WAL
// (pgoutput) while the source turns rows into JSON lines.
func BenchmarkCDC(b *testing.B) {
	const benchRows, benchTx = 500_000, 50_000
	d := newDatabase(b, `CREATE TABLE bench (id bigint PRIMARY KEY, customer text, sku text, qty int, amount numeric(10,2), status text, placed timestamptz)`)
	bs := newBus(b)
	ctx := context.Background()
	stored := func() int { return int(testutil.ToFloat64(cdcChanges.WithLabelValues("orders_cdc"))) }
	next := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, err := New(d.options(bs, "bench"))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		for tx := 0; tx < benchRows/benchTx; tx++ {
			d.exec(b, fmt.Sprintf(`INSERT INTO bench SELECT i, 'customer ' || (i %% 9973), 'sku-' || (i %% 517), 1 + i %% 5, (i %% 10000) / 100.0,
				'placed', timestamptz '2026-11-25 10:00:00+00' + i * interval '1 ms' FROM generate_series(%d, %d) i`, next, next+benchTx-1))
			next += benchTx
		}
		want := stored() + benchRows
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- s.Run(runCtx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for stored() < want {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d changes stored after 10 minutes", stored()-want+benchRows, benchRows)
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "changes/s")
}
