package collect

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sluice-data/sluice"
)

const tp2Body = `{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","eid":"a"},{"e":"se","eid":"b"}]}`

func do(t *testing.T, method, url string, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestSnowplowRoutes(t *testing.T) {
	b := openBus(t)
	_, srv := serve(t, Options{Store: b, Cookie: Cookie{Domain: "shop.example"}})
	origin := map[string]string{"Origin": "https://shop.example"}

	// GET /i: the pixel, no caching, CORS, a new network user id cookie.
	resp, body := do(t, "GET", srv.URL+"/i?e=pv&eid=e1&url=https%3A%2F%2Fshop.example%2F", "", origin)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || !bytes.Equal(body, gif) {
		t.Fatalf("pixel: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
		t.Errorf("Cache-Control %q", cc)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("CORS headers: %v", resp.Header)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != "sp" || cookies[0].Domain != "shop.example" || cookies[0].SameSite != http.SameSiteNoneMode || !cookies[0].HttpOnly {
		t.Fatalf("cookie: %+v", cookies)
	}
	nuid := cookies[0].Value
	if _, err := uuid.Parse(nuid); err != nil {
		t.Errorf("cookie value %q is not a uuid", nuid)
	}
	if d := time.Until(cookies[0].Expires); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("cookie expires in %s, want 365 days", d)
	}

	// The cookie comes back: the same network user id.
	resp, _ = do(t, "GET", srv.URL+"/ice.png?e=pv&eid=e2", "", map[string]string{"Cookie": "sp=" + nuid})
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || resp.Cookies()[0].Value != nuid {
		t.Errorf("returning visitor: %d %+v", resp.StatusCode, resp.Cookies())
	}

	// POST tp2.
	resp, body = do(t, "POST", srv.URL+"/com.snowplowanalytics.snowplow/tp2", tp2Body,
		map[string]string{"Content-Type": "application/json; charset=UTF-8", "Origin": "https://shop.example", "Cookie": "sp=" + nuid})
	if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Errorf("tp2: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	// SP-Anonymous: no cookie, the zero id, no IP.
	resp, _ = do(t, "POST", srv.URL+"/com.snowplowanalytics.snowplow/tp2", tp2Body,
		map[string]string{"Content-Type": "application/json", "SP-Anonymous": "*", "Cookie": "sp=" + nuid, "X-Forwarded-For": "198.51.100.9"})
	if resp.StatusCode != 200 || len(resp.Cookies()) != 0 {
		t.Errorf("anonymous: %d cookies %+v", resp.StatusCode, resp.Cookies())
	}

	// The preflight.
	resp, _ = do(t, "OPTIONS", srv.URL+"/com.snowplowanalytics.snowplow/tp2", "", map[string]string{
		"Origin": "https://shop.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,sp-anonymous"})
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != "https://shop.example" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "SP-Anonymous") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}
	resp, body = do(t, "GET", srv.URL+"/health", "", nil)
	if resp.StatusCode != 200 || string(body) != "OK" {
		t.Errorf("health: %d %q", resp.StatusCode, body)
	}

	// Bad tp2 bodies are refused with a reason, with CORS headers so a
	// browser can read it.
	for _, c := range []struct{ body, want string }{
		{`{"data":`, "not valid JSON"},
		{`[1,2]`, "one JSON object"},
		{`{"schema":"x","data":{"e":"pv"}}`, `needs \"data\": an array`},
		{`{"schema":"x"}`, `needs \"data\": an array`},
	} {
		resp, body := do(t, "POST", srv.URL+"/com.snowplowanalytics.snowplow/tp2", c.body, map[string]string{"Content-Type": "application/json", "Origin": "https://a.example"})
		if resp.StatusCode != 400 || !strings.Contains(string(body), c.want) || resp.Header.Get("Access-Control-Allow-Origin") != "https://a.example" {
			t.Errorf("%s: %d %s", c.body, resp.StatusCode, body)
		}
	}

	_, payloads := stored(t, b)
	if len(payloads) != 4 {
		t.Fatalf("%d payloads stored, want 4", len(payloads))
	}
	want := []struct{ path, body, nuid string }{
		{"/i", "e=pv&eid=e1&url=https%3A%2F%2Fshop.example%2F", nuid},
		{"/ice.png", "e=pv&eid=e2", nuid},
		{"/com.snowplowanalytics.snowplow/tp2", tp2Body, nuid},
		{"/com.snowplowanalytics.snowplow/tp2", tp2Body, "00000000-0000-0000-0000-000000000000"},
	}
	for i, w := range want {
		p := payloads[i]
		if p.Path != w.path || string(p.Body) != w.body || p.Headers[sluice.HeaderNetworkUserID] != w.nuid {
			t.Errorf("payload %d: %s %q %v", i, p.Path, p.Body, p.Headers)
		}
	}
	if p := payloads[3]; p.IP != "" || p.Headers["X-Forwarded-For"] != "" || p.Headers[sluice.HeaderAnonymous] == "" {
		t.Errorf("anonymous payload keeps identity: ip %q headers %v", p.IP, p.Headers)
	}
	if payloads[0].IP == "" {
		t.Error("payload without IP")
	}
}
