package demo

// The visitors' behaviour: who they are, where they come from, how a session
// moves from page to page, and the events each page makes.

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxUsers bounds the pool of known visitors; beyond it a new visitor takes a
// random old one's place.
const maxUsers = 50_000

type user struct {
	anonID   string
	userID   string // "" until registered
	country  *country
	device   int // index into devices
	platform string
	ua, ip   string
}

type session struct {
	n        uint64 // order of creation; breaks ties in the heap
	id       string
	user     *user
	loggedIn bool
	buyer    bool      // came to buy: will put things in the cart and check out
	willBuy  bool      // decided at checkout: completes the purchase
	source   string    // external referrer of the landing page
	camp     *campaign // nil unless the session came from a campaign
	land     landing

	pages      int
	page       page
	url, title string
	ref        string // referrer of the current page
	cart       []cartLine
	nextAt     time.Time
}

type cartLine struct {
	p   *product
	qty int
}

func (g *Generator) newUser() *user {
	c := &countries[countryWeights.pick(g.rng)]
	u := &user{
		anonID:   randomUUID(g.rng),
		country:  c,
		device:   c.device.pick(g.rng),
		platform: "web",
	}
	if u.device != 0 && g.rng.Float64() < 0.25 {
		u.platform = "mob"
		u.ua = pick(g.rng, appUAs[u.device])
	} else {
		u.ua = pick(g.rng, browserUAs[u.device])
	}
	u.ip = fmt.Sprintf("%d.%d.%d.%d", c.octets[g.rng.IntN(len(c.octets))], g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254))
	if g.rng.Float64() < 0.15 {
		u.userID = g.newUserID()
	}
	return u
}

func (g *Generator) newUserID() string {
	g.userIDs++
	return fmt.Sprintf("u%06d", g.userIDs)
}

// pickUser returns a returning visitor about a third of the time, else a new one.
func (g *Generator) pickUser() *user {
	if len(g.users) > 0 && g.rng.Float64() < 0.3 {
		return g.users[g.rng.IntN(len(g.users))]
	}
	u := g.newUser()
	if len(g.users) < maxUsers {
		g.users = append(g.users, u)
	} else {
		g.users[g.rng.IntN(len(g.users))] = u
	}
	return u
}

// Share of sessions that end in a purchase, by where they came from.
var conversion = map[sourceKind]float64{direct: 0.035, organic: 0.03, social: 0.015, referral: 0.03}

// checkoutCompletion is the share of buyers who, having reached the checkout,
// complete it.
const checkoutCompletion = 0.85

func (g *Generator) newSession() *session {
	g.nsessions++
	s := &session{n: g.nsessions, id: g.newID("session", g.nsessions).String(), user: g.pickUser()}
	s.loggedIn = s.user.userID != "" && g.rng.Float64() < 0.8
	kind := direct
	if s.user.platform == "mob" {
		if g.rng.Float64() < 0.2 {
			kind, s.camp = campaignSource, &pushCampaign
		}
	} else {
		kind = sourceKind(webSources.pick(g.rng))
	}
	conv := conversion[kind]
	switch kind {
	case direct:
		s.land = landing(weighted{landHome: 60, landProduct: 25, landCategory: 10, landDeals: 5}.pick(g.rng))
	case organic:
		s.source = pick(g.rng, searchEngines)
		s.land = landing(weighted{landHome: 20, landProduct: 55, landCategory: 25}.pick(g.rng))
	case social:
		s.source = pick(g.rng, socialSites)
		s.land = landing(weighted{landHome: 15, landProduct: 70, landDeals: 15}.pick(g.rng))
	case referral:
		s.source = pick(g.rng, referralSites)
		s.land = landing(weighted{landProduct: 80, landCategory: 20}.pick(g.rng))
	case campaignSource:
		if s.camp == nil {
			s.camp = &webCampaigns[campaignWeights.pick(g.rng)]
		}
		s.source, s.land, conv = s.camp.referrer, s.camp.land, s.camp.conversion
	}
	if s.loggedIn {
		conv *= 1.5 // known customers buy more often
	}
	s.buyer = g.rng.Float64() < conv/checkoutCompletion
	return s
}

type pageKind int

const (
	homePage pageKind = iota
	categoryPage
	productPage
	searchPage
	cartPage
	checkoutPage
	completePage
	signupPage
	dealsPage
	helpPage
)

type page struct {
	kind     pageKind
	product  *product // productPage
	category int      // categoryPage, productPage, searchPage
	term     string   // searchPage
}

func (p page) pathAndTitle() (path, title string) {
	const site = " | Sluice Shop"
	switch p.kind {
	case categoryPage:
		c := categories[p.category]
		return "/c/" + c.slug, c.name + site
	case productPage:
		return p.product.path, p.product.name + site
	case searchPage:
		return "/search?q=" + url.QueryEscape(p.term), "Search: " + p.term + site
	case cartPage:
		return "/cart", "Your cart" + site
	case checkoutPage:
		return "/checkout", "Checkout" + site
	case completePage:
		return "/checkout/complete", "Thank you for your order" + site
	case signupPage:
		return "/account/signup", "Create your account" + site
	case dealsPage:
		return "/deals", "Today's deals" + site
	case helpPage:
		return "/help", "Help center" + site
	default:
		return "/", "Sluice Shop: everything for everyday"
	}
}

func (g *Generator) popularProduct() *product {
	return &shop.products[g.products.Uint64()]
}

func (g *Generator) productIn(c int) *product {
	return &shop.products[shop.byCategory[c][g.inCat[c].Uint64()]]
}

func (g *Generator) productPage(p *product) page {
	return page{kind: productPage, product: p, category: p.category}
}

func (g *Generator) searchPage() page {
	t := shop.terms[g.terms.Uint64()]
	text := t.text
	if len(text) > 5 && g.rng.Float64() < 0.04 { // a typo
		i := 1 + g.rng.IntN(len(text)-2)
		text = text[:i] + text[i+1:]
	}
	return page{kind: searchPage, category: t.category, term: text}
}

func (g *Generator) landingPage(s *session) page {
	switch s.land {
	case landProduct:
		return g.productPage(g.popularProduct())
	case landCategory:
		return page{kind: categoryPage, category: g.popularProduct().category}
	case landDeals:
		return page{kind: dealsPage}
	default:
		return page{kind: homePage}
	}
}

// Where a visitor goes next from a page of each kind (rows: the current page),
// before the pull of the cart and of signing up.
type target int

const (
	toProduct target = iota
	toSameCategory
	toCategory
	toSearch
	toHome
	toDeals
	toCart
	toHelp
)

var navigation = map[pageKind]weighted{
	homePage:     {toProduct: 30, toCategory: 35, toSearch: 20, toDeals: 8, toCart: 5, toHelp: 2},
	categoryPage: {toProduct: 10, toSameCategory: 60, toCategory: 10, toSearch: 10, toHome: 8, toCart: 5},
	productPage:  {toProduct: 25, toSameCategory: 20, toCategory: 20, toSearch: 15, toHome: 8, toDeals: 2, toCart: 10, toHelp: 1},
	searchPage:   {toProduct: 5, toSameCategory: 75, toCategory: 10, toSearch: 8, toHome: 5, toCart: 2},
	cartPage:     {toProduct: 40, toCategory: 25, toSearch: 10, toHome: 20, toDeals: 5},
	dealsPage:    {toProduct: 60, toCategory: 25, toSearch: 5, toHome: 10, toCart: 3},
}

func (g *Generator) nextPage(s *session) page {
	switch s.page.kind {
	case checkoutPage:
		return page{kind: completePage} // only reached by those who buy
	case cartPage:
		if s.buyer || g.rng.Float64() < 0.2 {
			return page{kind: checkoutPage}
		}
	}
	if s.buyer && len(s.cart) > 0 && s.pages >= 2 && (s.pages >= 12 || g.rng.Float64() < 0.45) {
		return page{kind: cartPage}
	}
	if s.user.userID == "" && g.rng.Float64() < 0.006 {
		return page{kind: signupPage}
	}
	row, ok := navigation[s.page.kind]
	if !ok {
		row = navigation[homePage]
	}
	switch target(row.pick(g.rng)) {
	case toSameCategory:
		if s.page.kind != homePage {
			return g.productPage(g.productIn(s.page.category))
		}
		return g.productPage(g.popularProduct())
	case toCategory:
		return page{kind: categoryPage, category: g.popularProduct().category}
	case toSearch:
		return g.searchPage()
	case toHome:
		return page{kind: homePage}
	case toDeals:
		return page{kind: dealsPage}
	case toCart:
		if len(s.cart) > 0 {
			return page{kind: cartPage}
		}
	case toHelp:
		return page{kind: helpPage}
	}
	return g.productPage(g.popularProduct())
}

// thinkTime is the median time spent on a page of each kind.
var thinkTime = map[pageKind]float64{
	homePage: 15, categoryPage: 20, productPage: 35, searchPage: 12, cartPage: 25,
	checkoutPage: 90, completePage: 10, signupPage: 60, dealsPage: 25, helpPage: 40,
}

func (g *Generator) think(k pageKind) time.Duration {
	secs := thinkTime[k] * math.Exp(0.8*g.rng.NormFloat64())
	d := time.Duration(secs * float64(time.Second))
	return min(max(d, 2*time.Second), 10*time.Minute).Truncate(time.Millisecond)
}

func (g *Generator) millis(lo, hi int) time.Duration {
	return time.Duration(lo+g.rng.IntN(hi-lo)) * time.Millisecond
}

// visit makes s view p at at, returning the events and whether the session
// ends there.
func (g *Generator) visit(s *session, p page, at time.Time) (evs []timedEvent, end bool) {
	first := s.pages == 0
	s.pages++
	s.ref = s.url
	if first {
		s.ref = s.source
	}
	path, title := p.pathAndTitle()
	s.page, s.url, s.title = p, shopURL+path, title
	if first && s.camp != nil {
		sep := "?"
		if strings.Contains(s.url, "?") {
			sep = "&"
		}
		s.url += sep + s.camp.query()
	}
	think := g.think(p.kind)
	s.nextAt = at.Add(think)

	evs = append(evs, g.event(s, "page_view", at))
	switch p.kind {
	case productPage:
		e := g.event(s, "product_view", at.Add(g.millis(5, 40)))
		setProduct(e.ev, p.product)
		evs = append(evs, e)
		if g.rng.Float64() < g.addToCartChance(s) {
			qty := []int{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3}[g.rng.IntN(12)]
			wait := min(time.Duration(float64(think)*(0.3+0.5*g.rng.Float64())), 30*time.Second)
			e := g.event(s, "add_to_cart", at.Add(wait.Truncate(time.Millisecond)))
			setProduct(e.ev, p.product)
			e.ev["quantity"] = qty
			evs = append(evs, e)
			s.cart = append(s.cart, cartLine{p.product, qty})
		}
	case searchPage:
		e := g.event(s, "search", at.Add(g.millis(10, 60)))
		e.ev["search_term"] = p.term
		evs = append(evs, e)
	case checkoutPage:
		e := g.event(s, "begin_checkout", at.Add(g.millis(20, 80)))
		e.ev["quantity"] = units(s.cart)
		e.ev["currency"] = "USD"
		evs = append(evs, e)
		s.willBuy = s.buyer && g.rng.Float64() < checkoutCompletion
	case completePage:
		evs = append(evs, g.purchase(s, at.Add(g.millis(50, 150)))...)
	case signupPage:
		s.user.userID = g.newUserID()
		s.loggedIn = true
		evs = append(evs, g.event(s, "signup", at.Add(g.millis(20, 80))))
	}
	return evs, g.ends(s)
}

func (g *Generator) addToCartChance(s *session) float64 {
	switch {
	case !s.buyer:
		return 0.06
	case s.pages >= 6 && len(s.cart) == 0:
		return 1
	default:
		return 0.45
	}
}

func (g *Generator) ends(s *session) bool {
	switch {
	case s.page.kind == completePage:
		return true
	case s.page.kind == checkoutPage:
		return !s.willBuy
	case s.pages >= 30:
		return true
	case s.buyer:
		return false
	case s.pages == 1 && s.user.platform == "mob":
		return g.rng.Float64() < 0.25
	case s.pages == 1:
		return g.rng.Float64() < 0.38 // bounce
	default:
		return g.rng.Float64() < 0.27
	}
}

// purchase empties the cart into an order: one purchase event carrying the
// order's revenue, then one purchase_item per cart line. Summing revenue over
// purchase events gives the shop's revenue without double counting.
func (g *Generator) purchase(s *session, at time.Time) []timedEvent {
	g.orders++
	id := g.newID("order", g.orders)
	orderID := "ORD-" + strings.ToUpper(hex.EncodeToString(id[:5]))
	cents := 0
	for _, l := range s.cart {
		cents += l.p.cents * l.qty
	}
	e := g.event(s, "purchase", at)
	e.ev["order_id"] = orderID
	e.ev["revenue"] = float64(cents) / 100
	e.ev["quantity"] = units(s.cart)
	e.ev["currency"] = "USD"
	evs := []timedEvent{e}
	for i, l := range s.cart {
		it := g.event(s, "purchase_item", at.Add(time.Duration(i+1)*time.Millisecond))
		setProduct(it.ev, l.p)
		it.ev["order_id"] = orderID
		it.ev["quantity"] = l.qty
		evs = append(evs, it)
	}
	s.cart = nil
	return evs
}

func units(cart []cartLine) int {
	n := 0
	for _, l := range cart {
		n += l.qty
	}
	return n
}

func setProduct(ev map[string]any, p *product) {
	ev["product_id"] = p.id
	ev["product_name"] = p.name
	ev["category"] = categories[p.category].name
	ev["price"] = p.price()
	ev["currency"] = "USD"
}

func (g *Generator) event(s *session, name string, t time.Time) timedEvent {
	g.events++
	u := s.user
	ev := map[string]any{
		"event_id":     g.newID("event", g.events).String(),
		"event_time":   t.Format(timeLayout),
		"event":        name,
		"app_id":       "shop",
		"platform":     u.platform,
		"anonymous_id": u.anonID,
		"session_id":   s.id,
		"page_url":     s.url,
		"page_title":   s.title,
		"ip":           u.ip,
		"useragent":    u.ua,
		"country":      u.country.code,
		"device":       devices[u.device],
	}
	if s.loggedIn {
		ev["user_id"] = u.userID
	}
	if s.ref != "" {
		ev["referrer"] = s.ref
	}
	return timedEvent{t: t, seq: g.events, ev: ev}
}

// newID derives the n-th id of a kind from the generator's namespace: unique,
// yet reproducible for a seed.
func (g *Generator) newID(kind string, n uint64) uuid.UUID {
	b := binary.BigEndian.AppendUint64([]byte(kind+":"), n)
	return uuid.NewSHA1(g.ids, b)
}

// randomUUID draws a version 4 UUID from r.
func randomUUID(r *rand.Rand) string {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], r.Uint64())
	binary.BigEndian.PutUint64(u[8:], r.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}
