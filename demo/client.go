package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff between attempts at one batch: doubling from firstBackoff up to
// maxBackoff, with jitter so that several senders do not retry in step.
const (
	firstBackoff   = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
	maxRetryAfter  = 30 * time.Second
	maxMessageSize = 64 << 10
)

// collectorClient posts batches of events to the plain-JSON endpoint of
// Sluice's HTTP collector.
type collectorClient struct {
	url    string // …/v1/events
	client *http.Client
	// onRetry is told about each failed attempt that will be retried.
	onRetry func(reason string, wait time.Duration)
}

// post sends one batch and returns once the collector has stored it. A 503
// (or 429, 502, 504) and network errors are retried with the same body, so a
// batch that was stored although its answer got lost is only stored again
// with the same event ids, which enrich drops as duplicates. Any other answer
// is returned as an error. post gives up only when ctx is done.
func (c *collectorClient) post(ctx context.Context, body []byte, n int, firstID string) error {
	wait := firstBackoff
	for {
		reason, retryAfter, err := c.try(ctx, body, n, firstID)
		if err != nil {
			return err
		}
		if reason == "" {
			return nil
		}
		d := max(wait/2+rand.N(wait/2+1), retryAfter)
		if c.onRetry != nil {
			c.onRetry(reason, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxBackoff)
	}
}

// try makes one attempt. It returns a non-empty reason when the attempt
// should be retried, and an error when it must not be.
func (c *collectorClient) try(ctx context.Context, body []byte, n int, firstID string) (reason string, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return "", 0, fmt.Errorf("demo: collector URL %s: %w", c.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, ctx.Err()
		}
		return err.Error(), 0, nil
	}
	defer resp.Body.Close()
	msg := message(resp.Body)
	switch {
	case resp.StatusCode/100 == 2:
		return "", 0, nil
	case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusGatewayTimeout:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
		}
		return resp.Status + ": " + msg, retryAfter, nil
	default:
		return "", 0, fmt.Errorf("demo: the collector at %s rejected a batch of %d events (first event_id %s): %s: %s",
			c.url, n, firstID, resp.Status, msg)
	}
}

// message reads what a collector's answer says: the "error" of a JSON body, or
// the start of a text one.
func message(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, maxMessageSize))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(no message)"
	}
	return s
}
