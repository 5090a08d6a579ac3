package lake

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

var quiet = slog.New(slog.DiscardHandler)

// openBus opens an embedded bus with the streams node.go creates; events
// may be given a retention.
func openBus(t testing.TB, events bus.StreamConfig) *bus.Bus {
	t.Helper()
	streams := map[string]bus.StreamConfig{}
	for _, s := range sluice.Streams {
		streams[s] = bus.StreamConfig{}
	}
	streams[sluice.StreamEvents] = events
	b, err := bus.Open(context.Background(), bus.Options{Dir: t.TempDir(), Streams: streams, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// event is a line as enrich writes it.
func event(id, eventTime, own string) string {
	return `{"event_id":"` + id + `","event_time":"` + eventTime + `","received_at":"2026-11-25T12:00:00.000000Z","collector":"http","event":"page_view"` + own + "}\n"
}

// publish stores lines as one message and returns its sequence.
func publish(t *testing.T, b *bus.Bus, stream string, lines ...string) uint64 {
	t.Helper()
	seq, err := b.Publish(context.Background(), stream, []byte(strings.Join(lines, "")), "")
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func saveSchema(t *testing.T, b *bus.Bus, cols ...sluice.Column) {
	t.Helper()
	ctx := context.Background()
	_, rev, err := b.Schema(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SaveSchema(ctx, sluice.Schema{Table: "events", Columns: cols}, rev); err != nil {
		t.Fatal(err)
	}
}

var ownColumns = []sluice.Column{
	{Name: "price", Type: sluice.TypeDouble},
	{Name: "qty", Type: sluice.TypeBigint},
	{Name: "vip", Type: sluice.TypeBoolean},
	{Name: "tags", Type: sluice.TypeJSON},
	{Name: "note", Type: sluice.TypeVarchar},
}

// archiver is an Archiver running in the background.
type archiver struct {
	*Archiver
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	commits []string
}

func startArchiver(t *testing.T, b *bus.Bus, store Store, table Table, interval time.Duration, maxRows int) *archiver {
	t.Helper()
	ar := &archiver{done: make(chan error, 1)}
	ar.Archiver = NewArchiver(ArchiverOptions{
		Bus: b, Store: store, Table: table, FlushInterval: interval, MaxRows: maxRows, Logger: quiet,
		OnCommit: func(table string) {
			ar.mu.Lock()
			ar.commits = append(ar.commits, table)
			ar.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	ar.cancel = cancel
	go func() { ar.done <- ar.Run(ctx) }()
	t.Cleanup(func() { ar.stop(t) })
	return ar
}

func (ar *archiver) stop(t *testing.T) {
	t.Helper()
	if ar.cancel == nil {
		return
	}
	ar.cancel()
	ar.cancel = nil
	select {
	case err := <-ar.done:
		if err != nil {
			t.Errorf("archiver: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("archiver did not stop within 20s")
	}
}

func (ar *archiver) waitCommitted(t *testing.T, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ar.Committed() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d after 10s, want %d", ar.Committed(), seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := ar.Committed(); c != seq {
		t.Fatalf("committed %d, want exactly %d", c, seq)
	}
}

func commitOf(t *testing.T, s Store, table string) commitRecord {
	t.Helper()
	data, err := s.Get(context.Background(), "_sluice/commits/"+table+".json")
	if err != nil {
		t.Fatal(err)
	}
	var rec commitRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func keys(t *testing.T, s Store, prefix string) []string {
	t.Helper()
	k, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lakeDB is DuckDB with a view over every file of table.
func lakeDB(t *testing.T, d *Dir, table string) *sql.DB {
	t.Helper()
	db := openDuckDB(t)
	glob := filepath.Join(d.Root(), table, "*", "*", "*.parquet")
	if _, err := db.Exec(`CREATE VIEW ` + table + ` AS SELECT * FROM read_parquet(` + sqlString(glob) + `, hive_partitioning = true, union_by_name = true, filename = true)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// idsByFile maps each file (relative to the lake) to its sorted event ids.
func idsByFile(t *testing.T, d *Dir, db *sql.DB, table string) map[string][]string {
	t.Helper()
	rows, err := db.Query(`SELECT filename, event_id FROM ` + table + ` ORDER BY filename, event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var f, id string
		if err := rows.Scan(&f, &id); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(d.Root(), f)
		out[filepath.ToSlash(rel)] = append(out[filepath.ToSlash(rel)], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkOnce asserts every id is in the table exactly once, and no other.
func checkOnce(t *testing.T, db *sql.DB, table string, ids []string) {
	t.Helper()
	rows, err := db.Query(`SELECT event_id, count(*) FROM ` + table + ` GROUP BY event_id ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = n
		if n != 1 {
			t.Errorf("event %s is %d times in the lake", id, n)
		}
	}
	for _, id := range ids {
		if got[id] == 0 {
			t.Errorf("event %s is not in the lake", id)
		}
		delete(got, id)
	}
	for id := range got {
		t.Errorf("event %s is in the lake but was never published", id)
	}
}

func TestArchiverEndToEnd(t *testing.T) {
	ctx := context.Background()
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, ownColumns...)
	publish(t, b, "events",
		event("e1", "2026-11-25T10:00:00.000000Z", `,"price":9.5,"qty":2,"vip":true,"tags":["a","b"],"note":"first"`),
		event("e2", "2026-11-25T10:59:59.999999Z", `,"note":"Grüße \"quoted\" \\ 東京"`))
	publish(t, b, "events",
		event("e3", "2026-11-25T11:00:00.000000Z", `,"qty":-1,"tags":{"k":{"n":[1,{}]}}`),
		event("late", "2026-11-25T09:59:00.000000Z", `,"price":1`)) // late: its own hour
	publish(t, b, "events", event("e4", "2026-11-25T10:30:00.000000Z", `,"price":null,"qty":null,"vip":null,"tags":null,"note":null`))
	badSeq := publish(t, b, "bad", `{"failed_at":"2026-11-25T12:00:01.000000Z","type":"tracker_protocol","message":"event has no name","received_at":"2026-11-25T12:00:00Z","collector":"http","path":"/v1/events","ip":"203.0.113.7","raw_seq":7,"payload":"{}"}`+"\n")

	// Rows already on the stream arrive together, well within the interval.
	ar := startArchiver(t, b, d, EventsTable, 300*time.Millisecond, 0)
	br := startArchiver(t, b, d, BadTable, 300*time.Millisecond, 0)
	ar.waitCommitted(t, 3)
	br.waitCommitted(t, badSeq)

	want := []string{
		"events/dt=2026-11-25/hr=09/events-1-3.parquet",
		"events/dt=2026-11-25/hr=10/events-1-3.parquet",
		"events/dt=2026-11-25/hr=11/events-1-3.parquet",
	}
	if got := keys(t, d, "events/"); !slices.Equal(got, want) {
		t.Errorf("files:\n got %q\nwant %q", got, want)
	}
	rec := commitOf(t, d, "events")
	if rec.LastSeq != 3 || rec.Table != "events" || rec.Stream != "events" || !slices.Equal(rec.Files, want) || rec.CommittedAt.IsZero() {
		t.Errorf("commit record %+v", rec)
	}
	// The commit record states the table's columns: the fixed ones, then
	// the schema record's, with their types.
	var names []string
	for _, c := range rec.Columns {
		names = append(names, c.Name+" "+string(c.Type))
	}
	wantCols := []string{}
	for _, c := range append(slices.Clone(sluice.EventColumns), ownColumns...) {
		wantCols = append(wantCols, c.Name+" "+string(c.Type))
	}
	if !slices.Equal(names, wantCols) {
		t.Errorf("commit record columns %q, want %q", names, wantCols)
	}
	if got := keys(t, d, "bad/"); !slices.Equal(got, []string{"bad/dt=2026-11-25/hr=12/bad-1-1.parquet"}) {
		t.Errorf("bad files: %q", got)
	}

	db := lakeDB(t, d, "events")
	checkOnce(t, db, "events", []string{"e1", "e2", "e3", "e4", "late"})
	types := columnTypes(t, db, "SELECT * FROM events")
	for _, c := range append(slices.Clone(sluice.EventColumns), ownColumns...) {
		if types[c.Name] != string(c.Type) {
			t.Errorf("column %s is %s in the lake, want %s", c.Name, types[c.Name], c.Type)
		}
	}
	rows, err := db.Query(`SELECT event_id, dt::VARCHAR, hr::VARCHAR, hour(event_time), price, qty, vip, tags::VARCHAR, note FROM events ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id, dt, hr string
		var hour int
		var price sql.NullFloat64
		var qty sql.NullInt64
		var vip sql.NullBool
		var tags, note sql.NullString
		if err := rows.Scan(&id, &dt, &hr, &hour, &price, &qty, &vip, &tags, &note); err != nil {
			t.Fatal(err)
		}
		if hr != fmt.Sprint(hour) && hr != fmt.Sprintf("%02d", hour) {
			t.Errorf("%s: event_time hour %d in partition hr=%s", id, hour, hr)
		}
		got = append(got, fmt.Sprint(id, " ", dt, " ", price, " ", qty, " ", vip, " ", tags, " ", note))
	}
	rows.Close()
	wantRows := []string{
		"e1 2026-11-25 {9.5 true} {2 true} {true true} {[\"a\",\"b\"] true} {first true}",
		"e2 2026-11-25 {0 false} {0 false} {false false} { false} {Grüße \"quoted\" \\ 東京 true}",
		"e3 2026-11-25 {0 false} {-1 true} {false false} {{\"k\":{\"n\":[1,{}]}} true} { false}",
		"e4 2026-11-25 {0 false} {0 false} {false false} { false} { false}",
		"late 2026-11-25 {1 true} {0 false} {false false} { false} { false}",
	}
	if !slices.Equal(got, wantRows) {
		t.Errorf("rows:\n got %q\nwant %q", got, wantRows)
	}

	// More rows later: new files named by their own range, one the next
	// day, one late, beside the files its hour already has.
	publish(t, b, "events", event("e5", "2026-11-26T00:00:00.000000Z", `,"qty":5`), event("late2", "2026-11-25T10:15:00.000000Z", ""))
	ar.waitCommitted(t, 4)
	want = append(want[:2], "events/dt=2026-11-25/hr=10/events-4-4.parquet", want[2], "events/dt=2026-11-26/hr=00/events-4-4.parquet")
	if got := keys(t, d, "events/"); !slices.Equal(got, want) {
		t.Errorf("files:\n got %q\nwant %q", got, want)
	}
	if rec := commitOf(t, d, "events"); rec.LastSeq != 4 {
		t.Errorf("commit record at %d, want 4", rec.LastSeq)
	}
	if lag, err := ar.Lag(ctx); err != nil || lag != 0 {
		t.Errorf("Lag = %d, %v", lag, err)
	}
	ar.stop(t)
	ar.mu.Lock()
	if !slices.Equal(ar.commits, []string{"events", "events"}) {
		t.Errorf("OnCommit calls: %q", ar.commits)
	}
	ar.mu.Unlock()
	checkOnce(t, db, "events", []string{"e1", "e2", "e3", "e4", "late", "e5", "late2"})
	if tables, err := Tables(ctx, d); err != nil || !slices.Equal(tables, []string{"bad", "events"}) {
		t.Errorf("Tables = %q, %v", tables, err)
	}
}

func TestArchiverMaxRowsForcesAFlush(t *testing.T) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	ar := startArchiver(t, b, d, EventsTable, time.Hour, 5)
	for i := range 3 {
		publish(t, b, "events",
			event(fmt.Sprint("a", i), "2026-11-25T10:00:00.000000Z", ""),
			event(fmt.Sprint("b", i), "2026-11-25T10:00:00.000000Z", ""))
	}
	ar.waitCommitted(t, 3)
	publish(t, b, "events", event("c", "2026-11-25T10:00:00.000000Z", ""))
	time.Sleep(300 * time.Millisecond)
	if c := ar.Committed(); c != 3 {
		t.Errorf("committed %d with 1 row buffered, MaxRows 5 and a FlushInterval of an hour", c)
	}
	// Stopping flushes what is buffered.
	ar.stop(t)
	want := []string{"events/dt=2026-11-25/hr=10/events-1-3.parquet", "events/dt=2026-11-25/hr=10/events-4-4.parquet"}
	if got := keys(t, d, "events/"); !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	if rec := commitOf(t, d, "events"); rec.LastSeq != 4 {
		t.Errorf("commit record at %d after stop, want 4", rec.LastSeq)
	}
	checkOnce(t, lakeDB(t, d, "events"), "events", []string{"a0", "b0", "a1", "b1", "a2", "b2", "c"})
}

// publishPairs publishes messages first..last, each with one event at 10:xx
// and one at 11:xx, and returns their ids.
func publishPairs(t *testing.T, b *bus.Bus, first, last int) []string {
	t.Helper()
	var ids []string
	for i := first; i <= last; i++ {
		a, c := fmt.Sprintf("m%d-a", i), fmt.Sprintf("m%d-b", i)
		publish(t, b, "events",
			event(a, fmt.Sprintf("2026-11-25T10:%02d:00.000000Z", i), fmt.Sprintf(`,"qty":%d`, i)),
			event(c, fmt.Sprintf("2026-11-25T11:%02d:00.000000Z", i), `,"note":"x"`))
		ids = append(ids, a, c)
	}
	return ids
}

// A flush that crashed after some of its files: the commit record is behind
// them. A new archiver rewrites the same names with the same rows, even when
// the stream has moved on and the options differ, then commits.
func TestArchiverReplaysACrashedFlush(t *testing.T) {
	ctx := context.Background()
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, ownColumns...)
	ids := publishPairs(t, b, 1, 6)
	ar := startArchiver(t, b, d, EventsTable, time.Hour, 4) // flushes 1-2, 3-4, 5-6
	ar.waitCommitted(t, 6)
	ar.stop(t)
	before := idsByFile(t, d, lakeDB(t, d, "events"), "events")
	if len(before) != 6 {
		t.Fatalf("files before the crash: %q", before)
	}

	// Rewind the commit record as if the 5-6 flush crashed after its first
	// file, and let the stream move on.
	rewindCommit(t, d, 4)
	if err := d.Delete(ctx, "events/dt=2026-11-25/hr=11/events-5-6.parquet"); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, publishPairs(t, b, 7, 7)...)

	ar = startArchiver(t, b, d, EventsTable, 50*time.Millisecond, 1)
	ar.waitCommitted(t, 7)
	ar.stop(t)
	after := idsByFile(t, d, lakeDB(t, d, "events"), "events")
	sameFiles(t, before, after)
	if len(after) != len(before)+2 || after["events/dt=2026-11-25/hr=10/events-7-7.parquet"] == nil {
		t.Errorf("files after the replay: %q", after)
	}
	if rec := commitOf(t, d, "events"); rec.LastSeq != 7 {
		t.Errorf("commit record at %d, want 7", rec.LastSeq)
	}
	checkOnce(t, lakeDB(t, d, "events"), "events", ids)
}

// The same when the crashed flush left a file and no commit record at all.
func TestArchiverReplaysAnOrphanFile(t *testing.T) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, ownColumns...)
	ids := publishPairs(t, b, 1, 3)
	// What a flush of 1-2 writes for hour 10, before it crashed.
	var lines [][]byte
	for i := 1; i <= 2; i++ {
		lines = append(lines, []byte(event(fmt.Sprintf("m%d-a", i), fmt.Sprintf("2026-11-25T10:%02d:00.000000Z", i), fmt.Sprintf(`,"qty":%d`, i))))
	}
	cols := append(slices.Clone(sluice.EventColumns), sluice.Column{Name: "qty", Type: sluice.TypeBigint})
	data, err := encodeParquet("events", cols, lines, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(context.Background(), "events/dt=2026-11-25/hr=10/events-1-2.parquet", data); err != nil {
		t.Fatal(err)
	}

	// MaxRows 1 would flush after every message; the replay must not.
	ar := startArchiver(t, b, d, EventsTable, 50*time.Millisecond, 1)
	ar.waitCommitted(t, 3)
	ar.stop(t)
	want := []string{
		"events/dt=2026-11-25/hr=10/events-1-2.parquet",
		"events/dt=2026-11-25/hr=10/events-3-3.parquet",
		"events/dt=2026-11-25/hr=11/events-1-2.parquet",
		"events/dt=2026-11-25/hr=11/events-3-3.parquet",
	}
	if got := keys(t, d, "events/"); !slices.Equal(got, want) {
		t.Errorf("files:\n got %q\nwant %q", got, want)
	}
	checkOnce(t, lakeDB(t, d, "events"), "events", ids)
}

// Files of a crashed flush whose range is no longer on the stream cannot be
// rewritten; they are removed and the archiver goes on from what is there.
func TestArchiverRemovesOrphansWhoseRangeLeftTheStream(t *testing.T) {
	ctx := context.Background()
	t.Run("trimmed by retention", func(t *testing.T) {
		b := openBus(t, bus.StreamConfig{MaxBytes: 6 << 10})
		d := newDir(t)
		pad := strings.Repeat("x", 1500)
		var ids []string
		for i := 1; i <= 12; i++ {
			id := fmt.Sprint("r", i)
			publish(t, b, "events", event(id, "2026-11-25T10:00:00.000000Z", `,"note":"`+pad+`"`))
			ids = append(ids, id)
		}
		saveSchema(t, b, ownColumns...)
		info, err := b.Info(ctx, "events")
		if err != nil {
			t.Fatal(err)
		}
		if info.FirstSeq <= 3 || info.LastSeq != 12 {
			t.Fatalf("the stream holds %d-%d; the test needs its start trimmed", info.FirstSeq, info.LastSeq)
		}
		orphan := "events/dt=2026-11-25/hr=10/events-1-3.parquet"
		if err := d.Put(ctx, orphan, []byte("not even parquet")); err != nil {
			t.Fatal(err)
		}
		ar := startArchiver(t, b, d, EventsTable, 300*time.Millisecond, 0)
		ar.waitCommitted(t, 12)
		ar.stop(t)
		want := []string{fmt.Sprintf("events/dt=2026-11-25/hr=10/events-%d-12.parquet", info.FirstSeq)}
		if got := keys(t, d, "events/"); !slices.Equal(got, want) {
			t.Errorf("files %q, want %q", got, want)
		}
		checkOnce(t, lakeDB(t, d, "events"), "events", ids[info.FirstSeq-1:])
	})
	t.Run("beyond the end of the stream", func(t *testing.T) {
		b := openBus(t, bus.StreamConfig{})
		d := newDir(t)
		ids := publishPairs(t, b, 1, 2)
		orphan := "events/dt=2026-11-25/hr=10/events-5-8.parquet"
		if err := d.Put(ctx, orphan, []byte("from a stream that was reset")); err != nil {
			t.Fatal(err)
		}
		saveSchema(t, b, ownColumns...)
		ar := startArchiver(t, b, d, EventsTable, 300*time.Millisecond, 0)
		ar.waitCommitted(t, 2)
		ar.stop(t)
		want := []string{"events/dt=2026-11-25/hr=10/events-1-2.parquet", "events/dt=2026-11-25/hr=11/events-1-2.parquet"}
		if got := keys(t, d, "events/"); !slices.Equal(got, want) {
			t.Errorf("files %q, want %q", got, want)
		}
		checkOnce(t, lakeDB(t, d, "events"), "events", ids)
	})
}

// Enrich widens a column from BIGINT to DOUBLE, and adds columns, while the
// archiver runs: later rows must still be written.
func TestArchiverFollowsTheSchemaRecord(t *testing.T) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, sluice.Column{Name: "qty", Type: sluice.TypeBigint})
	ar := startArchiver(t, b, d, EventsTable, 50*time.Millisecond, 0)
	publish(t, b, "events", event("i1", "2026-11-25T10:00:00.000000Z", `,"qty":1`))
	ar.waitCommitted(t, 1)

	// Widened, with no new column in the same flush.
	saveSchema(t, b, sluice.Column{Name: "qty", Type: sluice.TypeDouble})
	publish(t, b, "events", event("d1", "2026-11-25T10:00:00.000000Z", `,"qty":2.5`))
	ar.waitCommitted(t, 2)

	saveSchema(t, b, sluice.Column{Name: "qty", Type: sluice.TypeDouble}, sluice.Column{Name: "Extra", Type: sluice.TypeVarchar})
	publish(t, b, "events", event("d2", "2026-11-25T10:00:00.000000Z", `,"qty":3,"Extra":"e"`))
	ar.waitCommitted(t, 3)
	ar.stop(t)

	db := lakeDB(t, d, "events")
	if types := columnTypes(t, db, "SELECT qty, Extra FROM events"); types["qty"] != "DOUBLE" || types["Extra"] != "VARCHAR" {
		t.Errorf("column types across the files: %v", types)
	}
	var sum float64
	var extra string
	if err := db.QueryRow(`SELECT sum(qty), string_agg(Extra, ',') FROM events`).Scan(&sum, &extra); err != nil || sum != 6.5 || extra != "e" {
		t.Errorf("sum(qty) = %v, Extra %q, %v; want 6.5, e", sum, extra, err)
	}
}

// A row with a column the schema record does not have is a bug upstream; the
// archiver does not commit it (it retries until stopped) and loses nothing.
func TestArchiverDoesNotCommitRowsItCannotType(t *testing.T) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	publish(t, b, "events", event("u1", "2026-11-25T10:00:00.000000Z", `,"unknown":1`))
	ar := startArchiver(t, b, d, EventsTable, 20*time.Millisecond, 0)
	time.Sleep(300 * time.Millisecond)
	if c := ar.Committed(); c != 0 {
		t.Errorf("committed %d", c)
	}
	ar.cancel()
	ar.cancel = nil
	select {
	case err := <-ar.done:
		if err == nil || !strings.Contains(err.Error(), "unknown") {
			t.Errorf("stop: %v, want the final flush to fail naming the column", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("archiver did not stop")
	}
	if got := keys(t, d, ""); len(got) != 0 {
		t.Errorf("files written: %q", got)
	}

	// Once the schema record has the column, a new archiver archives it.
	saveSchema(t, b, sluice.Column{Name: "unknown", Type: sluice.TypeBigint})
	ar = startArchiver(t, b, d, EventsTable, 20*time.Millisecond, 0)
	ar.waitCommitted(t, 1)
}

// A commit record restored from an older backup lies several flushes behind
// the files: each range is rewritten into its own names, in order, and no row
// appears twice.
func TestArchiverReplaysSeveralRanges(t *testing.T) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, ownColumns...)
	ids := publishPairs(t, b, 1, 6)
	ar := startArchiver(t, b, d, EventsTable, time.Hour, 4) // flushes 1-2, 3-4, 5-6
	ar.waitCommitted(t, 6)
	ar.stop(t)
	before := idsByFile(t, d, lakeDB(t, d, "events"), "events")

	rewindCommit(t, d, 2) // as if restored from before the 3-4 and 5-6 flushes
	ids = append(ids, publishPairs(t, b, 7, 7)...)

	ar = startArchiver(t, b, d, EventsTable, 50*time.Millisecond, 1000)
	ar.waitCommitted(t, 7)
	ar.stop(t)
	after := idsByFile(t, d, lakeDB(t, d, "events"), "events")
	sameFiles(t, before, after)
	if len(after) != len(before)+2 {
		t.Errorf("files after the replay: %q", after)
	}
	checkOnce(t, lakeDB(t, d, "events"), "events", ids)
}

// rewindCommit moves the events table's commit record back to seq, as a
// crash before the commit (or a restored backup) leaves it.
func rewindCommit(t *testing.T, d *Dir, seq uint64) {
	t.Helper()
	rec := commitOf(t, d, "events")
	rec.LastSeq = seq
	data, _ := json.Marshal(rec)
	if err := d.Put(context.Background(), "_sluice/commits/events.json", data); err != nil {
		t.Fatal(err)
	}
}

// sameFiles checks that every file of before holds the same rows after.
func sameFiles(t *testing.T, before, after map[string][]string) {
	t.Helper()
	for f, want := range before {
		if got := after[f]; !slices.Equal(got, want) {
			t.Errorf("%s holds %q after the replay, %q before", f, got, want)
		}
	}
}

func TestArchiverMaxBytesForcesAFlush(t *testing.T) {
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	line := event("a", "2026-11-25T10:00:00.000000Z", "")
	ar := &archiver{done: make(chan error, 1)}
	ar.Archiver = NewArchiver(ArchiverOptions{Bus: b, Store: d, Table: EventsTable, FlushInterval: time.Hour, MaxRows: 1000,
		MaxBytes: int64(2*len(line) + 1), Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	ar.cancel = cancel
	go func() { ar.done <- ar.Run(ctx) }()
	t.Cleanup(func() { ar.stop(t) })
	publish(t, b, "events", line)
	publish(t, b, "events", event("b", "2026-11-25T10:00:00.000000Z", ""))
	time.Sleep(200 * time.Millisecond)
	if c := ar.Committed(); c != 0 {
		t.Fatalf("committed %d below the byte limit", c)
	}
	publish(t, b, "events", event("c", "2026-11-25T10:00:00.000000Z", ""))
	ar.waitCommitted(t, 3)
}
