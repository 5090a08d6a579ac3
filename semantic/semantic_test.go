package semantic

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func loadShop(t testing.TB) *Model {
	t.Helper()
	m, err := Load("testdata/shop")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every problem of a model file is reported with file:line:column, the
// field's path and what is wrong.
func TestModelErrors(t *testing.T) {
	const view = "views:\n  orders:\n    table: orders\n    dimensions:\n      id: {type: number, primary_key: true}\n      amount: {type: number}\n      status: {}\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"sum without field", view + "    measures:\n      revenue: {type: sum}\n",
			[]string{"models/shop.yml:9:7: views.orders.measures.revenue: sum needs a sql or field"}},
		{"unknown field in a measure", view + "    measures:\n      revenue: {type: sum, field: amont}\n",
			[]string{`models/shop.yml:9:35: views.orders.measures.revenue.field: view orders has no dimension "amont" (did you mean amount?)`}},
		{"unknown key", view + "    measures:\n      revenue: {type: sum, field: amount, formt: usd}\n",
			[]string{`models/shop.yml:9:43: views.orders.measures.revenue.formt: unknown field "formt" (the fields are type, sql, field, label, description, hidden, filters)`}},
		{"bad types", "views:\n  orders:\n    table: orders\n    dimensions:\n      id: {type: integer}\n    measures:\n      n: {type: total}\n",
			[]string{`models/shop.yml:5:18: views.orders.dimensions.id.type: unknown dimension type "integer": the types are string, number, time, yesno`,
				`models/shop.yml:7:17: views.orders.measures.n.type: unknown measure type "total"`}},
		{"no table", "views:\n  orders:\n    dimensions:\n      id: {}\n",
			[]string{"models/shop.yml:2:3: views.orders: a view needs table (a table's name) or sql (a SELECT)"}},
		{"duplicate field through a time frame", "views:\n  o:\n    table: o\n    dimensions:\n      at: {type: time}\n      at_day: {type: time}\n",
			[]string{"models/shop.yml:6:7: views.o.dimensions.at_day: field at_day is defined twice in view o"}},
		{"duplicate key", view + view[len("views:\n"):],
			[]string{`models/shop.yml:8:3: invalid YAML: mapping key "orders" already defined at [2:3]`}},
		{"join to an unknown view", view + "explores:\n  orders:\n    joins:\n      users: {sql_on: '${orders.id} = ${users.id}'}\n",
			[]string{`models/shop.yml:11:7: explores.orders.joins.users: no view "users"`}},
		{"explore of an unknown view", "explores:\n  orders: {view: ordrs}\n",
			[]string{`models/shop.yml:2:18: explores.orders.view: no view "ordrs"`}},
		{"sql_on to an unknown field", view + "  items:\n    table: items\n    dimensions:\n      order_id: {type: number}\nexplores:\n  orders:\n    joins:\n      items: {sql_on: '${orders.id} = ${items.order}', relationship: one_to_many}\n",
			[]string{`models/shop.yml:15:23: explores.orders.joins.items.sql_on: ${items.order}: view items has no dimension "order" (did you mean order_id?)`}},
		{"bad relationship", view + "  items:\n    table: items\n    dimensions:\n      order_id: {}\nexplores:\n  orders:\n    joins:\n      items: {sql_on: '${orders.id} = ${items.order_id}', relationship: one_to_several}\n",
			[]string{`explores.orders.joins.items.relationship: unknown relationship "one_to_several"`}},
		{"fan-out without a primary key", "views:\n  orders:\n    table: orders\n    dimensions:\n      id: {}\n      amount: {type: number}\n    measures:\n      revenue: {type: sum, field: amount}\n" +
			"  items:\n    table: items\n    dimensions:\n      order_id: {}\nexplores:\n  orders:\n    joins:\n      items:\n        sql_on: ${orders.id} = ${items.order_id}\n        relationship: one_to_many\n",
			[]string{"models/shop.yml:18:23: explores.orders.joins.items.relationship: items one_to_many repeats the rows of orders, whose measures revenue need view orders to have a primary key"}},
		{"ratio of an unknown measure", view + "    measures:\n      count: {type: count}\n      avg: {type: number, sql: '${revenue} / ${count}'}\n",
			[]string{`models/shop.yml:10:32: views.orders.measures.avg.sql: ${revenue}: view orders has no measure "revenue"`}},
		{"filtered measure on an unknown field", view + "    measures:\n      done: {type: count, filters: [{field: state, value: complete}]}\n",
			[]string{`views.orders.measures.done.filters[0].field: view orders has no dimension "state" (did you mean status?)`}},
		{"filtered measure with a bad value", view + "    measures:\n      big: {type: count, filters: [{field: amount, op: '>', value: lots}]}\n",
			[]string{`models/shop.yml:9:68: views.orders.measures.big.filters[0].value: "lots" is not a number`}},
		{"dimensions in a circle", "views:\n  o:\n    table: o\n    dimensions:\n      a: {sql: '${b} + 1'}\n      b: {sql: '${a} + 1'}\n",
			[]string{"views.o.dimensions.a.sql: the dimensions refer to each other in a circle: a -> b -> a", "views.o.dimensions.b.sql: the dimensions refer to each other in a circle: b -> a -> b"}},
		{"unclosed reference", "views:\n  o:\n    table: o\n    dimensions:\n      a: {sql: '${TABLE.a'}\n",
			[]string{"models/shop.yml:5:16: views.o.dimensions.a.sql: a ${ is not closed"}},
		{"not a mapping", "- views\n", []string{"models/shop.yml:1:1: a model file is a mapping with views: and explores:"}},
		{"a list for a mapping", "views: [orders]\n", []string{"models/shop.yml:1:8: views: must be a mapping of names to definitions, not a list"}},
		{"bad name", "views:\n  my-view: {table: t}\n", []string{`models/shop.yml:2:3: views.my-view: "my-view" is not a usable name`}},
		{"timeframes of a string", "views:\n  o:\n    table: o\n    dimensions:\n      a: {timeframes: [day]}\n",
			[]string{"views.o.dimensions.a.timeframes: only a time dimension has timeframes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFS(fstest.MapFS{"shop.yml": {Data: []byte(tc.src)}}, "models")
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want Errors", err)
			}
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, want := range tc.want {
				if !strings.Contains(errs[i].Error(), want) {
					t.Errorf("error %d:\n got %s\nwant %s", i, errs[i], want)
				}
			}
		})
	}
}

// Views and explores of several files form one model; a name given twice
// is reported in the second file.
func TestModelAcrossFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"a/users.yml":  {Data: []byte("views:\n  users:\n    table: users\n    dimensions:\n      id: {type: number, primary_key: true}\n    measures:\n      count: {type: count}\n")},
		"orders.yaml":  {Data: []byte("views:\n  orders:\n    table: orders\n    dimensions:\n      user_id: {type: number}\nexplores:\n  orders:\n    joins:\n      users: {sql_on: '${orders.user_id} = ${users.id}'}\n")},
		"README.md":    {Data: []byte("not a model")},
		"b/again.yaml": {Data: []byte("views:\n  users: {table: people}\n")},
	}
	_, err := LoadFS(fsys, "models")
	if err == nil || err.Error() != "models/b/again.yaml:2:3: views.users: view users is defined twice (also in models/a/users.yml)" {
		t.Fatalf("got %v", err)
	}
	delete(fsys, "b/again.yaml")
	m, err := LoadFS(fsys, "models")
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Compile(Query{Explore: "orders", Fields: []string{"users.count"}}, DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	// users is on the "one" side of many_to_one: its rows repeat.
	if !strings.Contains(c.SQL, `"users"."id" AS "k"`) || !strings.Contains(c.SQL, `GROUP BY "k"`) {
		t.Errorf("users.count over orders is not deduplicated:\n%s", c.SQL)
	}
}

// Which joins a query needs, and which views' rows they repeat.
func TestCompileJoinsAndFanOut(t *testing.T) {
	m := loadShop(t)
	for _, tc := range []struct {
		fields          []string
		filters         []Filter
		joins, distinct []string
	}{
		{fields: []string{"orders.status", "orders.total_revenue"}},
		{fields: []string{"users.country", "orders.total_revenue"}, joins: []string{"users"}},
		{fields: []string{"orders.total_revenue"}, filters: []Filter{{Field: "order_items.product", Value: "cup"}}, joins: []string{"order_items"}, distinct: []string{"orders"}},
		{fields: []string{"users.country", "order_items.total_quantity"}, joins: []string{"users", "order_items"}},
		{fields: []string{"users.count", "orders.largest_order", "orders.customers", "order_items.count"}, joins: []string{"users", "order_items"}, distinct: []string{"users"}},
		{fields: []string{"orders.revenue_per_order", "order_items.count"}, joins: []string{"order_items"}, distinct: []string{"orders"}},
		{fields: []string{"users.count", "orders.count", "order_items.count"}, joins: []string{"users", "order_items"}, distinct: []string{"users", "orders"}},
	} {
		c, err := m.Compile(Query{Explore: "orders", Fields: tc.fields, Filters: tc.filters}, DuckDB)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range []string{"users", "order_items"} {
			if got, want := strings.Contains(c.SQL, `JOIN "`+j+`"`), contains(tc.joins, j); got != want {
				t.Errorf("%v: join %s: %v, want %v\n%s", tc.fields, j, got, want, c.SQL)
			}
		}
		for _, v := range []string{"orders", "users", "order_items"} {
			once := strings.Contains(c.SQL, `"first_`+v+`"`) || strings.Contains(c.SQL, `"`+v+`"."id" AS "k"`)
			if got, want := once, contains(tc.distinct, v); got != want {
				t.Errorf("%v: rows of %s counted once: %v, want %v\n%s", tc.fields, v, got, want, c.SQL)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The engines' differences: string literals, and everything else alike.
func TestCompileDialects(t *testing.T) {
	m := loadShop(t)
	q := Query{Explore: "orders", Fields: []string{"orders.created_at_week", "orders.count"},
		Filters: []Filter{{Field: "orders.status", Op: "in", Values: []any{`it's`, `back\slash`}}, {Field: "orders.created_at", Op: ">=", Value: "2026-11-01"}},
		Sorts:   []Sort{{Field: "orders.created_at_week", Desc: true}}, Limit: 10}
	duck, err := m.Compile(q, DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := m.Compile(q, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	const want = `SELECT date_trunc('week', "orders"."created_at") AS "orders.created_at_week", COUNT("orders"."id") AS "orders.count" FROM "orders" AS "orders" ` +
		`WHERE "orders"."status" IN ('it''s', %s) AND "orders"."created_at" >= TIMESTAMP '2026-11-01 00:00:00' GROUP BY 1 ORDER BY 1 DESC NULLS LAST LIMIT 10`
	if w := strings.Replace(want, "%s", `'back\slash'`, 1); duck.SQL != w {
		t.Errorf("DuckDB:\n got %s\nwant %s", duck.SQL, w)
	}
	if w := strings.Replace(want, "%s", `E'back\\slash'`, 1); pg.SQL != w {
		t.Errorf("PostgreSQL:\n got %s\nwant %s", pg.SQL, w)
	}
}

func BenchmarkCompile(b *testing.B) {
	m := loadShop(b)
	for _, bc := range []struct {
		name string
		q    Query
	}{
		{"plain", Query{Explore: "orders", Fields: []string{"orders.created_at_month", "orders.status", "orders.total_revenue", "orders.count"},
			Filters: []Filter{{Field: "orders.created_at", Op: ">=", Value: "2026-01-01"}}, Sorts: []Sort{{Field: "orders.total_revenue", Desc: true}}, Limit: 100}},
		{"fan-out", Query{Explore: "orders", Fields: []string{"users.country", "orders.created_at_month", "orders.total_revenue", "orders.count", "order_items.total_quantity", "users.count", "orders.revenue_per_order"},
			Filters: []Filter{{Field: "orders.status", Op: "in", Values: []any{"complete", "pending"}}, {Field: "orders.count", Op: ">", Value: 1.0}}, Limit: 500}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := m.Compile(bc.q, Postgres); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		loadShop(b)
	}
}

// One view joined twice under two names: each join is a table alias of its
// own, and fields name the join.
func TestJoinSameViewTwice(t *testing.T) {
	src := `views:
  transfers:
    table: transfers
    dimensions:
      id: {type: number, primary_key: true}
      from_id: {type: number}
      to_id: {type: number}
      amount: {type: number}
    measures:
      total: {type: sum, field: amount}
  accounts:
    table: bank.accounts
    dimensions:
      id: {type: number, primary_key: true}
      country: {}
    measures:
      count: {type: count}
explores:
  transfers:
    joins:
      sender: {view: accounts, sql_on: '${transfers.from_id} = ${sender.id}'}
      receiver: {view: accounts, sql_on: '${transfers.to_id} = ${receiver.id}', relationship: many_to_one, type: inner}
`
	m, err := Parse("bank.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Compile(Query{Explore: "transfers", Fields: []string{"sender.country", "receiver.country", "transfers.total", "receiver.count"}}, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`LEFT JOIN "bank"."accounts" AS "sender" ON "transfers"."from_id" = "sender"."id"`,
		`INNER JOIN "bank"."accounts" AS "receiver" ON "transfers"."to_id" = "receiver"."id"`,
		`"sender"."country" AS "d0", "receiver"."country" AS "d1"`,
		`"receiver"."id" AS "k"`,
		`"groups" AS (SELECT "d0", "d1", SUM("m0") AS "p0", MIN("m1") AS "p1" FROM "rows" GROUP BY "k", "d0", "d1")`,
		`SUM("p0") AS "transfers.total", COUNT("p1") AS "receiver.count" FROM "groups" GROUP BY 1, 2`,
	} {
		if !strings.Contains(c.SQL, want) {
			t.Errorf("SQL lacks %s:\n%s", want, c.SQL)
		}
	}
	if c.Columns[1].Label != "Receiver Country" {
		t.Errorf("columns: %+v", c.Columns)
	}
}

// "in the past" turns into a fixed time counted back from now.
func TestFilterInThePast(t *testing.T) {
	m := loadShop(t)
	c, err := m.Compile(Query{Explore: "orders", Fields: []string{"orders.count"}, Filters: []Filter{{Field: "orders.created_at", Op: "in the past", Value: "7 days"}}}, Postgres)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(c.SQL, `"orders"."created_at" >= TIMESTAMP '`)
	lit, _, _ = strings.Cut(lit, "'")
	since, err := time.Parse("2006-01-02 15:04:05.999999", lit)
	if err != nil {
		t.Fatalf("%v in %s", err, c.SQL)
	}
	if d := time.Since(since); d < 7*24*time.Hour || d > 8*24*time.Hour {
		t.Errorf("7 days back is %s, %s ago", since, d)
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Field: "orders.created_at", Op: "in the past", Value: "a while"}, `filters[0]: values[0]: "a while" is not a span of time`},
		{Filter{Field: "orders.created_at", Op: "in the past", Value: "3 fortnights"}, `is not a span of time`},
		{Filter{Field: "orders.status", Op: "in the past", Value: "1 day"}, `in the past applies to times`},
	} {
		if _, err := m.Compile(Query{Explore: "orders", Fields: []string{"orders.count"}, Filters: []Filter{tc.f}}, DuckDB); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %s", tc.f, err, tc.want)
		}
	}
	for _, v := range []string{"1 minute", "30 minutes", "24 hours", "1 day", "2 weeks", "3 months", "1 year"} {
		if _, err := pastStart(v, time.Now()); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// CompileAt at the same now gives the same SQL (a cache's key), and
// Window is the shortest "in the past" span.
func TestCompileAtAndWindow(t *testing.T) {
	m := loadShop(t)
	q := Query{Explore: "orders", Fields: []string{"orders.count"}, Filters: []Filter{
		{Field: "orders.created_at", Op: "in the past", Value: "7 days"},
		{Field: "users.signed_up_at", Op: "in the past", Value: "90 minutes"},
	}}
	epoch := time.Unix(0, 0)
	a, err := m.CompileAt(q, DuckDB, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.CompileAt(q, DuckDB, epoch)
	later, _ := m.CompileAt(q, DuckDB, epoch.Add(time.Second))
	if a.SQL != b.SQL || a.SQL == later.SQL {
		t.Errorf("same now: same SQL %v; a second later: other SQL %v", a.SQL == b.SQL, a.SQL != later.SQL)
	}
	if a.Window != 90*time.Minute {
		t.Errorf("window %s, want 1h30m", a.Window)
	}
	if c, _ := m.CompileAt(Query{Explore: "orders", Fields: []string{"orders.count"}}, DuckDB, epoch); c.Window != 0 {
		t.Errorf("no relative filter: window %s, want 0", c.Window)
	}
}

// A number measure may combine measures of other views, in explores that
// join them.
func TestMeasureOfOtherViews(t *testing.T) {
	src := `views:
  orders:
    table: orders
    dimensions:
      id: {type: number, primary_key: true}
      user_id: {type: number}
      amount: {type: number}
    measures:
      revenue: {type: sum, field: amount}
      per_user: {type: number, sql: '${revenue} / NULLIF(${users.count}, 0)'}
  users:
    table: users
    dimensions:
      id: {type: number, primary_key: true}
    measures:
      count: {type: count}
explores:
  orders:
    joins:
      users: {sql_on: '${orders.user_id} = ${users.id}'}
  lonely_orders: {view: orders}
  two_ways:
    view: orders
    joins:
      buyer: {view: users, sql_on: '${orders.user_id} = ${buyer.id}'}
      seller: {view: users, sql_on: '${orders.user_id} = ${seller.id}'}
`
	m, err := Parse("shop.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Compile(Query{Explore: "orders", Fields: []string{"orders.per_user"}}, DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	// users joined for the measure, its rows counted once.
	if !strings.Contains(c.SQL, `LEFT JOIN "users"`) || !strings.Contains(c.SQL, `(SUM("p0") / NULLIF(COUNT("p1"), 0)) AS "orders.per_user"`) {
		t.Errorf("SQL:\n%s", c.SQL)
	}
	for explore, want := range map[string]string{
		"lonely_orders": "fields: orders.per_user uses ${users.count}, and explore lonely_orders does not join view users",
		"two_ways":      "explore two_ways joins view users as buyer and seller",
	} {
		if _, err := m.Compile(Query{Explore: explore, Fields: []string{"orders.per_user"}}, DuckDB); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", explore, err, want)
		}
	}
	// Explores list only the measures they can answer.
	for _, e := range m.Describe() {
		var fields []string
		for _, f := range e.Views[0].Fields {
			fields = append(fields, f.Name)
		}
		want := "[orders.id orders.user_id orders.amount orders.revenue orders.per_user]"
		if e.Name != "orders" {
			want = "[orders.id orders.user_id orders.amount orders.revenue]"
		}
		if fmt.Sprint(fields) != want {
			t.Errorf("explore %s lists %v, want %s", e.Name, fields, want)
		}
	}
	_, err = Parse("shop.yml", []byte(strings.Replace(src, "${users.count}", "${people.count}", 1)))
	if err == nil || !strings.Contains(err.Error(), `shop.yml:10:37: views.orders.measures.per_user.sql: ${people.count}: no view "people"`) {
		t.Errorf("unknown view: %v", err)
	}
	_, err = Parse("shop.yml", []byte(strings.Replace(src, "${users.count}", "${users.total}", 1)))
	if err == nil || !strings.Contains(err.Error(), `${users.total}: view users has no measure "total"`) {
		t.Errorf("unknown measure: %v", err)
	}
}
