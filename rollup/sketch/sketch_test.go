package sketch_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/axiomhq/hyperloglog"

	"github.com/sluice-data/sluice/rollup"
	"github.com/sluice-data/sluice/rollup/sketch"
)

// hll encodes a distinct metric's sketch of values as the rollup does:
// hyperloglog.New16, MarshalBinary.
func hll(t testing.TB, values ...string) []byte {
	t.Helper()
	sk := hyperloglog.New16()
	for _, v := range values {
		sk.Insert([]byte(v))
	}
	b, err := sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dds encodes a quantile metric's sketch of values as the rollup does:
// relative accuracy 0.005, Encode with the index mapping.
func dds(t testing.TB, accuracy float64, values ...float64) []byte {
	t.Helper()
	sk, err := ddsketch.NewDefaultDDSketch(accuracy)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := sk.Add(v); err != nil {
			t.Fatal(err)
		}
	}
	var b []byte
	sk.Encode(&b, false)
	return b
}

func users(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("u%d", i))
	}
	return out
}

// The union of overlapping sketches, small (sparse) and large (dense), is
// the estimate of one sketch of all the values, within 2 % of exact; the
// sum of the estimates would count the overlap twice.
func TestDistinct(t *testing.T) {
	for _, n := range []int{10, 3000, 200_000} {
		parts := [][]byte{hll(t, users(0, n/2)...), nil, hll(t, users(n/4, n)...), hll(t, users(0, n/10)...)}
		got, err := sketch.Distinct(parts)
		if err != nil {
			t.Fatal(err)
		}
		all := hyperloglog.New16()
		for _, u := range users(0, n) {
			all.Insert([]byte(u))
		}
		if want := int64(all.Estimate()); got != want {
			t.Errorf("%d users: union of the sketches %d, one sketch of all %d", n, got, want)
		}
		if d := math.Abs(float64(got)-float64(n)) / float64(n); d > 0.02 {
			t.Errorf("%d users: estimate %d is %.2f %% off", n, got, 100*d)
		}
	}
	for _, blobs := range [][][]byte{nil, {}, {nil, nil}} {
		if got, err := sketch.Distinct(blobs); got != 0 || err != nil {
			t.Errorf("Distinct(%v) = %d, %v; want 0", blobs, got, err)
		}
	}
}

// The merged DDSketches answer as one sketch of all the values, within
// the relative accuracy of the exact value at that rank.
func TestQuantile(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var all []float64
	var parts [][]byte
	for p := range 5 {
		var vs []float64
		for range 2000 * (p + 1) {
			vs = append(vs, math.Exp(r.NormFloat64()+float64(p))*100) // skewed, each part its own scale
		}
		if p == 2 {
			vs = append(vs, 0, 0, -3.5) // zeros and a negative value
		}
		all = append(all, vs...)
		parts = append(parts, dds(t, 0.005, vs...), nil)
	}
	one, _ := ddsketch.NewDefaultDDSketch(0.005)
	for _, v := range all {
		one.Add(v)
	}
	slices.Sort(all)
	for _, q := range []float64{0, 0.01, 0.5, 0.95, 0.99, 1} {
		got, ok, err := sketch.Quantile(parts, q)
		if err != nil || !ok {
			t.Fatalf("q %v: %v %v", q, ok, err)
		}
		want, _ := one.GetValueAtQuantile(q)
		if got != want {
			t.Errorf("q %v: merged %v, one sketch of all %v", q, got, want)
		}
		exact := all[int(q*float64(len(all)-1))] // the value at rank q(n-1), as DDSketch ranks
		if math.Abs(got-exact) > 0.005*math.Abs(exact)+1e-12 {
			t.Errorf("q %v: %v, exact %v: off by more than 0.5 %%", q, got, exact)
		}
	}
	for _, blobs := range [][][]byte{nil, {nil}, {dds(t, 0.005)}} {
		if _, ok, err := sketch.Quantile(blobs, 0.5); ok || err != nil {
			t.Errorf("Quantile(%v) = %v, %v; want no value", blobs, ok, err)
		}
	}
}

// The sketches as a rollup's SQL table holds them (BucketRows, the
// <metric>_sketch columns), merged into hours, answer as the rollup's query
// API does for those hours.
func TestRollupTableSketches(t *testing.T) {
	metrics, err := rollup.ParseMetrics([]string{"load", "visitors"}, map[string]string{"visitors": "distinct(user_id)", "load": "quantile(load_ms, 0.9)"})
	if err != nil {
		t.Fatal(err)
	}
	tb := rollup.NewTable(time.Minute, []string{"country"}, metrics)
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(3, 4))
	// Thousands of users per hour and country: enough that the form in
	// which a union is kept (sparse, dense) shows in its estimate.
	for i := range 60000 {
		at := base.Add(time.Duration(i) * 230 * time.Millisecond) // 09:00 to 12:50
		country := []string{"DE", "FR", "FR", "US"}[i%4]
		user := fmt.Sprintf("u%d", r.IntN(1_000_000))
		if _, err := tb.Add(at, []string{country}, []any{float64(50 + r.IntN(1000)), user}); err != nil {
			t.Fatal(err)
		}
	}
	cols := tb.Columns()
	col := func(name string) int {
		i := slices.IndexFunc(cols, func(c rollup.Column) bool { return c.Name == name })
		if i < 0 {
			t.Fatalf("no column %s in %v", name, cols)
		}
		return i
	}
	timeCol, countryCol, visitorsCol, loadCol := col("time"), col("country"), col("visitors_sketch"), col("load_sketch")
	if cols[visitorsCol].Type != "BLOB" || cols[loadCol].Type != "BLOB" {
		t.Fatalf("sketch columns: %v", cols)
	}
	var buckets []time.Time
	for b := base; b.Before(base.Add(4 * time.Hour)); b = b.Add(time.Minute) {
		buckets = append(buckets, b)
	}
	type group struct{ visitors, load [][]byte }
	groups := map[string]*group{}
	for _, row := range tb.BucketRows(buckets) {
		key := fmt.Sprintf("%s %s", row[timeCol].(time.Time).Truncate(time.Hour).Format(time.RFC3339), row[countryCol])
		g := groups[key]
		if g == nil {
			g = &group{}
			groups[key] = g
		}
		g.visitors = append(g.visitors, row[visitorsCol].([]byte))
		g.load = append(g.load, row[loadCol].([]byte))
	}
	res, err := tb.Run(rollup.Query{QueryType: "groupBy", Granularity: "hour", Dimensions: []string{"country"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(groups) || len(res) != 12 {
		t.Fatalf("%d groups from the query API, %d from the table", len(res), len(groups))
	}
	for _, r := range res {
		key := fmt.Sprintf("%s %s", r.Time.Format(time.RFC3339), r.Event["country"])
		g := groups[key]
		if g == nil {
			t.Fatalf("no rows for %s", key)
		}
		visitors, err := sketch.Distinct(g.visitors)
		if err != nil {
			t.Fatal(err)
		}
		load, ok, err := sketch.Quantile(g.load, 0.9)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if visitors != r.Event["visitors"] || load != r.Event["load"] {
			t.Errorf("%s: merged sketches give %d visitors, load %v; the query API %v, %v", key, visitors, load, r.Event["visitors"], r.Event["load"])
		}
	}
}

func TestBadSketches(t *testing.T) {
	distinct := hll(t, users(0, 100)...)
	dense := hll(t, users(0, 100_000)...)
	quantile := dds(t, 0.005, 1, 2, 3, 400, 5000)
	for _, tc := range []struct {
		name  string
		blobs [][]byte
		want  string
	}{
		{"empty", [][]byte{distinct, {}}, "element 2 is not a distinct metric's sketch"},
		{"text", [][]byte{[]byte("not a sketch at all")}, "element 1 is not a distinct"},
		{"a quantile sketch", [][]byte{nil, quantile}, "element 2 is not a distinct"},
		{"truncated sparse", [][]byte{distinct[:len(distinct)-3]}, "element 1 is not a distinct"},
		{"truncated dense", [][]byte{dense[:len(dense)/2]}, "element 1 is not a distinct"},
		{"another precision", [][]byte{distinct, hll14(t)}, "element 2: hyperloglog: cannot merge precision 16 with precision 14"},
	} {
		if _, err := sketch.Distinct(tc.blobs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Distinct, %s: %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name  string
		blobs [][]byte
		q     float64
		want  string
	}{
		{"q above 1", [][]byte{quantile}, 2, "q is 2: it must be between 0 and 1"},
		{"q below 0", [][]byte{quantile}, -0.5, "q is -0.5"},
		{"q NaN", [][]byte{quantile}, math.NaN(), "q is NaN"},
		{"empty", [][]byte{quantile, {}}, 0.5, "element 2 is not a quantile metric's sketch"},
		{"text", [][]byte{[]byte("not a sketch at all")}, 0.5, "element 1 is not a quantile"},
		{"a distinct sketch", [][]byte{distinct}, 0.5, "element 1 is not a quantile"},
		{"a dense distinct sketch", [][]byte{dense}, 0.5, "element 1 is not a quantile"},
		{"truncated", [][]byte{quantile[:len(quantile)-2]}, 0.5, "element 1 is not a quantile"},
		{"another accuracy", [][]byte{quantile, dds(t, 0.01, 3)}, 0.5, "element 2 has another relative accuracy"},
		{"a negative count", [][]byte{negativeCount(t)}, 0.5, "not a count of values"},
	} {
		if _, _, err := sketch.Quantile(tc.blobs, tc.q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Quantile, %s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func hll14(t *testing.T) []byte {
	sk := hyperloglog.New14()
	sk.Insert([]byte("x"))
	b, err := sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// negativeCount is a well-formed DDSketch encoding whose one bin counts -2
// values (which DDSketch.Add refuses to make).
func negativeCount(t *testing.T) []byte {
	sk, _ := ddsketch.NewDefaultDDSketch(0.005)
	var b []byte
	sk.IndexMapping.Encode(&b)
	enc.EncodeFlag(&b, enc.NewFlag(enc.FlagTypePositiveStore, enc.BinEncodingIndexDeltasAndCounts))
	enc.EncodeUvarint64(&b, 1)
	enc.EncodeVarint64(&b, 100)
	enc.EncodeVarfloat64(&b, -2)
	return b
}

// Whatever the bytes, Distinct and Quantile answer or fail; they do not
// panic, hang or run out of memory.
func FuzzSketches(f *testing.F) {
	f.Add(hll(f, "a", "b"))
	f.Add(hll(f, users(0, 50_000)...))
	f.Add(dds(f, 0.005, 1, 2.5, 1e9, -4, 0))
	f.Add(dds(f, 0.01))
	f.Add([]byte{})
	valid := dds(f, 0.005, 10, 20)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := sketch.Distinct([][]byte{b, b})
		if err == nil && n < 0 {
			t.Errorf("Distinct: %d", n)
		}
		for _, q := range []float64{0, 0.5, 1} {
			sketch.Quantile([][]byte{b}, q)
			sketch.Quantile([][]byte{valid, b}, q)
		}
	})
}
