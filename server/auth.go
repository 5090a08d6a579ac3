package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Access control. With auth.token set, every route of the API and the UI
// needs it, except the few in public: a request carries the token as
// `Authorization: Bearer <token>` (scripts, the CLI), or the cookie of a
// session opened on the login page (browsers). The gate stands in front of
// the whole mux and looks up the pattern a request matches, so a route added
// anywhere is guarded without anyone remembering to wrap it.
//
// A request authenticated by cookie that can change something (any method
// but GET, HEAD, OPTIONS) must also carry the session's CSRF token, in the
// X-CSRF-Token header or, for a plain HTML form, the csrf field: a cookie is
// sent by the browser on its own, the token only by the UI's own pages
// (they read it from <meta name="csrf-token">). Bearer requests need no
// CSRF token: no browser adds that header by itself.

// public are the patterns served without the token: probes, the Prometheus
// scraper (/metrics holds counts and component names, no data), the login
// page and the assets it needs.
var public = map[string]bool{
	"GET /healthz": true,
	"GET /metrics": true,
	"GET /login":   true,
	"POST /login":  true,
	"GET /assets/": true,
}

// SessionCookie is the name of the UI's session cookie.
const SessionCookie = "sluice_session"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

type session struct {
	csrf    string
	expires time.Time
}

// access is the gate and the sessions it opened (in memory: a restart logs
// everyone out, and logging out really ends a session).
type access struct {
	token    string
	mu       sync.Mutex
	sessions map[string]session
}

func newAccess(token string) *access {
	return &access{token: token, sessions: map[string]session{}}
}

type csrfKey struct{}

// CSRFToken is the CSRF token of the session a request came with ("" for
// none: no token is configured, or the request used the bearer token).
func CSRFToken(r *http.Request) string {
	s, _ := r.Context().Value(csrfKey{}).(string)
	return s
}

// guard serves mux's routes to requests that may have them.
func (a *access) guard(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if a.token == "" || public[pattern] {
			mux.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+a.token)) == 1 {
			mux.ServeHTTP(w, r)
			return
		}
		s, ok := a.session(r)
		if !ok {
			if isPage(r, pattern) {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			fail(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <auth.token> (the CLI reads SLUICE_TOKEN), or log in at /login")
			return
		}
		if !safeMethod(r.Method) {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
				got = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				fail(w, http.StatusForbidden, "missing or wrong CSRF token: a request that changes something needs the X-CSRF-Token header of the page it came from (reload the page)")
				return
			}
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), csrfKey{}, s.csrf)))
	})
}

// isPage tells a browser's page load, which is sent to the login page, from
// an API call, which gets 401.
func isPage(r *http.Request, pattern string) bool {
	return r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/debug/") &&
		pattern != ""
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// session returns the live session of r's cookie.
func (a *access) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return session{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.sessions[c.Value]
	if !ok || time.Now().After(s.expires) {
		delete(a.sessions, c.Value)
		return session{}, false
	}
	return s, true
}

// login checks token and opens a session: its cookie is set on w.
func (a *access) login(w http.ResponseWriter, r *http.Request, token string) bool {
	if a.token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
		return false
	}
	id, csrf := randomID(), randomID()
	now := time.Now()
	a.mu.Lock()
	for k, s := range a.sessions {
		if now.After(s.expires) {
			delete(a.sessions, k)
		}
	}
	a.sessions[id] = session{csrf: csrf, expires: now.Add(sessionTTL)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r),
	})
	return true
}

// logout ends r's session and clears its cookie.
func (a *access) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r)})
}

// isTLS tells whether the browser reached us over HTTPS, directly or through
// a proxy that says so.
func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
