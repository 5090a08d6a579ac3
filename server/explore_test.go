package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-data/sluice/internal/pgtest"
	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// The shop model of package semantic's tests: users, orders, order_items.
const shopModels = "../semantic/testdata/shop"

// shopData is a shop where users have several orders and orders several
// items (some none), an order's user may be missing and a user's country
// unknown: every join fans out or leaves gaps somewhere.
func shopData() []string {
	stmts := []string{
		"CREATE TABLE users (id INTEGER, country VARCHAR, signed_up_at TIMESTAMP)",
		"CREATE TABLE orders (id INTEGER, user_id INTEGER, status VARCHAR, amount DECIMAL(10, 2), created_at TIMESTAMP)",
		"CREATE TABLE order_items (id INTEGER, order_id INTEGER, product VARCHAR, quantity INTEGER)",
	}
	var users, orders, items []string
	for i := 1; i <= 12; i++ {
		country := []string{"'DE'", "'FR'", "'US'", "NULL"}[i%4]
		users = append(users, fmt.Sprintf("(%d, %s, TIMESTAMP '2025-%02d-01 08:00:00')", i, country, i))
	}
	item := 0
	for i := 1; i <= 40; i++ {
		status := []string{"complete", "pending", "cancelled"}[i%3]
		amount := fmt.Sprintf("%d.%02d", i*37%500, i*13%100)
		orders = append(orders, fmt.Sprintf("(%d, %d, '%s', %s, TIMESTAMP '2026-%02d-%02d 10:%02d:00')", i, i*7%13+1, status, amount, 1+i%3, 1+i%27, i))
		for range i % 4 {
			item++
			items = append(items, fmt.Sprintf("(%d, %d, '%s', %d)", item, i, []string{"apron", "bowl", "cup"}[item%3], item%5+1))
		}
	}
	return append(stmts,
		"INSERT INTO users VALUES "+strings.Join(users, ", "),
		"INSERT INTO orders VALUES "+strings.Join(orders, ", "),
		"INSERT INTO order_items VALUES "+strings.Join(items, ", "))
}

// exploreCase is an explore query and the hand-written SQL each of its
// measures must equal: direct queries whose first columns are the query's
// dimensions and whose others are named by cols.
type exploreCase struct {
	name   string
	query  string
	direct []directSQL
}

type directSQL struct {
	sql  string
	cols []string
}

const joined = " FROM orders o LEFT JOIN users u ON o.user_id = u.id "

var exploreCases = []exploreCase{
	{
		name: "by country, cancelled orders left out",
		query: `{"explore": "orders", "fields": ["users.country", "orders.total_revenue", "orders.count", "orders.average_order",
			"orders.completed", "orders.completed_revenue", "order_items.total_quantity", "users.count", "orders.revenue_per_order", "orders.largest_order", "orders.customers"],
			"filters": [{"field": "orders.status", "op": "!=", "value": "cancelled"}]}`,
		direct: []directSQL{
			{"SELECT u.country, SUM(o.amount), COUNT(*), AVG(o.amount), COUNT(CASE WHEN o.status = 'complete' THEN 1 END), SUM(CASE WHEN o.status = 'complete' THEN o.amount END), " +
				"SUM(o.amount) / NULLIF(COUNT(*), 0), MAX(o.amount), COUNT(DISTINCT o.user_id)" + joined + "WHERE o.status <> 'cancelled' GROUP BY 1",
				[]string{"orders.total_revenue", "orders.count", "orders.average_order", "orders.completed", "orders.completed_revenue", "orders.revenue_per_order", "orders.largest_order", "orders.customers"}},
			{"SELECT u.country, SUM(i.quantity)" + joined + "LEFT JOIN order_items i ON i.order_id = o.id WHERE o.status <> 'cancelled' GROUP BY 1",
				[]string{"order_items.total_quantity"}},
			{"SELECT u.country, COUNT(DISTINCT u.id)" + joined + "WHERE o.status <> 'cancelled' GROUP BY 1",
				[]string{"users.count"}},
		},
	},
	{
		name: "by month, two countries",
		query: `{"explore": "orders", "fields": ["orders.created_at_month", "orders.total_revenue", "orders.count", "order_items.total_quantity", "order_items.count", "users.count"],
			"filters": [{"field": "users.country", "op": "in", "values": ["DE", "US"]}], "sorts": [{"field": "orders.created_at_month"}]}`,
		direct: []directSQL{
			{"SELECT date_trunc('month', o.created_at), SUM(o.amount), COUNT(*), COUNT(DISTINCT u.id)" + joined + "WHERE u.country IN ('DE', 'US') GROUP BY 1",
				[]string{"orders.total_revenue", "orders.count", "users.count"}},
			{"SELECT date_trunc('month', o.created_at), SUM(i.quantity), COUNT(i.id)" + joined + "LEFT JOIN order_items i ON i.order_id = o.id WHERE u.country IN ('DE', 'US') GROUP BY 1",
				[]string{"order_items.total_quantity", "order_items.count"}},
		},
	},
	{
		// An order counts once for each product it holds.
		name:  "by product",
		query: `{"explore": "orders", "fields": ["order_items.product", "order_items.total_quantity", "orders.total_revenue", "orders.count"]}`,
		direct: []directSQL{
			{"SELECT i.product, SUM(i.quantity) FROM orders o LEFT JOIN order_items i ON i.order_id = o.id GROUP BY 1", []string{"order_items.total_quantity"}},
			{"SELECT product, SUM(amount), COUNT(*) FROM (SELECT DISTINCT i.product, o.id, o.amount FROM orders o LEFT JOIN order_items i ON i.order_id = o.id) AS d GROUP BY 1",
				[]string{"orders.total_revenue", "orders.count"}},
		},
	},
	{
		name:  "totals",
		query: `{"explore": "orders", "fields": ["orders.total_revenue", "orders.count", "order_items.count", "users.count", "orders.average_order"]}`,
		direct: []directSQL{
			{"SELECT SUM(amount), COUNT(*), AVG(amount) FROM orders", []string{"orders.total_revenue", "orders.count", "orders.average_order"}},
			{"SELECT COUNT(*) FROM order_items", []string{"order_items.count"}},
			{"SELECT COUNT(DISTINCT u.id)" + joined, []string{"users.count"}},
		},
	},
	{
		name: "measure filter, yes/no and time filters",
		query: `{"explore": "orders", "fields": ["users.country", "orders.is_big", "orders.count", "orders.total_revenue"],
			"filters": [{"field": "orders.count", "op": ">=", "value": 2}, {"field": "orders.created_at", "op": "between", "values": ["2026-01-05", "2026-03-20 12:00"]},
			{"field": "order_items.product", "op": "is not null"}]}`,
		direct: []directSQL{
			{"SELECT u.country, o.amount >= 100, COUNT(*), SUM(o.amount)" + joined + "WHERE o.created_at BETWEEN TIMESTAMP '2026-01-05 00:00:00' AND TIMESTAMP '2026-03-20 12:00:00' " +
				"AND o.id IN (SELECT order_id FROM order_items) GROUP BY 1, 2 HAVING COUNT(*) >= 2", []string{"orders.count", "orders.total_revenue"}},
		},
	},
}

// checkExplores runs every case through the API at url and compares each
// number with the direct SQL on engine.
func checkExplores(t *testing.T, url string, engine warehouse.Engine) {
	ctx := context.Background()
	// The data fans out: summed over the joined items, revenue would be
	// inflated.
	plain, err := engine.Query(ctx, "SELECT SUM(amount) FROM orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	inflated, err := engine.Query(ctx, "SELECT SUM(o.amount) FROM orders o LEFT JOIN order_items i ON i.order_id = o.id", 0)
	if err != nil {
		t.Fatal(err)
	}
	if canon(plain.Rows[0][0]) == canon(inflated.Rows[0][0]) {
		t.Fatal("the test data does not fan out")
	}
	for _, tc := range exploreCases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, "POST", url+"/api/v1/explore", tc.query, "")
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			var res ExploreResponse
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			dims := 0
			for _, c := range res.Columns {
				if c.Kind == "dimension" {
					dims++
				}
			}
			got := map[string]map[string]string{}
			for _, row := range res.Rows {
				got[key(row[:dims])] = map[string]string{}
				for i, c := range res.Columns[dims:] {
					got[key(row[:dims])][c.Name] = canon(row[dims+i])
				}
			}
			if len(got) == 0 {
				t.Fatalf("no rows: %s", body)
			}
			for _, d := range tc.direct {
				want, err := engine.Query(ctx, d.sql, 0)
				if err != nil {
					t.Fatalf("%s: %v", d.sql, err)
				}
				if len(want.Rows) != len(got) {
					t.Errorf("%d groups, direct SQL has %d:\n%s\n%s", len(got), len(want.Rows), res.SQL, d.sql)
				}
				raw, _ := json.Marshal(want.Rows)
				var rows [][]any
				json.Unmarshal(raw, &rows)
				for _, row := range rows {
					k := key(row[:dims])
					for i, col := range d.cols {
						if g, w := got[k][col], canon(row[dims+i]); g != w {
							t.Errorf("%s at %s: explore %s, direct SQL %s\nexplore: %s\ndirect:  %s", col, k, g, w, res.SQL, d.sql)
						}
					}
				}
			}
		})
	}
}

func key(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = canon(v)
	}
	return "[" + strings.Join(parts, " | ") + "]"
}

// canon writes a value so that engines' and JSON's forms of one number
// agree: 12, "12" and 12.0 are 12; floats to 9 significant digits (a ratio
// computed in DOUBLE).
func canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case float64:
		return strconv.FormatFloat(x, 'g', 9, 64)
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return strconv.FormatFloat(f, 'g', 9, 64)
		}
		return x
	}
	return fmt.Sprint(v)
}

// newExploreAPI serves the shop model over engine.
func newExploreAPI(t *testing.T, engine warehouse.Engine, token string) *httptest.Server {
	t.Helper()
	m, err := semantic.Load(shopModels)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(Options{Warehouse: engine, Token: token, Models: func() *semantic.Model { return m }}))
	t.Cleanup(srv.Close)
	return srv
}

func duckShop(t *testing.T) *warehouse.Warehouse {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "warehouse.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shopData() {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	db.Close()
	wh, err := warehouse.Open(context.Background(), path, filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	return wh
}

func TestExploreDuckDB(t *testing.T) {
	wh := duckShop(t)
	checkExplores(t, newExploreAPI(t, wh, "").URL, wh)
}

func TestExplorePostgres(t *testing.T) {
	pg := pgShop(t)
	checkExplores(t, newExploreAPI(t, pg, "").URL, pg)
}

// pgShop loads the shop's tables into the test PostgreSQL and opens it as
// the engine.
func pgShop(t *testing.T) *warehouse.Postgres {
	t.Helper()
	url := pgtest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shopData() {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	conn.Close(ctx)
	pg, err := warehouse.OpenPostgres(ctx, url, warehouse.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	return pg
}

// Queries the model cannot answer get a 400 that names the part of the
// query; values never become SQL.
func TestExploreBadQueries(t *testing.T) {
	wh := duckShop(t)
	url := newExploreAPI(t, wh, "").URL + "/api/v1/explore"
	for _, tc := range []struct{ query, want string }{
		{`{"explore": "orderz", "fields": ["orders.count"]}`, `explore: no explore "orderz" (did you mean orders?)`},
		{`{"explore": "orders", "fields": []}`, "fields: choose at least one field"},
		{`{"explore": "orders", "fields": ["users.country", "orders.revenu"]}`, `fields[1]: unknown field "orders.revenu" in explore orders`},
		{`{"explore": "orders", "fields": ["customers.country"]}`, `fields[0]: unknown field "customers.country"`},
		{`{"explore": "orders", "fields": ["users.country; DROP TABLE users"]}`, `fields[0]: unknown field`},
		{`{"explore": "orders", "fields": ["orders.count", "users.country", "orders.count"]}`, `fields[2]: orders.count is selected twice`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.state", "op": "=", "value": "x"}]}`, `filters[0].field: unknown field "orders.state" in explore orders (did you mean orders.status?)`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.status", "op": "like", "value": "x"}]}`, `filters[0]: unknown operator "like"`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.amount", "op": ">", "value": "lots"}]}`, `filters[0]: values[0]: "lots" is not a number`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.amount", "op": ">", "value": "1; DROP TABLE users"}]}`, `is not a number`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.created_at", "op": ">", "value": "yesterday"}]}`, `filters[0]: values[0]: "yesterday" is not a time`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.status", "op": "=", "value": {"a": 1}}]}`, `filters[0]: values[0]: an object is not a text`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.is_big", "op": "=", "value": "maybe"}]}`, `is not yes/no`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.count", "op": "between", "values": [1]}]}`, `filters[0]: between takes 2 value(s), not 1`},
		{`{"explore": "orders", "fields": ["orders.count"], "filters": [{"field": "orders.amount", "op": "contains", "value": "1"}]}`, `contains applies to text`},
		{`{"explore": "orders", "fields": ["orders.count"], "sorts": [{"field": "orders.total_revenue"}]}`, `sorts[0].field: "orders.total_revenue" is not among the selected fields`},
		{`{"explore": "orders", "fields": ["orders.count"], "limit": 1000000}`, `limit: 1000000 is not a limit`},
		{`{"explore": "orders", "fields": ["orders.count"], "colour": "red"}`, `unknown field "colour"`},
		{`{"explore": "orders", "fields": ["users.country", "orders.count"], "pivots": ["orders.status"]}`, `pivots[0]: "orders.status" is not among the selected fields: pivot on one of the selected dimensions (users.country)`},
		{`{"explore": "orders", "fields": ["users.country", "orders.count"], "pivots": ["orders.count"]}`, `pivots[0]: orders.count is a measure: pivot on a dimension`},
		{`{"explore": "orders", "fields": ["users.country", "orders.status", "orders.count"], "pivots": ["users.country", "users.country"]}`, `pivots[1]: users.country is pivoted twice`},
		{`{"explore": "orders", "fields": ["users.country", "orders.status"], "pivots": ["orders.status"]}`, `pivots: a pivot shows measures under each value of orders.status: select a measure`},
		{`{"explore": "orders", "fields": ["users.country", "orders.status", "orders.count"], "pivots": ["orders.status"], "sorts": [{"field": "orders.total_revenue"}]}`, `sorts[0].field: "orders.total_revenue" is not among the selected fields`},
		{`{"explore": "orders", "fields": ["users.country", "orders.status", "orders.count"], "pivots": ["orders.status"], "filters": [{"field": "orders.count", "op": ">", "value": "x"}]}`, `filters[0]: values[0]: "x" is not a number`},
	} {
		code, body := call(t, "POST", url, tc.query, "")
		if code != http.StatusBadRequest || !strings.Contains(body, strings.ReplaceAll(tc.want, `"`, `\"`)) {
			t.Errorf("%s:\n got %d %s\nwant 400 with %s", tc.query, code, body, tc.want)
		}
	}
	// Text that looks like SQL is only ever a value.
	for _, evil := range []string{`'; DROP TABLE users; --`, `\'; DROP TABLE users; --`, `x' OR '1'='1`} {
		q, _ := json.Marshal(map[string]any{"explore": "orders", "fields": []string{"users.country", "orders.count"},
			"filters": []map[string]any{{"field": "users.country", "op": "in", "values": []string{evil, "DE"}}, {"field": "orders.status", "op": "contains", "value": evil}}})
		code, body := call(t, "POST", url, string(q), "")
		if code != http.StatusOK || !strings.Contains(body, `"rows":[]`) {
			t.Errorf("%s: %d %s", evil, code, body)
		}
		var res ExploreResponse
		json.Unmarshal([]byte(body), &res)
		if len(res.Rows) != 0 {
			t.Errorf("%s matched rows: %v", evil, res.Rows)
		}
	}
	if res, err := wh.Query(context.Background(), "SELECT count(*) FROM users", 0); err != nil || fmt.Sprint(res.Rows) != "[[12]]" {
		t.Errorf("users after the injection attempts: %v %v", res, err)
	}
}

func TestExploreDryRunAndList(t *testing.T) {
	wh := duckShop(t)
	srv := newExploreAPI(t, wh, "s3cret")
	q := `{"explore": "orders", "fields": ["users.country", "orders.total_revenue"], "dry_run": true}`
	if code, _ := call(t, "POST", srv.URL+"/api/v1/explore", q, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	code, body := call(t, "POST", srv.URL+"/api/v1/explore", q, "s3cret")
	var res ExploreResponse
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusOK || err != nil {
		t.Fatalf("%d %s", code, body)
	}
	if !strings.HasPrefix(res.SQL, "SELECT ") || strings.Contains(body, `"rows"`) || len(res.Columns) != 2 || res.Columns[1] != (semantic.Column{Name: "orders.total_revenue", Label: "Orders Total Revenue", Kind: "measure", Type: "number"}) {
		t.Errorf("dry run: %s", body)
	}

	code, body = call(t, "GET", srv.URL+"/api/v1/explores", "", "s3cret")
	var list ExploresResponse
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil || len(list.Explores) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	e := list.Explores[0]
	var views, fields []string
	for _, v := range e.Views {
		views = append(views, v.Name+":"+v.Relationship)
		for _, f := range v.Fields {
			fields = append(fields, f.Name)
		}
	}
	if e.Name != "orders" || e.Model != "shop" || e.Label != "Orders, items and customers" || fmt.Sprint(views) != "[orders: users:many_to_one order_items:one_to_many]" {
		t.Errorf("explore: %+v", e)
	}
	for _, want := range []string{"users.country", "orders.created_at", "orders.created_at_month", "orders.total_revenue", "order_items.total_quantity"} {
		if !slices.Contains(fields, want) {
			t.Errorf("field %s is missing: %v", want, fields)
		}
	}
	if country := e.Views[1].Fields[1]; country.Label != "Country" || country.Type != "string" || country.Kind != "dimension" {
		t.Errorf("users.country: %+v", country)
	}
}

// Without models the list is empty and queries say where models come from.
func TestExploreWithoutModels(t *testing.T) {
	srv := newAPI(t, Options{})
	if code, body := call(t, "GET", srv.URL+"/api/v1/explores", "", ""); code != http.StatusOK || !strings.Contains(body, `"explores":[]`) {
		t.Errorf("%d %s", code, body)
	}
	if code, body := call(t, "POST", srv.URL+"/api/v1/explore", `{"explore": "x", "fields": ["x.y"]}`, ""); code != http.StatusNotFound || !strings.Contains(body, "semantic.models") {
		t.Errorf("%d %s", code, body)
	}
}
