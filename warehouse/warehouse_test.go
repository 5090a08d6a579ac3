package warehouse

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	r := &Result{
		Columns: []Column{{"name", "VARCHAR"}, {"n", "BIGINT"}, {"tags", "VARCHAR[]"}},
		Rows:    [][]any{{"a,b \"q\"", int64(1), []any{"x", "y"}}, {nil, int64(22), nil}, {strings.Repeat("é", 70), int64(3), nil}},
	}
	var b bytes.Buffer
	if err := r.Format(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	if want := "name,n,tags\n\"a,b \"\"q\"\"\",1,\"[\"\"x\"\",\"\"y\"\"]\"\n,22,\n" + strings.Repeat("é", 70) + ",3,\n"; b.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := r.Format(&b, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "name") || !strings.Contains(lines[3], "NULL") || !strings.HasSuffix(lines[5], "(3 rows)") {
		t.Errorf("table:\n%s", b.String())
	}
	if !strings.Contains(lines[4], "…") {
		t.Errorf("long cells are cut: %q", lines[4])
	}
	b.Reset()
	if err := r.Format(&b, "json"); err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Rows) != 3 || back.Columns[2].Type != "VARCHAR[]" {
		t.Errorf("json: %v %s", err, b.String())
	}
	if err := r.Format(&b, "xml"); err == nil || !strings.Contains(err.Error(), "table, csv, json") {
		t.Errorf("unknown format: %v", err)
	}
}

func TestViewsFollowTheLake(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(context.Background(), filepath.Join(dir, "wh.duckdb"), filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Built-in tables exist, empty, with their columns in table order.
	res, err := w.Query(context.Background(), "SELECT * FROM events", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 0 || res.Columns[0].Name != "event_id" || res.Columns[1].Type != "TIMESTAMP" {
		t.Errorf("empty events: %+v", res)
	}
	if _, err := w.Query(context.Background(), "SELECT count(*) FROM bad", 0); err != nil {
		t.Errorf("empty bad: %v", err)
	}
	// Results carry DuckDB's types to JSON faithfully.
	res, err = w.Query(context.Background(), `SELECT 1::HUGEINT AS h, 2.50::DECIMAL(5,2) AS d, 'x'::BLOB AS b, '\x80'::BLOB AS nb,
		TIMESTAMP '2026-01-02 03:04:05.123456' AS ts, DATE '2026-01-02' AS dt, uuid() IS NOT NULL AS u, {'k': [1, 2]} AS s, MAP {'a': 1} AS m,
		INTERVAL 3 DAY AS i`, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res.Rows)
	if err != nil {
		t.Fatal(err)
	}
	want := `[["1",2.5,"x","gA==","2026-01-02T03:04:05.123456Z","2026-01-02T00:00:00Z",true,{"k":[1,2]},{"a":1},"0 months 3 days 0 µs"]]`
	if string(b) != want {
		t.Errorf("values:\n got %s\nwant %s", b, want)
	}
}

// DataVersion moves after every change a query could see, and only then.
func TestDataVersionFollowsEveryChange(t *testing.T) {
	l := newDuckLake(t)
	ctx := context.Background()
	w := l.w
	last := w.DataVersion()
	step := func(what string, changes bool) {
		t.Helper()
		v := w.DataVersion()
		if moved := v != last; moved != changes {
			t.Errorf("%s: version %d -> %d, want a change: %v", what, last, v, changes)
		}
		last = v
	}
	l.write("clicks", "2026-11-25", 9, "s-1-2.parquet", "SELECT 1 AS n")
	step("a new lake file", true)
	if err := w.Refresh(ctx, "clicks"); err != nil {
		t.Fatal(err)
	}
	step("a refresh that finds the same files", false)
	if err := w.WriteRows(ctx, "results", []string{"k"}, []map[string]any{{"k": "a", "n": 1}}); err != nil {
		t.Fatal(err)
	}
	step("a pipeline's rows", true)
	if _, err := w.ReplacePartition(ctx, JobOutput{Table: "daily", PartitionBy: "day", Partition: "2026-11-25", Job: "daily", RunID: "r1"},
		"SELECT DATE '2026-11-25' AS day, 3 AS n"); err != nil {
		t.Fatal(err)
	}
	step("a job's partition", true)
	if _, err := w.ReplacePartition(ctx, JobOutput{Table: "daily", PartitionBy: "day", Partition: "2026-11-26", Job: "daily", RunID: "r2"},
		"SELECT nonsense FROM nowhere"); err == nil {
		t.Fatal("a job's failing SQL succeeded")
	}
	step("a job's failed partition", false)
	b := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	if err := w.ReplaceBuckets(ctx, "views_1m", []TableColumn{{"time", "TIMESTAMP"}, {"views", "BIGINT"}}, []time.Time{b}, [][]any{{b, int64(4)}}); err != nil {
		t.Fatal(err)
	}
	step("a rollup's buckets", true)
	if _, err := w.Query(ctx, "SELECT count(*) FROM clicks", 0); err != nil {
		t.Fatal(err)
	}
	step("a query", false)
}
