package extract

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// api serves 23 records in pages of 5, paginated the three ways, and fails
// every third request: 429 with Retry-After, or 503.
type api struct {
	mu       sync.Mutex
	requests int
	times    []time.Time
	failures int
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	n := a.requests
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer t0k" {
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	if n%3 == 0 {
		a.mu.Lock()
		a.failures++
		a.mu.Unlock()
		if n%2 == 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	const total, size = 23, 5
	page := func(from int) []string {
		var recs []string
		for i := from; i < min(from+size, total); i++ {
			recs = append(recs, fmt.Sprintf(`{"id":%d,"name":"r%d","score":%d.5,"at":"2026-11-25T10:00:%02dZ","tags":["x"]}`, i+1, i+1, i, i))
		}
		return recs
	}
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/link":
		from, _ := strconv.Atoi(q.Get("from"))
		if from+size < total {
			w.Header().Add("Link", fmt.Sprintf(`</link?from=%d>; rel="next", </link?from=0>; rel="first"`, from+size))
		}
		fmt.Fprintf(w, "[%s]", strings.Join(page(from), ","))
	case "/cursor":
		from := 0
		if c := q.Get("after"); c != "" {
			from, _ = strconv.Atoi(strings.TrimPrefix(c, "c"))
		}
		next := "null"
		if from+size < total {
			next = fmt.Sprintf(`"c%d"`, from+size)
		}
		fmt.Fprintf(w, `{"data":{"items":[%s]},"meta":{"next":%s}}`, strings.Join(page(from), ","), next)
	case "/pages":
		p, _ := strconv.Atoi(q.Get("p"))
		fmt.Fprintf(w, `{"results":[%s]}`, strings.Join(page(p*size), ","))
	}
}

func TestHTTPPaginations(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    HTTP
		path string
		// pages is the number of pages (page numbering ends at an empty
		// one).
		pages int
	}{
		{"link", HTTP{Paginate: "link"}, "/link", 5},
		{"cursor", HTTP{Paginate: "cursor", Records: "data.items", Cursor: "meta.next", Param: "after"}, "/cursor", 5},
		{"page", HTTP{Paginate: "page", Records: "results", Param: "p"}, "/pages", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &api{}
			srv := httptest.NewServer(a)
			defer srv.Close()
			h := tc.h
			h.Headers = map[string]string{"Authorization": "Bearer t0k"}
			h.Rate, h.Retries, h.Backoff = 50, 3, 10*time.Millisecond
			var retries []string
			h.Log = func(format string, args ...any) { retries = append(retries, fmt.Sprintf(format, args...)) }
			pager := NewPager(h)
			pos := Start(srv.URL+tc.path, 0)
			var ids []string
			pages := 0
			for !pos.Done() {
				recs, next, err := pager.Fetch(context.Background(), pos)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, r := range recs {
					if _, ok := r["id"].(int64); !ok {
						t.Fatalf("id %T, want int64", r["id"])
					}
					if _, ok := r["score"].(float64); !ok {
						t.Fatalf("score %T, want float64", r["score"])
					}
					ids = append(ids, fmt.Sprint(r["id"]))
				}
				pos = next
			}
			if got := strings.Join(ids, ","); got != "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23" || pages != tc.pages {
				t.Fatalf("%d pages: %s", pages, got)
			}
			if a.failures == 0 || len(retries) != a.failures {
				t.Errorf("%d failures, %d retries logged: %v", a.failures, len(retries), retries)
			}
			// 50 requests a second: they start 20ms apart (the server may
			// see two closer, after a slow first connection).
			if n, span := len(a.times), a.times[len(a.times)-1].Sub(a.times[0]); span < time.Duration(n-2)*20*time.Millisecond {
				t.Errorf("%d requests in %s: faster than 50 a second", n, span)
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := httptest.NewServer(&api{})
	defer srv.Close()
	_, _, err := NewPager(HTTP{Paginate: "link", Retries: 1, Backoff: time.Millisecond}).Fetch(context.Background(), Start(srv.URL+"/link?token=secret", 0))
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized: who are you") || strings.Contains(err.Error(), "secret") {
		t.Errorf("no credentials: %v", err)
	}
	_, _, err = NewPager(HTTP{Paginate: "link", Headers: map[string]string{"Authorization": "Bearer t0k"}}).Fetch(context.Background(), Start(srv.URL+"/cursor", 0))
	if err == nil || !strings.Contains(err.Error(), "the response is not an array of records") {
		t.Errorf("an object without records: %v", err)
	}
	// Always failing: the retries run out.
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer fail.Close()
	if _, _, err := NewPager(HTTP{Paginate: "link", Retries: 2, Backoff: time.Millisecond}).Fetch(context.Background(), Start(fail.URL, 0)); err == nil || !strings.Contains(err.Error(), "502 Bad Gateway: down (after 3 tries)") {
		t.Errorf("failing server: %v", err)
	}
	if d, ok := retryAfter(http.Header{"Retry-After": {time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}}, time.Now()); !ok || d < 85*time.Second || d > 90*time.Second {
		t.Errorf("Retry-After as a date: %s %v", d, ok)
	}
	if l := nextLink([]string{`<https://a/x?page=2>; rel="prev next"`, `<https://a/y>; rel=last`}); l != "https://a/x?page=2" {
		t.Errorf("link: %q", l)
	}
}
