package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/warehouse"
)

// Address is what a running server records in its data dir so that other
// commands (sluice sql, jobs) find it.
type Address struct {
	API       string `json:"api"`       // base URL of the API
	Collector string `json:"collector"` // base URL of the collector
	PID       int    `json:"pid"`
}

// AddressFile is where, inside the data dir, the server records its Address.
const AddressFile = "server.json"

// WriteAddress records a in dataDir.
func WriteAddress(dataDir string, a Address) error {
	b, _ := json.MarshalIndent(a, "", "  ")
	tmp := filepath.Join(dataDir, "."+AddressFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, AddressFile))
}

// RemoveAddress deletes the record on shutdown.
func RemoveAddress(dataDir string) { os.Remove(filepath.Join(dataDir, AddressFile)) }

// Discover returns the API URL of the server running on dataDir, or "" when
// none answers (no record, or a stale one left by a crash).
func Discover(ctx context.Context, dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, AddressFile))
	if err != nil {
		return ""
	}
	var a Address
	if json.Unmarshal(b, &a) != nil || a.API == "" {
		return ""
	}
	if !Healthy(ctx, a.API) {
		return ""
	}
	return a.API
}

// Healthy reports whether base/healthz answers 200.
func Healthy(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Client talks to a running server's API.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8081
	Token string
	HTTP  *http.Client
}

// SQL runs a query on the server.
func (c *Client) SQL(ctx context.Context, query string) (*warehouse.Result, error) {
	var res warehouse.Result
	if err := c.post(ctx, "/api/v1/sql", SQLRequest{SQL: query}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Replay has the server hand bad rows back to enrich; out receives its
// answer.
func (c *Client) Replay(ctx context.Context, req ReplayRequest, out any) error {
	return c.post(ctx, "/api/v1/bad/replay", req, out)
}

// Compact has the server run a lake compaction pass now; out receives its
// report.
func (c *Client) Compact(ctx context.Context, out any) error {
	return c.post(ctx, "/api/v1/lake/compact", struct{}{}, out)
}

// TapRequest says which events GET /api/v1/tap streams.
type TapRequest struct {
	Stream string
	Filter string // an expression over an event's fields; "" for all
	From   string // now (""), beginning, or a sequence number
	Limit  int    // stop after this many events; 0: no limit
}

// Tap opens a tap on a stream. The caller reads the events from body, one
// JSON object per line, and closes it; from is the first sequence it reads.
func (c *Client) Tap(ctx context.Context, tr TapRequest) (body io.ReadCloser, from uint64, err error) {
	q := url.Values{"stream": {tr.Stream}}
	if tr.Filter != "" {
		q.Set("filter", tr.Filter)
	}
	if tr.From != "" {
		q.Set("from", tr.From)
	}
	if tr.Limit > 0 {
		q.Set("limit", strconv.Itoa(tr.Limit))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/api/v1/tap?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, 0, err
	}
	from, _ = strconv.ParseUint(resp.Header.Get("Sluice-Tap-From"), 10, 64)
	return resp.Body, from, nil
}

// post sends in as JSON and decodes the answer into out (numbers as
// json.Number); an answer other than 200 is an error with the server's
// message.
func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("sluice server answer: %w", err)
	}
	return nil
}

// do sends req with the token; an answer other than 200 is an error with
// the server's message.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sluice server at %s: %w", c.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return nil, errors.New(e.Error)
	}
	return resp, nil
}

// Lag sums the consumer lag gauges a server exports on /metrics: how many
// messages the stages have not processed yet. ok is false when it cannot tell.
func Lag(ctx context.Context, base string) (lag float64, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "sluice_consumer_lag_messages{") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			lag += v
			ok = true
		}
	}
	return lag, ok
}

// get decodes the answer of a GET into out.
func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("sluice server answer: %w", err)
	}
	return nil
}

// Jobs lists the jobs with their last runs.
func (c *Client) Jobs(ctx context.Context) ([]jobs.JobStatus, error) {
	var out []jobs.JobStatus
	return out, c.get(ctx, "/api/v1/jobs", &out)
}

// SubmitRun starts a run of a job.
func (c *Client) SubmitRun(ctx context.Context, job string, req RunRequest) (RunAnswer, error) {
	var out RunAnswer
	return out, c.post(ctx, "/api/v1/jobs/"+url.PathEscape(job)+"/runs", req, &out)
}

// EnableJob clears a job disabled after failures.
func (c *Client) EnableJob(ctx context.Context, job string) error {
	var out map[string]string
	return c.post(ctx, "/api/v1/jobs/"+url.PathEscape(job)+"/enable", struct{}{}, &out)
}

// Runs lists runs, newest first (job "": all).
func (c *Client) Runs(ctx context.Context, job string, limit int) ([]jobs.Run, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if job != "" {
		q.Set("job", job)
	}
	var out []jobs.Run
	return out, c.get(ctx, "/api/v1/runs?"+q.Encode(), &out)
}

// GetRun reads one run.
func (c *Client) GetRun(ctx context.Context, id string) (jobs.Run, error) {
	var out jobs.Run
	return out, c.get(ctx, "/api/v1/runs/"+url.PathEscape(id), &out)
}

// CancelRun stops a run.
func (c *Client) CancelRun(ctx context.Context, id string) (jobs.Run, error) {
	var out jobs.Run
	return out, c.post(ctx, "/api/v1/runs/"+url.PathEscape(id)+"/cancel", struct{}{}, &out)
}

// Backfill runs a job over dates; progress is told each line of the
// server's answer, the last one a summary.
func (c *Client) Backfill(ctx context.Context, job string, req BackfillRequest, progress func(BackfillProgress)) (BackfillProgress, error) {
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/api/v1/jobs/"+url.PathEscape(job)+"/backfill", bytes.NewReader(body))
	if err != nil {
		return BackfillProgress{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.do(hreq)
	if err != nil {
		return BackfillProgress{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var p BackfillProgress
		if err := dec.Decode(&p); err != nil {
			return BackfillProgress{}, fmt.Errorf("backfill ended without its summary: %w", err)
		}
		if p.Summary {
			return p, nil
		}
		if progress != nil {
			progress(p)
		}
	}
}

// Post sends in to a route of the API and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.post(ctx, path, in, out)
}

// Get reads a route of the API into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.get(ctx, path, out)
}
