package rollup

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func testTable(t *testing.T) *Table {
	t.Helper()
	names := []string{"latency_p95", "max_price", "min_price", "revenue", "views", "visitors"}
	m, err := ParseMetrics(names, map[string]string{
		"views": "count()", "visitors": "distinct(user_id)", "revenue": "sum(price)",
		"min_price": "min(price)", "max_price": "max(price)", "latency_p95": "quantile(latency, 0.95)",
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewTable(time.Minute, []string{"country", "page"}, m)
}

// values are the metric fields of an event, by the table's metrics.
func values(tb *Table, ev map[string]any) []any {
	out := make([]any, len(tb.Metrics))
	for i, m := range tb.Metrics {
		if m.Field != "" {
			out[i] = ev[m.Field]
		}
	}
	return out
}

// Counts and sums are exact; distinct within 2 %, quantiles within 1 % of
// exact, at the stored grain and merged coarser (a day's distinct users are
// the union of its minutes', not their sum).
func TestAccuracy(t *testing.T) {
	tb := testTable(t)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	type key struct {
		b       time.Time
		country string
	}
	exactCount := map[key]int64{}
	exactSum := map[key]float64{}
	users := map[string]bool{}
	usersDE := map[string]bool{}
	var latencies []float64
	for i := range 200_000 {
		at := base.Add(time.Duration(rng.IntN(3600*1000)) * time.Millisecond)
		country := []string{"DE", "FR", "US", "BR"}[rng.IntN(4)]
		user := fmt.Sprintf("u%d", rng.IntN(50_000))
		price := float64(rng.IntN(10000)) / 100
		lat := math.Exp(rng.NormFloat64()) * 100
		ev := map[string]any{"user_id": user, "price": price, "latency": lat}
		if _, err := tb.Add(at, []string{country, fmt.Sprintf("/p%d", i%20)}, values(tb, ev)); err != nil {
			t.Fatal(err)
		}
		k := key{at.Truncate(time.Minute), country}
		exactCount[k]++
		exactSum[k] += price
		users[user] = true
		if country == "DE" {
			usersDE[user] = true
		}
		latencies = append(latencies, lat)
	}
	// Per minute and country: exact counts and sums.
	res, err := tb.Run(Query{QueryType: "groupBy", Granularity: "none", Dimensions: []string{"country"}, Metrics: []string{"views", "revenue"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(exactCount) {
		t.Fatalf("%d groups, want %d", len(res), len(exactCount))
	}
	for _, r := range res {
		k := key{r.Time, r.Event["country"].(string)}
		if r.Event["views"] != exactCount[k] || math.Abs(r.Event["revenue"].(float64)-exactSum[k]) > 1e-6 {
			t.Fatalf("%v: %v, want %d and %.2f", k, r.Event, exactCount[k], exactSum[k])
		}
	}
	// The whole hour: distinct users merged, not summed; quantile merged.
	res, err = tb.Run(Query{QueryType: "timeseries", Granularity: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Event["views"] != int64(200_000) {
		t.Fatalf("all: %+v", res)
	}
	if got, want := float64(res[0].Event["visitors"].(int64)), float64(len(users)); math.Abs(got-want)/want > 0.02 {
		t.Errorf("visitors %v, exact %v: more than 2%% off", got, want)
	}
	slices.Sort(latencies)
	exactP95 := latencies[int(math.Ceil(0.95*float64(len(latencies))))-1]
	if got := res[0].Event["latency_p95"].(float64); math.Abs(got-exactP95)/exactP95 > 0.01 {
		t.Errorf("p95 %v, exact %v: more than 1%% off", got, exactP95)
	}
	// A filter, and an hour of DE.
	res, err = tb.Run(Query{QueryType: "timeseries", Granularity: "1h", Filter: &Filter{Type: "selector", Dimension: "country", Value: "DE"}, Metrics: []string{"visitors"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := float64(res[0].Event["visitors"].(int64)), float64(len(usersDE)); len(res) != 1 || math.Abs(got-want)/want > 0.02 {
		t.Errorf("DE visitors %v, exact %v", got, want)
	}
}

func TestTopNAndFilters(t *testing.T) {
	tb := testTable(t)
	at := time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)
	add := func(country, page string, n int, price float64) {
		for range n {
			if _, err := tb.Add(at, []string{country, page}, values(tb, map[string]any{"price": price, "user_id": "u"})); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("DE", "/a", 5, 1)
	add("DE", "/b", 9, 1)
	add("FR", "/a", 7, 10)
	add("US", "/c", 1, 100)
	res, err := tb.Run(Query{QueryType: "topN", Dimension: "page", Metric: "views", Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %v %v %v", res[0].Result[0]["page"], res[0].Result[0]["views"], res[0].Result[1]["page"], res[0].Result[1]["views"]); len(res) != 1 || len(res[0].Result) != 2 || got != "/a 12 /b 9" {
		t.Fatalf("topN: %+v", res)
	}
	res, err = tb.Run(Query{QueryType: "topN", Dimension: "country", Metric: "revenue", Threshold: 1,
		Filter: &Filter{Type: "not", Field: &Filter{Type: "in", Dimension: "country", Values: []string{"US"}}}})
	if err != nil || res[0].Result[0]["country"] != "FR" || res[0].Result[0]["revenue"] != 70.0 {
		t.Fatalf("topN by revenue without US: %+v %v", res, err)
	}
	res, err = tb.Run(Query{QueryType: "groupBy", Dimensions: []string{"country"}, Metrics: []string{"views"},
		Filter: &Filter{Type: "or", Fields: []*Filter{{Type: "selector", Dimension: "page", Value: "/a"}, {Type: "selector", Dimension: "country", Value: "US"}}}})
	if err != nil || len(res) != 3 || res[0].Event["views"] != int64(5) || res[2].Event["views"] != int64(1) {
		t.Fatalf("groupBy with or: %+v %v", res, err)
	}
	// Errors name what is wrong.
	for _, tc := range []struct {
		q    Query
		want string
	}{
		{Query{QueryType: "scan"}, `queryType "scan"`},
		{Query{QueryType: "topN", Dimension: "city", Metric: "views", Threshold: 1}, `no dimension "city" (the dimensions are country, page)`},
		{Query{QueryType: "topN", Dimension: "page", Metric: "clicks", Threshold: 1}, `no metric "clicks"`},
		{Query{QueryType: "topN", Dimension: "page", Metric: "views"}, "threshold above 0"},
		{Query{QueryType: "timeseries", Granularity: "90s"}, "not a multiple of the rollup's 1m0s"},
		{Query{QueryType: "timeseries", Granularity: "weekly"}, `granularity "weekly"`},
		{Query{QueryType: "timeseries", Filter: &Filter{Type: "regex"}}, `filter type "regex"`},
		{Query{QueryType: "timeseries", Filter: &Filter{Type: "and"}}, "filter and needs fields"},
	} {
		if _, err := tb.Run(tc.q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.q, err, tc.want)
		}
	}
	// A value a metric cannot take adds nothing to any metric.
	before, _ := tb.Run(Query{QueryType: "timeseries"})
	if _, err := tb.Add(at, []string{"DE", "/a"}, values(tb, map[string]any{"price": "cheap", "user_id": "v"})); err == nil || !strings.Contains(err.Error(), `"cheap" is not a number`) {
		t.Fatalf("text price: %v", err)
	}
	after, _ := tb.Run(Query{QueryType: "timeseries"})
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("a rejected event changed the table:\n%v\n%v", before, after)
	}
}

func BenchmarkAdd(b *testing.B) {
	names := []string{"m1", "m2", "m3", "m4", "m5"}
	m, _ := ParseMetrics(names, map[string]string{"m1": "count()", "m2": "sum(price)", "m3": "max(price)", "m4": "distinct(user_id)", "m5": "quantile(latency, 0.99)"})
	dims := []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"}
	tb := NewTable(time.Minute, dims, m)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	type ev struct {
		at   time.Time
		dims []string
		vals []any
	}
	evs := make([]ev, 4096)
	for i := range evs {
		d := make([]string, 10)
		for k := range d {
			d[k] = fmt.Sprintf("v%d", rng.IntN(3+k))
		}
		evs[i] = ev{base.Add(time.Duration(i) * 10 * time.Millisecond), d, []any{nil, 12.5, 12.5, fmt.Sprintf("u%d", rng.IntN(100000)), 80.0}}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := evs[i%len(evs)]
		tb.Add(e.at, e.dims, e.vals)
	}
}
