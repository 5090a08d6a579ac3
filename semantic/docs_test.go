package semantic

import (
	"os"
	"strings"
	"testing"
)

// The complete example of docs/semantic.md loads, and the SQL it shows for
// fan-out (both ways) is what the compiler writes.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile("../docs/semantic.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, rest, _ := strings.Cut(doc, "## A complete example\n\n```yaml\n")
	src, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatal("docs/semantic.md has no complete example")
	}
	m, err := Parse("docs/semantic.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after  string
		fields []string
	}{
		{"then by the dimensions:", []string{"users.country", "orders.total_revenue", "order_items.total_quantity"}},
		{"and aggregates only the first:", []string{"users.country", "orders.count", "users.count", "order_items.total_quantity"}},
	} {
		c, err := m.Compile(Query{Explore: "orders", Fields: tc.fields}, DuckDB)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(doc, tc.after+"\n\n```sql\n")
		shown, _, _ := strings.Cut(rest, "```\n")
		if got := strings.ReplaceAll(strings.Join(strings.Fields(shown), " "), "( ", "("); !ok || got != c.SQL {
			t.Errorf("docs/semantic.md shows\n%s\nthe compiler writes\n%s", got, c.SQL)
		}
	}
}
