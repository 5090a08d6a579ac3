// Package web is Sluice's web UI: server-rendered pages (html/template) and
// their static assets, all embedded in the binary, so the UI works without
// internet access. A page is a shell with navigation; a small script per page
// fills it from the JSON API (package server), which also serves the pages
// and decides who may see them.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed templates assets
var files embed.FS

// Page is one page of the UI.
type Page struct {
	Path  string // URL path: "/", "/sql", …
	Name  string // template name and the name of its script
	Title string // in the navigation
}

// Pages are the pages in the order of the navigation.
var Pages = []Page{
	{"/", "overview", "Overview"},
	{"/explore", "explore", "Explore"},
	{"/dashboards", "dashboards", "Dashboards"},
	{"/sql", "sql", "SQL"},
	{"/streams", "streams", "Streams"},
	{"/jobs", "jobs", "Jobs"},
	{"/bad", "bad", "Bad rows"},
	{"/rollups", "rollups", "Rollups"},
}

// Data is what a page's template gets.
type Data struct {
	Page Page
	Nav  []Page
	// CSRF is the session's CSRF token, which the scripts send as
	// X-CSRF-Token with each request that changes something.
	CSRF string
	// LoggedIn: the request came with a session (a token is configured), so
	// the page offers to log out.
	LoggedIn bool
	// Next and Error are the login page's.
	Next, Error string
}

var (
	pages    = map[string]*template.Template{}
	versions = map[string]string{} // asset path → hash of its content
)

func init() {
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		versions[strings.TrimPrefix(p, "assets/")] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"asset": asset}
	for _, name := range append(pageNames(), "login") {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html"))
	}
}

func pageNames() []string {
	var names []string
	for _, p := range Pages {
		names = append(names, p.Name)
	}
	return names
}

// asset is the URL of an embedded asset, with its content's hash, so that
// a browser may keep it for long and still sees a new version at once.
func asset(name string) (string, error) {
	v, ok := versions[name]
	if !ok {
		return "", fmt.Errorf("no asset %q", name)
	}
	return "/assets/" + name + "?v=" + v, nil
}

// Render writes the page name ("login" or a Page's Name) with d.
func Render(w io.Writer, name string, d Data) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	d.Nav = Pages
	if d.Page.Name == "" {
		d.Page = Page{Name: name, Title: strings.ToUpper(name[:1]) + name[1:]}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return fmt.Errorf("page %s: %w", name, err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// Assets serves the embedded assets under /assets/. A request for the
// version a page links (?v=) may be cached for a year; others are checked
// with their ETag each time.
func Assets() http.Handler {
	sub, _ := fs.Sub(files, "assets")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/assets/")
		v, ok := versions[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		f, err := sub.Open(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		if r.URL.Query().Get("v") == v {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		w.Header().Set("ETag", `"`+v+`"`)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, name, time.Time{}, f.(io.ReadSeeker))
	})
}
