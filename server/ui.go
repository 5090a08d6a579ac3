package server

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/sluice-data/sluice/web"
)

// uiRoutes serves the web UI (package web): its pages, their assets, and
// the login page that opens a session (auth.go).
func uiRoutes(mux *router, o Options, a *access) {
	for _, p := range web.Pages {
		pattern := "GET " + p.Path
		if p.Path == "/" {
			pattern = "GET /{$}"
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			render(w, r, http.StatusOK, p.Name, web.Data{Page: p, CSRF: CSRFToken(r), LoggedIn: a.token != "" && CSRFToken(r) != ""})
		})
	}
	// A dashboard is the dashboards page, which reads its name from the path.
	mux.HandleFunc("GET /dashboards/{name}", func(w http.ResponseWriter, r *http.Request) {
		p := web.Pages[slices.IndexFunc(web.Pages, func(p web.Page) bool { return p.Name == "dashboards" })]
		render(w, r, http.StatusOK, p.Name, web.Data{Page: p, CSRF: CSRFToken(r), LoggedIn: a.token != "" && CSRFToken(r) != ""})
	})
	mux.Handle("GET /assets/", web.Assets())
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		if a.token == "" {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		render(w, r, http.StatusOK, "login", web.Data{Next: localPath(r.URL.Query().Get("next"))})
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next := localPath(r.PostFormValue("next"))
		if ok, wait := a.login(w, r, r.PostFormValue("token")); !ok {
			status, msg := http.StatusUnauthorized, "Wrong token."
			switch {
			case wait > 0:
				w.Header().Set("Retry-After", retryAfter(wait))
				status, msg = http.StatusTooManyRequests, "Too many wrong tokens from your address. Try again in "+inWords(wait)+"."
			case a.token == "":
				msg = "This server has no token (auth.token): nothing to log in to."
			}
			render(w, r, status, "login", web.Data{Next: next, Error: msg})
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		a.logout(w, r)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
}

// localPath keeps a redirect after login on this server: "/" unless p is a
// path here ("//host" and "/\host" lead elsewhere).
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

func render(w http.ResponseWriter, r *http.Request, status int, name string, d web.Data) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing but this server's own scripts, styles and images: the UI
	// works offline, and an injected <script> would not run.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	if err := web.Render(w, name, d); err != nil {
		slog.Error("render page", "page", name, "url", r.URL.String(), "err", err)
	}
}
