package semantic

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Pivots. A query with pivots is answered as a pivot table, as Looker
// answers one: the values of the pivoted dimensions become column groups,
// each holding the measures; the other dimensions are the rows, and each
// row has its totals. One statement computes it, over two queries compiled
// as any other:
//
//   - pivot_cells: the query grouped by all its dimensions, one row per
//     cell; its measure filters (HAVING) apply to each cell;
//   - pivot_totals: the query without the pivoted dimensions and without
//     measure filters, one row per row of the table: a row's total is
//     computed from the row's data like any measure (a distinct count or
//     an average of the row is right, not a sum of its cells), over every
//     pivot value, cut ones included.
//
// Rows are numbered in the query's sort order (a measure sorts by its row
// total; default the first measure's, descending) and `limit` counts rows
// of the table, not cells. Pivot values are numbered in the pivoted
// dimensions' order (ascending unless a sort says otherwise) among the
// rows kept, and at most MaxPivotValues are kept; the answer says how many
// rows and values there were. Rows whose every cell a measure filter
// removed are left out.

// MaxPivotValues is how many values (column groups) a pivot table holds
// at most: the first in the pivoted dimensions' order.
const MaxPivotValues = 50

// Pivot is what a pivoted query's SQL answers: its rows are the cells and,
// after each row's cells, the row's totals (with no pivot values); four
// more columns say which (pivot_total 0 or 1), the cell's pivot value
// (pivot_column, from 1) and how many rows and values there were in all
// (pivot_row_count, pivot_value_count).
type Pivot struct {
	Fields []string `json:"fields"` // the pivoted dimensions

	rows, pivots, measures []int // indexes of the columns
}

// PivotTable is the answer to a pivoted query as a table.
type PivotTable struct {
	Fields []string `json:"fields"` // the pivoted dimensions
	// Values are the column groups: each is the values of Fields, in
	// order; at most MaxPivotValues.
	Values [][]any    `json:"values"`
	Rows   []PivotRow `json:"rows"`
	// AllValues and AllRows count the pivot values and rows there were
	// before MaxPivotValues and the query's limit cut them.
	AllValues int `json:"all_values"`
	AllRows   int `json:"all_rows"`
}

// PivotRow is a row of a pivot table.
type PivotRow struct {
	Dimensions []any `json:"dimensions"` // the values of the dimensions not pivoted, in the columns' order
	// Cells holds, for each of the table's Values, the measures; null where
	// the row has no data for that value (not 0).
	Cells  [][]any `json:"cells"`
	Totals []any   `json:"totals"` // the measures over the whole row
}

// compilePivot compiles a query with pivots (see Pivots above).
func (m *Model) compilePivot(q Query, d Dialect, now time.Time) (*Compiled, error) {
	cellsQ := q
	cellsQ.Pivots, cellsQ.Sorts = nil, nil
	out, _, err := m.compile(cellsQ, d, now)
	if err != nil {
		return nil, err
	}
	col := map[string]int{}
	var dims []string
	for i, c := range out.Columns {
		col[c.Name] = i
		if c.Kind == "dimension" {
			dims = append(dims, c.Name)
		}
	}
	p := &Pivot{Fields: q.Pivots}
	pivoted := map[string]bool{}
	for i, f := range q.Pivots {
		at := fmt.Sprintf("pivots[%d]", i)
		j, ok := col[f]
		switch {
		case !ok:
			return nil, qerr(at, "%q is not among the selected fields: pivot on one of the selected dimensions (%s)", f, strings.Join(dims, ", "))
		case out.Columns[j].Kind != "dimension":
			return nil, qerr(at, "%s is a measure: pivot on a dimension, whose values become the columns", f)
		case pivoted[f]:
			return nil, qerr(at, "%s is pivoted twice", f)
		}
		pivoted[f] = true
		p.pivots = append(p.pivots, j)
	}
	for i, c := range out.Columns {
		switch {
		case c.Kind == "measure":
			p.measures = append(p.measures, i)
		case !pivoted[c.Name]:
			p.rows = append(p.rows, i)
		}
	}
	if len(p.measures) == 0 {
		return nil, qerr("pivots", "a pivot shows measures under each value of %s: select a measure", strings.Join(q.Pivots, ", "))
	}

	// The rows' totals: the query without the pivoted dimensions, and
	// without the measure filters, which apply to cells.
	c := m.compiler(m.Explores[q.Explore], d, now)
	totalsQ := Query{Explore: q.Explore, Limit: q.Limit}
	for _, f := range q.Fields {
		if !pivoted[f] {
			totalsQ.Fields = append(totalsQ.Fields, f)
		}
	}
	for _, f := range q.Filters {
		if r, err := c.resolve("", f.Field); err == nil && r.field.Kind == "dimension" {
			totalsQ.Filters = append(totalsQ.Filters, f)
		}
	}
	totals, _, err := m.compile(totalsQ, d, now)
	if err != nil {
		return nil, err
	}

	name := func(i int) string { return quoteIdent(out.Columns[i].Name) }
	partition := ""
	if len(p.rows) > 0 {
		var rs []string
		for _, i := range p.rows {
			rs = append(rs, name(i))
		}
		partition = "PARTITION BY " + strings.Join(rs, ", ")
	}
	// The order of rows (by row dimensions and row totals) and of pivot
	// values.
	var rowOrder, valueOrder, sortKeys []string
	sortTotal := func(i int, dir string) {
		k := quoteIdent("pivot_sort" + strconv.Itoa(len(sortKeys)))
		sortKeys = append(sortKeys, fmt.Sprintf(`MAX(CASE WHEN "pivot_total" = 1 THEN %s END) OVER (%s) AS %s`, name(i), partition, k))
		rowOrder = append(rowOrder, k+dir)
	}
	sortedPivot := map[string]bool{}
	for i, s := range q.Sorts {
		j, ok := col[s.Field]
		if !ok {
			return nil, qerr(fmt.Sprintf("sorts[%d].field", i), "%q is not among the selected fields: sort by one of %s", s.Field, strings.Join(q.Fields, ", "))
		}
		dir := " ASC NULLS LAST"
		if s.Desc {
			dir = " DESC NULLS LAST"
		}
		switch {
		case pivoted[s.Field]:
			if !sortedPivot[s.Field] {
				valueOrder = append(valueOrder, name(j)+dir)
			}
			sortedPivot[s.Field] = true
		case out.Columns[j].Kind == "measure":
			sortTotal(j, dir)
		default:
			rowOrder = append(rowOrder, name(j)+dir)
		}
	}
	if len(rowOrder) == 0 {
		sortTotal(p.measures[0], " DESC NULLS LAST")
	}
	// Ties: one number per row, one per pivot value.
	for _, i := range p.rows {
		rowOrder = append(rowOrder, name(i)+" ASC NULLS LAST")
	}
	for _, i := range p.pivots {
		if !sortedPivot[out.Columns[i].Name] {
			valueOrder = append(valueOrder, name(i)+" ASC NULLS LAST")
		}
	}

	var all, totalCols []string
	for i, c := range out.Columns {
		all = append(all, name(i))
		if pivoted[c.Name] {
			totalCols = append(totalCols, "NULL AS "+name(i))
		} else {
			totalCols = append(totalCols, name(i))
		}
	}
	keys := ""
	if len(sortKeys) > 0 {
		keys = ", " + strings.Join(sortKeys, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, `WITH "pivot_cells" AS (%s), "pivot_totals" AS (%s), `, out.SQL, totals.SQL)
	fmt.Fprintf(&b, `"pivot_all" AS (SELECT %s, 0 AS "pivot_total" FROM "pivot_cells" UNION ALL SELECT %s, 1 FROM "pivot_totals"), `,
		strings.Join(all, ", "), strings.Join(totalCols, ", "))
	fmt.Fprintf(&b, `"pivot_keyed" AS (SELECT *, MAX(1 - "pivot_total") OVER (%s) AS "pivot_has_cells"%s FROM "pivot_all"), `, partition, keys)
	fmt.Fprintf(&b, `"pivot_rows" AS (SELECT *, DENSE_RANK() OVER (ORDER BY %s) AS "pivot_row" FROM "pivot_keyed" WHERE "pivot_has_cells" = 1), `,
		strings.Join(rowOrder, ", "))
	fmt.Fprintf(&b, `"pivot_values" AS (SELECT *, CASE WHEN "pivot_total" = 0 THEN DENSE_RANK() OVER (PARTITION BY "pivot_total" ORDER BY %s) END AS "pivot_column" `+
		`FROM "pivot_rows" WHERE "pivot_row" <= %d) `, strings.Join(valueOrder, ", "), out.Limit)
	fmt.Fprintf(&b, `SELECT %s, "pivot_total", "pivot_column", (SELECT MAX("pivot_row") FROM "pivot_rows") AS "pivot_row_count", `+
		`(SELECT MAX("pivot_column") FROM "pivot_values") AS "pivot_value_count" FROM "pivot_values" WHERE "pivot_total" = 1 OR "pivot_column" <= %d `+
		`ORDER BY "pivot_row", "pivot_total", "pivot_column"`, strings.Join(all, ", "), MaxPivotValues)
	out.SQL = b.String()
	out.Limit *= MaxPivotValues + 1
	out.Pivot = p
	return out, nil
}

// Pivoted turns what c's SQL answered (c pivots) into its pivot table,
// and returns the cells as the rows of c.Columns. When the answer was cut
// short (a server's row limit), the row it ends in is left out.
func (c *Compiled) Pivoted(rows [][]any) ([][]any, *PivotTable) {
	p, n := c.Pivot, len(c.Columns)
	t := &PivotTable{Fields: p.Fields, Values: [][]any{}, Rows: []PivotRow{}}
	cells := [][]any{}
	var open [][]any // the cells of the row being read
	for _, r := range rows {
		if len(r) < n+4 {
			continue
		}
		t.AllRows, t.AllValues = whole(r[n+2]), whole(r[n+3])
		if whole(r[n]) == 0 {
			open = append(open, r)
			continue
		}
		// The totals close their row.
		if len(t.Values) == 0 {
			t.Values = make([][]any, min(t.AllValues, MaxPivotValues))
		}
		row := PivotRow{Dimensions: pick(r, p.rows), Cells: make([][]any, len(t.Values)), Totals: pick(r, p.measures)}
		for _, cr := range open {
			v := whole(cr[n+1]) - 1
			if v < 0 || v >= len(t.Values) {
				continue
			}
			if t.Values[v] == nil {
				t.Values[v] = pick(cr, p.pivots)
			}
			row.Cells[v] = pick(cr, p.measures)
			cells = append(cells, cr[:n:n])
		}
		t.Rows = append(t.Rows, row)
		open = nil
	}
	return cells, t
}

func pick(row []any, idx []int) []any {
	out := make([]any, len(idx))
	for i, j := range idx {
		out[i] = row[j]
	}
	return out
}

// whole reads a count the engines answer as one of several types.
func whole(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int32:
		return int(x)
	case int64:
		return int(x)
	case float64:
		return int(x)
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}
