package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTP says how to read the pages of a JSON API (a Pager reads them). Each response holds an array of
// records (at Records, a dotted path, or the response itself); the next
// page is found by the Link header's rel=next (link), a cursor in the
// response sent back as a query parameter (cursor), page numbers until an
// empty page (page), or there is none. Requests are spaced to at most Rate
// per second; a network error, 429 or 5xx is retried up to Retries times,
// after a backoff that doubles from Backoff, or after the response's
// Retry-After.
type HTTP struct {
	Headers   map[string]string
	Records   string
	Paginate  string // link, cursor, page, none
	Cursor    string // paginate cursor: the dotted path of the next cursor
	Param     string // the query parameter of the cursor or page number
	Rate      float64
	Retries   int
	Backoff   time.Duration // the first retry's wait (default 1s)
	Timeout   time.Duration // of one request (default 30s)
	MaxBody   int64         // largest response (default 256 MiB)
	Client    *http.Client
	UserAgent string
	// Log is told of each retry.
	Log func(format string, args ...any)
}

// Pager reads pages as its HTTP says.
type Pager struct {
	h    HTTP
	mu   sync.Mutex
	last time.Time // when the last request started
}

// NewPager returns a Pager.
func NewPager(h HTTP) *Pager { return &Pager{h: h} }

// Position is the page an HTTP read fetches next.
type Position struct {
	URL    string `json:"url"`              // the next page's URL ("" after the last page)
	Page   int    `json:"page"`             // its number (paginate page), or how many pages came before
	Cursor string `json:"cursor,omitempty"` // paginate cursor: the cursor that asked for it
}

// Done tells whether the last page was read.
func (p Position) Done() bool { return p.URL == "" }

// Start is the position of the first page.
func Start(firstURL string, firstPage int) Position {
	return Position{URL: firstURL, Page: firstPage}
}

// Fetch gets the page at pos: its records (JSON objects, or {"value": …}
// for anything else) and the position after it.
func (p *Pager) Fetch(ctx context.Context, pos Position) ([]map[string]any, Position, error) {
	h := &p.h
	reqURL := pos.URL
	if h.Paginate == "page" {
		u, err := url.Parse(pos.URL)
		if err != nil {
			return nil, pos, err
		}
		q := u.Query()
		q.Set(h.Param, strconv.Itoa(pos.Page))
		u.RawQuery = q.Encode()
		reqURL = u.String()
	}
	body, header, err := p.get(ctx, reqURL)
	if err != nil {
		return nil, pos, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, pos, fmt.Errorf("GET %s: the response is not JSON: %w", redact(reqURL), err)
	}
	list := doc
	if h.Records != "" {
		list, _ = lookup(doc, h.Records)
	}
	items, ok := list.([]any)
	if !ok && list != nil {
		what := "the response"
		if h.Records != "" {
			what = h.Records
		}
		return nil, pos, fmt.Errorf("GET %s: %s is not an array of records (set records: to the path of the array, e.g. data.items)", redact(reqURL), what)
	}
	records := make([]map[string]any, 0, len(items))
	for _, it := range items {
		r, ok := it.(map[string]any)
		if !ok {
			r = map[string]any{"value": it}
		}
		records = append(records, numbers(r).(map[string]any))
	}
	next := Position{Page: pos.Page + 1}
	switch h.Paginate {
	case "link":
		if link := nextLink(header.Values("Link")); link != "" {
			u, err := url.Parse(reqURL)
			if err != nil {
				return nil, pos, err
			}
			ref, err := u.Parse(link)
			if err != nil {
				return nil, pos, fmt.Errorf("GET %s: Link rel=next %q: %w", redact(reqURL), link, err)
			}
			next.URL = ref.String()
		}
	case "cursor":
		v, _ := lookup(doc, h.Cursor)
		c := ""
		switch x := v.(type) {
		case string:
			c = x
		case json.Number:
			c = x.String()
		}
		if c != "" && len(records) > 0 {
			if c == pos.Cursor {
				return nil, pos, fmt.Errorf("GET %s: the next cursor (%s) is the one that asked for this page: the API would be read forever", redact(reqURL), h.Cursor)
			}
			u, err := url.Parse(pos.URL)
			if err != nil {
				return nil, pos, err
			}
			q := u.Query()
			q.Set(h.Param, c)
			u.RawQuery = q.Encode()
			next.URL, next.Cursor = u.String(), c
		}
	case "page":
		if len(records) > 0 {
			next.URL = pos.URL
		}
	}
	return records, next, nil
}

// get makes a request, spaced by the rate limit and retried.
func (p *Pager) get(ctx context.Context, u string) ([]byte, http.Header, error) {
	h := &p.h
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	backoff := h.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	for attempt := 0; ; attempt++ {
		if err := p.wait(ctx); err != nil {
			return nil, nil, err
		}
		body, header, status, err := h.do(ctx, client, u)
		if err == nil && status/100 == 2 {
			return body, header, nil
		}
		retry := err != nil || status == http.StatusTooManyRequests || status >= 500
		if err == nil {
			snippet := strings.TrimSpace(string(body[:min(len(body), 200)]))
			err = fmt.Errorf("GET %s: %d %s: %s", redact(u), status, http.StatusText(status), snippet)
		}
		if !retry || attempt >= h.Retries || ctx.Err() != nil {
			if retry && attempt > 0 {
				return nil, nil, fmt.Errorf("%w (after %d tries)", err, attempt+1)
			}
			return nil, nil, err
		}
		wait := min(backoff<<attempt, time.Minute)
		if ra, ok := retryAfter(header, time.Now()); ok {
			wait = min(ra, 10*time.Minute)
		}
		if h.Log != nil {
			h.Log("%v; retry %d of %d in %s", err, attempt+1, h.Retries, wait)
		}
		select {
		case <-ctx.Done():
			return nil, nil, context.Cause(ctx)
		case <-time.After(wait):
		}
	}
}

func (h *HTTP) do(ctx context.Context, client *http.Client, u string) ([]byte, http.Header, int, error) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	if h.UserAgent != "" {
		req.Header.Set("User-Agent", h.UserAgent)
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	limit := h.MaxBody
	if limit <= 0 {
		limit = 256 << 20
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, resp.Header, 0, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	if int64(len(body)) > limit {
		return nil, resp.Header, resp.StatusCode, fmt.Errorf("GET %s: the response is larger than %d bytes", redact(u), limit)
	}
	return body, resp.Header, resp.StatusCode, nil
}

// wait spaces requests by 1/Rate seconds.
func (p *Pager) wait(ctx context.Context) error {
	if p.h.Rate <= 0 {
		return nil
	}
	p.mu.Lock()
	at := p.last.Add(time.Duration(float64(time.Second) / p.h.Rate))
	now := time.Now()
	if at.Before(now) {
		at = now
	}
	p.last = at
	p.mu.Unlock()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(time.Until(at)):
		return nil
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// nextLink finds the rel=next target of Link headers (RFC 8288).
func nextLink(values []string) string {
	for _, v := range values {
		for link := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			target = strings.TrimSpace(target)
			if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			for p := range strings.SplitSeq(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for rel := range strings.FieldsSeq(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target[1 : len(target)-1]
					}
				}
			}
		}
	}
	return ""
}

// lookup follows a dotted path through objects.
func lookup(doc any, path string) (any, bool) {
	for part := range strings.SplitSeq(path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[part]; !ok {
			return nil, false
		}
	}
	return doc, true
}

// numbers turns json.Numbers into int64 (whole numbers that fit) or
// float64.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// redact hides a URL's password and query values that look secret, for
// messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	if p.User != nil {
		p.User = url.User(p.User.Username())
	}
	q := p.Query()
	for k := range q {
		l := strings.ToLower(k)
		if strings.Contains(l, "key") || strings.Contains(l, "token") || strings.Contains(l, "secret") || strings.Contains(l, "password") {
			q.Set(k, "xxxxx")
		}
	}
	p.RawQuery = q.Encode()
	return p.String()
}
