package semantic

import (
	"strings"
	"testing"
)

// Any file either loads or gives Errors, and a model that loads compiles
// a query of every field of every explore without panicking.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"views:\n  o:\n    table: o\n    dimensions:\n      id: {type: number, primary_key: true}\n      at: {type: time}\n    measures:\n      n: {type: count}\n      r: {type: number, sql: '${n} / 2'}\nexplores:\n  o: {}\n",
		"views:\n  a: {table: a, dimensions: {id: {primary_key: true}, b_id: {}}, measures: {s: {type: sum, sql: '${TABLE}.x'}}}\n  b: {sql: 'SELECT 1 AS id', dimensions: {id: {sql: '${TABLE}.id'}}, measures: {c: {type: count_distinct, field: id}}}\n" +
			"explores:\n  a:\n    joins:\n      b: {sql_on: '${a.b_id} = ${b.id}', relationship: one_to_many, type: inner}\n",
		"views: {o: {table: o, dimensions: {s: {}}, measures: {d: {type: count, filters: [{field: s, op: in, values: [a, b]}]}}}}",
		"views: {o: {table: o}}\nexplores: {o: {}}\n", "explores: [1, 2]", "views:\n  o: &x {table: t}\n  p: *x\n", "{", "views:\n\t- a",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yml", data)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("not Errors: %T %v", err, err)
			}
			return
		}
		for _, e := range m.Describe() {
			var fields []string
			for _, v := range e.Views {
				for _, fd := range v.Fields {
					fields = append(fields, fd.Name)
				}
			}
			for _, d := range []Dialect{DuckDB, Postgres} {
				if _, err := m.Compile(Query{Explore: e.Name, Fields: fields}, d); err != nil {
					if _, ok := err.(*QueryError); !ok {
						t.Fatalf("%T %v", err, err)
					}
				}
			}
		}
	})
}

// Whatever a filter's value, it reaches the SQL as one literal that means
// exactly that value.
func FuzzFilterValue(f *testing.F) {
	m, err := Load("testdata/shop")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"complete", `'; DROP TABLE users; --`, `\'`, "it''s", "x' OR '1'='1", "", "\x00", "\xff"} {
		f.Add("=", seed)
		f.Add("contains", seed)
	}
	f.Add("between", "1")
	f.Fuzz(func(t *testing.T, op, value string) {
		for _, d := range []Dialect{DuckDB, Postgres} {
			c, err := m.Compile(Query{Explore: "orders", Fields: []string{"orders.count"}, Filters: []Filter{{Field: "orders.status", Op: op, Value: value}}}, d)
			if err != nil {
				if _, ok := err.(*QueryError); !ok {
					t.Fatalf("%T %v", err, err)
				}
				continue
			}
			lit, _ := quoteString(d, value)
			if !strings.Contains(c.SQL, lit) {
				t.Fatalf("the value's literal %s is not in %s", lit, c.SQL)
			}
			body := strings.TrimPrefix(lit, "E")
			body = body[1 : len(body)-1]
			if d == Postgres && strings.HasPrefix(lit, "E") {
				body = strings.ReplaceAll(body, `\\`, `\`)
			}
			if strings.ReplaceAll(body, "''", "'") != value || strings.Contains(strings.ReplaceAll(body, "''", ""), "'") {
				t.Fatalf("literal %s does not hold %q", lit, value)
			}
		}
	})
}
