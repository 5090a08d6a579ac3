package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/snowplow/snowplow-golang-tracker/v3/pkg/payload"
	"github.com/snowplow/snowplow-golang-tracker/v3/pkg/storage/storageiface"
	sp "github.com/snowplow/snowplow-golang-tracker/v3/tracker"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/server"
)

// The Snowplow tracker protocol, tested with the real trackers: the Node.js
// and browser trackers from npm (npm install --prefix node/testdata/snowplow;
// .ci/run does) and the Go tracker module.

const (
	chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	// nobody is the network user id of a request sent with SP-Anonymous.
	nobody = "00000000-0000-0000-0000-000000000000"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// snowplowConfig sets the http and enrich sections from YAML, as a user's
// config file would; the listen addresses stay the test's.
func snowplowConfig(t *testing.T, yaml string) func(*config.Config) {
	t.Helper()
	parsed, err := config.Parse("snowplow_test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	return func(cfg *config.Config) {
		h := parsed.HTTP
		h.Collector, h.API = cfg.HTTP.Collector, cfg.HTTP.API
		cfg.HTTP = h
		cfg.Enrich = parsed.Enrich
	}
}

// igluConfig is a config whose Iglu registry is testdata/snowplow/iglu, with
// more YAML under enrich.iglu.
func igluConfig(t *testing.T, iglu string) func(*config.Config) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "snowplow", "iglu"))
	if err != nil {
		t.Fatal(err)
	}
	return snowplowConfig(t, fmt.Sprintf("enrich:\n  iglu:\n    registries: [%q]\n%s", dir, iglu))
}

// col is an expectation on one row: a SQL expression and how its value
// prints (fmt.Sprint; NULL prints as <nil>).
type col struct{ expr, want string }

// checkRow compares the expressions with their expected values on the one
// row of table that where selects. When the query fails (a missing column,
// say), each expression is tried alone so that every failing one is named.
func checkRow(t *testing.T, api, table, where string, cols ...col) {
	t.Helper()
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = c.expr
	}
	q := "SELECT " + strings.Join(exprs, ", ") + " FROM " + table + " WHERE " + where
	res, err := (&server.Client{URL: api}).SQL(context.Background(), q)
	if err != nil {
		if len(cols) == 1 {
			t.Errorf("%s: %v", q, err)
			return
		}
		for _, c := range cols {
			checkRow(t, api, table, where, c)
		}
		return
	}
	if len(res.Rows) != 1 {
		t.Errorf("%s: %d rows, want 1", q, len(res.Rows))
		return
	}
	for i, c := range cols {
		if got := fmt.Sprint(res.Rows[0][i]); got != c.want {
			t.Errorf("%s (%s): got %s, want %s", c.expr, where, got, c.want)
		}
	}
}

// settle polls a query like waitFor but only reports a mismatch, so that the
// checks after it still run and show what arrived.
func settle(t *testing.T, api, q, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		res, err := (&server.Client{URL: api}).SQL(context.Background(), q)
		if err != nil {
			got = err.Error()
			continue
		}
		if got = fmt.Sprint(res.Rows); got == want {
			return
		}
	}
	t.Errorf("%s: got %s, want %s", q, got, want)
}

// value returns the single value of a query, as it prints.
func value(t *testing.T, api, q string) string {
	t.Helper()
	res := query(t, api, q)
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		t.Fatalf("%s: want one value, got %v", q, res.Rows)
	}
	return fmt.Sprint(res.Rows[0][0])
}

func TestSnowplowFromTheNodeTracker(t *testing.T) {
	nodeBin, dir := npmClient(t, "snowplow", "@snowplow/node-tracker")
	n := startNode(t, t.TempDir(), igluConfig(t, ""))
	defer n.Stop()
	api := n.APIURL()

	// Each run sends the same eight events (send.js) with its own app id.
	runs := []struct{ tag, method, encoding, anonymous string }{
		{"post", "post", "base64", ""},
		{"get64", "get", "base64", ""},
		{"get", "get", "plain", ""},
		{"anon", "post", "plain", "anonymous"},
	}
	ids := map[string]map[string]string{}
	for _, r := range runs {
		args := []string{filepath.Join(dir, "send.js"), n.CollectorURL(), r.method, r.encoding, r.tag}
		if r.anonymous != "" {
			args = append(args, r.anonymous)
		}
		cmd := exec.Command(nodeBin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("send.js %s: %v\n%s", r.tag, err, stderr.Bytes())
		}
		var sent map[string]string
		if err := json.Unmarshal(out, &sent); err != nil || len(sent) != 8 {
			t.Fatalf("send.js %s printed %q (%v)", r.tag, out, err)
		}
		ids[r.tag] = sent
	}

	// Seven good events per run land; the eighth breaks its schema.
	settle(t, api, "SELECT count(*) FROM events WHERE app_id LIKE 'shop-%'", "[[28]]")
	settle(t, api, "SELECT count(*) FROM bad", "[[4]]")

	for _, r := range runs {
		id := ids[r.tag]
		at := func(label string) string { return "event_id = '" + id[label] + "'" }
		for _, label := range []string{"page_view", "page_ping", "struct", "link_click", "add_to_cart", "transaction", "transaction_item"} {
			checkRow(t, api, "events", at(label),
				col{"app_id", "shop-" + r.tag},
				col{"platform", "srv"},
				col{"user_id", "u-42"},
				col{"session_id", "7c2d1a4e-1f0b-4c7e-9a7e-2f4c9d8b6a01"},
				col{"domain_sessionidx", "3"},
				col{"typeof(domain_sessionidx)", "BIGINT"},
				col{"useragent", chromeUA},
				col{"browser", "Chrome 131"},
				col{"os LIKE 'Linux%'", "true"},
				col{"device_class", "desktop"},
				col{"v_tracker LIKE 'node-4.%'", "true"},
				col{"name_tracker", "sluice-test"},
				col{"br_lang", "de-DE"},
				col{"os_timezone", "Europe/Berlin"},
				col{"dvce_screenwidth", "1920"},
				col{"dvce_screenheight", "1080"},
				col{"typeof(dvce_screenwidth)", "BIGINT"},
				col{"br_viewwidth", "1280"},
				col{"br_viewheight", "720"},
				col{"typeof(dvce_sent_tstamp)", "TIMESTAMP"},
				col{"dvce_sent_tstamp IS NOT NULL", "true"},
			)
		}
		// Who: the domain user id when the tracker names one, else the
		// network user id from the sp cookie; SP-Anonymous hides both the
		// network user id and the IP address.
		switch r.tag {
		case "post":
			checkRow(t, api, "events", at("page_view"),
				col{"domain_userid", "d0d0d0d0-1111-4222-8333-444455556666"},
				col{"anonymous_id", "d0d0d0d0-1111-4222-8333-444455556666"},
				col{"ip", "127.0.0.1"})
		case "anon":
			checkRow(t, api, "events", "app_id = 'shop-anon'",
				col{"count(*)", "7"},
				col{"count(*) FILTER (network_userid = '" + nobody + "' AND anonymous_id = '" + nobody + "')", "7"},
				col{"count(*) FILTER (coalesce(ip, '') = '')", "7"})
		default:
			checkRow(t, api, "events", at("page_view"),
				col{"domain_userid", "<nil>"},
				col{"anonymous_id = network_userid", "true"},
				col{"ip", "127.0.0.1"})
		}
		if r.tag != "anon" {
			// The node client keeps no cookies: each request gets a new id.
			nuid := value(t, api, "SELECT network_userid FROM events WHERE "+at("page_view"))
			if !uuidRE.MatchString(nuid) || nuid == nobody {
				t.Errorf("%s: network_userid %q is not a fresh uuid", r.tag, nuid)
			}
		}

		checkRow(t, api, "events", at("page_view"),
			col{"event", "page_view"},
			col{"event_type", "page_view"},
			col{"page_url", "https://shop.example/pricing?utm_source=newsletter"},
			col{"page_title", "Preise — Größen ✓ 👟"},
			col{"referrer", "https://www.google.com/"},
			// The true timestamp is the event time.
			col{"event_time", "2026-01-02T03:04:05Z"},
			col{"true_tstamp", "2026-01-02T03:04:05Z"},
			col{"typeof(true_tstamp)", "TIMESTAMP"},
			// The enrichments work on Snowplow events too.
			col{"mkt_source", "newsletter"},
			col{"refr_medium", "search"},
			col{"contexts_com_acme_user_1->0->>'id'", "u1"},
			col{"json_array_length(contexts_com_acme_user_1)", "1"},
		)
		checkRow(t, api, "events", at("page_ping"),
			col{"event", "page_ping"},
			col{"event_type", "page_ping"},
			col{"page_url", "https://shop.example/pricing?utm_source=newsletter"},
		)
		checkRow(t, api, "events", at("struct"),
			col{"event", "struct"},
			col{"event_type", "struct"},
			col{"se_category", "shop"},
			col{"se_action", "add-to-basket"},
			col{"se_label", "sku-1"},
			col{"se_property", "red"},
			col{"se_value", "2.5"},
			col{"typeof(se_value)", "DOUBLE"},
			col{"typeof(dvce_created_tstamp)", "TIMESTAMP"},
			// Created an hour before it was sent: no true timestamp, so the
			// event time is received_at - (dvce_sent_tstamp - dvce_created_tstamp).
			col{"true_tstamp", "<nil>"},
			col{"abs(epoch(event_time) - (epoch(received_at) - (epoch(dvce_sent_tstamp) - epoch(dvce_created_tstamp)))) < 1", "true"},
			col{"epoch(received_at) - epoch(event_time) BETWEEN 3599 AND 3660", "true"},
		)
		checkRow(t, api, "events", at("link_click"),
			col{"event", "link_click"},
			col{"event_type", "unstruct"},
			col{"event_vendor", "com.acme"},
			col{"event_name", "link_click"},
			col{"event_version", "1-0-0"},
			col{"typeof(unstruct_event_com_acme_link_click_1)", "JSON"},
			col{"unstruct_event_com_acme_link_click_1->>'targetUrl'", "https://shop.example/buy"},
			col{"unstruct_event_com_acme_link_click_1->>'elementId'", "buy-button"},
			col{"unstruct_event_com_acme_link_click_1->>'text'", "Jetzt kaufen — 👟"},
			// Two contexts of one schema: one column, an array of both.
			col{"typeof(contexts_com_acme_user_1)", "JSON"},
			col{"json_array_length(contexts_com_acme_user_1)", "2"},
			col{"contexts_com_acme_user_1->0->>'id'", "u1"},
			col{"contexts_com_acme_user_1->1->>'id'", "u2"},
			// A schema the registry lacks is accepted by default; its
			// name's '-' becomes '_'.
			col{"contexts_com_acme_ab_test_1->0->>'variant'", "b"},
			col{"page_url", "<nil>"},
		)
		// The event is the schema's name as it stands; the columns are in
		// lower snake case, one per schema model.
		checkRow(t, api, "events", at("add_to_cart"),
			col{"event", "addToCart"},
			col{"event_type", "unstruct"},
			col{"event_name", "addToCart"},
			col{"unstruct_event_com_acme_add_to_cart_1->>'sku'", "sku-1"},
			col{"unstruct_event_com_acme_add_to_cart_1->>'quantity'", "2"},
			col{"json_array_length(contexts_com_acme_ab_test_1)", "2"},
			col{"contexts_com_acme_ab_test_1->0->>'variant'", "b"},
			col{"contexts_com_acme_ab_test_1->1->>'variant'", "c"},
		)
		checkRow(t, api, "events", at("transaction"),
			col{"event", "transaction"},
			col{"event_type", "transaction"},
			col{"tr_orderid", "o-" + r.tag},
			col{"tr_affiliation", "web"},
			col{"tr_total", "39.95"},
			col{"tr_tax", "3.5"},
			col{"tr_shipping", "4.9"},
			col{"typeof(tr_total)", "DOUBLE"},
			col{"typeof(tr_tax)", "DOUBLE"},
			col{"typeof(tr_shipping)", "DOUBLE"},
			col{"tr_city", "Berlin"},
			col{"tr_state", "BE"},
			col{"tr_country", "DE"},
			col{"tr_currency", "EUR"},
		)
		checkRow(t, api, "events", at("transaction_item"),
			col{"event", "transaction_item"},
			col{"event_type", "transaction_item"},
			col{"ti_orderid", "o-" + r.tag},
			col{"ti_sku", "sku-1"},
			col{"ti_name", "Red shoe"},
			col{"ti_category", "shoes"},
			col{"ti_price", "17.5"},
			col{"typeof(ti_price)", "DOUBLE"},
			col{"ti_quantity", "2"},
			col{"typeof(ti_quantity)", "BIGINT"},
			col{"ti_currency", "EUR"},
		)
		// The event that breaks its schema is a bad row that names the
		// schema and the field; the good events of its request landed.
		checkRow(t, api, "bad", at("bad_link_click"),
			col{"type", "schema_violation"},
			col{"message LIKE '%com.acme/link_click/jsonschema/1-0-0%'", "true"},
			col{"message LIKE '%targetUrl%'", "true"},
		)
		checkRow(t, api, "events", at("bad_link_click"), col{"count(*)", "0"})
	}
	if t.Failed() {
		t.Logf("bad rows: %v", query(t, api, "SELECT type, event_id, message FROM bad").Rows)
	}
}

func TestSnowplowFromTheBrowserTracker(t *testing.T) {
	dir, _ := filepath.Abs(filepath.Join("testdata", "snowplow"))
	bundle := filepath.Join(dir, "node_modules", "@snowplow", "browser-tracker", "dist")
	_, err := os.Stat(filepath.Join(bundle, "index.umd.min.js"))
	need(t, "@snowplow/browser-tracker (npm install --prefix "+dir+")", err)
	chromium, err := exec.LookPath("chromium")
	need(t, "chromium", err)
	n := startNode(t, t.TempDir(), igluConfig(t, ""))
	defer n.Stop()
	collector, api := n.CollectorURL(), n.APIURL()

	// The shop's own site: another port than the collector, so the tracker's
	// requests are cross-origin (a CORS preflight before each POST).
	mux := http.NewServeMux()
	mux.Handle("/tracker/", http.StripPrefix("/tracker/", http.FileServer(http.Dir(bundle))))
	mux.HandleFunc("/shop/red-shoes", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "page.html"))
	})
	site := httptest.NewServer(mux)
	defer site.Close()

	ctx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, time.Minute)
	defer cancel()

	// visit opens the page, which tracks a page view and then an event, and
	// waits until both requests are through.
	visit := func(query string) string {
		t.Helper()
		pageURL := site.URL + "/shop/red-shoes?collector=" + url.QueryEscape(collector) + query
		if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
			t.Fatalf("open %s: %v", pageURL, err)
		}
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.sent >= 2 || window.failed.length > 0`,
			chromedp.WithPollingTimeout(30*time.Second)))
		sent, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.sent`))
		failed, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.failed`))
		if err != nil || sent != 2 || len(failed) > 0 {
			t.Fatalf("%s: the tracker sent %d events (%v); failed requests: %q", pageURL, sent, err, failed)
		}
		return pageURL
	}
	pageURL := visit("")
	browser, err := chromedp.Run(ctx, chromedp.Evaluate[struct {
		UA, Lang, Charset string
		Width, Height     int
	}](`({UA: navigator.userAgent, Lang: navigator.language, Charset: document.characterSet, Width: screen.width, Height: screen.height})`))
	if err != nil {
		t.Fatal(err)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{collector}})
	if err != nil {
		t.Fatal(err)
	}
	var spCookie *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "sp" {
			spCookie = c
		}
	}
	if spCookie == nil {
		t.Fatalf("no sp cookie for %s in the browser: %+v", collector, cookies.Cookies)
	}
	if !uuidRE.MatchString(spCookie.Value) || spCookie.Path != "/" || !spCookie.Secure || spCookie.SameSite != network.CookieSameSiteNone {
		t.Errorf("sp cookie: %+v", spCookie)
	}
	if days := time.Until(time.Unix(int64(spCookie.Expires), 0)).Hours() / 24; days < 364 || days > 366 {
		t.Errorf("sp cookie expires in %.1f days, want 365", days)
	}

	settle(t, api, "SELECT count(*) FROM events WHERE app_id = 'web-shop'", "[[2]]")
	// The page view's request got the cookie, the event's request sent it
	// back: one network user id, the cookie's.
	checkRow(t, api, "events", "app_id = 'web-shop'",
		col{"count(DISTINCT network_userid)", "1"},
		col{"min(network_userid)", spCookie.Value},
		col{"count(DISTINCT domain_userid)", "1"},
		col{"bool_and(anonymous_id = domain_userid)", "true"},
		col{"count(DISTINCT contexts_com_snowplowanalytics_snowplow_web_page_1->0->>'id')", "1"},
	)
	for _, where := range []string{"event = 'page_view'", "event = 'link_click'"} {
		checkRow(t, api, "events", "app_id = 'web-shop' AND "+where,
			col{"platform", "web"},
			col{"user_id", "u-7"},
			col{"page_url", pageURL},
			col{"useragent", browser.UA},
			col{"ip", "127.0.0.1"},
			col{"v_tracker LIKE 'js-4.%'", "true"},
			col{"name_tracker", "sp1"},
			col{"br_lang", browser.Lang},
			col{"doc_charset", browser.Charset},
			col{"dvce_screenwidth", fmt.Sprint(browser.Width)},
			col{"dvce_screenheight", fmt.Sprint(browser.Height)},
			col{"br_viewwidth > 0 AND br_viewheight > 0 AND doc_width > 0 AND doc_height > 0", "true"},
		)
	}
	checkRow(t, api, "events", "app_id = 'web-shop' AND event = 'page_view'",
		col{"event_type", "page_view"},
		col{"page_title", "Red shoes"},
	)
	checkRow(t, api, "events", "app_id = 'web-shop' AND event = 'link_click'",
		col{"event_type", "unstruct"},
		col{"unstruct_event_com_acme_link_click_1->>'elementId'", "buy-button"},
		col{"contexts_com_acme_user_1->0->>'id'", "u1"},
	)

	// Another page load, by GET this time: the browser sends the cookie it
	// has, and the collector keeps that network user id.
	visit("&app=web-get&method=get")
	settle(t, api, "SELECT count(*) FROM events WHERE app_id = 'web-get'", "[[2]]")
	checkRow(t, api, "events", "app_id = 'web-get'",
		col{"list(DISTINCT network_userid)", "[" + spCookie.Value + "]"},
		col{"list(event ORDER BY event)", "[link_click page_view]"},
		col{"min(unstruct_event_com_acme_link_click_1->>'elementId')", "buy-button"},
	)

	// Anonymous tracking with server-side anonymisation: the SP-Anonymous
	// header passes the preflight, and the collector neither reads nor sets
	// the cookie.
	visit("&app=web-anon&anonymous")
	settle(t, api, "SELECT count(*) FROM events WHERE app_id = 'web-anon'", "[[2]]")
	checkRow(t, api, "events", "app_id = 'web-anon'",
		col{"list(DISTINCT network_userid)", "[" + nobody + "]"},
		col{"list(DISTINCT anonymous_id)", "[" + nobody + "]"},
		col{"count(*) FILTER (coalesce(ip, '') = '')", "2"},
	)
	cookies, err = chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{collector}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies.Cookies {
		if c.Name == "sp" && c.Value != spCookie.Value {
			t.Errorf("anonymous requests changed the sp cookie: %+v", c)
		}
	}
}

func TestSnowplowFromTheGoTracker(t *testing.T) {
	n := startNode(t, t.TempDir(), igluConfig(t, "    unknown: bad\nhttp:\n  cookie:\n    secure: false\n"))
	defer n.Stop()
	api := n.APIURL()
	collector, _ := url.Parse(n.CollectorURL())

	// A client that keeps cookies, as a server-side app that forwards them
	// would; with http.cookie.secure off, the sp cookie works over plain HTTP.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var failures []sp.CallbackResult
	newTracker := func(method string, base64 bool) *sp.Tracker {
		emitter := sp.InitEmitter(
			sp.RequireCollectorUri(collector.Host),
			sp.OptionProtocol("http"),
			sp.OptionRequestType(method),
			sp.RequireStorage(&memStorage{}),
			sp.OptionHttpClient(client),
			sp.OptionCallback(func(_, failed []sp.CallbackResult) {
				mu.Lock()
				failures = append(failures, failed...)
				mu.Unlock()
			}),
		)
		subject := sp.InitSubject()
		subject.SetUserId("u-go")
		subject.SetLanguage("en-US")
		subject.SetTimeZone("UTC")
		subject.SetScreenResolution(1366, 768)
		return sp.InitTracker(sp.RequireEmitter(emitter), sp.OptionSubject(subject), sp.OptionNamespace("go-ns"),
			sp.OptionAppId("go-shop"), sp.OptionBase64Encode(base64))
	}
	str := func(s string) *string { return &s }
	id := func(i int) *string { return str(fmt.Sprintf("6f1c0a00-0000-4000-8000-0000000000%02d", i)) }
	user := func(id any) sp.SelfDescribingJson {
		return *sp.InitSelfDescribingJson("iglu:com.acme/user/jsonschema/1-0-0", map[string]any{"id": id})
	}
	linkClick := sp.InitSelfDescribingJson("iglu:com.acme/link_click/jsonschema/1-0-0", map[string]any{"targetUrl": "https://shop.example/buy"})
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	flush := func(tr *sp.Tracker) {
		if left := tr.BlockingFlush(5, 20); left != 0 {
			t.Errorf("%d events not sent", left)
		}
	}

	post := newTracker("POST", true)
	post.TrackPageView(sp.PageViewEvent{EventId: id(1), PageUrl: str("https://shop.example/"), PageTitle: str("Home"),
		Referrer: str("https://www.google.com/"), Timestamp: &created, Contexts: []sp.SelfDescribingJson{user("u-go")}})
	flush(post) // the first request gets the cookie, the others send it back
	seValue := 12.5
	post.TrackStructEvent(sp.StructuredEvent{EventId: id(2), Category: str("shop"), Action: str("view-item"), Label: str("sku-9"), Value: &seValue})
	post.TrackSelfDescribingEvent(sp.SelfDescribingEvent{EventId: id(3), Event: linkClick, Contexts: []sp.SelfDescribingJson{user("u-go")}})
	total, price, qty := 30.0, 15.0, int64(2)
	post.TrackEcommerceTransaction(sp.EcommerceTransactionEvent{EventId: id(4), OrderId: str("go-o-1"), TotalValue: &total, Currency: str("USD"),
		Items: []sp.EcommerceTransactionItemEvent{
			{EventId: id(5), Sku: str("sku-9"), Name: str("Hat"), Price: &price, Quantity: &qty},
			{EventId: id(6), Sku: str("sku-10"), Price: &price, Quantity: &qty},
		}})
	// A context that breaks its schema (id must be a string), and an event
	// whose schema the registry lacks (enrich.iglu.unknown: bad).
	post.TrackPageView(sp.PageViewEvent{EventId: id(7), PageUrl: str("https://shop.example/"), Contexts: []sp.SelfDescribingJson{user(7)}})
	post.TrackSelfDescribingEvent(sp.SelfDescribingEvent{EventId: id(8),
		Event: sp.InitSelfDescribingJson("iglu:com.acme/newsletter_signup/jsonschema/1-0-0", map[string]any{"list": "weekly"})})
	flush(post)

	get := newTracker("GET", false)
	get.TrackPageView(sp.PageViewEvent{EventId: id(9), PageUrl: str("https://shop.example/cart"), TrueTimestamp: &created})
	get.TrackSelfDescribingEvent(sp.SelfDescribingEvent{EventId: id(10), Event: linkClick})
	flush(get)
	if len(failures) > 0 {
		t.Fatalf("the collector refused requests: %+v", failures)
	}
	cookie := ""
	for _, c := range jar.Cookies(collector) {
		if c.Name == "sp" {
			cookie = c.Value
		}
	}
	if !uuidRE.MatchString(cookie) {
		t.Fatalf("sp cookie over plain HTTP with http.cookie.secure false: %q (%v)", cookie, jar.Cookies(collector))
	}

	settle(t, api, "SELECT list(event ORDER BY event_id) FROM events WHERE app_id = 'go-shop'",
		"[[[page_view struct link_click transaction transaction_item transaction_item page_view link_click]]]")
	settle(t, api, "SELECT count(*) FROM bad", "[[2]]")
	checkRow(t, api, "events", "app_id = 'go-shop'",
		col{"count(DISTINCT network_userid)", "1"},
		col{"min(network_userid)", cookie},
		col{"bool_and(anonymous_id = network_userid)", "true"},
		col{"bool_and(useragent = 'Go-http-client/1.1')", "true"},
		col{"bool_and(v_tracker = 'golang-3.1.0' AND name_tracker = 'go-ns' AND platform = 'srv' AND user_id = 'u-go')", "true"},
		col{"bool_and(br_lang = 'en-US' AND os_timezone = 'UTC' AND dvce_screenwidth = 1366 AND dvce_screenheight = 768)", "true"},
	)
	at := func(i int) string { return "event_id = '" + *id(i) + "'" }
	checkRow(t, api, "events", at(1),
		col{"page_url", "https://shop.example/"},
		col{"page_title", "Home"},
		col{"referrer", "https://www.google.com/"},
		col{"contexts_com_acme_user_1->0->>'id'", "u-go"},
		// dtm and stm but no ttm: the device's clock is corrected by the
		// time the request took, which here is nothing.
		col{"true_tstamp", "<nil>"},
		col{"dvce_created_tstamp", "2026-01-02T03:04:05Z"},
		col{fmt.Sprintf("abs(epoch(event_time) - %d) < 2", created/1000), "true"},
	)
	checkRow(t, api, "events", at(2),
		col{"se_category", "shop"}, col{"se_action", "view-item"}, col{"se_label", "sku-9"}, col{"se_value", "12.5"})
	checkRow(t, api, "events", at(3),
		col{"event_type", "unstruct"},
		col{"unstruct_event_com_acme_link_click_1->>'targetUrl'", "https://shop.example/buy"},
		col{"contexts_com_acme_user_1->0->>'id'", "u-go"})
	checkRow(t, api, "events", at(4),
		col{"tr_orderid", "go-o-1"}, col{"tr_total", "30"}, col{"tr_currency", "USD"})
	checkRow(t, api, "events", "event = 'transaction_item' AND app_id = 'go-shop'",
		col{"list(ti_sku ORDER BY ti_sku)", "[sku-10 sku-9]"},
		col{"list(DISTINCT ti_orderid)", "[go-o-1]"},
		col{"sum(ti_price * ti_quantity)", "60"},
		col{"list(DISTINCT ti_currency)", "[USD]"})
	checkRow(t, api, "events", at(9),
		col{"page_url", "https://shop.example/cart"},
		col{"true_tstamp", "2026-01-02T03:04:05Z"},
		col{"event_time", "2026-01-02T03:04:05Z"})
	checkRow(t, api, "events", at(10),
		col{"unstruct_event_com_acme_link_click_1->>'targetUrl'", "https://shop.example/buy"})
	checkRow(t, api, "bad", at(7),
		col{"type", "schema_violation"},
		col{"message LIKE '%com.acme/user/jsonschema/1-0-0%'", "true"},
		col{"message LIKE '%id%'", "true"})
	checkRow(t, api, "bad", at(8),
		col{"message LIKE '%com.acme/newsletter_signup/jsonschema/1-0-0%'", "true"})
	if t.Failed() {
		t.Logf("bad rows: %v", query(t, api, "SELECT type, event_id, message FROM bad").Rows)
	}
}

// memStorage buffers the Go tracker's events in memory. (The tracker's own
// memory storage needs go-memdb, its other one SQLite.)
type memStorage struct {
	mu   sync.Mutex
	last int
	rows []storageiface.EventRow
}

func (s *memStorage) AddEventRow(p payload.Payload) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last++
	s.rows = append(s.rows, storageiface.EventRow{Id: s.last, Event: p})
	return true
}

func (s *memStorage) DeleteAllEventRows() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.rows)
	s.rows = nil
	return int64(n)
}

func (s *memStorage) DeleteEventRows(ids []int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.rows)
	s.rows = slices.DeleteFunc(s.rows, func(r storageiface.EventRow) bool { return slices.Contains(ids, r.Id) })
	return int64(n - len(s.rows))
}

func (s *memStorage) GetAllEventRows() []storageiface.EventRow {
	return s.GetEventRowsWithinRange(-1)
}

func (s *memStorage) GetEventRowsWithinRange(max int) []storageiface.EventRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max < 0 || max > len(s.rows) {
		max = len(s.rows)
	}
	return slices.Clone(s.rows[:max])
}

func TestSnowplowCollectorProtocol(t *testing.T) {
	n := startNode(t, t.TempDir(), snowplowConfig(t, "http:\n  cookie:\n    domain: shop.example\n"))
	defer n.Stop()
	c, api := n.CollectorURL(), n.APIURL()
	const origin = "https://www.shop.example"
	do := func(method, path string, body io.Reader, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, c+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	checkCORS := func(what string, resp *http.Response) {
		t.Helper()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", what, got, origin)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("%s: Access-Control-Allow-Credentials %q", what, got)
		}
	}
	spCookie := func(resp *http.Response) *http.Cookie {
		for _, ck := range resp.Cookies() {
			if ck.Name == "sp" {
				return ck
			}
		}
		return nil
	}
	pixel := func(what string, resp *http.Response, body []byte) {
		t.Helper()
		// A 1x1 GIF that no cache keeps.
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/gif" || !bytes.HasPrefix(body, []byte("GIF8")) ||
			len(body) < 10 || !bytes.Equal(body[6:10], []byte{1, 0, 1, 0}) {
			t.Errorf("%s: %d %s %q, want a 1x1 GIF", what, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
			t.Errorf("%s: Cache-Control %q", what, cc)
		}
	}

	if resp, _ := do("GET", "/health", nil); resp.StatusCode != 200 {
		t.Errorf("GET /health: %d", resp.StatusCode)
	}

	// GET /i: no ua parameter (the User-Agent header counts), no timestamps
	// (the event time is when it arrived).
	resp, body := do("GET", "/i?e=pv&eid=5e0c0000-0000-4000-8000-000000000001&aid=proto&p=web&tv=raw-1&url="+url.QueryEscape("https://www.shop.example/a"),
		nil, "Origin", origin, "User-Agent", chromeUA)
	pixel("GET /i", resp, body)
	checkCORS("GET /i", resp)
	ck := spCookie(resp)
	if ck == nil {
		t.Fatalf("GET /i set no sp cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	lifetime := time.Duration(ck.MaxAge) * time.Second
	if ck.MaxAge == 0 {
		lifetime = time.Until(ck.Expires)
	}
	if !uuidRE.MatchString(ck.Value) || ck.Path != "/" || ck.Domain != "shop.example" || !ck.Secure || ck.SameSite != http.SameSiteNoneMode ||
		lifetime < 364*24*time.Hour || lifetime > 366*24*time.Hour {
		t.Errorf("sp cookie: %q", resp.Header.Values("Set-Cookie"))
	}

	// GET /ice.png with the cookie: its id is the network user id. Only a
	// device timestamp: that is the event time.
	resp, body = do("GET", "/ice.png?e=se&se_ca=c&se_ac=a&eid=5e0c0000-0000-4000-8000-000000000002&aid=proto&dtm=1767323045000",
		nil, "Origin", origin, "Cookie", "sp="+ck.Value)
	pixel("GET /ice.png", resp, body)
	checkCORS("GET /ice.png", resp)

	// The preflight of a POST from another origin.
	resp, _ = do("OPTIONS", "/com.snowplowanalytics.snowplow/tp2", nil, "Origin", origin,
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,sp-anonymous")
	if resp.StatusCode != 200 && resp.StatusCode != 204 {
		t.Errorf("OPTIONS tp2: %d", resp.StatusCode)
	}
	checkCORS("OPTIONS tp2", resp)
	allowed := strings.ToLower(strings.Join(resp.Header.Values("Access-Control-Allow-Headers"), ","))
	if !strings.Contains(allowed, "content-type") || !strings.Contains(allowed, "sp-anonymous") {
		t.Errorf("OPTIONS tp2: Access-Control-Allow-Headers %q", allowed)
	}

	// POST with SP-Anonymous: no cookie, no network user id, no IP address.
	resp, body = do("POST", "/com.snowplowanalytics.snowplow/tp2", strings.NewReader(
		`{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","eid":"5e0c0000-0000-4000-8000-000000000003","aid":"proto","p":"web","tv":"raw-1","url":"https://www.shop.example/b"}]}`),
		"Origin", origin, "Content-Type", "application/json; charset=UTF-8", "SP-Anonymous", "*")
	if resp.StatusCode != 200 {
		t.Errorf("POST tp2: %d %s", resp.StatusCode, body)
	}
	checkCORS("POST tp2", resp)
	if ck := spCookie(resp); ck != nil {
		t.Errorf("POST tp2 with SP-Anonymous set a cookie: %q", resp.Header.Values("Set-Cookie"))
	}

	settle(t, api, "SELECT count(*) FROM events WHERE app_id = 'proto'", "[[3]]")
	checkRow(t, api, "events", "event_id = '5e0c0000-0000-4000-8000-000000000001'",
		col{"event", "page_view"},
		col{"platform", "web"},
		col{"page_url", "https://www.shop.example/a"},
		col{"useragent", chromeUA},
		col{"browser", "Chrome 131"},
		col{"ip", "127.0.0.1"},
		col{"network_userid", ck.Value},
		col{"anonymous_id", ck.Value},
		col{"event_time = received_at", "true"},
	)
	checkRow(t, api, "events", "event_id = '5e0c0000-0000-4000-8000-000000000002'",
		col{"event", "struct"},
		col{"network_userid", ck.Value},
		col{"useragent", "Go-http-client/1.1"},
		col{"event_time", "2026-01-02T03:04:05Z"},
		col{"dvce_created_tstamp", "2026-01-02T03:04:05Z"},
	)
	checkRow(t, api, "events", "event_id = '5e0c0000-0000-4000-8000-000000000003'",
		col{"network_userid", nobody},
		col{"anonymous_id", nobody},
		col{"coalesce(ip, '')", ""},
	)
}
