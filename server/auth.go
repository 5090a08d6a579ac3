package server

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
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
//
// Wrong tokens are limited per client address (limiter): a few are
// allowed, then the client must wait, longer after each further wrong
// token, and is answered 429 with Retry-After meanwhile.

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
	token string
	// digest is the token's SHA-256: tokens are compared by digest, so
	// that the comparison takes as long whatever the length of the guess
	// (subtle.ConstantTimeCompare returns at once on different lengths).
	digest   [sha256.Size]byte
	limit    *limiter
	mu       sync.Mutex
	sessions map[string]session
}

func newAccess(token string) *access {
	return &access{token: token, digest: sha256.Sum256([]byte(token)), limit: newLimiter(time.Now), sessions: map[string]session{}}
}

// right tells whether token is the configured one, in constant time.
func (a *access) right(token string) bool {
	d := sha256.Sum256([]byte(token))
	return a.token != "" && subtle.ConstantTimeCompare(d[:], a.digest[:]) == 1
}

// bearer tells whether an Authorization header carries the token.
func (a *access) bearer(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	return ok && strings.EqualFold(scheme, "Bearer") && a.right(token)
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
		if h := r.Header.Get("Authorization"); h != "" {
			// A token is tried: refused unheard while its client must
			// wait, else a right one during the wait would tell the
			// guesser it was right.
			client := clientOf(r)
			if wait := a.limit.wait(client); wait > 0 {
				tooMany(w, wait)
				return
			}
			if a.bearer(h) {
				a.limit.forget(client)
				mux.ServeHTTP(w, r)
				return
			}
			if wait := a.limit.fail(client); wait > 0 {
				tooMany(w, wait)
				return
			}
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

// login checks token and opens a session: its cookie is set on w. When it
// refuses, wait is how long r's client must wait before it may try again
// (0: at once).
func (a *access) login(w http.ResponseWriter, r *http.Request, token string) (ok bool, wait time.Duration) {
	if a.token == "" {
		return false, 0
	}
	client := clientOf(r)
	if wait := a.limit.wait(client); wait > 0 {
		return false, wait
	}
	if !a.right(token) {
		return false, a.limit.fail(client)
	}
	a.limit.forget(client)
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
	return true, 0
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

// tooMany refuses a token tried while its client must wait.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", retryAfter(wait))
	fail(w, http.StatusTooManyRequests, "too many wrong tokens from your address: try again in "+inWords(wait))
}

// retryAfter is a Retry-After header's seconds, rounded up.
func retryAfter(wait time.Duration) string {
	return strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10)
}

// inWords says a wait for people: "30 seconds", "4 minutes".
func inWords(wait time.Duration) string {
	s := int64((wait + time.Second - 1) / time.Second)
	switch {
	case s == 1:
		return "1 second"
	case s < 120:
		return fmt.Sprintf("%d seconds", s)
	}
	return fmt.Sprintf("%d minutes", (s+59)/60)
}

// clientOf is who a request counts against in the limiter: the address it
// came from, as the connection says (X-Forwarded-For is not trusted: sluice
// has no list of proxies it could trust it from, and anyone can send it).
// An IPv6 client is its /64, the block one machine or home usually holds.
func clientOf(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// The limiter's rules: loginBudget wrong tokens, then a wait of
// lockoutFirst, doubled by each further wrong token up to lockoutMax. A
// client that sent no wrong token for forgetAfter starts afresh, as does
// one that sends the right token. At most maxClients clients are
// remembered: when more fail, the one whose last wrong token is oldest is
// forgotten, so a flood of addresses cannot grow the memory.
const (
	loginBudget  = 5
	lockoutFirst = 30 * time.Second
	lockoutMax   = 15 * time.Minute
	forgetAfter  = time.Hour
	maxClients   = 10000
)

// limiter counts the wrong tokens of each client.
type limiter struct {
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*list.Element // of *strikes
	order   *list.List               // *strikes, the latest wrong token first
}

// strikes are a client's wrong tokens.
type strikes struct {
	client string
	wrong  int
	last   time.Time // of the last wrong token
	until  time.Time // the client waits until then
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, clients: map[string]*list.Element{}, order: list.New()}
}

// wait is how long client must still wait before it may try a token.
func (l *limiter) wait(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	e := l.clients[client]
	if e == nil {
		return 0
	}
	return max(e.Value.(*strikes).until.Sub(now), 0)
}

// fail counts a wrong token of client and returns the wait it starts (0:
// the client may try again at once).
func (l *limiter) fail(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	e := l.clients[client]
	if e == nil {
		for l.order.Len() >= maxClients {
			l.remove(l.order.Back())
		}
		e = l.order.PushFront(&strikes{client: client})
		l.clients[client] = e
	} else {
		l.order.MoveToFront(e)
	}
	s := e.Value.(*strikes)
	s.wrong++
	s.last = now
	if s.wrong < loginBudget {
		return 0
	}
	wait := lockoutFirst
	for i := loginBudget; i < s.wrong && wait < lockoutMax; i++ {
		wait *= 2
	}
	wait = min(wait, lockoutMax)
	s.until = now.Add(wait)
	return wait
}

// forget clears client's wrong tokens (it sent the right one).
func (l *limiter) forget(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.clients[client]; e != nil {
		l.remove(e)
	}
}

// size is how many clients the limiter remembers.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// expire forgets the clients without a wrong token for forgetAfter: the
// oldest are last in order.
func (l *limiter) expire(now time.Time) {
	for e := l.order.Back(); e != nil && now.Sub(e.Value.(*strikes).last) >= forgetAfter; e = l.order.Back() {
		l.remove(e)
	}
}

func (l *limiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*strikes).client)
	l.order.Remove(e)
}
