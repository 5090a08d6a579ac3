package demo

import (
	"errors"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var monday = time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)

// simulate runs steps of g, one every interval from start.
func simulate(g *Generator, start time.Time, steps int, interval time.Duration) []map[string]any {
	var out []map[string]any
	at := start
	for range steps {
		out = append(out, g.Next(at)...)
		at = at.Add(interval)
	}
	return out
}

func TestGeneratorIsDeterministic(t *testing.T) {
	a := simulate(NewGenerator(42), monday, 3000, time.Second)
	b := simulate(NewGenerator(42), monday, 3000, time.Second)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generators with seed 42 made different events")
	}
	c := simulate(NewGenerator(43), monday, 3000, time.Second)
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 42 and 43 made the same events")
	}
	var ha, hb []map[string]any
	NewGenerator(5).History(monday, monday.Add(6*time.Hour), 2000, func(ev map[string]any) error { ha = append(ha, ev); return nil })
	NewGenerator(5).History(monday, monday.Add(6*time.Hour), 2000, func(ev map[string]any) error { hb = append(hb, ev); return nil })
	if len(ha) == 0 || !reflect.DeepEqual(ha, hb) {
		t.Fatalf("history with one seed differs between runs (%d and %d events)", len(ha), len(hb))
	}
}

func TestEventFieldsHaveTheirTypes(t *testing.T) {
	strFields := []string{"event_id", "event_time", "event", "anonymous_id", "session_id", "app_id", "platform",
		"page_url", "page_title", "ip", "useragent", "country", "device"}
	timeFormat := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	events := simulate(NewGenerator(1), monday, 20000, 700*time.Millisecond)
	seen := map[string]int{}
	ids := map[string]bool{}
	for _, ev := range events {
		for _, k := range strFields {
			if s, ok := ev[k].(string); !ok || s == "" {
				t.Fatalf("%s = %#v (%T), want a non-empty string in %v", k, ev[k], ev[k], ev)
			}
		}
		name := ev["event"].(string)
		seen[name]++
		id := ev["event_id"].(string)
		if _, err := uuid.Parse(id); err != nil || ids[id] {
			t.Fatalf("event_id %q: not a fresh UUID (%v)", id, err)
		}
		ids[id] = true
		if _, err := uuid.Parse(ev["session_id"].(string)); err != nil {
			t.Fatalf("session_id %q: %v", ev["session_id"], err)
		}
		et := ev["event_time"].(string)
		if _, err := time.Parse(time.RFC3339, et); err != nil || !timeFormat.MatchString(et) {
			t.Fatalf("event_time %q is not RFC 3339 UTC with milliseconds", et)
		}
		if ev["app_id"] != "shop" {
			t.Fatalf("app_id = %v", ev["app_id"])
		}
		if p := ev["platform"]; p != "web" && p != "mob" {
			t.Fatalf("platform = %v", p)
		}
		if d := ev["device"]; !slices.Contains(devices, d.(string)) {
			t.Fatalf("device = %v", d)
		}
		if c := ev["country"].(string); len(c) != 2 || strings.ToUpper(c) != c {
			t.Fatalf("country = %q, want an ISO 3166 code", c)
		}
		if u, err := url.Parse(ev["page_url"].(string)); err != nil || u.Scheme != "https" {
			t.Fatalf("page_url %q: %v", ev["page_url"], err)
		}
		if v, ok := ev["user_id"]; ok {
			if s, ok := v.(string); !ok || s == "" {
				t.Fatalf("user_id = %#v, want a non-empty string or no key", v)
			}
		}
		if v, ok := ev["referrer"]; ok {
			if s, ok := v.(string); !ok || !strings.HasPrefix(s, "https://") {
				t.Fatalf("referrer = %#v", v)
			}
		}
		if v, ok := ev["price"]; ok {
			if p, ok := v.(float64); !ok || p <= 0 {
				t.Fatalf("price = %#v (%T), want a positive float64", v, v)
			}
			for _, k := range []string{"product_id", "product_name", "category"} {
				if s, ok := ev[k].(string); !ok || s == "" {
					t.Fatalf("%s event with a price has %s = %#v", name, k, ev[k])
				}
			}
			if ev["currency"] != "USD" {
				t.Fatalf("currency = %v", ev["currency"])
			}
		}
		if v, ok := ev["quantity"]; ok {
			if q, ok := v.(int); !ok || q < 1 {
				t.Fatalf("quantity = %#v (%T), want a positive int", v, v)
			}
		}
		_, hasRevenue := ev["revenue"]
		if hasRevenue != (name == "purchase") {
			t.Fatalf("%s event has revenue: %v", name, hasRevenue)
		}
		if name == "purchase" {
			if r, ok := ev["revenue"].(float64); !ok || r <= 0 {
				t.Fatalf("revenue = %#v (%T)", ev["revenue"], ev["revenue"])
			}
		}
		if name == "search" {
			if s, ok := ev["search_term"].(string); !ok || s == "" {
				t.Fatalf("search without search_term: %v", ev)
			}
		}
		if (name == "product_view" || name == "add_to_cart" || name == "purchase_item") && ev["price"] == nil {
			t.Fatalf("%s without product fields: %v", name, ev)
		}
	}
	for _, name := range []string{"page_view", "product_view", "search", "add_to_cart", "begin_checkout", "purchase", "purchase_item", "signup"} {
		if seen[name] == 0 {
			t.Errorf("no %s event in %d events", name, len(events))
		}
	}
}

func TestPagePopularityIsZipf(t *testing.T) {
	views := map[string]int{}
	products := map[string]int{}
	for _, ev := range simulate(NewGenerator(3), monday, 40000, time.Second) {
		if ev["event"] != "page_view" {
			continue
		}
		u, _ := url.Parse(ev["page_url"].(string))
		views[u.Path]++
		if strings.HasPrefix(u.Path, "/products/") {
			products[u.Path]++
		}
	}
	for what, m := range map[string]map[string]int{"pages": views, "product pages": products} {
		var counts []int
		for _, n := range m {
			counts = append(counts, n)
		}
		slices.Sort(counts)
		top, median := counts[len(counts)-1], counts[len(counts)/2]
		t.Logf("%s: %d distinct, top %d views, median %d", what, len(counts), top, median)
		if top < 10*median {
			t.Errorf("%s: top has %d views, median %d: want far more on top", what, top, median)
		}
	}
	if len(products) < 150 {
		t.Errorf("only %d of %d product pages viewed: the tail is missing", len(products), len(shop.products))
	}
}

func TestPurchasesAddUp(t *testing.T) {
	events := simulate(NewGenerator(9), monday, 60000, time.Second)
	carts := map[string]float64{} // session -> value added to cart
	items := map[string]float64{} // order -> sum of price*quantity of its items
	orderRevenue := map[string]float64{}
	sessions := map[string]bool{}
	buyers := map[string]bool{}
	for _, ev := range events {
		sid := ev["session_id"].(string)
		sessions[sid] = true
		switch ev["event"] {
		case "add_to_cart":
			carts[sid] += ev["price"].(float64) * float64(ev["quantity"].(int))
		case "purchase_item":
			items[ev["order_id"].(string)] += ev["price"].(float64) * float64(ev["quantity"].(int))
		case "purchase":
			id, ok := ev["order_id"].(string)
			if !ok || !strings.HasPrefix(id, "ORD-") {
				t.Fatalf("purchase without order_id: %v", ev)
			}
			if _, dup := orderRevenue[id]; dup {
				t.Fatalf("order_id %s used twice", id)
			}
			rev := ev["revenue"].(float64)
			orderRevenue[id] = rev
			if math.Abs(rev-carts[sid]) > 0.005 {
				t.Errorf("order %s: revenue %.2f, but the session put %.2f in its cart", id, rev, carts[sid])
			}
			carts[sid] = 0
			buyers[sid] = true
		}
	}
	for id, rev := range orderRevenue {
		if math.Abs(rev-items[id]) > 0.005 {
			t.Errorf("order %s: revenue %.2f != sum(price*quantity) of its items %.2f", id, rev, items[id])
		}
	}
	conv := float64(len(buyers)) / float64(len(sessions))
	t.Logf("%d sessions, %d orders, conversion %.2f%%", len(sessions), len(orderRevenue), 100*conv)
	if len(orderRevenue) < 100 || conv < 0.02 || conv > 0.045 {
		t.Errorf("conversion %.2f%% (%d orders in %d sessions), want about 2-4%%", 100*conv, len(orderRevenue), len(sessions))
	}
}

func TestHistoryFollowsTheDailyRhythm(t *testing.T) {
	const days, perHour = 4, 1000
	from, to := monday, monday.Add(days*24*time.Hour)
	var byHour [24]int
	var last time.Time
	n := 0
	err := NewGenerator(11).History(from, to, perHour, func(ev map[string]any) error {
		at, err := time.Parse(time.RFC3339, ev["event_time"].(string))
		if err != nil {
			return err
		}
		if at.Before(last) {
			t.Fatalf("event at %s after one at %s: history is not in time order", at, last)
		}
		if at.Before(from) || at.After(to.Add(time.Minute)) {
			t.Fatalf("event at %s outside [%s, %s]", at, from, to)
		}
		last = at
		byHour[at.Hour()]++
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events; by hour: %v", n, byHour)
	// Weekdays run slightly below the weekly average the rate is set for.
	if want := days * 24 * perHour; n < want*8/10 || n > want*11/10 {
		t.Errorf("%d events over %d days at %d/h, want about %d", n, days, perHour, want)
	}
	if byHour[18] < 3*byHour[4] {
		t.Errorf("%d events at 18:00 vs %d at 04:00: want a busy evening and a quiet night", byHour[18], byHour[4])
	}
}

func TestHistoryStopsAtEmitError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := NewGenerator(1).History(monday, monday.Add(time.Hour), 1000, func(map[string]any) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("History = %v after %d events, want the emit error after 10", err, n)
	}
	if err := NewGenerator(1).History(monday, monday.Add(time.Hour), 0, func(map[string]any) error { return nil }); err == nil {
		t.Fatal("History with 0 events per hour: no error")
	}
}
