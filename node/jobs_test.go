package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/server"
)

// jobsConfig: daily revenue from the lake's events into a warehouse table,
// a report file made from it, and jobs that fail, hang or sleep.
const jobsConfig = `
jobs:
  daily_revenue:
    params: {date: date}
    requires: [{lake: events}]
    sql: |
      SELECT DATE '{{.date}}' AS dt, country, count(*) AS purchases, sum(revenue) AS revenue
      FROM events
      WHERE event = 'purchase' AND event_time >= TIMESTAMP '{{.date}}' AND event_time < TIMESTAMP '{{.date}}' + INTERVAL 1 DAY
      GROUP BY country
    output: {table: daily_revenue, partition_by: dt}
  daily_report:
    params: {date: date}
    requires: [{job: daily_revenue}]
    shell: {command: 'echo "report {{.date}}" > "$SLUICE_OUTPUT"'}
    output: {file: 'DIR/reports/{{.date}}.txt'}
  flaky:
    params: {n: int}
    retries: 2
    retry_delay: 100ms
    shell: {command: 'c=$(cat DIR/flaky-{{.n}} 2>/dev/null || echo 0); c=$((c+1)); echo $c > DIR/flaky-{{.n}}; echo attempt $c; [ $c -ge 3 ] && echo done > "$SLUICE_OUTPUT"'}
    output: {file: 'DIR/flaky-{{.n}}.done'}
  broken:
    params: {n: int}
    retries: 0
    disable_after: 2
    shell: {command: 'echo failing; exit 3'}
    output: {file: 'DIR/broken-{{.n}}'}
  slow:
    params: {n: int}
    retries: 0
    timeout: 1s
    shell: {command: 'sleep {{.n}}; touch "$SLUICE_OUTPUT"'}
    output: {file: 'DIR/slow-{{.n}}'}
  bad_sql:
    params: {date: date}
    retries: 0
    sql: SELECT DATE '2000-01-01' AS dt, 1 AS x
    output: {table: bad_sql}
`

func startJobsNode(t *testing.T) (dir, api, coll string, stop func()) {
	t.Helper()
	dir = t.TempDir()
	cfgFile := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfgFile, []byte(strings.ReplaceAll(jobsConfig, "DIR", dir)), 0o644)
	n := startNode(t, filepath.Join(dir, "data"), withConfigFile(t, cfgFile))
	return dir, n.APIURL(), n.CollectorURL(), func() { n.Stop() }
}

func runCount(t *testing.T, c *server.Client, job string) int {
	t.Helper()
	runs, err := c.Runs(context.Background(), job, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(runs)
}

func waitRun(t *testing.T, c *server.Client, id string) jobs.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == jobs.StateSucceeded || r.State == jobs.StateFailed || r.State == jobs.StateCancelled {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("run %s did not end", id)
	return jobs.Run{}
}

func backfill(t *testing.T, c *server.Client, job, from, to string) server.BackfillProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := c.Backfill(ctx, job, server.BackfillRequest{From: from, To: to, Parallel: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// A DAG over 14 days: backfilled once, then nothing; a deleted output runs
// that day again, and a requirement made again runs what was made from it.
func TestJobsBackfill(t *testing.T) {
	dir, api, coll, stop := startJobsNode(t)
	defer stop()
	c := &server.Client{URL: api}
	ctx := context.Background()
	var b strings.Builder
	id := 0
	for day := range 14 {
		for i := range 20 {
			id++
			at := time.Date(2026, 11, 1+day, i, 30, 0, 0, time.UTC)
			fmt.Fprintf(&b, `{"event_id":"e%d","event":"purchase","event_time":%q,"country":%q,"revenue":%d.5}`+"\n",
				id, at.Format(time.RFC3339), []string{"DE", "FR", "US"}[i%3], i)
		}
	}
	if code, msg := post(t, coll, "application/x-ndjson", []byte(b.String())); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	waitFor(t, api, "SELECT count(*) FROM events", fmt.Sprintf("[[%d]]", id))

	start := time.Now()
	sum := backfill(t, c, "daily_report", "2026-11-01", "2026-11-14")
	if sum.Done != 14 || sum.Failed != 0 {
		t.Fatalf("backfill: %+v", sum)
	}
	t.Logf("14 days of a two-job DAG in %s", time.Since(start))
	want := fmt.Sprint(query(t, api, "SELECT CAST(event_time AS DATE) AS dt, country, count(*), sum(revenue) FROM events WHERE event = 'purchase' GROUP BY ALL ORDER BY ALL").Rows)
	if got := fmt.Sprint(query(t, api, "SELECT dt, country, purchases, revenue FROM daily_revenue ORDER BY ALL").Rows); got != want {
		t.Fatalf("daily_revenue:\n%s\nwant\n%s", got, want)
	}
	waitFor(t, api, "SELECT count(*), count(DISTINCT partition), min(partition), max(partition) FROM sluice_job_outputs", "[[14 14 2026-11-01 2026-11-14]]")
	for day := 1; day <= 14; day++ {
		b, err := os.ReadFile(filepath.Join(dir, "reports", fmt.Sprintf("2026-11-%02d.txt", day)))
		if err != nil || string(b) != fmt.Sprintf("report 2026-11-%02d\n", day) {
			t.Fatalf("report of day %d: %q, %v", day, b, err)
		}
	}
	if n, m := runCount(t, c, "daily_revenue"), runCount(t, c, "daily_report"); n != 14 || m != 14 {
		t.Fatalf("runs: %d daily_revenue, %d daily_report; want 14 each", n, m)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "reports", "*.tmp-*")); len(tmp) > 0 {
		t.Fatalf("temporary outputs left: %v", tmp)
	}

	// Again: everything is complete, nothing runs.
	if sum := backfill(t, c, "daily_report", "2026-11-01", "2026-11-14"); sum.Done != 14 || sum.Failed != 0 {
		t.Fatalf("second backfill: %+v", sum)
	}
	if n, m := runCount(t, c, "daily_revenue"), runCount(t, c, "daily_report"); n != 14 || m != 14 {
		t.Fatalf("a second backfill ran something: %d daily_revenue, %d daily_report runs", n, m)
	}

	// A deleted report runs that day's report again, and nothing else.
	os.Remove(filepath.Join(dir, "reports", "2026-11-05.txt"))
	backfill(t, c, "daily_report", "2026-11-01", "2026-11-14")
	if n, m := runCount(t, c, "daily_revenue"), runCount(t, c, "daily_report"); n != 14 || m != 15 {
		t.Fatalf("after deleting one report: %d daily_revenue, %d daily_report runs; want 14 and 15", n, m)
	}
	// daily_revenue of the 7th made again (forced): the report made from
	// the old version runs again in the next backfill; no other day does.
	ans, err := c.SubmitRun(ctx, "daily_revenue", server.RunRequest{Params: map[string]string{"date": "2026-11-07"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateSucceeded {
		t.Fatalf("forced run: %+v", r)
	}
	backfill(t, c, "daily_report", "2026-11-01", "2026-11-14")
	if n, m := runCount(t, c, "daily_revenue"), runCount(t, c, "daily_report"); n != 15 || m != 16 {
		t.Fatalf("after daily_revenue of one day was made again: %d daily_revenue, %d daily_report runs; want 15 and 16", n, m)
	}
	runs, _ := c.Runs(ctx, "daily_report", 1)
	if got := runs[0].Params["date"]; got != "2026-11-07" {
		t.Fatalf("the report run again is of %s, want 2026-11-07", got)
	}
	// A complete task is not run again unless forced.
	ans, err = c.SubmitRun(ctx, "daily_report", server.RunRequest{Params: map[string]string{"date": "2026-11-03"}})
	if err != nil || !ans.Complete {
		t.Fatalf("submitting a complete task: %+v, %v", ans, err)
	}
	// A day whose lake partition is still open cannot run yet.
	today := time.Now().UTC().Format(time.DateOnly)
	ans, err = c.SubmitRun(ctx, "daily_revenue", server.RunRequest{Params: map[string]string{"date": today}})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateFailed || !strings.Contains(r.Error, "requirement lake events partition dt="+today+" is missing") {
		t.Fatalf("today's run: %s %q", r.State, r.Error)
	}
}

// Retries with backoff, recorded per attempt; a job that keeps failing is
// disabled until enabled; a running task is refused (409); cancel and
// timeout stop a run.
func TestJobsRetriesDisableCancel(t *testing.T) {
	_, api, _, stop := startJobsNode(t)
	defer stop()
	c := &server.Client{URL: api}
	ctx := context.Background()

	ans, err := c.SubmitRun(ctx, "flaky", server.RunRequest{Params: map[string]string{"n": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, c, ans.Run.ID)
	if r.State != jobs.StateSucceeded || len(r.Attempts) != 3 {
		t.Fatalf("flaky: %s with %d attempts: %+v", r.State, len(r.Attempts), r)
	}
	for i, a := range r.Attempts {
		wantState, wantBackoff := jobs.StateFailed, []string{"100ms", "200ms", ""}[i]
		if i == 2 {
			wantState = jobs.StateSucceeded
		}
		if a.N != i+1 || a.State != wantState || a.Backoff != wantBackoff || !strings.Contains(a.Log, fmt.Sprintf("attempt %d", i+1)) {
			t.Errorf("attempt %d: %+v", i+1, a)
		}
		if i < 2 && !strings.Contains(a.Error, "exit code 1") {
			t.Errorf("attempt %d error: %q", i+1, a.Error)
		}
		if i > 0 && a.Started.Sub(r.Attempts[i-1].Ended) < 100*time.Millisecond {
			t.Errorf("attempt %d started %s after the one before: no backoff", i+1, a.Started.Sub(r.Attempts[i-1].Ended))
		}
	}

	// broken fails; after two failed runs it is disabled.
	for n := range 2 {
		ans, err := c.SubmitRun(ctx, "broken", server.RunRequest{Params: map[string]string{"n": fmt.Sprint(n)}})
		if err != nil {
			t.Fatal(err)
		}
		if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateFailed || !strings.Contains(r.Error, "exit code 3") || !strings.Contains(r.Attempts[0].Log, "failing") {
			t.Fatalf("broken: %+v", r)
		}
	}
	if _, err := c.SubmitRun(ctx, "broken", server.RunRequest{Params: map[string]string{"n": "9"}}); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("a disabled job was started: %v", err)
	}
	st, _ := c.Jobs(ctx)
	for _, j := range st {
		if j.Name == "broken" && !strings.Contains(j.Disabled, "2 failed runs") {
			t.Fatalf("broken's status: %+v", j)
		}
	}
	if err := c.EnableJob(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubmitRun(ctx, "broken", server.RunRequest{Params: map[string]string{"n": "9"}}); err != nil {
		t.Fatalf("after enable: %v", err)
	}

	// A run of a task that runs already is refused; cancel stops it.
	ans, err = c.SubmitRun(ctx, "slow", server.RunRequest{Params: map[string]string{"n": "30"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := c.SubmitRun(ctx, "slow", server.RunRequest{Params: map[string]string{"n": "30"}}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second run of a running task: %v", err)
	}
	// slow's timeout is 1s: the first attempt fails by it.
	r = waitRun(t, c, ans.Run.ID)
	if r.State != jobs.StateFailed || !strings.Contains(r.Error, "timed out after 1s") {
		t.Fatalf("slow: %s %q", r.State, r.Error)
	}

	// SQL whose rows are not all of the run's partition fails, and writes
	// nothing.
	ans, err = c.SubmitRun(ctx, "bad_sql", server.RunRequest{Params: map[string]string{"date": "2026-11-02"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRun(t, c, ans.Run.ID); r.State != jobs.StateFailed || !strings.Contains(r.Error, "every row must belong to the run's partition") {
		t.Fatalf("bad_sql: %s %q", r.State, r.Error)
	}
	// The table it would have created was rolled back with the rest.
	if _, err := c.SQL(ctx, "SELECT count(*) FROM bad_sql"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("bad_sql's table: %v", err)
	}

	// Errors the API names.
	for _, tc := range []struct {
		job    string
		params map[string]string
		want   string
	}{
		{"nosuch", nil, `no job "nosuch"`},
		{"flaky", nil, "job flaky needs parameter n (a int)"},
		{"flaky", map[string]string{"n": "x"}, `parameter n is "x", not a whole number`},
		{"daily_revenue", map[string]string{"date": "2026-13-01"}, "not a date (YYYY-MM-DD)"},
		{"flaky", map[string]string{"n": "1", "m": "2"}, `job flaky has no parameter "m"`},
	} {
		if _, err := c.SubmitRun(ctx, tc.job, server.RunRequest{Params: tc.params}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: %v, want %q", tc.job, tc.params, err, tc.want)
		}
	}
}

// Cancel a run in its sleep.
func TestJobsCancel(t *testing.T) {
	_, api, _, stop := startJobsNode(t)
	defer stop()
	c := &server.Client{URL: api}
	ctx := context.Background()
	ans, err := c.SubmitRun(ctx, "slow", server.RunRequest{Params: map[string]string{"n": "20"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := c.CancelRun(ctx, ans.Run.ID); err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, c, ans.Run.ID)
	if r.State != jobs.StateCancelled || r.Attempts[0].State != jobs.StateCancelled {
		t.Fatalf("cancelled run: %+v", r)
	}
	if _, err := c.CancelRun(ctx, ans.Run.ID); err == nil || !strings.Contains(err.Error(), "is cancelled") {
		t.Fatalf("cancel twice: %v", err)
	}
}

// The statuses of the job routes.
func TestJobsAPIStatuses(t *testing.T) {
	_, api, _, stop := startJobsNode(t)
	defer stop()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/v1/jobs/slow/runs", `{"params":{"n":"5"}}`, 201, `"state":"running"`},
		{"POST", "/api/v1/jobs/slow/runs", `{"params":{"n":"5"}}`, 409, "already running"},
		{"POST", "/api/v1/jobs/nosuch/runs", `{}`, 404, `no job \"nosuch\"`},
		{"POST", "/api/v1/jobs/slow/runs", `{"params":{"n":"x"}}`, 400, "not a whole number"},
		{"POST", "/api/v1/jobs/slow/runs", `{"parms":{}}`, 400, `unknown field \"parms\"`},
		{"POST", "/api/v1/jobs/slow/runs", `{"params":`, 400, "request body"},
		{"GET", "/api/v1/runs?job=nosuch", "", 404, "no job"},
		{"GET", "/api/v1/runs?limit=-1", "", 400, "limit must be a whole number"},
		{"GET", "/api/v1/runs/nosuch", "", 404, "no such run"},
		{"POST", "/api/v1/runs/nosuch/cancel", "", 404, "no such run"},
		{"POST", "/api/v1/jobs/slow/backfill", `{"from":"2026-11-02","to":"2026-11-01"}`, 400, "job slow has no date parameter"},
		{"POST", "/api/v1/jobs/daily_revenue/backfill", `{"from":"2026-11-02","to":"2026-11-01"}`, 400, "is before from"},
		{"GET", "/api/v1/jobs", "", 200, `"name":"daily_report"`},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
}
