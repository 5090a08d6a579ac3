package lake

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/sluice-data/sluice"
)

// openDuckDB opens an in-memory DuckDB that reads what the tests write.
func openDuckDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // SET applies to a connection
	for _, s := range []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET TimeZone = 'UTC'",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return db
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// columnTypes returns DuckDB's type of each column a SELECT returns.
func columnTypes(t *testing.T, db *sql.DB, query string) map[string]string {
	t.Helper()
	rows, err := db.Query("DESCRIBE " + query)
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", query, err)
	}
	defer rows.Close()
	out := map[string]string{}
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprint(vals[0])] = fmt.Sprint(vals[1])
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.parquet")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParquetIsReadByDuckDB(t *testing.T) {
	cols := append(append([]sluice.Column{}, sluice.EventColumns...),
		sluice.Column{Name: "price", Type: sluice.TypeDouble},
		sluice.Column{Name: "qty", Type: sluice.TypeBigint},
		sluice.Column{Name: "vip", Type: sluice.TypeBoolean},
		sluice.Column{Name: "doc", Type: sluice.TypeJSON},
		sluice.Column{Name: "note", Type: sluice.TypeVarchar},
		sluice.Column{Name: "seen_at", Type: sluice.TypeTimestamp},
		sluice.Column{Name: `we"ird \ Name ✓`, Type: sluice.TypeVarchar},
	)
	lines := []string{
		// Every type, with the canonical columns enrich writes.
		`{"event_id":"r1","event_time":"2026-11-25T10:00:00.123456Z","received_at":"2026-11-25T10:00:01.000001Z","collector":"http","event":"purchase","user_id":"u1","ip":"203.0.113.7","useragent":"Mozilla/5.0","price":19.99,"qty":3,"vip":true,"doc":{"a":[1,2,{"b":"c"}],"s":"x\"y"},"note":"plain","seen_at":"2026-01-02T03:04:05.678901Z","we\"ird \\ Name \u2713":"odd column"}` + "\n",
		// NULLs: explicit null and absent.
		`{"event_id":"r2","event_time":"2026-11-25T10:59:59.999999Z","received_at":"2026-11-25T11:00:00.000000Z","event":"page_view","price":null,"qty":null,"vip":null,"doc":null,"note":null}`,
		// Escapes and unicode; extremes.
		`{"event_id":"r3","event_time":"1970-01-01T00:00:00.000000Z","received_at":"9999-12-31T23:59:59.999999Z","event":"\u00e9v\u00e9nement \ud83c\udf89","page_title":"Grüße \"quoted\" back\\slash\ttab\nnewline \u0000nul \u001f","price":-1.5e300,"qty":-9223372036854775808,"vip":false,"doc":[],"note":"東京 🎉 עברית \u2028","seen_at":"2026-11-25T12:00:00+02:00"}`,
		`{"event_id":"r4","event_time":"2026-11-25T10:00:00Z","received_at":"2026-11-25T10:00:00Z","event":"x","price":0,"qty":9223372036854775807,"doc":"just a string","note":""}`,
		`{"event_id":"r5","event_time":"2026-11-25T10:00:00Z","received_at":"2026-11-25T10:00:00Z","event":"x","price":5e-324,"qty":-0,"doc":{}}`,
	}
	var in [][]byte
	for _, l := range lines {
		in = append(in, []byte(l))
	}
	data, err := encodeParquet("events", cols, in, false)
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, data)
	db := openDuckDB(t)
	from := "FROM read_parquet(" + sqlString(path) + ")"

	types := columnTypes(t, db, "SELECT * "+from)
	for _, c := range cols {
		want := string(c.Type)
		if want == "TIMESTAMP" && types[c.Name] == "TIMESTAMP" {
			continue
		}
		if types[c.Name] != want {
			t.Errorf("column %q: DuckDB reads %s, want %s", c.Name, types[c.Name], want)
		}
	}
	if len(types) != len(cols) {
		t.Errorf("DuckDB sees %d columns, want %d: %v", len(types), len(cols), types)
	}

	type rec struct {
		id, eventTime, receivedAt, event                  string
		collector, userID, ip, ua, pageTitle, note, doc   sql.NullString
		weird, seenAt                                     sql.NullString
		price                                             sql.NullFloat64
		qty                                               sql.NullInt64
		vip                                               sql.NullBool
		isNullPrice, isNullDoc, isNullNote, isNullSession bool
	}
	rows, err := db.Query(`SELECT event_id, strftime(event_time, '%Y-%m-%dT%H:%M:%S.%fZ'), strftime(received_at, '%Y-%m-%dT%H:%M:%S.%fZ'), event,
		collector, user_id, ip, useragent, page_title, note, doc::VARCHAR, "we""ird \ Name ✓", strftime(seen_at, '%Y-%m-%dT%H:%M:%S.%fZ'),
		price, qty, vip, price IS NULL, doc IS NULL, note IS NULL, session_id IS NULL ` + from + ` ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []rec
	for rows.Next() {
		var r rec
		if err := rows.Scan(&r.id, &r.eventTime, &r.receivedAt, &r.event, &r.collector, &r.userID, &r.ip, &r.ua, &r.pageTitle,
			&r.note, &r.doc, &r.weird, &r.seenAt, &r.price, &r.qty, &r.vip, &r.isNullPrice, &r.isNullDoc, &r.isNullNote, &r.isNullSession); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(lines) {
		t.Fatalf("DuckDB read %d rows, want %d", len(got), len(lines))
	}
	r1, r2, r3, r4, r5 := got[0], got[1], got[2], got[3], got[4]
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("r1 event_time", r1.eventTime, "2026-11-25T10:00:00.123456Z")
	check("r1 received_at", r1.receivedAt, "2026-11-25T10:00:01.000001Z")
	check("r1 strings", []any{r1.event, r1.collector.String, r1.userID.String, r1.ip.String, r1.ua.String, r1.note.String},
		[]any{"purchase", "http", "u1", "203.0.113.7", "Mozilla/5.0", "plain"})
	check("r1 price", r1.price, sql.NullFloat64{Float64: 19.99, Valid: true})
	check("r1 qty", r1.qty, sql.NullInt64{Int64: 3, Valid: true})
	check("r1 vip", r1.vip, sql.NullBool{Bool: true, Valid: true})
	check("r1 doc", r1.doc.String, `{"a":[1,2,{"b":"c"}],"s":"x\"y"}`)
	check("r1 seen_at", r1.seenAt.String, "2026-01-02T03:04:05.678901Z")
	check("r1 weird column", r1.weird.String, "odd column")
	check("r1 absent page_title", r1.pageTitle.Valid, false)

	check("r2 nulls", []bool{r2.price.Valid, r2.qty.Valid, r2.vip.Valid, r2.doc.Valid, r2.note.Valid, r2.collector.Valid, r2.seenAt.Valid},
		[]bool{false, false, false, false, false, false, false})
	check("r2 IS NULL", []bool{r2.isNullPrice, r2.isNullDoc, r2.isNullNote, r2.isNullSession}, []bool{true, true, true, true})
	check("r2 event_time", r2.eventTime, "2026-11-25T10:59:59.999999Z")

	check("r3 event", r3.event, "événement 🎉")
	check("r3 page_title", r3.pageTitle.String, "Grüße \"quoted\" back\\slash\ttab\nnewline \x00nul \x1f")
	check("r3 note", r3.note.String, "東京 🎉 עברית \u2028")
	check("r3 event_time", r3.eventTime, "1970-01-01T00:00:00.000000Z")
	check("r3 received_at", r3.receivedAt, "9999-12-31T23:59:59.999999Z")
	check("r3 price", r3.price.Float64, -1.5e300)
	check("r3 qty", r3.qty.Int64, int64(math.MinInt64))
	check("r3 vip", r3.vip, sql.NullBool{Bool: false, Valid: true})
	check("r3 doc", r3.doc.String, "[]")
	check("r3 seen_at in UTC", r3.seenAt.String, "2026-11-25T10:00:00.000000Z")

	check("r4 qty", r4.qty.Int64, int64(math.MaxInt64))
	check("r4 price", r4.price, sql.NullFloat64{Float64: 0, Valid: true})
	check("r4 doc", r4.doc.String, `"just a string"`)
	check("r4 empty note is not NULL", r4.note, sql.NullString{String: "", Valid: true})
	check("r5 price", r5.price.Float64, 5e-324)
	check("r5 doc", r5.doc.String, "{}")

	// JSON columns work with DuckDB's JSON functions.
	var b string
	if err := db.QueryRow(`SELECT doc->>'$.a[2].b' ` + from + ` WHERE event_id = 'r1'`).Scan(&b); err != nil || b != "c" {
		t.Errorf("doc->>'$.a[2].b' = %q, %v; want c", b, err)
	}
	// Timestamps compare as plain UTC TIMESTAMPs.
	var n int
	if err := db.QueryRow(`SELECT count(*) ` + from + ` WHERE event_time >= TIMESTAMP '2026-11-25 10:00:00' AND event_time < TIMESTAMP '2026-11-25 11:00:00'`).Scan(&n); err != nil || n != 4 {
		t.Errorf("rows in the 10:00 hour: %d, %v; want 4", n, err)
	}
	var ts time.Time
	if err := db.QueryRow(`SELECT event_time ` + from + ` WHERE event_id = 'r1'`).Scan(&ts); err != nil || !ts.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)) {
		t.Errorf("event_time scanned as %v, %v", ts, err)
	}
}

func TestParquetBadTable(t *testing.T) {
	lines := [][]byte{
		[]byte(`{"failed_at":"2026-11-25T10:00:00.5Z","type":"schema_violation","message":"field \"x\" is BIGINT","received_at":"2026-11-25T09:59:59Z","collector":"http","path":"/v1/events","ip":"203.0.113.7","raw_seq":18446744073709551615,"payload":"{\"x\":\"y\"}"}`),
	}
	if _, err := encodeParquet("bad", sluice.BadColumns, lines, false); err == nil {
		t.Error("a raw_seq beyond BIGINT was written")
	}
	lines[0] = []byte(strings.Replace(string(lines[0]), "18446744073709551615", "42", 1))
	data, err := encodeParquet("bad", sluice.BadColumns, lines, false)
	if err != nil {
		t.Fatal(err)
	}
	db := openDuckDB(t)
	var typ, msg, payload string
	var seq int64
	var eventID sql.NullString
	err = db.QueryRow(`SELECT type, message, raw_seq, event_id, payload FROM read_parquet(`+sqlString(writeFile(t, data))+`)`).Scan(&typ, &msg, &seq, &eventID, &payload)
	if err != nil {
		t.Fatal(err)
	}
	if typ != "schema_violation" || msg != `field "x" is BIGINT` || seq != 42 || eventID.Valid || payload != `{"x":"y"}` {
		t.Errorf("bad row read back as %q %q %d %v %q", typ, msg, seq, eventID, payload)
	}
}

// A value that does not fit its column is an error, not a bent value.
func TestParquetRefusesMismatches(t *testing.T) {
	cols := []sluice.Column{
		{Name: "event_time", Type: sluice.TypeTimestamp},
		{Name: "n", Type: sluice.TypeBigint},
		{Name: "d", Type: sluice.TypeDouble},
		{Name: "b", Type: sluice.TypeBoolean},
		{Name: "s", Type: sluice.TypeVarchar},
	}
	for _, line := range []string{
		`{"n":1.5}`,
		`{"n":"1"}`,
		`{"n":99999999999999999999}`,
		`{"d":"x"}`,
		`{"d":1e400}`,
		`{"b":1}`,
		`{"b":"true"}`,
		`{"event_time":"yesterday"}`,
		`{"event_time":1764064800000}`,
		`[1]`,
		`{"n":1`,
	} {
		if _, err := encodeParquet("t", cols, [][]byte{[]byte(line)}, false); err == nil {
			t.Errorf("%s was written", line)
		}
	}
	// A field without a column is left out: a fixed table's messages carry
	// fields for other readers of the stream (a bad row's headers).
	if _, err := encodeParquet("t", cols, [][]byte{[]byte(`{"unknown":1,"n":2}`)}, false); err != nil {
		t.Errorf("a field without a column: %v", err)
	}
	// Any value is fine in a VARCHAR column, as its JSON text (a column
	// widened to VARCHAR after the row was written: enrich.widen_to_string).
	for _, line := range []string{`{"s":1}`, `{"s":{"a":1}}`, `{"s":true}`} {
		if _, err := encodeParquet("t", cols, [][]byte{[]byte(line)}, false); err != nil {
			t.Errorf("%s in a VARCHAR column: %v", line, err)
		}
	}
	// Integers are fine in a DOUBLE column (a column widened after the row was written).
	if _, err := encodeParquet("t", cols, [][]byte{[]byte(`{"d":12}`)}, false); err != nil {
		t.Errorf("an integer in a DOUBLE column: %v", err)
	}
}

// Many rows cross the writer's internal batches; all come back.
func TestParquetManyRows(t *testing.T) {
	const n = 5000
	data, err := encodeParquet("events", benchCols(), benchLines(n), false)
	if err != nil {
		t.Fatal(err)
	}
	db := openDuckDB(t)
	var count, distinct int
	var sum float64
	err = db.QueryRow(`SELECT count(*), count(DISTINCT event_id), sum(price) FROM read_parquet(`+sqlString(writeFile(t, data))+`)`).Scan(&count, &distinct, &sum)
	if err != nil {
		t.Fatal(err)
	}
	want := 0.0
	for i := range n {
		want += float64(i%100) + 0.5
	}
	if count != n || distinct != n || sum != want {
		t.Errorf("read %d rows, %d ids, sum(price) %v; want %d, %d, %v", count, distinct, sum, n, n, want)
	}
}

func TestParseMicros(t *testing.T) {
	for _, s := range []string{"2026-11-25T10:00:00.123456Z", "1970-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z", "2024-02-29T12:00:00.000001Z"} {
		got, ok := parseMicros([]byte(s))
		want, _ := time.Parse(time.RFC3339Nano, s)
		if !ok || got != want.UnixMicro() {
			t.Errorf("%s: %d %v, want %d", s, got, ok, want.UnixMicro())
		}
	}
	for _, s := range []string{"2026-11-25T10:00:00Z", "2026-02-30T10:00:00.000000Z", "2026-11-25T24:00:00.000000Z", "2026-11-25T10:00:00.00000aZ", "2026-11-25 10:00:00.000000Z", "2026-13-01T00:00:00.000000Z"} {
		if _, ok := parseMicros([]byte(s)); ok {
			t.Errorf("%s parsed", s)
		}
	}
}

// Every cell of a file comes back from DuckDB as the row had it: values of
// every type, JSON nulls and absent fields as NULL, empty and hostile
// strings, extremes; over several chunks of rows, through the archiver's
// encode (a dynamic table, one column first used late) and for a fixed
// table whose rows carry other fields.
func TestParquetRoundTripsEveryCell(t *testing.T) {
	own := []sluice.Column{
		{Name: "s", Type: sluice.TypeVarchar},
		{Name: "n", Type: sluice.TypeBigint},
		{Name: "d", Type: sluice.TypeDouble},
		{Name: "b", Type: sluice.TypeBoolean},
		{Name: "t", Type: sluice.TypeTimestamp},
		{Name: "j", Type: sluice.TypeJSON},
		{Name: "w", Type: sluice.TypeVarchar}, // widened: holds other JSON too
		{Name: "late", Type: sluice.TypeVarchar},
	}
	values := map[string][]string{
		"s": {`""`, `"plain"`, `"quo\"te"`, `"back\\slash"`, `"\u00e9\u2028\ud83c\udf89"`, `"ctl \u0000\u001f\t\n\r"`, `"東京 🎉"`,
			`"` + strings.Repeat(`abcdefg\"`, 40) + `"`, `"\/"`, `"ends with backslash \\"`},
		"n": {"0", "-0", "1", "-1", "9223372036854775807", "-9223372036854775808", "4294967296"},
		"d": {"0", "-0", "1.5", "-2.25e-300", "1.7976931348623157e308", "5e-324", "12", "1E3", "0.1"},
		"b": {"true", "false"},
		"t": {`"2026-11-25T10:00:00.123456Z"`, `"1970-01-01T00:00:00.000000Z"`, `"9999-12-31T23:59:59.999999Z"`, `"1969-12-31T23:59:59.999999Z"`,
			`"2024-02-29T12:00:00Z"`, `"2026-11-25T12:00:00.5+02:00"`},
		"j": {`{}`, `[]`, `{"a":[1,{"b":"c\"}"}],"d":null}`, `"str"`, `0`, `true`, `[{"k":"\u00e9"}]`},
		"w": {`"text"`, `12`, `-1.5`, `true`, `{"a":1}`, `[1,"x"]`, `""`},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3*guessRows + 17
	var lines [][]byte
	want := make([]map[string]any, n) // what each column should read back as; nil: NULL
	for r := range n {
		want[r] = map[string]any{}
		line := fmt.Sprintf(`{"event_id":"r%04d","event_time":"2026-11-25T10:00:00.000000Z"`, r)
		cols := []string{"s", "n", "d", "b", "t", "j", "w"}
		if r >= guessRows+5 && r%50 == 0 {
			cols = append(cols, "late")
		}
		rng.Shuffle(len(cols), func(i, j int) { cols[i], cols[j] = cols[j], cols[i] })
		for _, c := range cols {
			switch rng.IntN(5) {
			case 0: // absent
				continue
			case 1:
				line += `,"` + c + `":null`
				continue
			}
			vs := values[c]
			if c == "late" {
				vs = values["s"]
			}
			raw := vs[rng.IntN(len(vs))]
			line += `,"` + c + `":` + raw
			want[r][c] = expected(t, c, raw)
		}
		// Fields of other readers: left out of a fixed table.
		line += `,"other":{"x":1}}`
		lines = append(lines, []byte(line))
	}

	a := &Archiver{o: ArchiverOptions{Table: Table{Name: "t", Fixed: []sluice.Column{{Name: "event_id", Type: sluice.TypeVarchar}, {Name: "event_time", Type: sluice.TypeTimestamp}}, Dynamic: true}},
		schema: sluice.Schema{Table: "t", Columns: append(slices.Clone(own), sluice.Column{Name: "other", Type: sluice.TypeJSON})}}
	dynamic, err := a.encode(lines)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := encodeParquet("t", append([]sluice.Column{{Name: "event_id", Type: sluice.TypeVarchar}, {Name: "event_time", Type: sluice.TypeTimestamp}}, own...), lines, false)
	if err != nil {
		t.Fatal(err)
	}
	db := openDuckDB(t)
	for name, data := range map[string][]byte{"dynamic": dynamic, "fixed": fixed} {
		from := "FROM read_parquet(" + sqlString(writeFile(t, data)) + ")"
		types := columnTypes(t, db, "SELECT * "+from)
		for _, c := range own {
			if types[c.Name] != string(c.Type) {
				t.Errorf("%s: column %s is %q, want %s", name, c.Name, types[c.Name], c.Type)
			}
		}
		if name == "dynamic" && types["other"] != "JSON" {
			t.Errorf("dynamic: column other is %q, want JSON", types["other"])
		}
		if name == "fixed" && types["other"] != "" {
			t.Errorf("fixed: a column for the field other: %v", types)
		}
		rows, err := db.Query(`SELECT event_id, s, n, d, b, epoch_us(t), j::VARCHAR, w, late ` + from + ` ORDER BY event_id`)
		if err != nil {
			t.Fatal(err)
		}
		r := 0
		for rows.Next() {
			var id string
			var s, j, w, late sql.NullString
			var nn, ts sql.NullInt64
			var d sql.NullFloat64
			var b sql.NullBool
			if err := rows.Scan(&id, &s, &nn, &d, &b, &ts, &j, &w, &late); err != nil {
				t.Fatal(err)
			}
			if id != fmt.Sprintf("r%04d", r) {
				t.Fatalf("%s: row %d is %s", name, r, id)
			}
			got := map[string]any{}
			for c, v := range map[string]any{"s": s, "n": nn, "d": d, "b": b, "t": ts, "j": j, "w": w, "late": late} {
				if g := cell(v); g != nil {
					got[c] = g
				}
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want[r]) {
				t.Errorf("%s: row %d (%s) read back as\n%q\nwant\n%q", name, r, lines[r], got, want[r])
			}
			r++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if r != n {
			t.Errorf("%s: %d rows read back, want %d", name, r, n)
		}
	}
}

// expected is what DuckDB should read for the JSON value raw of column c.
func expected(t *testing.T, c, raw string) any {
	t.Helper()
	switch c {
	case "n":
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	case "d":
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			t.Fatal(err)
		}
		return math.Float64bits(v)
	case "b":
		return raw == "true"
	case "t":
		var ts time.Time
		if err := json.Unmarshal([]byte(raw), &ts); err != nil {
			t.Fatal(err)
		}
		return ts.UnixMicro()
	case "j":
		return raw
	}
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return raw // a widened column's other JSON: its text
	}
	return s
}

// cell is a scanned value as expected returns it; nil for NULL.
func cell(v any) any {
	switch v := v.(type) {
	case sql.NullString:
		if v.Valid {
			return v.String
		}
	case sql.NullInt64:
		if v.Valid {
			return v.Int64
		}
	case sql.NullFloat64:
		if v.Valid {
			return math.Float64bits(v.Float64)
		}
	case sql.NullBool:
		if v.Valid {
			return v.Bool
		}
	}
	return nil
}
