package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/internal/natstest"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/server"
)

// jobsCLI runs `sluice jobs ARGS… --api-addr` against p and returns what
// it printed.
func jobsCLI(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	args = append(append([]string{"jobs"}, args...), "--api-addr", strings.TrimPrefix(p.api, "http://"))
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var runLine = regexp.MustCompile(`(?m)^run (\S+): `)

// startRun starts a run with `sluice jobs run` and returns its id.
func startRun(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	out := jobsCLI(t, p, append([]string{"run"}, args...)...)
	m := runLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sluice jobs run %v printed no run id:\n%s", args, out)
	}
	return m[1]
}

// waitRunEnd polls a run through p's API until it ended.
func waitRunEnd(t *testing.T, p *proc, id string) jobs.Run {
	t.Helper()
	c := &server.Client{URL: p.api}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := c.GetRun(t.Context(), id)
		if err == nil && (r.State == jobs.StateSucceeded || r.State == jobs.StateFailed || r.State == jobs.StateCancelled) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not end within 60s: %+v, %v\n%s", id, r, err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFile waits until a file exists.
func waitFile(t *testing.T, path string, p *proc) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within 30s\n%s", path, p.log.String())
		}
	}
}

// A `sluice up` killed with SIGKILL in the middle of a run: the output is
// not there, only its temporary file; restarted on the same data dir (the
// same member name), the process takes its runs back at once and goes on
// with them: the same run, its first attempt dead, then the output whole.
// Once for a run of a shell job, once for an SQL job whose requirement
// (the shell job, for another day) was running; and a job that fails
// twice then succeeds shows its attempts and backoff in `sluice jobs
// status RUN_ID`.
func TestJobsKillMidRun(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, fmt.Appendf(nil, `
jobs:
  export:
    params: {date: date}
    shell:
      command: |
        printf 'first half\n' > "$SLUICE_OUTPUT"
        touch %[1]s/started-{{.date}}
        sleep 3
        printf 'second half\n' >> "$SLUICE_OUTPUT"
    output: {file: '%[1]s/export-{{.date}}.txt'}
  load:
    params: {date: date}
    requires: [{job: export}]
    sql: SELECT DATE '{{.date}}' AS dt, range AS n FROM range(1000)
    output: {table: exports, partition_by: dt}
  flaky:
    retries: 2
    retry_delay: 200ms
    shell: {command: 'c=$(cat %[1]s/flaky 2>/dev/null || echo 0); c=$((c+1)); echo $c > %[1]s/flaky; echo attempt $c; [ $c -ge 3 ] && echo done > "$SLUICE_OUTPUT"'}
    output: {file: '%[1]s/flaky.done'}
`, dir), 0o644)
	data, collector, api := t.TempDir(), freePort(t), freePort(t)
	p := startSluice(t, data, collector, api, "-c", cfgFile)
	defer func() { p.cmd.Process.Kill() }()
	c := &server.Client{URL: p.api}

	// Attempts and backoff, through the CLI.
	id := startRun(t, p, "flaky")
	if r := waitRunEnd(t, p, id); r.State != jobs.StateSucceeded || len(r.Attempts) != 3 {
		t.Fatalf("flaky: %+v", r)
	}
	status := jobsCLI(t, p, "status", id)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^run ` + regexp.QuoteMeta(id) + `  flaky\(\)  SUCCEEDED  \(api, by `),
		regexp.MustCompile(`(?m)^  attempt 1  failed  started \S+  took \S+  retry in 200ms\n    error: command failed with exit code 1\n    \| \$ .*\n    \| attempt 1$`),
		regexp.MustCompile(`(?m)^  attempt 2  failed  started \S+  took \S+  retry in 400ms$`),
		regexp.MustCompile(`(?m)^  attempt 3  succeeded  started \S+  took \S+\n    \| \$ .*\n    \| attempt 3$`),
	} {
		if !want.MatchString(status) {
			t.Errorf("sluice jobs status %s lacks %s:\n%s", id, want, status)
		}
	}

	// killed runs the task of date while its shell command sleeps between
	// the two halves of its output, kills p, and checks that no output is
	// there, only a temporary file.
	killed := func(date string, args ...string) string {
		t.Helper()
		id := startRun(t, p, args...)
		waitFile(t, filepath.Join(dir, "started-"+date), p)
		time.Sleep(500 * time.Millisecond)
		p.kill(t)
		out := filepath.Join(dir, "export-"+date+".txt")
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("after kill -9 in the middle of the run, %s exists (%v)", out, err)
		}
		if tmp, _ := filepath.Glob(out + ".tmp-*"); len(tmp) != 1 {
			t.Fatalf("temporary outputs after the kill: %v", tmp)
		}
		t.Logf("kill -9 in the middle of run %s of %v: no output, only its temporary file", id, args)
		return id
	}
	checkOutput := func(date string) {
		t.Helper()
		out := filepath.Join(dir, "export-"+date+".txt")
		if b, err := os.ReadFile(out); err != nil || string(b) != "first half\nsecond half\n" {
			t.Fatalf("%s: %q, %v", out, b, err)
		}
		if tmp, _ := filepath.Glob(out + ".tmp-*"); len(tmp) > 0 {
			t.Errorf("temporary outputs left: %v", tmp)
		}
	}
	restart := func() time.Time {
		t.Helper()
		p = startSluice(t, data, collector, api, "-c", cfgFile)
		return time.Now()
	}

	// A run of the shell job.
	id = killed("2026-11-20", "export", "--param", "date=2026-11-20")
	up := restart()
	r := waitRunEnd(t, p, id)
	t.Logf("restarted: run %s ended %s after the process was up again", id, time.Since(up).Round(100*time.Millisecond))
	if r.State != jobs.StateSucceeded || len(r.Attempts) != 2 || r.Attempts[0].State != jobs.StateDead ||
		!strings.Contains(r.Attempts[0].Error, "stopped renewing its lease") || r.Attempts[1].State != jobs.StateSucceeded {
		t.Fatalf("the killed run after the restart: %+v", r)
	}
	checkOutput("2026-11-20")
	if runs, err := c.Runs(t.Context(), "export", 0); err != nil || len(runs) != 1 {
		t.Fatalf("runs of export: %d, %v; want the one", len(runs), err)
	}
	status = jobsCLI(t, p, "status", id)
	if !regexp.MustCompile(`(?m)^  attempt 1  dead .*\n    error: process \S+ stopped renewing its lease`).MatchString(status) ||
		!regexp.MustCompile(`(?m)^  attempt 2  succeeded `).MatchString(status) {
		t.Errorf("sluice jobs status %s:\n%s", id, status)
	}

	// A run of the SQL job, killed while its requirement ran: both go on.
	id = killed("2026-11-21", "load", "--param", "date=2026-11-21")
	if got := fmt.Sprint(sql(t, data, "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('exports', 'sluice_job_outputs')")); got != "[[0]]" {
		t.Fatalf("load's table or the catalog exists after the kill: %s", got)
	}
	up = restart()
	r = waitRunEnd(t, p, id)
	t.Logf("restarted: run %s of load ended %s after the process was up again", id, time.Since(up).Round(100*time.Millisecond))
	if r.State != jobs.StateSucceeded || len(r.Attempts) != 1 || r.Attempts[0].State != jobs.StateSucceeded {
		t.Fatalf("the killed run of load after the restart: %+v", r)
	}
	checkOutput("2026-11-21")
	runs, err := c.Runs(t.Context(), "export", 0)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs of export: %d, %v; want 2", len(runs), err)
	}
	if e := runs[0]; e.Params["date"] != "2026-11-21" || e.Trigger != "requirement" || e.State != jobs.StateSucceeded ||
		len(e.Attempts) != 2 || e.Attempts[0].State != jobs.StateDead || e.Attempts[1].State != jobs.StateSucceeded {
		t.Fatalf("the requirement's run: %+v", e)
	}
	res, err := c.SQL(t.Context(), "SELECT count(*), sum(n) FROM exports WHERE dt = DATE '2026-11-21'")
	if err != nil || fmt.Sprint(res.Rows) != "[[1000 499500]]" {
		t.Fatalf("exports of 2026-11-21: %+v, %v", res, err)
	}
	p.stop(t)
}

// Two `sluice up` processes on one external NATS (Debian's nats-server
// when installed, see internal/natstest) with the same jobs: both backfill
// the same DAG at the same time, through the CLI, and every job+date runs
// exactly once (the shell commands append "job date pid" to a log both
// share, pid being the sluice process's); both backfills report every
// date complete, and both processes did part of the work. A job on a
// clock (@every 2s) fires each interval once across the two processes
// (the clock record's revision decides).
func TestJobsAcrossProcesses(t *testing.T) {
	nats := natstest.Start(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, fmt.Appendf(nil, `
bus: {url: %[2]q}
http: {max_body: 524288} # half the server's default max_payload
jobs:
  extract:
    params: {date: date}
    shell: {command: 'echo "extract {{.date}} $PPID" >> %[1]s/log; sleep 0.2; echo {{.date}} > "$SLUICE_OUTPUT"'}
    output: {file: '%[1]s/out/extract-{{.date}}'}
  report:
    params: {date: date}
    requires: [{job: extract}, {job: extract, params: {date: '{{add_days .date -1}}'}}]
    shell: {command: 'echo "report {{.date}} $PPID" >> %[1]s/log; sleep 0.2; cat %[1]s/out/extract-{{.date}} > "$SLUICE_OUTPUT"'}
    output: {file: '%[1]s/out/report-{{.date}}'}
  tick:
    schedule: '@every 2s'
    compact: {}
`, dir, nats.URL()), 0o644)
	a := startSluice(t, t.TempDir(), freePort(t), freePort(t), "-c", cfgFile)
	defer a.cmd.Process.Kill()
	b := startSluice(t, t.TempDir(), freePort(t), freePort(t), "-c", cfgFile)
	defer b.cmd.Process.Kill()
	t.Logf("nats-server: %s", strings.SplitN(nats.Logs(), "\n", 3)[1])

	// The clock's record, read as the processes started: the intervals
	// after it fire once each.
	state, err := bus.Open(t.Context(), bus.Options{URL: nats.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	clock := func() time.Time {
		t.Helper()
		data, _, err := state.GetState(t.Context(), "jobs.clock.tick")
		var at time.Time
		if err != nil || data == nil || json.Unmarshal(data, &at) != nil {
			t.Fatalf("jobs.clock.tick: %q, %v", data, err)
		}
		return at
	}
	waitUntil(t, 10*time.Second, "the clock's record", func() bool {
		data, _, err := state.GetState(t.Context(), "jobs.clock.tick")
		return err == nil && data != nil
	}, a, b)
	clockStart, started := clock(), time.Now()

	const from, to, days = "2026-10-01", "2026-10-30", 30
	start := time.Now()
	outs := make(chan string, 2)
	for _, p := range []*proc{a, b} {
		go func() {
			out, err := exec.Command(binary, "jobs", "backfill", "report", "--from", from, "--to", to,
				"--api-addr", strings.TrimPrefix(p.api, "http://")).CombinedOutput()
			if err != nil {
				out = fmt.Appendf(out, "\n%v", err)
			}
			outs <- string(out)
		}()
	}
	for range 2 {
		out := <-outs
		if !strings.Contains(out, fmt.Sprintf("backfill of report from %s to %s: %d dates complete, 0 failed", from, to, days)) {
			t.Fatalf("sluice jobs backfill:\n%s", out)
		}
	}
	t.Logf("two concurrent backfills of %d days (%d tasks) in %s", days, 2*days+1, time.Since(start).Round(100*time.Millisecond))

	logData, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	by := map[string]int{}
	pids := map[string]string{fmt.Sprint(a.cmd.Process.Pid): "A", fmt.Sprint(b.cmd.Process.Pid): "B"}
	for _, l := range strings.Split(strings.TrimSpace(string(logData)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || pids[f[2]] == "" {
			t.Fatalf("log line %q: not job, date and the pid of A or B (%v)", l, pids)
		}
		runs[f[0]+" "+f[1]]++
		by[pids[f[2]]]++
	}
	first, _ := time.Parse(time.DateOnly, from)
	for d := -1; d < days; d++ {
		date := first.AddDate(0, 0, d).Format(time.DateOnly)
		for _, job := range []string{"extract", "report"} {
			if job == "report" && d < 0 {
				continue
			}
			if n := runs[job+" "+date]; n != 1 {
				t.Errorf("%s of %s ran %d times, want once", job, date, n)
			}
		}
	}
	if len(runs) != 2*days+1 {
		t.Errorf("%d tasks ran, want %d: %v", len(runs), 2*days+1, runs)
	}
	t.Logf("each of the %d tasks ran once: %d in A, %d in B", len(runs), by["A"], by["B"])
	if by["A"] == 0 || by["B"] == 0 {
		t.Errorf("one process did all the work: %v", by)
	}
	c := &server.Client{URL: a.api}
	for _, job := range []string{"extract", "report"} {
		rs, err := c.Runs(t.Context(), job, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := days
		if job == "extract" {
			want++
		}
		if len(rs) != want {
			t.Errorf("%d runs of %s recorded, want %d", len(rs), job, want)
		}
		for _, r := range rs {
			if r.State != jobs.StateSucceeded || len(r.Attempts) != 1 {
				t.Errorf("run %s of %s: %s with %d attempts", r.ID, r.Task(), r.State, len(r.Attempts))
			}
		}
	}

	// The clock: let it tick for 12 s in all, stop both, and count.
	time.Sleep(12*time.Second - time.Since(started))
	a.stop(t)
	b.stop(t)
	sched, err := config.ParseSchedule("@every 2s")
	if err != nil {
		t.Fatal(err)
	}
	clockEnd := clock()
	intervals := 0
	for at := clockStart; ; intervals++ {
		at = sched.Next(at)
		if at.After(clockEnd) {
			break
		}
	}
	// Read with a process of its own: both servers are stopped.
	ticks, owners := 0, map[string]int{}
	keys, err := state.StateKeys(t.Context(), "jobs.run")
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]string{memberOf(t, a.data): "A", memberOf(t, b.data): "B"}
	for _, k := range keys {
		data, _, err := state.GetState(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		var r jobs.Run
		if data == nil || json.Unmarshal(data, &r) != nil || r.Job != "tick" {
			continue
		}
		if r.Trigger != "schedule" || (r.State != jobs.StateSucceeded && r.State != jobs.StateCancelled) {
			t.Errorf("run %s of tick: %s, %s: %s", r.ID, r.Trigger, r.State, r.Error)
		}
		ticks++
		owners[members[r.Owner]]++
	}
	t.Logf("the clock fired %d intervals of 2s from %s to %s; %d runs of tick (%d by A, %d by B)",
		intervals, clockStart.Format("15:04:05.000"), clockEnd.Format("15:04:05.000"), ticks, owners["A"], owners["B"])
	if intervals < 4 || ticks != intervals {
		t.Errorf("%d runs of tick for %d intervals: want one each", ticks, intervals)
	}
}
