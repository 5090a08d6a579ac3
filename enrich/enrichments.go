package enrich

import (
	"encoding/hex"
	"hash/fnv"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/mileusna/useragent"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// An Enrichment adds to an event after it was parsed and before its columns
// are typed against the table schema. Enrichments are switched on in config
// (enrich.*) and run in the order Options lists them.
type Enrichment interface {
	Name() string
	Enrich(ev *Event)
}

// Event is what an Enrichment sees of an event being built: the canonical
// columns by name, and the event's own fields. It is valid only during the
// call to Enrich it is handed to (enrich reuses it for the next event).
type Event struct {
	canon []string
	own   []ownField
	e     *Enricher // for its scratch space
}

// Get returns a canonical column ("" when unset).
func (ev *Event) Get(col string) string {
	if i, ok := canonicalIndex[col]; ok {
		return ev.canon[i]
	}
	return ""
}

// Set sets a canonical column.
func (ev *Event) Set(col, value string) {
	if i, ok := canonicalIndex[col]; ok {
		ev.canon[i] = value
	}
}

// SetField adds a string field of the event's own (a column of its own),
// unless the event already has one of that name.
func (ev *Event) SetField(name, value string) {
	for _, f := range ev.own {
		if strings.EqualFold(f.name, name) {
			return
		}
	}
	var raw []byte
	if ev.e != nil {
		raw = ev.e.raw(jsonseq.AppendString(ev.e.slab(), value))
	} else {
		raw = jsonseq.AppendString(nil, value)
	}
	ev.own = append(ev.own, ownField{name: name, typ: sluice.TypeVarchar, raw: raw})
}

// UserAgent fills browser, os and device_class from useragent. Parsing a
// user agent costs more than the rest of enrich, and a site sees few distinct
// ones, so results are cached. Use NewUserAgent.
type UserAgent struct {
	mu    sync.Mutex
	cache map[string]agent
}

type agent struct{ browser, os, class string }

// uaCacheSize bounds the cache; when full it starts over.
const uaCacheSize = 20000

// NewUserAgent returns the user-agent enrichment.
func NewUserAgent() *UserAgent { return &UserAgent{cache: map[string]agent{}} }

// Name implements Enrichment.
func (*UserAgent) Name() string { return "useragent" }

// Enrich implements Enrichment.
func (u *UserAgent) Enrich(ev *Event) {
	s := ev.canon[colUserAgent]
	if s == "" {
		return
	}
	u.mu.Lock()
	a, ok := u.cache[s]
	u.mu.Unlock()
	if !ok {
		a = parseAgent(s)
		u.mu.Lock()
		if len(u.cache) >= uaCacheSize {
			clear(u.cache)
		}
		u.cache[strings.Clone(s)] = a
		u.mu.Unlock()
	}
	if ev.canon[colBrowser] == "" && a.browser != "" {
		ev.canon[colBrowser] = a.browser
	}
	if ev.canon[colOS] == "" && a.os != "" {
		ev.canon[colOS] = a.os
	}
	if ev.canon[colDeviceClass] == "" {
		ev.canon[colDeviceClass] = a.class
	}
}

func parseAgent(s string) agent {
	ua := useragent.Parse(s)
	var a agent
	if ua.Name != "" {
		a.browser = ua.Name
		if ua.Version != "" {
			a.browser += " " + strings.SplitN(ua.Version, ".", 2)[0]
		}
	}
	if ua.OS != "" {
		a.os = strings.TrimSpace(ua.OS + " " + strings.SplitN(ua.OSVersion, ".", 2)[0])
	}
	switch {
	case ua.Bot:
		a.class = "bot"
	case ua.Tablet:
		a.class = "tablet"
	case ua.Mobile:
		a.class = "mobile"
	case ua.Desktop:
		a.class = "desktop"
	default:
		a.class = "unknown"
	}
	return a
}

// Campaign copies the utm_* parameters of page_url into mkt_* columns (the
// names Snowplow uses).
type Campaign struct{}

// Name implements Enrichment.
func (Campaign) Name() string { return "campaign" }

// Enrich implements Enrichment.
func (Campaign) Enrich(ev *Event) {
	page := ev.canon[colPageURL]
	if !strings.Contains(page, "utm_") {
		return
	}
	u, err := url.Parse(page)
	if err != nil {
		return
	}
	q := u.Query()
	for _, p := range []string{"source", "medium", "campaign", "term", "content"} {
		if v := q.Get("utm_" + p); v != "" {
			ev.SetField("mkt_"+p, v)
		}
	}
}

// Referrer classifies the referrer: refr_medium is search, social, internal
// (the same host as the page) or other; refr_source names the search engine
// or network.
type Referrer struct{}

// Name implements Enrichment.
func (Referrer) Name() string { return "referrer" }

// referrers maps a registrable part of a host to its medium and name.
var referrers = func() []referrer {
	rs := []referrer{
		{host: "google.", medium: "search", source: "Google"}, {host: "bing.com", medium: "search", source: "Bing"},
		{host: "duckduckgo.com", medium: "search", source: "DuckDuckGo"}, {host: "search.yahoo.", medium: "search", source: "Yahoo!"},
		{host: "yandex.", medium: "search", source: "Yandex"}, {host: "baidu.com", medium: "search", source: "Baidu"},
		{host: "ecosia.org", medium: "search", source: "Ecosia"}, {host: "search.brave.com", medium: "search", source: "Brave"},
		{host: "facebook.com", medium: "social", source: "Facebook"}, {host: "instagram.com", medium: "social", source: "Instagram"},
		{host: "t.co", medium: "social", source: "Twitter"}, {host: "twitter.com", medium: "social", source: "Twitter"},
		{host: "x.com", medium: "social", source: "Twitter"}, {host: "linkedin.com", medium: "social", source: "LinkedIn"},
		{host: "reddit.com", medium: "social", source: "Reddit"}, {host: "pinterest.", medium: "social", source: "Pinterest"},
		{host: "youtube.com", medium: "social", source: "YouTube"}, {host: "tiktok.com", medium: "social", source: "TikTok"},
		{host: "news.ycombinator.com", medium: "social", source: "Hacker News"},
	}
	for i := range rs {
		rs[i].bare, rs[i].dotted = strings.TrimSuffix(rs[i].host, "."), "."+rs[i].host
	}
	return rs
}()

type referrer struct {
	host, medium, source string
	bare, dotted         string // host without its trailing dot; after a dot
}

// Enrich implements Enrichment.
func (Referrer) Enrich(ev *Event) {
	host := hostOf(ev.canon[colReferrer])
	if host == "" {
		return
	}
	if hostOf(ev.canon[colPageURL]) == host {
		ev.SetField("refr_medium", "internal")
		return
	}
	for _, r := range referrers {
		if host == r.bare || strings.HasPrefix(host, r.host) || strings.Contains(host, r.dotted) || strings.HasSuffix(host, r.dotted) {
			ev.SetField("refr_medium", r.medium)
			ev.SetField("refr_source", r.source)
			return
		}
	}
	ev.SetField("refr_medium", "other")
	ev.SetField("refr_source", host)
}

// AnonymizeIP zeroes the last octet of an IPv4 address and the last 80 bits
// of an IPv6 one.
type AnonymizeIP struct{}

// Name implements Enrichment.
func (AnonymizeIP) Name() string { return "anonymize_ip" }

// Enrich implements Enrichment.
func (AnonymizeIP) Enrich(ev *Event) {
	ip := net.ParseIP(ev.Get("ip"))
	if ip == nil {
		if ev.Get("ip") != "" {
			ev.Set("ip", "") // unparsable: never keep what could identify someone
		}
		return
	}
	if v4 := ip.To4(); v4 != nil {
		ev.Set("ip", net.IPv4(v4[0], v4[1], v4[2], 0).String())
		return
	}
	masked := ip.Mask(net.CIDRMask(48, 128))
	ev.Set("ip", masked.String())
}

// hostOf returns the lower-cased host of an absolute URL without "www." (and
// without port or user info), or "" — cheaper than url.Parse on every event.
func hostOf(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	h := u[i+3:]
	if j := strings.IndexAny(h, "/?#"); j >= 0 {
		h = h[:j]
	}
	if j := strings.LastIndexByte(h, '@'); j >= 0 {
		h = h[j+1:]
	}
	if strings.HasPrefix(h, "[") {
		if j := strings.IndexByte(h, ']'); j >= 0 {
			h = h[1:j]
		}
	} else if j := strings.LastIndexByte(h, ':'); j >= 0 {
		h = h[:j]
	}
	return strings.TrimPrefix(strings.ToLower(h), "www.")
}

// takeFingerprint hashes the pairs toEvent or snowplowEvent collected (in
// name order, so the order the client wrote them in does not matter) and
// empties them; "" when the fingerprint is off.
func (e *Enricher) takeFingerprint() string {
	if !e.fingerprint {
		return ""
	}
	pairs := e.scratch.pairs
	slices.SortFunc(pairs, func(a, b param) int { return strings.Compare(a.k, b.k) })
	h := fnv.New128a()
	for _, kv := range pairs {
		h.Write([]byte(kv.k))
		h.Write([]byte{0})
		h.Write([]byte(kv.v))
		h.Write([]byte{0})
	}
	e.scratch.pairs = pairs[:0]
	return hex.EncodeToString(h.Sum(nil))
}
