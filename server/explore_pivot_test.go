package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// pivotCase is a pivoted explore query and the hand-written SQL of its
// cells (the row dimensions, the pivoted ones, the measures) and of its
// rows' totals (the row dimensions, the measures).
type pivotCase struct {
	name          string
	query         string
	cells, totals string
	// rows and values are how many rows and pivot values there are in
	// all; kept, how many values the table keeps.
	rows, values, kept int
	// order checks the order of the table's rows and values.
	order func(t *testing.T, p *semantic.PivotTable)
}

var pivotCases = []pivotCase{
	{
		// A customer who ordered in two statuses counts once in the row's
		// total: totals are not sums of cells.
		name: "countries by status",
		query: `{"explore": "orders", "fields": ["users.country", "orders.status", "orders.count", "orders.total_revenue", "orders.customers", "orders.average_order"],
			"pivots": ["orders.status"]}`,
		cells:  "SELECT u.country, o.status, COUNT(*), SUM(o.amount), COUNT(DISTINCT o.user_id), AVG(o.amount)" + joined + "GROUP BY 1, 2",
		totals: "SELECT u.country, COUNT(*), SUM(o.amount), COUNT(DISTINCT o.user_id), AVG(o.amount)" + joined + "GROUP BY 1",
		rows:   4, values: 3, kept: 3,
		order: func(t *testing.T, p *semantic.PivotTable) {
			if got := key(flat(p.Values)); got != "[cancelled | complete | pending]" {
				t.Errorf("values in order: %s", got)
			}
			descending(t, p, 0)
		},
	},
	{
		// Items repeat orders: each order counts once per product, and once
		// in its row's total.
		name:   "statuses by product, fanned out",
		query:  `{"explore": "orders", "fields": ["orders.status", "order_items.product", "orders.total_revenue", "orders.count", "order_items.total_quantity"], "pivots": ["order_items.product"], "sorts": [{"field": "order_items.product", "desc": true}, {"field": "orders.status"}]}`,
		cells:  "SELECT status, product, SUM(amount), COUNT(*), SUM(q) FROM (SELECT o.id, o.status, i.product, MIN(o.amount) AS amount, SUM(i.quantity) AS q FROM orders o LEFT JOIN order_items i ON i.order_id = o.id GROUP BY 1, 2, 3) AS d GROUP BY 1, 2",
		totals: "SELECT o.status, SUM(o.amount), COUNT(*), (SELECT SUM(i.quantity) FROM order_items i JOIN orders x ON x.id = i.order_id WHERE x.status = o.status) FROM orders o GROUP BY 1",
		rows:   3, values: 4, kept: 4,
		order: func(t *testing.T, p *semantic.PivotTable) {
			// NULL (orders without items) sorts last either way.
			if got := key(flat(p.Values)); got != "[cup | bowl | apron | NULL]" {
				t.Errorf("values, descending: %s", got)
			}
			var rows []any
			for _, r := range p.Rows {
				rows = append(rows, r.Dimensions...)
			}
			if got := key(rows); got != "[cancelled | complete | pending]" {
				t.Errorf("rows by status: %s", got)
			}
		},
	},
	{
		// 60 items: the first 50 are kept, the totals count them all.
		name:   "more values than a pivot keeps",
		query:  `{"explore": "orders", "fields": ["orders.status", "order_items.id", "order_items.total_quantity"], "pivots": ["order_items.id"], "filters": [{"field": "order_items.id", "op": "is not null"}]}`,
		cells:  "SELECT o.status, i.id, SUM(i.quantity) FROM orders o JOIN order_items i ON i.order_id = o.id WHERE i.id <= 50 GROUP BY 1, 2",
		totals: "SELECT o.status, SUM(i.quantity) FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY 1",
		rows:   3, values: 60, kept: semantic.MaxPivotValues,
	},
	{
		// The limit counts rows of the table, chosen by a measure's total.
		name:   "top orders by revenue, by product",
		query:  `{"explore": "orders", "fields": ["orders.id", "order_items.product", "order_items.total_quantity", "orders.total_revenue"], "pivots": ["order_items.product"], "sorts": [{"field": "orders.total_revenue", "desc": true}], "limit": 5}`,
		cells:  "SELECT o.id, i.product, SUM(i.quantity), MIN(o.amount) FROM orders o LEFT JOIN order_items i ON i.order_id = o.id WHERE o.id IN (SELECT id FROM orders ORDER BY amount DESC, id LIMIT 5) GROUP BY 1, 2",
		totals: "SELECT o.id, (SELECT SUM(quantity) FROM order_items WHERE order_id = o.id), o.amount FROM orders o WHERE o.id IN (SELECT id FROM orders ORDER BY amount DESC, id LIMIT 5)",
		rows:   40, values: -1, kept: -1,
		order: func(t *testing.T, p *semantic.PivotTable) { descending(t, p, 1) },
	},
	{
		// A measure filter empties cells; totals are the rows' whole.
		name:   "measure filter on cells, months as values",
		query:  `{"explore": "orders", "fields": ["users.country", "orders.created_at_month", "orders.count"], "pivots": ["orders.created_at_month"], "filters": [{"field": "orders.count", "op": "<=", "value": 3}]}`,
		cells:  "SELECT u.country, date_trunc('month', o.created_at), COUNT(*)" + joined + "GROUP BY 1, 2 HAVING COUNT(*) <= 3",
		totals: "SELECT u.country, COUNT(*)" + joined + "GROUP BY 1",
		rows:   -1, values: -1, kept: -1,
	},
}

// flat is the values of one-field pivot values.
func flat(vs [][]any) []any {
	var out []any
	for _, v := range vs {
		out = append(out, v...)
	}
	return out
}

// descending checks that the rows' totals of measure m do not increase.
func descending(t *testing.T, p *semantic.PivotTable, m int) {
	t.Helper()
	for i := 1; i < len(p.Rows); i++ {
		if a, b := toFloat(p.Rows[i-1].Totals[m]), toFloat(p.Rows[i].Totals[m]); a < b {
			t.Errorf("row %d's total %v is above row %d's %v", i, b, i-1, a)
		}
	}
}

func toFloat(v any) float64 {
	f, _ := strconv.ParseFloat(canon(v), 64)
	return f
}

// checkPivots runs every pivot case through the API at url and compares
// each cell and each total with the direct SQL on engine; a cell the
// direct SQL has no row for must be empty (null), not 0.
func checkPivots(t *testing.T, url string, engine warehouse.Engine) {
	ctx := context.Background()
	for _, tc := range pivotCases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, "POST", url+"/api/v1/explore", tc.query, "")
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var res ExploreResponse
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			p := res.Pivot
			if p == nil || len(p.Rows) == 0 {
				t.Fatalf("no pivot table: %s", body)
			}
			if (tc.rows >= 0 && p.AllRows != tc.rows) || (tc.values >= 0 && p.AllValues != tc.values) || (tc.kept >= 0 && len(p.Values) != tc.kept) {
				t.Errorf("%d rows, %d values of which %d kept; want %d, %d, %d", p.AllRows, p.AllValues, len(p.Values), tc.rows, tc.values, tc.kept)
			}
			nr := len(p.Rows[0].Dimensions)
			values := map[string]int{}
			for i, v := range p.Values {
				values[key(v)] = i
			}
			// The table's cells and totals by key.
			cells, totals := map[string]string{}, map[string]string{}
			for _, r := range p.Rows {
				rk := key(r.Dimensions)
				if len(r.Cells) != len(p.Values) {
					t.Fatalf("row %s has %d cells for %d values", rk, len(r.Cells), len(p.Values))
				}
				for i, c := range r.Cells {
					if c != nil {
						cells[rk+key(p.Values[i])] = key(c)
					}
				}
				totals[rk] = key(r.Totals)
			}
			want, err := engine.Query(ctx, tc.cells, 0)
			if err != nil {
				t.Fatalf("%s: %v", tc.cells, err)
			}
			n, rows := 0, map[string]bool{}
			for _, row := range jsonRows(want.Rows) {
				rk, vk := key(row[:nr]), key(row[nr:nr+len(p.Fields)])
				rows[rk] = true
				if _, kept := values[vk]; !kept || totals[rk] == "" {
					continue
				}
				n++
				if g, w := cells[rk+vk], key(row[nr+len(p.Fields):]); g != w {
					t.Errorf("cell %s %s: explore %s, direct SQL %s\nexplore: %s", rk, vk, g, w, res.SQL)
				}
			}
			if n != len(cells) || n != len(res.Rows) {
				t.Errorf("%d cells (%d rows), direct SQL has %d:\n%s", len(cells), len(res.Rows), n, body)
			}
			// Without a limit the rows are those with cells.
			if len(p.Rows) == p.AllRows && len(rows) != p.AllRows {
				t.Errorf("%d rows, direct SQL has cells in %d", p.AllRows, len(rows))
			}
			want, err = engine.Query(ctx, tc.totals, 0)
			if err != nil {
				t.Fatalf("%s: %v", tc.totals, err)
			}
			n = 0
			for _, row := range jsonRows(want.Rows) {
				rk := key(row[:nr])
				if totals[rk] == "" {
					continue
				}
				n++
				if g, w := totals[rk], key(row[nr:]); g != w {
					t.Errorf("total of %s: explore %s, direct SQL %s\nexplore: %s", rk, g, w, res.SQL)
				}
			}
			if n != len(totals) {
				t.Errorf("%d rows, direct SQL has %d of them", len(totals), n)
			}
			if tc.order != nil {
				tc.order(t, p)
			}
		})
	}
}

// jsonRows is rows as the API's JSON reads back.
func jsonRows(rows [][]any) [][]any {
	raw, _ := json.Marshal(rows)
	var out [][]any
	json.Unmarshal(raw, &out)
	return out
}

func TestExplorePivotDuckDB(t *testing.T) {
	wh := duckShop(t)
	checkPivots(t, newExploreAPI(t, wh, "").URL, wh)
}

func TestExplorePivotPostgres(t *testing.T) {
	pg := pgShop(t)
	checkPivots(t, newExploreAPI(t, pg, "").URL, pg)
}
