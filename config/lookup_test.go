package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLookupErrors(t *testing.T) {
	src := func(lookup string) string {
		return "pipelines:\n  p:\n    from: events\n    steps:\n      - lookup: " + lookup + "\n    to: {stream: out}\n"
	}
	const at = "pipelines.p.steps[0].lookup"
	for _, tc := range []struct {
		name, lookup string
		want         wantErr
	}{
		{"file and table", "{file: c.csv, table: customers, key: k}",
			wantErr{5, 17, at, at + " has both file and table", "keep file (a CSV file) or table"}},
		{"neither", "{key: k}",
			wantErr{5, 17, at, at + " needs file (a CSV file) or table (a warehouse table)", "lookup: {table: customers, key: user_id, column: id}"}},
		{"no key", "{table: customers}",
			wantErr{5, 17, at, at + " needs key", ""}},
		{"missing file", "{file: /no/such/file.csv, key: k}",
			wantErr{5, 24, at + ".file", at + ".file: stat /no/such/file.csv", "a CSV file with a header row"}},
		{"table name", "{table: public.customers, key: k}",
			wantErr{5, 25, at + ".table", at + `.table "public.customers": use letters, digits and _`, "a table or view of the warehouse"}},
		{"column name", "{table: customers, key: user_id, column: customer id}",
			wantErr{5, 58, at + ".column", at + `.column "customer id": use letters, digits and _`, "a column of table customers"}},
		{"key as column name", "{table: customers, key: user-id}",
			wantErr{5, 41, at + ".key", at + `.key "user-id" is also the table's column to match`, "column: NAME"}},
		{"field name", "{table: customers, key: k, fields: [plan, \"a;b\"]}",
			wantErr{5, 52, at + ".fields", at + `.fields[1] "a;b": use letters, digits and _`, "columns of table customers"}},
		{"reload", "{table: customers, key: k, reload: 10ms}",
			wantErr{5, 52, at + ".reload", at + ".reload is 10ms; it must be at least 1s", "the default is 30s for a table, 5s for a file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, src(tc.lookup), []wantErr{tc.want})
		})
	}

	// A CSV file's columns are not SQL: any header is fine.
	csv := filepath.Join(t.TempDir(), "c.csv")
	os.WriteFile(csv, []byte("user id,plan\n"), 0o644)
	if _, err := Parse("sluice.yaml", []byte(src(`{file: "`+csv+`", key: user-id, column: "user id"}`))); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("sluice.yaml", []byte(src("{table: customers, key: user_id, column: id, fields: [plan, country], reload: 1m}")))
	if err != nil {
		t.Fatal(err)
	}
	lk := c.Pipelines["p"].Steps[0].Lookup
	if lk.Table != "customers" || lk.Column != "id" || len(lk.Fields) != 2 || lk.Reload != Duration(time.Minute) {
		t.Errorf("decoded %+v", lk)
	}
}

func TestExprFields(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string
		all  bool
	}{
		{`event == "page_view" && country in ["DE", "FR"]`, "[event country]", false},
		{`lower(device.class) + string(len(items))`, "[device items]", false},
		{`all(items, {.price > min_price})`, "[items min_price]", false},
		{`let x = a; x + b`, "[a x b]", false},
		{`$env["weird name"] != nil`, "[$env]", true},
	} {
		p, err := CompileExpr(tc.src, false)
		if err != nil {
			t.Fatal(err)
		}
		got, all := ExprFields(p)
		if fmt.Sprint(got) != tc.want || all != tc.all {
			t.Errorf("%s: %v %v, want %s %v", tc.src, got, all, tc.want, tc.all)
		}
	}
}
