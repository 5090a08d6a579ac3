package bench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the direct reader
	"github.com/sluice-data/sluice/demo"
)

// AnalyticalQueries are the queries of the SQL benchmark: the demo's example
// queries and a few more, all over `events`.
func AnalyticalQueries() []demo.Query {
	qs := slices.Clone(demo.Queries)
	return append(qs,
		demo.Query{Title: "Events by name", SQL: `SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC`},
		demo.Query{Title: "Visitors per device and day", SQL: `SELECT CAST(event_time AS DATE) AS day, device, count(DISTINCT anonymous_id) AS visitors FROM events GROUP BY ALL ORDER BY ALL`},
		demo.Query{Title: "One day, by hour (partition pruning)", SQL: `SELECT hr, count(*) AS events, round(sum(revenue), 2) AS revenue FROM events WHERE dt = (SELECT max(dt) FROM events) GROUP BY hr ORDER BY hr`},
	)
}

// QueryTiming is one query's median time through sluice's SQL API and
// through DuckDB reading the lake's Parquet directly.
type QueryTiming struct {
	Title       string
	API, Direct time.Duration
	Rows        int
}

// Overhead is how much slower the API was, as a fraction.
func (q QueryTiming) Overhead() float64 { return q.API.Seconds()/q.Direct.Seconds() - 1 }

// Runner runs one query and returns how many rows it answered.
type Runner func(ctx context.Context, q string) (int, error)

// DirectDuckDB opens an in-memory DuckDB whose `events` view reads the
// lake's files directly, as any DuckDB user would.
func DirectDuckDB(ctx context.Context, lakeDir string) (*sql.DB, Runner, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, nil, err
	}
	glob := filepath.Join(lakeDir, "events", "*", "*", "*.parquet")
	view := fmt.Sprintf(`CREATE VIEW events AS SELECT * FROM read_parquet('%s', hive_partitioning = true, hive_types = {'dt': DATE, 'hr': INTEGER}, union_by_name = true)`,
		strings.ReplaceAll(glob, "'", "''"))
	for _, s := range []string{"SET TimeZone = 'UTC'", view} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, nil, err
		}
	}
	return db, func(ctx context.Context, q string) (int, error) {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				return n, err
			}
			n++
		}
		return n, rows.Err()
	}, nil
}

// TimeQueries runs each query reps times through both runners, alternating,
// and keeps the medians.
func TimeQueries(ctx context.Context, queries []demo.Query, api, direct Runner, reps int) ([]QueryTiming, error) {
	var out []QueryTiming
	for _, q := range queries {
		var ta, td []time.Duration
		rows := 0
		for range reps {
			t0 := time.Now()
			n, err := api(ctx, q.SQL)
			if err != nil {
				return out, fmt.Errorf("%s through the API: %w", q.Title, err)
			}
			ta = append(ta, time.Since(t0))
			t0 = time.Now()
			m, err := direct(ctx, q.SQL)
			if err != nil {
				return out, fmt.Errorf("%s directly: %w", q.Title, err)
			}
			td = append(td, time.Since(t0))
			if n != m {
				return out, fmt.Errorf("%s: %d rows through the API, %d directly", q.Title, n, m)
			}
			rows = n
		}
		slices.Sort(ta)
		slices.Sort(td)
		out = append(out, QueryTiming{Title: q.Title, API: ta[len(ta)/2], Direct: td[len(td)/2], Rows: rows})
	}
	return out, nil
}
