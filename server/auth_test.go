package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// routeURL makes a request path of a mux pattern: wildcards become x.
func routeURL(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "")
	path = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "x")
	switch path {
	case "/assets/":
		path = "/assets/app.css"
	case "/debug/pprof/profile":
		path += "?seconds=1"
	}
	return method, path
}

func noRedirects(req *http.Request, via []*http.Request) error { return http.ErrUseLastResponse }

func send(t *testing.T, method, u string, header http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{CheckRedirect: noRedirects}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// With a token, every route the server registers refuses a request without
// it (pages send the browser to the login page, the rest answer 401), and
// serves one with it; only the public ones are open.
func TestEveryRouteNeedsTheToken(t *testing.T) {
	o := Options{Token: "s3cret"}
	mux, _ := routes(o)
	srv := newAPI(t, o)
	cookie, csrf := login(t, srv.URL)
	registered := map[string]bool{}
	for _, pattern := range mux.patterns {
		registered[pattern] = true
		method, path := routeURL(pattern)
		if public[pattern] {
			if resp := send(t, method, srv.URL+path, nil, ""); refused(resp) {
				t.Errorf("%s is public but refused a request without the token: %d", pattern, resp.StatusCode)
			}
			continue
		}
		for _, h := range []http.Header{{}, {"Authorization": {"Bearer wrong"}}, {"Authorization": {"s3cret"}}, {"Cookie": {SessionCookie + "=made-up"}}} {
			resp := send(t, method, srv.URL+path, h, "{}")
			page := method == "GET" && !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/debug/")
			switch {
			case page && (resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next="+url.QueryEscape(path)):
				t.Errorf("page %s with %v: %d to %q; want 303 to the login page", pattern, h, resp.StatusCode, resp.Header.Get("Location"))
			case !page && resp.StatusCode != http.StatusUnauthorized:
				t.Errorf("%s with %v: %d; want 401", pattern, h, resp.StatusCode)
			}
		}
		resp := send(t, method, srv.URL+path, http.Header{"Authorization": {"Bearer s3cret"}}, "{}")
		if refused(resp) || resp.StatusCode == http.StatusForbidden {
			t.Errorf("%s with the token: %d", pattern, resp.StatusCode)
		}
		// With a session: a change needs the CSRF token too.
		withCSRF := http.Header{"Cookie": cookie, "X-CSRF-Token": {csrf}}
		if method != "GET" {
			if resp := send(t, method, srv.URL+path, http.Header{"Cookie": cookie}, "{}"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with a session and no CSRF token: %d; want 403", pattern, resp.StatusCode)
			}
			if pattern == "POST /logout" {
				continue // it would end the session the rest of the test uses
			}
		}
		if resp := send(t, method, srv.URL+path, withCSRF, "{}"); refused(resp) || resp.StatusCode == http.StatusForbidden {
			t.Errorf("%s with a session: %d", pattern, resp.StatusCode)
		}
	}
	// The public routes are these and no more: a route added to the list
	// by mistake must fail here.
	want := []string{"GET /assets/", "GET /healthz", "GET /login", "GET /metrics", "POST /login"}
	var got []string
	for p, open := range public {
		if open {
			got = append(got, p)
		}
		if !registered[p] {
			t.Errorf("public route %s is not registered", p)
		}
	}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("public routes %v; want %v", got, want)
	}
	for _, p := range []string{"POST /api/v1/sql", "GET /api/v1/status", "GET /{$}", "GET /sql", "POST /logout", "GET /debug/pprof/"} {
		if !registered[p] {
			t.Errorf("%s is not among the routes the test sees: %v", p, mux.patterns)
		}
	}
	// Nor does a path no route has tell anything without the token.
	if resp := send(t, "GET", srv.URL+"/api/v1/nothing", nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown route without the token: %d", resp.StatusCode)
	}
}

// refused tells the gate's refusals: a 401 that asks for the bearer token,
// or a redirect to the login page.
func refused(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "" ||
		resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/login?next=")
}

// login opens a session and returns its cookie header and CSRF token.
func login(t *testing.T, base string) (cookie []string, csrf string) {
	t.Helper()
	resp, err := (&http.Client{CheckRedirect: noRedirects}).PostForm(base+"/login", url.Values{"token": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	cookie = []string{resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value}
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Header["Cookie"] = cookie
	page, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Body.Close()
	body, _ := io.ReadAll(page.Body)
	m := metaCSRF.FindSubmatch(body)
	if m == nil || len(m[1]) == 0 {
		t.Fatalf("no CSRF token in the page: %s", body)
	}
	return cookie, string(m[1])
}

var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// A browser logs in with the token, gets a session cookie, and must send
// the session's CSRF token with each change; logging out ends the session.
func TestLoginSessionAndCSRF(t *testing.T) {
	srv := newAPI(t, Options{Token: "s3cret"})
	client := &http.Client{CheckRedirect: noRedirects}
	form := func(path string, v url.Values, header http.Header) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, x := range header {
			req.Header[k] = x
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := form("/login", url.Values{"token": {"wrong"}, "next": {"/jobs"}}, nil); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp := form("/login", url.Values{"token": {"s3cret"}, "next": {"//evil.example/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("login to another host: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = form("/login", url.Values{"token": {"s3cret"}, "next": {"/jobs"}}, http.Header{"X-Forwarded-Proto": {"https"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/jobs" || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	c := resp.Cookies()[0]
	if c.Name != SessionCookie || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || len(c.Value) < 40 {
		t.Errorf("session cookie: %+v", c)
	}
	if plain := form("/login", url.Values{"token": {"s3cret"}}, nil); plain.Cookies()[0].Secure {
		t.Error("a login over plain HTTP got a Secure cookie, which the browser would not send back")
	}
	cookie := http.Header{"Cookie": {c.Name + "=" + c.Value}}

	// The page holds the session's CSRF token.
	req, _ := http.NewRequest("GET", srv.URL+"/sql", nil)
	req.Header = cookie.Clone()
	page, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = io.Copy(body, page.Body)
	page.Body.Close()
	m := metaCSRF.FindStringSubmatch(body.String())
	if page.StatusCode != 200 || m == nil || len(m[1]) < 40 || !strings.Contains(body.String(), "Log out") {
		t.Fatalf("page with the cookie: %d %s", page.StatusCode, body)
	}
	csrf := m[1]

	if r := send(t, "GET", srv.URL+"/api/v1/rollups", cookie, ""); r.StatusCode != http.StatusOK {
		t.Errorf("GET with the cookie: %d", r.StatusCode)
	}
	sql := `{"sql":"SELECT 1"}`
	if r := send(t, "POST", srv.URL+"/api/v1/sql", cookie, sql); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST with the cookie and no CSRF token: %d", r.StatusCode)
	}
	bad := cookie.Clone()
	wrong := "A" // a token that differs from csrf, whatever its last character
	if strings.HasSuffix(csrf, wrong) {
		wrong = "B"
	}
	bad.Set("X-CSRF-Token", csrf[:len(csrf)-1]+wrong)
	if r := send(t, "POST", srv.URL+"/api/v1/sql", bad, sql); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d", r.StatusCode)
	}
	good := cookie.Clone()
	good.Set("X-CSRF-Token", csrf)
	if r := send(t, "POST", srv.URL+"/api/v1/sql", good, sql); r.StatusCode != http.StatusOK {
		t.Errorf("POST with the CSRF token: %d", r.StatusCode)
	}
	if r := form("/logout", nil, cookie); r.StatusCode != http.StatusForbidden {
		t.Errorf("log out without the CSRF token: %d", r.StatusCode)
	}
	if r := form("/logout", url.Values{"csrf": {csrf}}, cookie); r.StatusCode != http.StatusSeeOther {
		t.Errorf("log out: %d", r.StatusCode)
	}
	if r := send(t, "GET", srv.URL+"/api/v1/rollups", cookie, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the cookie after logging out: %d", r.StatusCode)
	}
}

// Without a token the UI is open, and the login page sends you home.
func TestNoTokenNoLogin(t *testing.T) {
	srv := newAPI(t, Options{})
	for _, p := range []string{"/", "/sql", "/streams", "/jobs", "/bad", "/rollups", "/explore", "/dashboards"} {
		if r := send(t, "GET", srv.URL+p, nil, ""); r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", p, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	if r := send(t, "GET", srv.URL+"/login", nil, ""); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Errorf("login without a token: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := send(t, "GET", srv.URL+"/nowhere", nil, ""); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page: %d", r.StatusCode)
	}
}

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// limitedGate is the server's handler with the token s3cret, its limiter
// on a clock moved by hand.
func limitedGate(t *testing.T) (http.Handler, *access, *clock) {
	t.Helper()
	o := Options{Token: "s3cret", Status: func(ctx context.Context) (*Status, error) { return &Status{Time: time.Now()}, nil }}
	mux, a := routes(o)
	c := &clock{t: time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)}
	a.limit.now = c.now
	return a.guard(mux.ServeMux), a, c
}

// from sends a request as if from the address addr.
func from(h http.Handler, addr, method, path string, header http.Header, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = addr
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// loginFrom posts token to the login page from addr.
func loginFrom(h http.Handler, addr, token string) *httptest.ResponseRecorder {
	return from(h, addr, "POST", "/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		url.Values{"token": {token}, "next": {"/jobs"}}.Encode())
}

// The login page allows a few wrong tokens from one address, then refuses
// every token from it, the right one too, for a wait that doubles with
// each further wrong token; other addresses are not affected, and the
// right token after the wait starts afresh.
func TestLoginRateLimit(t *testing.T) {
	h, _, c := limitedGate(t)
	const attacker, other = "192.0.2.7:40000", "198.51.100.3:40000"
	for i := 1; i < loginBudget; i++ {
		if r := loginFrom(h, attacker, "wrong"); r.Code != http.StatusUnauthorized || !strings.Contains(r.Body.String(), "Wrong token.") {
			t.Fatalf("wrong token %d: %d %s", i, r.Code, r.Body)
		}
	}
	locked := func(what string, r *httptest.ResponseRecorder, retry string) {
		t.Helper()
		if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != retry || len(r.Result().Cookies()) != 0 {
			t.Errorf("%s: %d, Retry-After %q, cookies %v; want 429, %s", what, r.Code, r.Header().Get("Retry-After"), r.Result().Cookies(), retry)
		}
	}
	r := loginFrom(h, attacker, "wrong")
	locked("the budget's last wrong token", r, "30")
	if !strings.Contains(r.Body.String(), "Too many wrong tokens from your address. Try again in 30 seconds.") {
		t.Errorf("the login page does not say why: %s", r.Body)
	}
	// The right token is not even tried while the address waits: else a
	// guess that works would show through the lockout.
	c.add(10 * time.Second)
	locked("the right token while waiting", loginFrom(h, attacker, "s3cret"), "20")
	locked("a bearer token while waiting", from(h, attacker, "GET", "/api/v1/status", http.Header{"Authorization": {"Bearer s3cret"}}, ""), "20")
	if r := loginFrom(h, other, "s3cret"); r.Code != http.StatusSeeOther || len(r.Result().Cookies()) != 1 {
		t.Errorf("another address with the right token: %d %v", r.Code, r.Result().Cookies())
	}
	if r := loginFrom(h, other, "wrong"); r.Code != http.StatusUnauthorized {
		t.Errorf("another address with a wrong token: %d", r.Code)
	}
	// After the wait, each wrong token doubles it.
	c.add(20 * time.Second)
	locked("a wrong token after the wait", loginFrom(h, attacker, "wrong"), "60")
	c.add(time.Minute)
	r = loginFrom(h, attacker, "wrong")
	locked("the next one", r, "120")
	if !strings.Contains(r.Body.String(), "Try again in 2 minutes.") {
		t.Errorf("the login page: %s", r.Body)
	}
	for range 10 {
		c.add(lockoutMax)
		loginFrom(h, attacker, "wrong")
	}
	locked("many more", loginFrom(h, attacker, "wrong"), strconv.Itoa(int(lockoutMax.Seconds())))
	// The right token after the wait opens a session and starts afresh.
	c.add(lockoutMax)
	if r := loginFrom(h, attacker, "s3cret"); r.Code != http.StatusSeeOther || r.Header().Get("Location") != "/jobs" || len(r.Result().Cookies()) != 1 {
		t.Fatalf("the right token after the wait: %d %q", r.Code, r.Header().Get("Location"))
	}
	for i := 1; i < loginBudget; i++ {
		if r := loginFrom(h, attacker, "wrong"); r.Code != http.StatusUnauthorized {
			t.Fatalf("after a success, wrong token %d: %d", i, r.Code)
		}
	}
	// An address without a wrong token for an hour starts afresh too.
	c.add(forgetAfter)
	for i := 1; i < loginBudget; i++ {
		if r := loginFrom(h, attacker, "wrong"); r.Code != http.StatusUnauthorized {
			t.Fatalf("an hour later, wrong token %d: %d", i, r.Code)
		}
	}
}

// A wrong bearer token counts like a wrong login: 401 until the budget is
// spent, then 429 with Retry-After, the right token included. A session
// opened before goes on working: the wait is on trying tokens.
func TestBearerRateLimit(t *testing.T) {
	h, _, c := limitedGate(t)
	const addr = "192.0.2.9:1234"
	r := loginFrom(h, addr, "s3cret")
	if len(r.Result().Cookies()) != 1 {
		t.Fatalf("login: %d", r.Code)
	}
	cookie := http.Header{"Cookie": {SessionCookie + "=" + r.Result().Cookies()[0].Value}}
	wrong := http.Header{"Authorization": {"Bearer wrong"}}
	for i := 1; i < loginBudget; i++ {
		if r := from(h, addr, "GET", "/api/v1/status", wrong, ""); r.Code != http.StatusUnauthorized || r.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("wrong bearer token %d: %d", i, r.Code)
		}
	}
	r = from(h, addr, "GET", "/api/v1/status", wrong, "")
	if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "30" || !strings.Contains(r.Body.String(), "try again in 30 seconds") {
		t.Errorf("the budget's last wrong bearer token: %d %q %s", r.Code, r.Header().Get("Retry-After"), r.Body)
	}
	if r := from(h, addr, "GET", "/api/v1/status", http.Header{"Authorization": {"Bearer s3cret"}}, ""); r.Code != http.StatusTooManyRequests {
		t.Errorf("the right bearer token while waiting: %d", r.Code)
	}
	if r := from(h, addr, "GET", "/api/v1/status", cookie, ""); r.Code != http.StatusOK {
		t.Errorf("a session while waiting: %d", r.Code)
	}
	if r := from(h, addr, "GET", "/api/v1/status", nil, ""); r.Code != http.StatusUnauthorized {
		t.Errorf("no token while waiting: %d", r.Code)
	}
	c.add(30 * time.Second)
	if r := from(h, addr, "GET", "/api/v1/status", http.Header{"Authorization": {"Bearer s3cret"}}, ""); r.Code != http.StatusOK {
		t.Errorf("the right bearer token after the wait: %d", r.Code)
	}
	if r := from(h, addr, "GET", "/api/v1/status", wrong, ""); r.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token after a success: %d", r.Code)
	}
	// An IPv6 client is its /64.
	for i := range loginBudget {
		from(h, fmt.Sprintf("[2001:db8::%x]:1", i+1), "GET", "/api/v1/status", wrong, "")
	}
	if r := from(h, "[2001:db8::99]:1", "GET", "/api/v1/status", wrong, ""); r.Code != http.StatusTooManyRequests {
		t.Errorf("the same /64: %d", r.Code)
	}
	if r := from(h, "[2001:db8:0:1::1]:1", "GET", "/api/v1/status", wrong, ""); r.Code != http.StatusUnauthorized {
		t.Errorf("another /64: %d", r.Code)
	}
}

// Wrong tokens from ever more addresses do not grow the limiter beyond
// maxClients: the address whose last wrong token is oldest is forgotten.
func TestRateLimitMemoryIsBounded(t *testing.T) {
	h, a, c := limitedGate(t)
	wrong := http.Header{"Authorization": {"Bearer wrong"}}
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:80", i>>16&255, i>>8&255, i&255) }
	for i := range 3 * maxClients {
		from(h, addr(i), "GET", "/api/v1/status", wrong, "")
		if i%1000 == 0 {
			c.add(time.Second)
		}
	}
	if n := a.limit.size(); n != maxClients {
		t.Errorf("the limiter remembers %d clients; want at most %d", n, maxClients)
	}
	// The latest are remembered, the first forgotten.
	last, first := addr(3*maxClients-1), addr(0)
	for range loginBudget - 2 {
		from(h, last, "GET", "/api/v1/status", wrong, "")
		from(h, first, "GET", "/api/v1/status", wrong, "")
	}
	if r := from(h, last, "GET", "/api/v1/status", wrong, ""); r.Code != http.StatusTooManyRequests {
		t.Errorf("a remembered address's %dth wrong token: %d; want 429", loginBudget, r.Code)
	}
	if r := from(h, first, "GET", "/api/v1/status", wrong, ""); r.Code != http.StatusUnauthorized {
		t.Errorf("a forgotten address's %dth wrong token (its budget began again): %d; want 401", loginBudget-1, r.Code)
	}
	if n := a.limit.size(); n > maxClients {
		t.Errorf("the limiter remembers %d clients", n)
	}
	// An hour without wrong tokens empties it.
	c.add(forgetAfter)
	from(h, addr(1), "GET", "/api/v1/status", http.Header{"Authorization": {"Bearer s3cret"}}, "")
	if n := a.limit.size(); n != 0 {
		t.Errorf("an hour later the limiter remembers %d clients", n)
	}
}
