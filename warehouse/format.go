package warehouse

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Formats lists what Format accepts.
var Formats = []string{"table", "csv", "json"}

// Format writes the result as an aligned text table, CSV or JSON.
func (r *Result) Format(w io.Writer, format string) error {
	switch format {
	case "", "table":
		return r.table(w)
	case "csv":
		cw := csv.NewWriter(w)
		head := make([]string, len(r.Columns))
		for i, c := range r.Columns {
			head[i] = c.Name
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		for _, row := range r.Rows {
			rec := make([]string, len(row))
			for i, v := range row {
				rec[i] = cell(v, "")
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	default:
		return fmt.Errorf("unknown format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
}

func cell(v any, null string) string {
	switch x := v.(type) {
	case nil:
		return null
	case string:
		return x
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	default:
		return fmt.Sprint(x)
	}
}

func (r *Result) table(w io.Writer) error {
	width := make([]int, len(r.Columns))
	for i, c := range r.Columns {
		width[i] = utf8.RuneCountInString(c.Name)
	}
	cells := make([][]string, len(r.Rows))
	for j, row := range r.Rows {
		cells[j] = make([]string, len(row))
		for i, v := range row {
			s := strings.ReplaceAll(cell(v, "NULL"), "\n", `\n`)
			if utf8.RuneCountInString(s) > 60 {
				s = string([]rune(s)[:59]) + "…"
			}
			cells[j][i] = s
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	line := func(vals []string) {
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(v)
			b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(v)))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	head := make([]string, len(r.Columns))
	sep := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		head[i] = c.Name
		sep[i] = strings.Repeat("-", width[i])
	}
	line(head)
	line(sep)
	for _, row := range cells {
		line(row)
	}
	suffix := ""
	if r.Truncated {
		suffix = " (truncated)"
	}
	_, err := fmt.Fprintf(w, "(%d rows%s)\n", len(r.Rows), suffix)
	return err
}
