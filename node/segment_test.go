package node_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/config"
)

func TestSegmentFromTheRealClient(t *testing.T) {
	// The real @segment/analytics-node, installed by `npm install --prefix
	// node/testdata/segment` (.ci/run does).
	nodeBin, dir := npmClient(t, "segment", "@segment/analytics-node")
	n := startNode(t, t.TempDir(), func(cfg *config.Config) { cfg.HTTP.WriteKeys = []string{"wk-good"} })
	defer n.Stop()

	out, err := exec.Command(nodeBin, filepath.Join(dir, "send.js"), n.CollectorURL(), "wk-good").CombinedOutput()
	if err != nil {
		t.Fatalf("send.js: %v\n%s", err, out)
	}
	api := n.APIURL()
	waitFor(t, api, "SELECT count(*) FROM events", "[[3]]")
	res := query(t, api, `SELECT event_id, event, user_id, anonymous_id, app_id, platform FROM events ORDER BY event_id`)
	want := "[[seg-identify-1 identify u-42 <nil> wk-good srv] [seg-page-1 page_view <nil> anon-7 wk-good srv] [seg-track-1 Order Completed u-42 <nil> wk-good srv]]"
	if got := fmt.Sprint(res.Rows); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	res = query(t, api, `SELECT revenue, currency, items, ip, browser, traits->>'plan', page_name, page_url, mkt_source, refr_medium
		FROM events ORDER BY event_id`)
	got := fmt.Sprint(res.Rows)
	for _, w := range []string{"39.95 EUR 2 198.51.100.23 Chrome 131", "pro", "Pricing https://shop.example/pricing?utm_source=newsletter newsletter search"} {
		if !strings.Contains(got, w) {
			t.Errorf("events lack %q:\n%s", w, got)
		}
	}

	// A wrong write key is refused, in Basic auth or in the body.
	for _, r := range []struct{ auth, body string }{
		{"wk-bad", `{"batch":[{"type":"track","event":"x"}]}`},
		{"", `{"writeKey":"wk-bad","batch":[{"type":"track","event":"x"}]}`},
		{"", `{"batch":[{"type":"track","event":"x"}]}`},
	} {
		req, _ := http.NewRequest("POST", n.CollectorURL()+"/v1/batch", strings.NewReader(r.body))
		if r.auth != "" {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(r.auth+":")))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%+v: %d, want 401", r, resp.StatusCode)
		}
	}
	// Single-message routes with Basic auth; a message that can't be an
	// event is a bad row.
	for _, r := range []struct{ path, body string }{
		{"/v1/track", `{"userId":"u-1","event":"Signed Up","messageId":"seg-basic-1"}`},
		{"/v1/track", `{"userId":"u-1","messageId":"seg-noname"}`},
	} {
		req, _ := http.NewRequest("POST", n.CollectorURL()+r.path, strings.NewReader(r.body))
		req.SetBasicAuth("wk-good", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", r.path, resp.StatusCode)
		}
	}
	waitFor(t, api, "SELECT count(*) FROM events WHERE event_id = 'seg-basic-1'", "[[1]]")
	waitFor(t, api, "SELECT type, event_id FROM bad", "[[tracker_protocol seg-noname]]")
}
