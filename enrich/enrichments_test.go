package enrich

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
)

// run builds one event with the given enrichments and returns its line.
func run(t *testing.T, ens []Enrichment, event string) map[string]any {
	t.Helper()
	e := New(Options{Enrichments: ens})
	b, f := e.toEvent([]byte(event), &sluice.Payload{ReceivedAt: time.Now(), Collector: "http", IP: "203.0.113.7"}, 1, 0, 0)
	if f != nil {
		t.Fatalf("%s: %s", event, f.msg)
	}
	var m map[string]any
	if err := json.Unmarshal(b.line, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUserAgent(t *testing.T) {
	cases := map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36":                         "Chrome 120|Windows 10|desktop",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1": "Safari 17|iOS 17|mobile",
		"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1":          "Safari 16|iOS 16|tablet",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)":                                                                "Googlebot 2||bot",
	}
	for ua, want := range cases {
		ev, _ := json.Marshal(map[string]string{"event": "x", "useragent": ua})
		m := run(t, []Enrichment{NewUserAgent()}, string(ev))
		got := fmt.Sprintf("%v|%v|%v", m["browser"], orEmpty(m["os"]), m["device_class"])
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", ua, got, want)
		}
	}
	// What the client sent wins.
	m := run(t, []Enrichment{NewUserAgent()}, `{"event":"x","useragent":"curl/8.0","browser":"mine"}`)
	if m["browser"] != "mine" {
		t.Errorf("client browser overwritten: %v", m)
	}
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func TestCampaignAndReferrer(t *testing.T) {
	ens := []Enrichment{Campaign{}, Referrer{}}
	m := run(t, ens, `{"event":"page_view","page_url":"https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=bf%202026","referrer":"https://www.google.de/search?q=x"}`)
	for k, want := range map[string]string{"mkt_source": "news", "mkt_medium": "email", "mkt_campaign": "bf 2026", "refr_medium": "search", "refr_source": "Google"} {
		if m[k] != want {
			t.Errorf("%s = %v, want %s", k, m[k], want)
		}
	}
	if _, ok := m["mkt_term"]; ok {
		t.Errorf("absent utm_term became a column: %v", m)
	}
	for ref, want := range map[string]string{
		"https://shop.example/cart":       "internal|<nil>",
		"https://t.co/abc":                "social|Twitter",
		"https://m.facebook.com/":         "social|Facebook",
		"https://blog.example.org/post/1": "other|blog.example.org",
	} {
		m := run(t, ens, fmt.Sprintf(`{"event":"page_view","page_url":"https://www.shop.example/","referrer":%q}`, ref))
		if got := fmt.Sprintf("%v|%v", m["refr_medium"], m["refr_source"]); got != want {
			t.Errorf("%s: %s, want %s", ref, got, want)
		}
	}
	// A field the client sent is not overwritten.
	m = run(t, ens, `{"event":"x","page_url":"https://a/?utm_source=u","mkt_source":"mine"}`)
	if m["mkt_source"] != "mine" {
		t.Errorf("client field overwritten: %v", m)
	}
}

func TestAnonymizeIP(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "203.0.113.0", // from the payload
		`,"ip":"198.51.100.77"`:     "198.51.100.0",
		`,"ip":"2001:db8:1:2:3::4"`: "2001:db8:1::",
		`,"ip":"not an ip"`:         "<nil>",
	} {
		m := run(t, []Enrichment{AnonymizeIP{}}, `{"event":"x"`+in+`}`)
		if got := fmt.Sprint(m["ip"]); got != want {
			t.Errorf("%q: ip %s, want %s", in, got, want)
		}
	}
	m := run(t, nil, `{"event":"x"}`)
	if m["ip"] != "203.0.113.7" {
		t.Errorf("without the enrichment the ip is kept: %v", m["ip"])
	}
}
