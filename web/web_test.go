package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// Every page renders, and every asset it links is served with a long cache
// lifetime for the version it links; nothing comes from another host.
func TestPagesAndTheirAssets(t *testing.T) {
	assets := httptest.NewServer(Assets())
	defer assets.Close()
	link := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	for _, name := range append(pageNames(), "login") {
		var b strings.Builder
		if err := Render(&b, name, Data{CSRF: "tok"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		html := b.String()
		if !strings.Contains(html, `<meta name="csrf-token" content="tok">`) {
			t.Errorf("%s: no CSRF token", name)
		}
		for _, m := range link.FindAllStringSubmatch(html, -1) {
			u := m[1]
			if strings.Contains(u, "//") {
				t.Errorf("%s links another host: %s", name, u)
			}
			if !strings.HasPrefix(u, "/assets/") {
				continue
			}
			resp, err := http.Get(assets.URL + u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("ETag") == "" {
				t.Errorf("%s: %s: %d %q", name, u, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}
	}
	resp, err := http.Get(assets.URL + "/assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("an asset asked for without its version: %q", resp.Header.Get("Cache-Control"))
	}
	if resp, _ := http.Get(assets.URL + "/assets/../web.go"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("outside the assets: %d", resp.StatusCode)
	}
}

// The chart library is vendored with its licence.
func TestVendoredLicence(t *testing.T) {
	for _, f := range []string{"assets/vendor/uplot/LICENSE", "assets/vendor/README.md"} {
		if _, err := files.ReadFile(f); err != nil {
			t.Error(err)
		}
	}
}
