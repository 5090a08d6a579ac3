package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/warehouse"
)

func newAPI(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	wh, err := warehouse.Open(context.Background(), filepath.Join(dir, "warehouse.duckdb"), filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	o.Warehouse = wh
	srv := httptest.NewServer(Handler(o))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, method, url, body, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenGuardsTheAPIButNotProbes(t *testing.T) {
	srv := newAPI(t, Options{Token: "s3cret"})
	if code, _ := call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT 1"}`, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT 1"}`, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := call(t, "GET", srv.URL+"/debug/pprof/", "", ""); code != http.StatusUnauthorized {
		t.Errorf("pprof without token: %d", code)
	}
	code, body := call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT 1 AS one"}`, "s3cret")
	if code != http.StatusOK || !strings.Contains(body, `"rows":[[1]]`) {
		t.Errorf("with token: %d %s", code, body)
	}
	res, err := (&Client{URL: srv.URL, Token: "s3cret"}).SQL(context.Background(), "SELECT 'x' AS s")
	if err != nil || res.Columns[0].Name != "s" || res.Columns[0].Type != "VARCHAR" {
		t.Errorf("client: %v %v", res, err)
	}
	if _, err := (&Client{URL: srv.URL}).SQL(context.Background(), "SELECT 1"); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("client without token: %v", err)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code, _ := call(t, "GET", srv.URL+p, "", ""); code != http.StatusOK {
			t.Errorf("%s: %d", p, code)
		}
	}
}

func TestSQLErrors(t *testing.T) {
	srv := newAPI(t, Options{MaxRows: 5, QueryTimeout: 500 * time.Millisecond})
	cases := []struct {
		body string
		code int
		msg  string
	}{
		{`not json`, 400, "body must be JSON"},
		{`{"sql":"  "}`, 400, "empty"},
		{`{"sql":"SELEC 1"}`, 400, "syntax error"},
		{`{"sql":"SELECT * FROM nowhere"}`, 400, "nowhere"},
		{`{"sql":"DROP VIEW events"}`, 403, "read-only"},
		{`{"sql":"SELECT count(*) FROM range(100000000000) a, range(1000) b"}`, 504, "cancelled"},
	}
	for _, c := range cases {
		code, body := call(t, "POST", srv.URL+"/api/v1/sql", c.body, "")
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s; want %d with %q", c.body, code, body, c.code, c.msg)
		}
	}
	code, body := call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT range AS n, now() AS t, [1,2] AS l, {'a': 1} AS s, 1.5::DECIMAL(4,2) AS d FROM range(10)"}`, "")
	var res warehouse.Result
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if len(res.Rows) != 5 || !res.Truncated {
		t.Errorf("max rows: %d rows, truncated %v", len(res.Rows), res.Truncated)
	}
	if got := res.Rows[1]; got[0] != float64(1) || got[2] == nil || got[4] != 1.5 {
		t.Errorf("values: %v", got)
	}
}

// Every pooled connection answers in UTC, not only the one that ran setup.
func TestEveryConnectionIsUTC(t *testing.T) {
	t.Setenv("TZ", "Europe/Berlin") // DuckDB's default is the machine's zone
	srv := newAPI(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Slow enough that the pool opens several connections.
			code, body := call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT current_setting('TimeZone') AS tz, count(*) FROM range(20000000)"}`, "")
			if code != 200 || !strings.Contains(body, `"UTC"`) {
				errs <- body
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// No pooled connection can read outside the lake, not only the one that ran
// setup: slow queries hold most of the pool while the probe runs on another.
func TestEveryConnectionIsConfined(t *testing.T) {
	srv := newAPI(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < 7; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT count(*) FROM range(300000000)"}`, "")
		}()
	}
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 3; i++ {
		code, body := call(t, "POST", srv.URL+"/api/v1/sql", `{"sql":"SELECT length(content) FROM read_text('/etc/passwd')"}`, "")
		if code == 200 || !strings.Contains(strings.ToLower(body), "permission") {
			t.Errorf("read outside the lake: %d %s", code, body)
		}
	}
	wg.Wait()
}

// With PostgreSQL as the engine the API answers the same codes: 400 for the
// user's SQL, 403 for what would write, 504 past the timeout.
func TestSQLErrorsOnPostgres(t *testing.T) {
	pg, err := warehouse.OpenPostgres(context.Background(), pgtest.URL(t), warehouse.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	srv := httptest.NewServer(Handler(Options{Warehouse: pg, MaxRows: 2, QueryTimeout: 500 * time.Millisecond}))
	defer srv.Close()
	for _, c := range []struct {
		body string
		code int
		msg  string
	}{
		{`{"sql":"SELEC 1"}`, 400, "syntax error"},
		{`{"sql":"SELECT * FROM nowhere"}`, 400, "nowhere"},
		{`{"sql":"SELECT 1; SELECT 2"}`, 400, "one statement"},
		{`{"sql":"DROP TABLE _sluice_loads"}`, 403, "read-only"},
		{`{"sql":"WITH d AS (DELETE FROM _sluice_loads RETURNING 1) SELECT count(*) FROM d"}`, 403, "read-only"},
		{`{"sql":"SELECT pg_sleep(5)"}`, 504, "cancelled"},
		{`{"sql":"SELECT n, n * 1.5 AS f, sum(n) OVER () AS s FROM generate_series(1::bigint, 3) n"}`, 200, `"rows":[[1,1.5,"6"],[2,3,"6"]],"truncated":true`},
	} {
		code, body := call(t, "POST", srv.URL+"/api/v1/sql", c.body, "")
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s; want %d with %q", c.body, code, body, c.code, c.msg)
		}
	}
}

// Every job and run route needs the token; without a scheduler they say so.
func TestJobRoutesGuardedAndUnavailable(t *testing.T) {
	srv := newAPI(t, Options{Token: "s3cret"})
	routes := [][2]string{
		{"GET", "/api/v1/jobs"}, {"POST", "/api/v1/jobs/x/runs"}, {"POST", "/api/v1/jobs/x/backfill"},
		{"POST", "/api/v1/jobs/x/enable"}, {"GET", "/api/v1/runs"}, {"GET", "/api/v1/runs/r1"}, {"POST", "/api/v1/runs/r1/cancel"},
	}
	for _, r := range routes {
		if code, _ := call(t, r[0], srv.URL+r[1], "{}", ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s without token: %d", r[0], r[1], code)
		}
		if code, body := call(t, r[0], srv.URL+r[1], "{}", "s3cret"); code != http.StatusNotImplemented || !strings.Contains(body, "runs no jobs") {
			t.Errorf("%s %s without a scheduler: %d %s", r[0], r[1], code, body)
		}
	}
}
