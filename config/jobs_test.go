package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestJobErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      wantErr
	}{
		{"bad schedule", "jobs:\n  j: {schedule: 'every day', sql: 'select 1', output: t}\n",
			wantErr{2, 17, "jobs.j.schedule", `jobs.j.schedule "every day"`, "cron with five fields"}},
		{"bad param type", "jobs:\n  j: {params: {date: day}, sql: 'select 1', output: t}\n",
			wantErr{2, 22, "jobs.j.params.date", `jobs.j.params.date has type "day"`, "date, time, int or string"}},
		{"two bodies", "jobs:\n  j: {sql: 'select 1', shell: {command: x}, output: t}\n",
			wantErr{2, 3, "jobs.j", "job j needs exactly one body: sql, shell, extract, http, load, rollup or compact", ""}},
		{"no output", "jobs:\n  j: {shell: {command: x}}\n",
			wantErr{2, 3, "jobs.j", "job j has no output", ""}},
		{"unknown requirement", "jobs:\n  j: {requires: [{job: k}], shell: {command: x}, output: {file: f}}\n",
			wantErr{2, 24, "jobs.j.requires[0].job", `jobs.j.requires[0].job: no job "k"`, "the jobs are j"}},
		{"missing parameter of a requirement", "jobs:\n  k: {params: {n: int}, shell: {command: x}, output: {file: 'f{{.n}}'}}\n  j: {requires: [{job: k}], shell: {command: x}, output: {file: f}}\n",
			wantErr{3, 18, "jobs.j.requires[0].params", "jobs.j.requires[0]: job k needs parameter n, which j does not have", "params: {n: '{{…}}'}"}},
		{"bad template", "jobs:\n  j: {params: {date: date}, sql: 'select {{.date', output: t}\n",
			wantErr{2, 34, "jobs.j.sql", "jobs.j.sql: template: jobs.j.sql:1: unclosed action", ""}},
		{"sql to a file", "jobs:\n  j: {sql: 'select 1', output: {file: x}}\n",
			wantErr{2, 39, "jobs.j.output.file", "jobs.j: an sql job writes a table, not a file", ""}},
		{"unknown resource", "jobs:\n  j: {sql: 'select 1', output: t, resources: {db: 1}}\n",
			wantErr{2, 51, "jobs.j.resources.db", `jobs.j.resources: no resource "db" in scheduler.resources`, "scheduler: {resources: {db: 2}}"}},
		{"cycle", "jobs:\n  a: {requires: [{job: b}], shell: {command: x}, output: {file: a}}\n  b: {requires: [{job: a}], shell: {command: x}, output: {file: b}}\n",
			wantErr{3, 17, "jobs.b.requires", "jobs require each other in a cycle: a → b → a", "break the cycle"}},
		{"scheduled with other params", "jobs:\n  j: {schedule: '@daily', params: {n: int}, shell: {command: x}, output: {file: 'f{{.n}}'}}\n",
			wantErr{2, 17, "jobs.j.schedule", "a scheduled job has one parameter, a date or a time (its interval's start), or none", ""}},
		{"hourly with a date", "jobs:\n  j: {schedule: '@hourly', params: {date: date}, shell: {command: x}, output: {file: 'f{{.date}}'}}\n",
			wantErr{2, 17, "jobs.j.schedule", `jobs.j: "@hourly" runs more than once a day, but a date parameter names a day`, "use a time parameter"}},
		{"scheduled output without a parameter", "jobs:\n  j: {schedule: '@daily', shell: {command: x}, output: {file: f}}\n",
			wantErr{2, 17, "jobs.j.schedule", "a scheduled job with an output needs a date or time parameter", ""}},
		{"missing sql file", "jobs:\n  j: {sql: nosuch.sql, output: t}\n",
			wantErr{2, 12, "jobs.j.sql", "jobs.j.sql: open nosuch.sql", ""}},
		{"sql to the lake", "jobs:\n  j: {sql: 'select 1', output: {lake: x}}\n",
			wantErr{2, 39, "jobs.j.output.lake", "jobs.j: only extract and http jobs write a lake table", ""}},
		{"extract to a table", "jobs:\n  j: {extract: {from: 'postgres://h/db', table: t, key: id}, output: t}\n",
			wantErr{2, 70, "jobs.j.output", "jobs.j: an extract or http job writes a lake table", "output: {lake: orders}"}},
		{"extract into events", "jobs:\n  j: {extract: {from: 'postgres://h/db', table: t, key: id}, output: {lake: events}}\n",
			wantErr{2, 77, "jobs.j.output.lake", `jobs.j.output.lake "events": a job writes a lake table of its own (letters, digits, _), not raw, events, bad, logs, a source's table or sluice_…`, ""}},
		{"extract with a partition", "jobs:\n  j: {extract: {from: 'postgres://h/db', table: t, key: id}, output: {lake: o, partition: x}}\n",
			wantErr{2, 91, "jobs.j.output.partition", "jobs.j: the lake output of an extract or http job has no partition to name: a run is done when its rows are in the lake", "remove partition"}},
		{"extract from elsewhere", "jobs:\n  j: {extract: {from: 'sqlite://x', table: t, key: id}, output: {lake: o}}\n",
			wantErr{2, 23, "jobs.j.extract.from", `jobs.j.extract.from: "sqlite://x" is neither a postgres:// nor a mysql:// URL`, ""}},
		{"bad mysql dsn", "jobs:\n  j: {extract: {from: 'mysql://u:p@tcp(h:3306)', table: t, key: id}, output: {lake: o}}\n",
			wantErr{2, 23, "jobs.j.extract.from", "jobs.j.extract.from: ", ""}},
		{"extract without key", "jobs:\n  j: {extract: {from: 'mysql://u:p@h/db', table: t}, output: {lake: o}}\n",
			wantErr{2, 16, "jobs.j.extract.key", "jobs.j.extract needs key: the table's unique key orders its pages", ""}},
		{"bad table name", "jobs:\n  j: {extract: {from: 'mysql://u:p@h/db', table: 'a b', key: id}, output: {lake: o}}\n",
			wantErr{2, 50, "jobs.j.extract.table", `jobs.j.extract.table "a b": name a table (letters, digits, _), optionally schema.table`, ""}},
		{"parallel incremental", "jobs:\n  j: {extract: {from: 'mysql://u:p@h/db', table: t, key: id, cursor: u}, output: {lake: o}, concurrency: 2}\n",
			wantErr{2, 106, "jobs.j.concurrency", "jobs.j: the runs of an incremental extract share one cursor, so they run one at a time", "remove concurrency"}},
		{"lake written by a pipeline", "pipelines:\n  p: {from: events, to: {lake: o}}\njobs:\n  j: {extract: {from: 'mysql://u:p@h/db', table: t, key: id}, output: {lake: o}}\n",
			wantErr{4, 78, "jobs.j.output.lake", `jobs.j.output.lake "o" is written by pipeline p too`, ""}},
		{"http cursor without path", "jobs:\n  j: {http: {url: 'https://x/y', paginate: cursor}, output: {lake: o}}\n",
			wantErr{2, 44, "jobs.j.http.paginate", "jobs.j.http: paginate: cursor needs cursor, the path of the next page's cursor in a response", ""}},
		{"http bad url", "jobs:\n  j: {http: {url: 'ftp://x/y'}, output: {lake: o}}\n",
			wantErr{2, 19, "jobs.j.http.url", `jobs.j.http.url "ftp://x/y" is not an http(s) URL`, ""}},
		{"load with an output", "jobs:\n  j: {load: {from: orders, to: 'postgres://h/db'}, output: {file: x}}\n",
			wantErr{2, 60, "jobs.j.output", "jobs.j: a load job has no output: it runs whenever it is asked or scheduled, and a run copies only what changed", "remove output"}},
		{"load elsewhere", "jobs:\n  j: {load: {from: orders, to: 'mysql://h/db'}}\n",
			wantErr{2, 32, "jobs.j.load.to", `jobs.j.load.to "mysql://h/db" is not a postgres:// URL`, ""}},
		{"http param without paging", "jobs:\n  j: {http: {url: 'https://x/y', param: p}, output: {lake: o}}\n",
			wantErr{2, 41, "jobs.j.http.param", "jobs.j.http.param names the query parameter of a cursor or page number; it needs paginate: cursor or page", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
}

func TestExtractJobs(t *testing.T) {
	t.Setenv("ORDERS_DB", "postgres://u:secret@db.example.com:5432/shop")
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(path, []byte(`jobs:
  orders:
    params: {date: date}
    extract: {from: "${ORDERS_DB}", table: public.orders, cursor: updated_at, key: id}
    output: {lake: orders}
  items:
    extract: {from: "mysql://u:p@db.example.com/shop", table: items, key: [order_id, line], page: 500, decimals: varchar}
    output: {lake: items}
  api:
    params: {date: date}
    http: {url: "https://api.example.com/v1/users?since={{.date}}", records: data, paginate: cursor, cursor: meta.next}
    output: {lake: users}
pipelines:
  big_orders: {from: orders, steps: [{filter: 'amount > 100'}], to: {lake: big_orders}}
`), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	o, it, api := c.Jobs["orders"], c.Jobs["items"], c.Jobs["api"]
	if o.Extract.From != "postgres://u:secret@db.example.com:5432/shop" || o.Extract.Page != 10000 || o.Extract.Decimals != "double" || !o.Extract.Incremental() || o.Concurrency != 1 {
		t.Errorf("orders: %+v %+v", o, o.Extract)
	}
	if it.Extract.Incremental() || it.Concurrency != 4 || len(it.Extract.Key) != 2 || it.Extract.Page != 500 {
		t.Errorf("items: %+v %+v", it, it.Extract)
	}
	if h := api.HTTP; h.Param != "cursor" || h.Rate != 10 || h.Retries != 5 || h.Timeout.D() != 30*time.Second || h.FirstPage != 1 {
		t.Errorf("api: %+v", h)
	}
	if !o.WritesLake() || !api.WritesLake() {
		t.Error("extract and http jobs write their lake output")
	}
	// Their lake tables are archived like pipelines' lake outputs, by the
	// time rows were read; a pipeline may read their streams.
	want := map[string]string{"orders": "_extracted_at", "items": "_extracted_at", "users": "_extracted_at", "big_orders": "_extracted_at"}
	if got := c.LakeOutputs(); !maps.Equal(got, want) {
		t.Errorf("lake outputs %v, want %v", got, want)
	}
	if got := c.PipelineStreams(); !slices.Equal(got, []string{"big_orders", "items", "orders", "users"}) {
		t.Errorf("streams %v", got)
	}
	for from, want := range map[string]string{
		"mysql://u:p@tcp(h:3307)/db":          "u:p@tcp(h:3307)/db?parseTime=true",
		"mysql://u:p@h/db?charset=utf8mb4":    "u:p@tcp(h:3306)/db?charset=utf8mb4&parseTime=true",
		"postgresql://u@h/db?sslmode=require": "postgresql://u@h/db?sslmode=require",
	} {
		if _, dsn, err := SourceDB(from); err != nil || dsn != want {
			t.Errorf("SourceDB(%s) = %q, %v; want %q", from, dsn, err, want)
		}
	}
}

func TestJobDefaultsAndSQLFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rev.sql"), []byte("SELECT DATE '{{.date}}' AS dt\n"), 0o644)
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, []byte(`jobs:
  rev: {params: {date: date}, sql: rev.sql, output: rev, retries: 0}
  sh: {shell: {command: 'echo hi'}, output: {file: out}}
`), 0o644)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rev, sh := c.Jobs["rev"], c.Jobs["sh"]
	if rev.SQL != "SELECT DATE '{{.date}}' AS dt\n" || rev.Output.Table != "rev" || rev.Output.PartitionBy != "dt" {
		t.Errorf("rev: %+v", rev)
	}
	if rev.Retries != 0 || sh.Retries != 2 {
		t.Errorf("retries: rev %d (given 0), sh %d (default 2)", rev.Retries, sh.Retries)
	}
	if sh.RetryDelay.D() != 10*time.Second || sh.Timeout.D() != time.Hour || sh.Concurrency != 4 || sh.DisableAfter != 3 || sh.Shell.Dir != dir {
		t.Errorf("sh defaults: %+v %+v", sh, sh.Shell)
	}
	if sh.DefaultPartition() != "" || rev.DefaultPartition() != "{{.date}}" {
		t.Errorf("default partitions %q %q", sh.DefaultPartition(), rev.DefaultPartition())
	}
}
