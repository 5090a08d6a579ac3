package warehouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/axiomhq/hyperloglog"

	"github.com/sluice-data/sluice/rollup/sketch"
)

// sluice_distinct and sluice_quantile merge sketch BLOBs as package sketch
// does, on every connection of the warehouse; NULLs, empty lists and bad
// input answer as documented.
func TestSketchFunctions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := Open(ctx, filepath.Join(dir, "w.duckdb"), filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.db.ExecContext(ctx, "CREATE TABLE s (g VARCHAR, visitors BLOB, load BLOB)"); err != nil {
		t.Fatal(err)
	}
	var visitors, loads [][]byte
	for i := range 6 {
		h := hyperloglog.New16()
		d, _ := ddsketch.NewDefaultDDSketch(0.005)
		for u := i * 300; u < i*300+1000*(i+1); u++ {
			h.Insert(fmt.Appendf(nil, "u%d", u))
			d.Add(float64(u%977) + 0.5)
		}
		v, _ := h.MarshalBinary()
		var l []byte
		d.Encode(&l, false)
		visitors, loads = append(visitors, v), append(loads, l)
		if _, err := w.db.ExecContext(ctx, "INSERT INTO s VALUES (?, ?, ?)", []string{"a", "b"}[i%2], v, l); err != nil {
			t.Fatal(err)
		}
	}
	wantDistinct, _ := sketch.Distinct(visitors)
	wantLoad, _, _ := sketch.Quantile(loads, 0.95)
	want := fmt.Sprintf("[[%d %v]]", wantDistinct, wantLoad)
	const q = "SELECT sluice_distinct(list(visitors)), sluice_quantile(list(load), 0.95) FROM s"

	// Every connection of the pool has the functions, also those opened
	// after the registration's.
	conns := make([]*sql.Conn, maxConns)
	for i := range conns {
		if conns[i], err = w.db.Conn(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			var n int64
			var v float64
			if err := c.QueryRowContext(ctx, q).Scan(&n, &v); err != nil || fmt.Sprintf("[[%d %v]]", n, v) != want {
				t.Errorf("on a connection of the pool: %d %v %v, want %s", n, v, err, want)
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}

	for _, tc := range []struct{ sql, want string }{
		{q, want},
		{"SELECT g, sluice_distinct(list(visitors)) > 0, sluice_quantile(list(load), 0.5) > 0 FROM s GROUP BY g ORDER BY g", "[[a true true] [b true true]]"},
		// NULLs are skipped: a NULL among the sketches changes nothing.
		{"SELECT sluice_distinct(list(visitors) || [NULL::BLOB]), sluice_quantile([NULL::BLOB] || list(load), 0.95) FROM s", want},
		// No sketch: 0 distinct, no quantile.
		{"SELECT sluice_distinct(list(visitors)), sluice_quantile(list(load), 0.5) FROM s WHERE false", "[[0 <nil>]]"},
		{"SELECT sluice_distinct([]::BLOB[]), sluice_distinct([NULL::BLOB]), sluice_distinct(NULL), sluice_quantile([NULL::BLOB], 0.5), sluice_quantile(list(load), NULL) FROM s", "[[0 0 0 <nil> <nil>]]"},
		{"SELECT sluice_quantile(list(load), 1) >= sluice_quantile(list(load), 0) FROM s", "[[true]]"},
		// One sketch, in a list of its own.
		{"SELECT count(*) FROM s WHERE sluice_distinct([visitors]) > 0 AND sluice_quantile([load], 0.5) > 0", "[[6]]"},
	} {
		res, err := w.Query(ctx, tc.sql, 0)
		if err != nil {
			t.Errorf("%s: %v", tc.sql, err)
			continue
		}
		if got := fmt.Sprint(res.Rows); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.sql, got, tc.want)
		}
	}

	for _, tc := range []struct{ sql, want string }{
		{"SELECT sluice_distinct(list(load)) FROM s", "sluice_distinct: element 1 is not a distinct metric's sketch"},
		{"SELECT sluice_distinct(['not a sketch'::BLOB])", "sluice_distinct: element 1 is not a distinct metric's sketch"},
		{"SELECT sluice_distinct([NULL, ''::BLOB])", "sluice_distinct: element 2 is not a distinct metric's sketch"},
		{"SELECT sluice_quantile(list(visitors), 0.5) FROM s", "sluice_quantile: element 1 is not a quantile metric's sketch"},
		{"SELECT sluice_quantile(list(load), 2) FROM s", "sluice_quantile: q is 2: it must be between 0 and 1"},
		{"SELECT sluice_quantile(list(load), -0.1) FROM s", "sluice_quantile: q is -0.1"},
		{"SELECT sluice_distinct(42)", "sluice_distinct(BLOB[])"},
		{"SELECT sluice_distinct(visitors) FROM s", "sluice_distinct(BLOB[])"},
		{"SELECT sluice_quantile(list(load)) FROM s", "sluice_quantile(BLOB[], DOUBLE)"},
		{"SELECT sluice_quantile(list(load), 'high') FROM s", "high"},
	} {
		_, err := w.Query(ctx, tc.sql, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.sql, err, tc.want)
		}
		var qe *QueryError
		if err != nil && !errors.As(err, &qe) {
			t.Errorf("%s: %v is not the user's error", tc.sql, err)
		}
	}
}
