package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// Random selections of the shop's fields, each checked against a
// computation in Go from the tables' rows: join what the query needs, group,
// and count each order, user and item once per group. Whichever way the
// compiler takes (plain, two steps, numbered rows), the numbers must agree.
func TestExploreRandomQueriesDuckDB(t *testing.T) {
	wh := duckShop(t)
	randomExplores(t, newExploreAPI(t, wh, "").URL, wh)
}

func TestExploreRandomQueriesPostgres(t *testing.T) {
	pg := pgShop(t)
	randomExplores(t, newExploreAPI(t, pg, "").URL, pg)
}

// The shop's rows, as the reference sees them.
type (
	refUser  struct{ id, country string }
	refOrder struct {
		id, user, status string
		cents            int64
		month            string
	}
	refItem struct {
		id, order, product string
		qty                int64
	}
	// refRow is one row of orders LEFT JOIN users LEFT JOIN order_items.
	refRow struct {
		o *refOrder
		u *refUser
		i *refItem
	}
)

func randomExplores(t *testing.T, url string, engine warehouse.Engine) {
	ctx := context.Background()
	read := func(q string) [][]any {
		res, err := engine.Query(ctx, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		return res.Rows
	}
	str := func(v any) string {
		if v == nil {
			return "NULL"
		}
		return fmt.Sprint(v)
	}
	users := map[string]*refUser{}
	for _, r := range read("SELECT id, country FROM users") {
		users[str(r[0])] = &refUser{str(r[0]), str(r[1])}
	}
	var orders []*refOrder
	for _, r := range read("SELECT id, user_id, status, CAST(amount * 100 AS BIGINT), CAST(date_trunc('month', created_at) AS DATE) FROM orders") {
		cents, _ := strconv.ParseInt(str(r[3]), 10, 64)
		month := str(r[4])
		if tm, ok := r[4].(string); ok {
			month = tm[:10]
		} else if tm, ok := r[4].(time.Time); ok {
			month = tm.Format("2006-01-02")
		}
		orders = append(orders, &refOrder{str(r[0]), str(r[1]), str(r[2]), cents, month})
	}
	items := map[string][]*refItem{}
	for _, r := range read("SELECT id, order_id, product, quantity FROM order_items") {
		qty, _ := strconv.ParseInt(str(r[3]), 10, 64)
		items[str(r[1])] = append(items[str(r[1])], &refItem{str(r[0]), str(r[1]), str(r[2]), qty})
	}

	dims := []string{"users.country", "orders.status", "order_items.product", "orders.created_at_month", "orders.is_big"}
	measures := []string{"orders.count", "orders.total_revenue", "orders.completed", "orders.completed_revenue", "orders.customers",
		"orders.largest_order", "orders.revenue_per_order", "orders.revenue_per_user", "users.count", "order_items.count", "order_items.total_quantity"}
	rng := rand.New(rand.NewPCG(8, 8))
	for n := range 60 {
		var fields []string
		for _, i := range rng.Perm(len(dims))[:rng.IntN(3)] {
			fields = append(fields, dims[i])
		}
		for _, i := range rng.Perm(len(measures))[:1+rng.IntN(4)] {
			fields = append(fields, measures[i])
		}
		dropCancelled := rng.IntN(2) == 0
		q := semantic.Query{Explore: "orders", Fields: fields, Limit: 1000}
		if dropCancelled {
			q.Filters = []semantic.Filter{{Field: "orders.status", Op: "!=", Value: "cancelled"}}
		}
		body, _ := json.Marshal(q)
		code, answer := call(t, "POST", url+"/api/v1/explore", string(body), "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", body, code, answer)
		}
		var res ExploreResponse
		if err := json.Unmarshal([]byte(answer), &res); err != nil {
			t.Fatal(err)
		}

		// The reference: the joins the fields need, then groups.
		uses := func(view string) bool {
			return slices.ContainsFunc(fields, func(f string) bool {
				return strings.HasPrefix(f, view+".") || view == "users" && f == "orders.revenue_per_user"
			})
		}
		var rows []refRow
		for _, o := range orders {
			if dropCancelled && o.status == "cancelled" {
				continue
			}
			r := refRow{o: o}
			if uses("users") {
				r.u = users[o.user]
			}
			if its := items[o.id]; uses("order_items") && len(its) > 0 {
				for _, it := range its {
					r.i = it
					rows = append(rows, r)
				}
				continue
			}
			rows = append(rows, r)
		}
		groups := map[string][]refRow{}
		for _, r := range rows {
			var key []string
			for _, f := range fields {
				switch f {
				case "users.country":
					key = append(key, "NULL")
					if r.u != nil {
						key[len(key)-1] = r.u.country
					}
				case "orders.status":
					key = append(key, r.o.status)
				case "order_items.product":
					key = append(key, "NULL")
					if r.i != nil {
						key[len(key)-1] = r.i.product
					}
				case "orders.created_at_month":
					key = append(key, r.o.month)
				case "orders.is_big":
					key = append(key, strconv.FormatBool(r.o.cents >= 10000))
				}
			}
			k := strings.Join(key, " | ")
			groups[k] = append(groups[k], r)
		}
		want := map[string]map[string]string{}
		for k, rs := range groups {
			want[k] = map[string]string{}
			orderSet, userSet, customerSet := map[string]*refOrder{}, map[string]bool{}, map[string]bool{}
			var itemCount, qty int64
			hasItem := false
			for _, r := range rs {
				orderSet[r.o.id] = r.o
				customerSet[r.o.user] = true
				if r.u != nil {
					userSet[r.u.id] = true
				}
				if r.i != nil {
					itemCount++
					qty += r.i.qty
					hasItem = true
				}
			}
			var revenue, completedRevenue, largest int64
			completed, hasCompleted := 0, false
			for _, o := range orderSet {
				revenue += o.cents
				largest = max(largest, o.cents)
				if o.status == "complete" {
					completed++
					completedRevenue += o.cents
					hasCompleted = true
				}
			}
			money := func(cents int64) string { return canon(float64(cents) / 100) }
			want[k]["orders.count"] = canon(float64(len(orderSet)))
			want[k]["orders.total_revenue"] = money(revenue)
			want[k]["orders.completed"] = canon(float64(completed))
			want[k]["orders.completed_revenue"] = "NULL"
			if hasCompleted {
				want[k]["orders.completed_revenue"] = money(completedRevenue)
			}
			want[k]["orders.customers"] = canon(float64(len(customerSet)))
			want[k]["orders.largest_order"] = money(largest)
			want[k]["orders.revenue_per_order"] = canon(float64(revenue) / 100 / float64(len(orderSet)))
			want[k]["users.count"] = canon(float64(len(userSet)))
			want[k]["orders.revenue_per_user"] = "NULL"
			if len(userSet) > 0 {
				want[k]["orders.revenue_per_user"] = canon(float64(revenue) / 100 / float64(len(userSet)))
			}
			want[k]["order_items.count"] = canon(float64(itemCount))
			want[k]["order_items.total_quantity"] = "NULL"
			if hasItem {
				want[k]["order_items.total_quantity"] = canon(float64(qty))
			}
		}

		got := map[string]bool{}
		for _, row := range res.Rows {
			var key []string
			for i, c := range res.Columns {
				if c.Kind != "dimension" {
					continue
				}
				v := canon(row[i])
				if c.Type == "time" && row[i] != nil {
					v = fmt.Sprint(row[i])[:10]
				}
				key = append(key, v)
			}
			k := strings.Join(key, " | ")
			got[k] = true
			for i, c := range res.Columns {
				if c.Kind != "measure" {
					continue
				}
				if w, g := want[k][c.Name], canon(row[i]); !near(g, w) {
					t.Errorf("query %d %v filter %v: %s at [%s]: explore %s, reference %s\n%s", n, fields, dropCancelled, c.Name, k, g, w, res.SQL)
				}
			}
		}
		if len(got) != len(want) {
			t.Errorf("query %d %v: %d groups, the reference has %d\n%s", n, fields, len(got), len(want), res.SQL)
		}
	}
}

// near compares canon'd numbers to 7 significant digits (the ratio is a
// DOUBLE on one side and a NUMERIC on the other); text exactly.
func near(a, b string) bool {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA != nil || errB != nil {
		return a == b
	}
	return math.Abs(x-y) <= 1e-7*math.Max(math.Abs(x), math.Abs(y))
}
