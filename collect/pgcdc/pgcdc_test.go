package pgcdc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/internal/pgtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const stream = "orders_cdc"

func openBus(t testing.TB, dir string) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{Dir: dir, Logger: quiet, Streams: map[string]bus.StreamConfig{stream: {Retention: time.Hour}}})
	if err != nil {
		t.Fatalf("open bus on %s: %v", dir, err)
	}
	return b
}

func newBus(t testing.TB) *bus.Bus {
	t.Helper()
	b := openBus(t, t.TempDir())
	t.Cleanup(func() { b.Close() })
	return b
}

// database is a test's own schema on the test server, and a connection to
// it for making changes.
type database struct {
	url  string
	conn *pgx.Conn
	name string // unique, for the slot and publication
}

func newDatabase(t testing.TB, setup ...string) *database {
	t.Helper()
	url := pgtest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	d := &database{url: url, conn: conn, name: "sluice_test_" + hex.EncodeToString(b)}
	t.Cleanup(func() {
		// The walsender of a stopped source may take a moment to go.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, d.name)
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("drop slot %s: %v", d.name, err)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+d.name); err != nil {
			t.Errorf("drop publication %s: %v", d.name, err)
		}
		conn.Close(ctx)
	})
	d.exec(t, setup...)
	return d
}

func (d *database) exec(t testing.TB, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		if _, err := d.conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func (d *database) options(b Bus, tables ...string) Options {
	return Options{Source: "orders_cdc", URL: d.url, Tables: tables, Stream: stream, Slot: d.name, Publication: d.name, Bus: b, Logger: quiet}
}

// confirmed is the slot's confirmed position.
func (d *database) confirmed(t testing.TB) string {
	t.Helper()
	var lsn *string
	if err := d.conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, d.name).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	if lsn == nil {
		return ""
	}
	return *lsn
}

// run prepares and runs a source until the returned stop is called.
func run(t testing.TB, s *Source) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// changes reads the stream until it holds n changes, then for a moment
// longer to catch any extra ones.
func changes(t testing.TB, b *bus.Bus, n int) []sluice.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := b.ReadFrom(ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []sluice.Change
	extra := time.NewTimer(time.Hour)
	for {
		select {
		case m := <-r.C():
			for line := range bytes.Lines(m.Data) {
				var c sluice.Change
				if err := json.Unmarshal(line, &c); err != nil {
					t.Fatalf("stream seq %d: %v: %s", m.Seq, err, line)
				}
				out = append(out, c)
			}
			if len(out) >= n {
				extra.Reset(300 * time.Millisecond)
			}
		case <-extra.C:
			return out
		case <-ctx.Done():
			t.Fatalf("the stream holds %d changes, want %d: %s", len(out), n, summary(out))
		}
	}
}

// summary is one line per change: op table before after.
func summary(cs []sluice.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%s %s %s %s %s\n", c.Op, c.Table, compact(c.Before), compact(c.After), strings.Join(c.UnchangedToast, ","))
	}
	return b.String()
}

func compact(raw json.RawMessage) string {
	if raw == nil {
		return "null"
	}
	var b bytes.Buffer
	json.Compact(&b, raw)
	return b.String()
}

func want(t *testing.T, got []sluice.Change, lines ...string) {
	t.Helper()
	if s := summary(got); s != strings.Join(lines, "\n")+"\n" {
		t.Errorf("changes:\n%s\nwant:\n%s", s, strings.Join(lines, "\n"))
	}
}

// checkOrder checks that changes are in commit order, numbered within their
// transaction, and carry their metadata.
func checkOrder(t *testing.T, cs []sluice.Change) {
	t.Helper()
	var prev sluice.Change
	for i, c := range cs {
		if c.LSN == "" || c.CommitLSN == "" || c.XID == 0 || c.CommitTime.IsZero() || c.Schema == "" {
			t.Errorf("change %d lacks metadata: %+v", i, c)
		}
		if time.Since(c.CommitTime) > time.Minute || c.CommitTime.Location() != time.UTC {
			t.Errorf("change %d: commit_time %s", i, c.CommitTime)
		}
		if i > 0 {
			same := c.CommitLSN == prev.CommitLSN
			if same && (c.Seq != prev.Seq+1 || c.XID != prev.XID) || !same && (c.Seq != 1 || lsn(t, c.CommitLSN) <= lsn(t, prev.CommitLSN)) {
				t.Errorf("change %d out of order: %s %d after %s %d", i, c.CommitLSN, c.Seq, prev.CommitLSN, prev.Seq)
			}
		}
		prev = c
	}
}

func lsn(t *testing.T, s string) uint64 {
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		t.Fatalf("LSN %q: %v", s, err)
	}
	return hi<<32 | lo
}

// Inserts, updates and deletes of a table with REPLICA IDENTITY FULL
// arrive with whole before and after images, in commit order: of two
// concurrent transactions, the one that commits first comes first.
func TestChangesInCommitOrder(t *testing.T) {
	d := newDatabase(t, `CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2), paid bool)`,
		`ALTER TABLE orders REPLICA IDENTITY FULL`)
	b := newBus(t)
	s, err := New(d.options(b, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)

	d.exec(t, `INSERT INTO orders VALUES (1, 'ann', 10.50, false), (2, 'bob', 3, true)`,
		`UPDATE orders SET amount = 12.25, paid = true WHERE id = 1`,
		`DELETE FROM orders WHERE id = 2`)
	// A transaction that starts first and commits last.
	ctx := context.Background()
	first, err := d.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, `INSERT INTO orders VALUES (3, 'cy', 1, false)`); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, `INSERT INTO orders VALUES (4, 'di', 2, false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, `UPDATE orders SET customer = 'cyd' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	got := changes(t, b, 7)
	want(t, got,
		`insert orders null {"id":1,"customer":"ann","amount":10.50,"paid":false} `,
		`insert orders null {"id":2,"customer":"bob","amount":3.00,"paid":true} `,
		`update orders {"id":1,"customer":"ann","amount":10.50,"paid":false} {"id":1,"customer":"ann","amount":12.25,"paid":true} `,
		`delete orders {"id":2,"customer":"bob","amount":3.00,"paid":true} null `,
		`insert orders null {"id":4,"customer":"di","amount":2.00,"paid":false} `,
		`insert orders null {"id":3,"customer":"cy","amount":1.00,"paid":false} `,
		`update orders {"id":3,"customer":"cy","amount":1.00,"paid":false} {"id":3,"customer":"cyd","amount":1.00,"paid":false} `)
	checkOrder(t, got)
	if got[0].CommitLSN != got[1].CommitLSN || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Errorf("the two rows of one INSERT are not one transaction: %+v %+v", got[0], got[1])
	}
	if got[5].CommitLSN != got[6].CommitLSN {
		t.Errorf("the last transaction's changes differ in commit_lsn")
	}

	// The slot is confirmed up to the stored transactions.
	deadline := time.Now().Add(5 * time.Second)
	for lsn(t, d.confirmed(t)) < lsn(t, got[6].CommitLSN) {
		if time.Now().After(deadline) {
			t.Fatalf("the slot is confirmed up to %s, the last commit is at %s", d.confirmed(t), got[6].CommitLSN)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A column of each common type arrives as JSON of the matching kind:
// numbers as numbers (exactly as PostgreSQL wrote them), NaN and Infinity
// as text, json and jsonb as JSON, timestamps in RFC 3339 (UTC with Z for
// timestamptz), arrays as arrays, NULL as null, the rest as PostgreSQL's
// text.
func TestColumnTypes(t *testing.T) {
	d := newDatabase(t, `CREATE TYPE mood AS ENUM ('sad', 'happy')`,
		`CREATE TABLE types (id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision, num numeric, nan numeric, inf float8,
			ok bool, txt text, vc varchar(10), ch char(3), u uuid, j json, jb jsonb, d date, tm time, ts timestamp, tstz timestamptz,
			iv interval, ba bytea, ints int[], texts text[], stamps timestamptz[], ip inet, m mood, nothing text)`)
	b := newBus(t)
	s, err := New(d.options(b, "types"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	d.exec(t, `INSERT INTO types VALUES (1, -2, 9007199254740993, 1.5, 0.1, 123.4500, 'NaN', 'Infinity', true, E'tab\there "q"', 'héllo', 'ab',
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', '2026-11-25', '10:00:01.5', '2026-11-25 10:00:00',
		'2026-11-25 10:00:00.123+01', '1 day 02:00:00', '\x0102ff', '{1,2,NULL}', '{"a b",c}', '{"2026-11-25 10:00:00+00"}', '192.168.0.1/24', 'happy', NULL)`)
	got := changes(t, b, 1)
	const wantAfter = `{"id":1,"i2":-2,"i8":9007199254740993,"f4":1.5,"f8":0.1,"num":123.4500,"nan":"NaN","inf":"Infinity","ok":true,` +
		`"txt":"tab\there \"q\"","vc":"héllo","ch":"ab ","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","j":{"a":[1,2]},"jb":{"b":{"c":null}},` +
		`"d":"2026-11-25","tm":"10:00:01.5","ts":"2026-11-25T10:00:00.000000","tstz":"2026-11-25T09:00:00.123000Z","iv":"1 day 02:00:00",` +
		`"ba":"\\x0102ff","ints":[1,2,null],"texts":["a b","c"],"stamps":["2026-11-25T10:00:00.000000Z"],"ip":"192.168.0.1/24","m":"happy","nothing":null}`
	if a := compact(got[0].After); a != wantAfter {
		t.Errorf("after:\n got  %s\n want %s", a, wantAfter)
	}
}

// Without REPLICA IDENTITY FULL the before image holds only the key, and a
// large value an update did not change is not sent: it is left out of the
// after image and named in unchanged_toast. With FULL, both images are
// whole.
func TestKeyOnlyImagesAndUnchangedToast(t *testing.T) {
	d := newDatabase(t, `CREATE TABLE docs (id int PRIMARY KEY, body text, n int)`,
		`ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`) // stored out of line, uncompressed
	b := newBus(t)
	s, err := New(d.options(b, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	d.exec(t, `INSERT INTO docs VALUES (1, repeat('x', 5000), 1), (2, 'short', 1)`,
		`UPDATE docs SET n = 2 WHERE id = 1`,
		`UPDATE docs SET id = 3 WHERE id = 2`,
		`DELETE FROM docs WHERE id = 3`,
		`ALTER TABLE docs REPLICA IDENTITY FULL`,
		`UPDATE docs SET n = 3 WHERE id = 1`,
		`DELETE FROM docs WHERE id = 1`)
	got := changes(t, b, 7)
	body := `"` + strings.Repeat("x", 5000) + `"`
	want(t, got,
		`insert docs null {"id":1,"body":`+body+`,"n":1} `,
		`insert docs null {"id":2,"body":"short","n":1} `,
		`update docs {"id":1} {"id":1,"n":2} body`,
		`update docs {"id":2} {"id":3,"body":"short","n":1} `,
		`delete docs {"id":3} null `,
		`update docs {"id":1,"body":`+body+`,"n":2} {"id":1,"body":`+body+`,"n":3} `,
		`delete docs {"id":1,"body":`+body+`,"n":3} null `)
	checkOrder(t, got)
}

// A crash after changes are stored and before the slot is told: PostgreSQL
// sends them again, and none is stored twice. Then the slot moves on.
func TestNothingTwiceAfterACrashBeforeTheStatusUpdate(t *testing.T) {
	d := newDatabase(t, `CREATE TABLE orders (id int PRIMARY KEY, amount int)`)
	dir := t.TempDir()
	b := openBus(t, dir)
	s, err := New(d.options(b, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	s.neverConfirm = true
	stop := run(t, s)
	start := d.confirmed(t)
	d.exec(t, `INSERT INTO orders SELECT i, i FROM generate_series(1, 1000) i`, `UPDATE orders SET amount = 0 WHERE id <= 10`, `DELETE FROM orders WHERE id = 5`)
	if n := len(changes(t, b, 1011)); n != 1011 {
		t.Fatalf("%d changes stored, want 1011", n)
	}
	stop()
	b.Close()
	if c := d.confirmed(t); c != start {
		t.Fatalf("the slot moved from %s to %s without a status update", start, c)
	}

	b = openBus(t, dir)
	defer b.Close()
	s, err = New(d.options(b, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	d.exec(t, `INSERT INTO orders VALUES (2000, 1)`)
	got := changes(t, b, 1012)
	if len(got) != 1012 {
		t.Fatalf("%d changes on the stream, want 1012", len(got))
	}
	checkOrder(t, got)
	if c := got[1011]; c.Op != "insert" || compact(c.After) != `{"id":2000,"amount":1}` {
		t.Errorf("last change %s %s", c.Op, c.After)
	}
	deadline := time.Now().Add(5 * time.Second)
	for lsn(t, d.confirmed(t)) < lsn(t, got[1011].CommitLSN) {
		if time.Now().After(deadline) {
			t.Fatalf("the slot is confirmed up to %s, the last commit is at %s", d.confirmed(t), got[1011].CommitLSN)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A message published again (its acknowledgement was lost) has the same
// id, and the bus drops the copy.
func TestRetriedPublishIsDropped(t *testing.T) {
	b := newBus(t)
	s, err := New(Options{Source: "orders_cdc", URL: "postgres://db/shop", Tables: []string{"orders"}, Stream: stream, Slot: "s", Publication: "p", Bus: b, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	line := `{"lsn":"0/10","commit_lsn":"0/20","commit_time":"2026-11-25T10:00:00.000000Z","xid":7,"schema":"public","table":"orders","op":"delete","seq":1,"before":{"id":1},"after":null}` + "\n"
	c := func() *chunk {
		return &chunk{data: []byte(line), first: position{0x20, 1}, last: position{0x20, 1}, changes: 1, end: 0x30}
	}
	in := make(chan *chunk, 2)
	in <- c()
	in <- c()
	close(in)
	r := &receiver{s: s}
	if err := s.publish(context.Background(), in, r); err != nil {
		t.Fatal(err)
	}
	info, err := b.Info(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	if info.Msgs != 1 {
		t.Errorf("the stream holds %d messages, want 1", info.Msgs)
	}
	if r.confirmed.Load() != 0x30 {
		t.Errorf("confirmed %x, want 30", r.confirmed.Load())
	}
	// A restart would skip this change: it is the last one stored.
	if p, err := s.stored(context.Background()); err != nil || p != (position{0x20, 1}) {
		t.Errorf("stored position %+v, %v", p, err)
	}
}

// Changes made while the source is stopped are kept by the slot and all
// arrive, in commit order, when it runs again.
func TestChangesWhileStopped(t *testing.T) {
	d := newDatabase(t, `CREATE TABLE orders (id int PRIMARY KEY, amount int)`)
	b := newBus(t)
	s, err := New(d.options(b, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	d.exec(t, `INSERT INTO orders VALUES (1, 1)`)
	first := changes(t, b, 1)
	stop()
	// A clean stop confirms what it stored: nothing is sent again.
	if c := d.confirmed(t); lsn(t, c) <= lsn(t, first[0].CommitLSN) {
		t.Errorf("after a stop the slot is at %s, the stored commit at %s", c, first[0].CommitLSN)
	}
	for i := 2; i <= 50; i++ {
		d.exec(t, fmt.Sprintf(`INSERT INTO orders VALUES (%d, %d)`, i, i), fmt.Sprintf(`UPDATE orders SET amount = amount + 1 WHERE id = %d`, i-1))
	}
	s, err = New(d.options(b, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	got := changes(t, b, 99)
	if len(got) != 99 {
		t.Fatalf("%d changes, want 99", len(got))
	}
	checkOrder(t, got)
	for i, c := range got[1:] {
		id := i/2 + 2
		wantAfter := fmt.Sprintf(`{"id":%d,"amount":%d}`, id, id)
		if i%2 == 1 {
			wantAfter = fmt.Sprintf(`{"id":%d,"amount":%d}`, id-1, id)
		}
		if compact(c.After) != wantAfter {
			t.Fatalf("change %d: %s %s, want after %s", i+1, c.Op, c.After, wantAfter)
		}
	}
}

// One source captures several tables, schema-qualified or not; a
// publication that exists already gets the tables it lacks, and changes of
// its other tables are not captured.
func TestSeveralTables(t *testing.T) {
	d := newDatabase(t, `CREATE TABLE orders (id int PRIMARY KEY)`, `CREATE TABLE items (id int PRIMARY KEY, order_id int)`,
		`CREATE TABLE other (id int PRIMARY KEY)`)
	var schema string
	if err := d.conn.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	d.exec(t, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE orders, other`, d.name))
	b := newBus(t)
	s, err := New(d.options(b, "orders", schema+".items"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	var n int
	if err := d.conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_publication_tables WHERE pubname = $1`, d.name).Scan(&n); err != nil || n != 3 {
		t.Errorf("the publication has %d tables (%v), want 3", n, err)
	}
	d.exec(t, `BEGIN`, `INSERT INTO orders VALUES (1)`, `INSERT INTO other VALUES (1)`, `INSERT INTO items VALUES (10, 1), (11, 1)`, `COMMIT`,
		`TRUNCATE items, other`)
	got := changes(t, b, 4)
	want(t, got,
		`insert orders null {"id":1} `,
		`insert items null {"id":10,"order_id":1} `,
		`insert items null {"id":11,"order_id":1} `,
		`truncate items null null `)
	checkOrder(t, got)
	if got[0].Schema != schema {
		t.Errorf("schema %q, want %q", got[0].Schema, schema)
	}
}

// Every setup problem stops the source with an error that says what to do.
func TestSetupErrors(t *testing.T) {
	d := newDatabase(t, `CREATE TABLE orders (id int PRIMARY KEY)`, `CREATE VIEW orders_view AS SELECT * FROM orders`,
		`CREATE TABLE nokey (id int)`)
	b := newBus(t)
	for _, tc := range []struct {
		table, want string
	}{
		{"nope", "table nope does not exist in database"},
		{"orders_view", "is not a table (relkind v)"},
		{"nokey", "has no replica identity (no primary key, REPLICA IDENTITY DEFAULT): once published, its UPDATEs and DELETEs would fail; run ALTER TABLE"},
		{"orders; drop table orders", "is not a table name"},
	} {
		s, err := New(d.options(b, tc.table))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.table, err, tc.want)
		}
	}

	// A slot of that name that is not a logical pgoutput slot.
	d.exec(t, fmt.Sprintf(`SELECT pg_create_physical_replication_slot('%s')`, d.name))
	s, _ := New(d.options(b, "orders"))
	if err := s.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), "is not a logical pgoutput slot") {
		t.Errorf("physical slot: %v", err)
	}

	// A server that cannot be reached.
	s, _ = New(Options{Source: "o", URL: "postgres://sluice:secret@127.0.0.1:1/shop?connect_timeout=5", Tables: []string{"orders"}, Stream: stream, Slot: "s", Publication: "p", Bus: b})
	err := s.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connect to PostgreSQL at 127.0.0.1:1/shop") || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestOptionErrors(t *testing.T) {
	b := newBus(t)
	ok := Options{Source: "o", URL: "postgres://db/shop", Tables: []string{"orders"}, Stream: stream, Slot: "s", Publication: "p", Bus: b}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.URL = "postgres://u:secret@db:port/shop" }, "url: cannot parse `postgres://u:xxxxx@db:port/shop`: invalid port"},
		{func(o *Options) { o.Tables = nil }, "no tables"},
		{func(o *Options) { o.Slot = "My-Slot" }, `slot name "My-Slot"`},
		{func(o *Options) { o.Source = "a.b" }, "the name may hold only letters"},
	} {
		o := ok
		tc.change(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func TestServerErrors(t *testing.T) {
	err := checkServer("db:5432/shop", "replica", "app", true)
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL at db:5432/shop has wal_level = replica; change data capture needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL") {
		t.Errorf("wal_level: %v", err)
	}
	err = checkServer("db:5432/shop", "logical", "app", false)
	if err == nil || !strings.Contains(err.Error(), `role app may not replicate: run ALTER ROLE "app" REPLICATION`) {
		t.Errorf("role: %v", err)
	}
}
