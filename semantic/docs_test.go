package semantic

import (
	"os"
	"strings"
	"testing"
)

// The complete example of docs/semantic.md loads, and the SQL it shows for
// fan-out is what the compiler writes.
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
	c, err := m.Compile(Query{Explore: "orders", Fields: []string{"users.country", "orders.total_revenue", "order_items.total_quantity"}}, DuckDB)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ = strings.Cut(doc, "then aggregates only the first:\n\n```sql\n")
	shown, _, _ := strings.Cut(rest, "```\n")
	if got := strings.ReplaceAll(strings.Join(strings.Fields(shown), " "), "( ", "("); got != c.SQL {
		t.Errorf("docs/semantic.md shows\n%s\nthe compiler writes\n%s", got, c.SQL)
	}
}
