package server

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
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
