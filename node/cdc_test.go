package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/server"
)

// cdcDatabase is a test's schema with the given tables, and the name of
// its slot and publication (dropped when the test ends).
func cdcDatabase(t testing.TB, setup ...string) (url string, conn *pgx.Conn, name string) {
	t.Helper()
	url = pgtest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name = "sluice_node_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("drop slot %s: %v", name, err)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+name); err != nil {
			t.Errorf("drop publication %s: %v", name, err)
		}
		conn.Close(ctx)
	})
	pgExec(t, conn, setup...)
	return url, conn, name
}

func pgExec(t testing.TB, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func cdcSource(url, name string, tables ...string) func(*config.Config) {
	return func(cfg *config.Config) {
		cfg.Sources = map[string]config.Source{"orders_cdc": {Type: "postgres_cdc", URL: url, Tables: tables,
			Stream: "orders_cdc", Slot: name, Publication: name}}
		cfg.Streams["orders_cdc"] = config.Stream{Retention: config.Duration(time.Hour)}
	}
}

// A postgres_cdc source in a real node: the changes of two tables land in
// the lake table of its stream with their before and after images (JSON),
// in commit order; changes made while sluice is stopped all arrive, in
// commit order, when it starts again on the same data dir, and none twice.
func TestCDCToTheLakeAcrossARestart(t *testing.T) {
	url, conn, name := cdcDatabase(t,
		`CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), placed timestamptz)`,
		`ALTER TABLE orders REPLICA IDENTITY FULL`,
		`CREATE TABLE items (order_id int, sku text, qty int, PRIMARY KEY (order_id, sku))`)
	data := t.TempDir()
	n := startNode(t, data, cdcSource(url, name, "orders", "items"))
	running := true
	defer func() {
		if running {
			n.Stop()
		}
	}()
	api := n.APIURL()

	pgExec(t, conn, `BEGIN`,
		`INSERT INTO orders VALUES (1, 'ann', 10.50, '2026-11-25 10:00:00+00')`,
		`INSERT INTO items VALUES (1, 'tea', 2), (1, 'cup', 1)`,
		`COMMIT`,
		`UPDATE orders SET amount = 12.00 WHERE id = 1`,
		`DELETE FROM items WHERE sku = 'cup'`)
	const q = `SELECT "table", op, seq, before->>'amount', after->>'amount', after->>'sku', before->>'sku', after->>'placed'
		FROM orders_cdc ORDER BY commit_time, seq`
	waitFor(t, api, q, "[[orders insert 1 <nil> 10.5 <nil> <nil> 2026-11-25T10:00:00.000000Z] [items insert 2 <nil> <nil> tea <nil> <nil>] "+
		"[items insert 3 <nil> <nil> cup <nil> <nil>] [orders update 1 10.5 12.0 <nil> <nil> 2026-11-25T10:00:00.000000Z] [items delete 1 <nil> <nil> <nil> cup <nil>]]")
	res := query(t, api, `SELECT typeof(before), typeof(after), typeof(commit_time), typeof(xid), typeof(lsn) FROM orders_cdc LIMIT 1`)
	if got := fmt.Sprint(res.Rows); got != "[[JSON JSON TIMESTAMP BIGINT VARCHAR]]" {
		t.Errorf("column types %s", got)
	}

	// Stopped: the slot keeps what happens meanwhile.
	running = false
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 40; i++ {
		pgExec(t, conn, fmt.Sprintf(`INSERT INTO orders VALUES (%d, 'c%d', %d, now())`, i, i, i),
			fmt.Sprintf(`UPDATE orders SET amount = amount + 1 WHERE id = %d`, i-1))
	}
	pgExec(t, conn, `DELETE FROM orders WHERE id > 30`)

	n = startNode(t, data, cdcSource(url, name, "orders", "items"))
	defer n.Stop()
	api = n.APIURL()
	waitFor(t, api, `SELECT count(*), count(DISTINCT lsn || '/' || seq) FROM orders_cdc`, "[[93 93]]")
	// In commit order: inserts of 2…40, each followed by the update of the
	// order before it, then the ten deletes in one transaction.
	res = query(t, api, `SELECT op, coalesce(after->>'id', before->>'id'), (after->>'amount')::INT FROM orders_cdc WHERE "table" = 'orders' ORDER BY commit_time, seq OFFSET 2`)
	var got []string
	for _, r := range res.Rows {
		got = append(got, fmt.Sprint(r...))
	}
	var want []string
	for i := 2; i <= 40; i++ {
		want = append(want, fmt.Sprintf("insert%d%d", i, i), fmt.Sprintf("update%d%d", i-1, i))
	}
	want[1] = "update113" // order 1 was at 12
	for i := 31; i <= 40; i++ {
		want = append(want, fmt.Sprintf("delete%d<nil>", i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("changes after the restart:\n got  %v\n want %v", got, want)
	}
}

// A source whose table does not exist keeps sluice from starting, and says
// which table and where.
func TestCDCMissingTableStopsTheStart(t *testing.T) {
	url, _, name := cdcDatabase(t)
	cfg := config.Default()
	cfg.ApplyOverrides(t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	cdcSource(url, name, "orders")(cfg)
	n, err := node.Start(context.Background(), cfg, nil)
	if err == nil {
		n.Stop()
		t.Fatal("sluice started without the table")
	}
	if !strings.Contains(err.Error(), "source orders_cdc: table orders does not exist in database") {
		t.Errorf("error: %v", err)
	}
}

// BenchmarkCDCToLake measures changes/s from PostgreSQL to rows queryable
// in the lake table of the stream, through a whole node: each iteration
// inserts 500,000 rows (ten transactions) while sluice is stopped, then
// times a fresh node from its start until the table holds them all. Run:
//
//	SLUICE_POSTGRES_URL=postgres://… go test ./node -run '^$' -bench CDCToLake -benchtime 1x
func BenchmarkCDCToLake(b *testing.B) {
	const rows, perTx = 500_000, 50_000
	url, conn, name := cdcDatabase(b, `CREATE TABLE bench (id bigint PRIMARY KEY, customer text, sku text, qty int, amount numeric(10,2), status text, placed timestamptz)`)
	// The slot must exist before the rows are written.
	benchNode(b, cdcSource(url, name, "bench")).Stop()
	next := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range rows / perTx {
			pgExec(b, conn, fmt.Sprintf(`INSERT INTO bench SELECT i, 'customer ' || (i %% 9973), 'sku-' || (i %% 517), 1 + i %% 5, (i %% 10000) / 100.0,
				'placed', timestamptz '2026-11-25 10:00:00+00' + i * interval '1 ms' FROM generate_series(%d, %d) i`, next, next+perTx-1))
			next += perTx
		}
		b.StartTimer()
		nd := benchNode(b, cdcSource(url, name, "bench"))
		client := &server.Client{URL: nd.APIURL()}
		for deadline := time.Now().Add(10 * time.Minute); ; {
			res, err := client.SQL(context.Background(), "SELECT count(*) FROM orders_cdc")
			if err == nil && fmt.Sprint(res.Rows) == fmt.Sprintf("[[%d]]", rows) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("orders_cdc did not reach %d rows", rows)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.StopTimer()
		nd.Stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "changes/s")
}
