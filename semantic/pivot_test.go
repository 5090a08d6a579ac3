package semantic

import (
	"fmt"
	"strings"
	"testing"
)

// Pivoted makes the table from the SQL's answer: cells under their
// values, null where a row has none, totals; a row cut short by a
// server's row limit (no totals yet) is left out.
func TestPivoted(t *testing.T) {
	c, err := loadShop(t).Compile(Query{Explore: "orders", Fields: []string{"orders.status", "users.country", "orders.count", "orders.total_revenue"}, Pivots: []string{"users.country"}}, DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pivot == nil || c.Limit != DefaultLimit*(MaxPivotValues+1) || !strings.HasPrefix(c.SQL, `WITH "pivot_cells" AS (SELECT `) {
		t.Fatalf("%+v", c)
	}
	// status, country, count, revenue, total?, value, rows, values
	rows := [][]any{
		{"complete", "DE", int64(2), "10.50", int32(0), int64(1), int64(3), int64(2)},
		{"complete", "FR", int64(1), "3.00", int32(0), int64(2), int64(3), int64(2)},
		{"complete", nil, int64(3), "13.50", int32(1), nil, int64(3), int64(2)},
		{"pending", "FR", int64(4), "8.00", int32(0), int64(2), int64(3), int64(2)},
		{"pending", nil, int64(4), "8.00", int32(1), nil, int64(3), int64(2)},
		{"cancelled", "DE", int64(1), "1.00", int32(0), int64(1), int64(3), int64(2)},
	}
	cells, p := c.Pivoted(rows)
	got := fmt.Sprint(p.Fields, p.Values, p.AllRows, p.AllValues)
	for _, r := range p.Rows {
		got += fmt.Sprint("\n", r.Dimensions, r.Cells, r.Totals)
	}
	want := "[users.country] [[DE] [FR]] 3 2\n[complete] [[2 10.50] [1 3.00]] [3 13.50]\n[pending] [[] [4 8.00]] [4 8.00]"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if p.Rows[1].Cells[0] != nil {
		t.Errorf("a missing cell is %v, not null", p.Rows[1].Cells[0])
	}
	if fmt.Sprint(cells) != "[[complete DE 2 10.50] [complete FR 1 3.00] [pending FR 4 8.00]]" {
		t.Errorf("cells: %v", cells)
	}
}
