package demo

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// The shop the traffic is about. Everything here is fixed (the catalog is drawn
// from its own constant seed), so product ids, names and prices are the same in
// every run and with every seed: queries and dashboards written against one demo
// keep working on the next.

const shopURL = "https://shop.example.com"

type category struct {
	slug, name string
	nouns      []string
	minCents   int // price range of the category, in cents
	maxCents   int
}

var categories = []category{
	{"electronics", "Electronics", []string{"Wireless Earbuds", "Bluetooth Speaker", "USB-C Charger", "Smartwatch", "Mechanical Keyboard", "4K Monitor", "Noise-Cancelling Headphones", "Webcam", "Power Bank", "Wireless Mouse"}, 1500, 45000},
	{"books", "Books", []string{"Cookbook", "Sci-Fi Novel", "Travel Guide", "Mystery Novel", "Kids Picture Book", "Graphic Novel", "History Book", "Poetry Collection", "Coding Handbook", "Garden Almanac"}, 800, 4500},
	{"home-kitchen", "Home & Kitchen", []string{"Chef's Knife", "Cast Iron Skillet", "French Press", "Espresso Machine", "Blender", "Cutting Board", "Stand Mixer", "Air Fryer", "Dinnerware Set", "Kettle"}, 1200, 39000},
	{"clothing", "Clothing", []string{"Hoodie", "Denim Jacket", "T-Shirt", "Rain Jacket", "Wool Sweater", "Chino Pants", "Summer Dress", "Flannel Shirt", "Puffer Vest", "Leggings"}, 1500, 18000},
	{"shoes", "Shoes", []string{"Running Shoes", "Trail Sneakers", "Leather Boots", "Sandals", "Slip-On Loafers", "Hiking Boots", "Canvas Sneakers", "Slippers", "Rain Boots", "Court Shoes"}, 2500, 22000},
	{"sports", "Sports & Outdoors", []string{"Yoga Mat", "Camping Tent", "Water Bottle", "Bike Helmet", "Dumbbell Set", "Hiking Backpack", "Sleeping Bag", "Tennis Racket", "Jump Rope", "Headlamp"}, 900, 35000},
	{"toys", "Toys & Games", []string{"Building Blocks", "Board Game", "Jigsaw Puzzle", "Plush Bear", "RC Car", "Card Game", "Science Kit", "Wooden Train Set", "Art Set", "Drone"}, 900, 15000},
	{"beauty", "Beauty", []string{"Face Serum", "Moisturizer", "Shampoo", "Lip Balm", "Sunscreen", "Perfume", "Hair Dryer", "Face Mask", "Body Lotion", "Beard Oil"}, 600, 12000},
	{"garden", "Garden", []string{"Pruning Shears", "Garden Hose", "Planter Pot", "Seed Starter Kit", "Watering Can", "Solar Lights", "Compost Bin", "Garden Gloves", "Bird Feeder", "Hammock"}, 800, 16000},
	{"grocery", "Grocery", []string{"Coffee Beans", "Green Tea", "Olive Oil", "Dark Chocolate", "Granola", "Hot Sauce", "Honey", "Pasta Sampler", "Spice Set", "Maple Syrup"}, 400, 4500},
}

var brands = []string{"Nimbus", "Aurora", "Vertex", "Lumen", "Atlas", "Nova", "Pioneer", "Solstice", "Ember", "Harbor", "Summit", "Willow", "Orbit", "Cobalt", "Juniper", "Terra"}

type product struct {
	id, name, path string
	category       int
	cents          int
}

func (p *product) price() float64 { return float64(p.cents) / 100 }

// catalog holds the products in popularity order (index 0 is the best seller)
// and, per category, the indexes of its products, also in popularity order.
type catalog struct {
	products   []product
	byCategory [][]int
	terms      []searchTerm // in popularity order
}

type searchTerm struct {
	text     string
	category int
}

const productsPerCategory = 20

func newCatalog() *catalog {
	r := rand.New(rand.NewPCG(0x5eed, 0xca7a1095))
	c := &catalog{byCategory: make([][]int, len(categories))}
	used := map[string]bool{}
	for ci, cat := range categories {
		for range productsPerCategory {
			var name string
			for {
				name = brands[r.IntN(len(brands))] + " " + cat.nouns[r.IntN(len(cat.nouns))]
				if !used[name] {
					break
				}
			}
			used[name] = true
			c.products = append(c.products, product{
				id:       fmt.Sprintf("P%04d", 1001+len(c.products)),
				name:     name,
				category: ci,
				cents:    shelfPrice(r, cat.minCents, cat.maxCents),
			})
		}
	}
	r.Shuffle(len(c.products), func(i, j int) { c.products[i], c.products[j] = c.products[j], c.products[i] })
	for i := range c.products {
		p := &c.products[i]
		p.path = "/products/" + slug(p.name) + "-" + strings.ToLower(p.id)
		c.byCategory[p.category] = append(c.byCategory[p.category], i)
	}
	for ci, cat := range categories {
		for _, n := range cat.nouns {
			c.terms = append(c.terms, searchTerm{strings.ToLower(n), ci})
		}
		c.terms = append(c.terms, searchTerm{strings.ToLower(cat.name), ci})
	}
	r.Shuffle(len(c.terms), func(i, j int) { c.terms[i], c.terms[j] = c.terms[j], c.terms[i] })
	return c
}

// shelfPrice draws a price in [lo, hi] cents, skewed to the cheap end, ending
// in .99, .95 or .49 like real shelf prices.
func shelfPrice(r *rand.Rand, lo, hi int) int {
	u := r.Float64()
	cents := lo + int(u*u*float64(hi-lo))
	endings := []int{99, 99, 99, 95, 49}
	return cents/100*100 + endings[r.IntN(len(endings))]
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// weighted picks an index with probability proportional to its weight.
type weighted []float64

func (w weighted) pick(r *rand.Rand) int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	u := r.Float64() * total
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

type country struct {
	code   string
	weight float64
	octets []int    // plausible first octets of the country's IPv4 allocations
	device weighted // desktop, mobile, tablet
}

var (
	deviceMostlyDesktop = weighted{45, 47, 8}
	deviceMostlyMobile  = weighted{25, 70, 5}
	deviceAsia          = weighted{35, 60, 5}
)

var countries = []country{
	{"US", 28, []int{3, 8, 23, 24, 50, 63, 64, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99, 104, 107, 108, 173, 174}, deviceMostlyDesktop},
	{"DE", 10, []int{46, 77, 78, 79, 80, 84, 85, 87, 91, 93, 95, 178, 217}, deviceMostlyDesktop},
	{"GB", 9, []int{2, 5, 31, 51, 62, 81, 86, 90, 92, 109, 151}, deviceMostlyDesktop},
	{"IN", 9, []int{14, 27, 49, 59, 103, 106, 110, 117, 122, 157, 182}, deviceMostlyMobile},
	{"FR", 7, []int{37, 77, 78, 82, 83, 86, 88, 90, 176, 212}, deviceMostlyDesktop},
	{"BR", 6, []int{138, 143, 177, 179, 186, 187, 189, 191, 200, 201}, deviceMostlyMobile},
	{"JP", 5, []int{1, 27, 36, 42, 49, 60, 61, 110, 114, 126, 133, 153}, deviceAsia},
	{"CA", 5, []int{24, 64, 70, 99, 142, 154, 184, 206}, deviceMostlyDesktop},
	{"ES", 3, []int{31, 37, 79, 80, 81, 83, 84, 88, 213}, deviceMostlyDesktop},
	{"IT", 3, []int{2, 5, 37, 79, 87, 93, 151, 213}, deviceMostlyDesktop},
	{"NL", 3, []int{31, 62, 77, 80, 82, 84, 145, 213}, deviceMostlyDesktop},
	{"AU", 3, []int{1, 14, 27, 49, 58, 101, 110, 120, 124, 203}, deviceMostlyDesktop},
	{"MX", 3, []int{148, 177, 187, 189, 200, 201}, deviceMostlyMobile},
	{"PL", 2, []int{31, 37, 46, 78, 79, 83, 89, 91, 95, 178}, deviceMostlyDesktop},
	{"SE", 2, []int{31, 46, 78, 81, 83, 85, 90, 94, 213}, deviceMostlyDesktop},
	{"KR", 2, []int{1, 14, 27, 39, 49, 58, 59, 61, 112, 118, 121, 175, 211, 221, 222}, deviceAsia},
}

var countryWeights = func() weighted {
	w := make(weighted, len(countries))
	for i, c := range countries {
		w[i] = c.weight
	}
	return w
}()

var devices = []string{"desktop", "mobile", "tablet"}

// choice is one value of a weighted list (a user agent, a referrer).
type choice struct {
	value  string
	weight float64
}

// Browser user agents per device (index as in devices), weighted roughly like
// real 2024 traffic.
var browserUAs = [][]choice{
	{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", 35},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0", 10},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", 7},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", 20},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", 15},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0", 3},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", 4},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", 2},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", 2},
	},
	{
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 30},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", 8},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1", 5},
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", 30},
		{"Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", 12},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36", 8},
		{"Mozilla/5.0 (Android 14; Mobile; rv:127.0) Gecko/127.0 Firefox/127.0", 2},
	},
	{
		{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 50},
		{"Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", 25},
		{"Mozilla/5.0 (Linux; Android 12; Lenovo TB-X606F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36", 10},
		{"Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/126.3.1 like Chrome/126.0.6478.71 Safari/537.36", 5},
	},
}

// appUAs are what the shop's native app sends (platform "mob"), per device;
// desktop has no app.
var appUAs = [][]choice{
	nil,
	{
		{"SluiceShop/4.12.0 (iPhone; iOS 17.5.1; Scale/3.00)", 55},
		{"Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240605.024)", 25},
		{"Dalvik/2.1.0 (Linux; U; Android 13; SM-A536B Build/TP1A.220624.014)", 20},
	},
	{
		{"SluiceShop/4.12.0 (iPad; iPadOS 17.5; Scale/2.00)", 70},
		{"Dalvik/2.1.0 (Linux; U; Android 13; SM-X710 Build/TP1A.220624.014)", 30},
	},
}

func pick(r *rand.Rand, list []choice) string {
	w := make(weighted, len(list))
	for i, u := range list {
		w[i] = u.weight
	}
	return list[w.pick(r)].value
}

// Where a session comes from.
type sourceKind int

const (
	direct sourceKind = iota
	organic
	social
	campaignSource
	referral
)

var webSources = weighted{direct: 30, organic: 32, social: 12, campaignSource: 20, referral: 6}

var searchEngines = []choice{
	{"https://www.google.com/", 85},
	{"https://www.bing.com/", 8},
	{"https://duckduckgo.com/", 4},
	{"https://search.yahoo.com/", 2},
	{"https://www.ecosia.org/", 1},
}

var socialSites = []choice{
	{"https://www.facebook.com/", 25},
	{"https://l.instagram.com/", 22},
	{"https://t.co/", 10},
	{"https://www.reddit.com/r/BuyItForLife/", 12},
	{"https://www.pinterest.com/", 12},
	{"https://www.tiktok.com/", 14},
	{"https://www.youtube.com/", 5},
}

var referralSites = []choice{
	{"https://www.techradar.com/best/wireless-earbuds", 30},
	{"https://www.nytimes.com/wirecutter/reviews/best-cast-iron-skillet/", 25},
	{"https://news.ycombinator.com/", 10},
	{"https://www.theverge.com/deals", 20},
	{"https://www.giftguide.example/holiday-2024", 15},
}

type landing int

const (
	landHome landing = iota
	landProduct
	landCategory
	landDeals
)

type campaign struct {
	source, medium, name, term string
	referrer                   string
	weight                     float64
	conversion                 float64 // share of its sessions that come to buy
	land                       landing
}

var webCampaigns = []campaign{
	{"newsletter", "email", "weekly_deals", "", "", 25, 0.06, landDeals},
	{"google", "cpc", "brand", "sluice shop", "https://www.google.com/", 20, 0.05, landHome},
	{"google", "cpc", "shopping", "", "https://www.google.com/", 20, 0.04, landProduct},
	{"bing", "cpc", "shopping", "", "https://www.bing.com/", 5, 0.04, landProduct},
	{"facebook", "paid_social", "summer_sale", "", "https://www.facebook.com/", 12, 0.02, landDeals},
	{"instagram", "paid_social", "new_arrivals", "", "https://l.instagram.com/", 10, 0.02, landCategory},
	{"tiktok", "paid_social", "viral_gadgets", "", "https://www.tiktok.com/", 5, 0.015, landProduct},
	{"partner_blog", "affiliate", "gift_guide", "", "https://www.giftguide.example/holiday-2024", 3, 0.04, landProduct},
}

var pushCampaign = campaign{"app", "push", "flash_sale", "", "", 1, 0.05, landDeals}

var campaignWeights = func() weighted {
	w := make(weighted, len(webCampaigns))
	for i, c := range webCampaigns {
		w[i] = c.weight
	}
	return w
}()

func (c *campaign) query() string {
	q := "utm_source=" + c.source + "&utm_medium=" + c.medium + "&utm_campaign=" + c.name
	if c.term != "" {
		q += "&utm_term=" + strings.ReplaceAll(c.term, " ", "+")
	}
	return q
}
