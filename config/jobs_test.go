package config

import (
	"os"
	"path/filepath"
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
			wantErr{2, 22, "jobs.j.params.date", `jobs.j.params.date has type "day"`, "date, int or string"}},
		{"two bodies", "jobs:\n  j: {sql: 'select 1', shell: {command: x}, output: t}\n",
			wantErr{2, 3, "jobs.j", "job j needs exactly one body: sql, shell or compact", ""}},
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
			wantErr{2, 17, "jobs.j.schedule", "a scheduled job's only parameter is date", ""}},
		{"missing sql file", "jobs:\n  j: {sql: nosuch.sql, output: t}\n",
			wantErr{2, 12, "jobs.j.sql", "jobs.j.sql: open nosuch.sql", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
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
