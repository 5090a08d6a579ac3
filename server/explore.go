package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// The explore API (the semantic layer, package semantic), whose answers
// are cached (explorecache.go):
//
//	GET  /api/v1/explores  every explore with its views and fields, for the UI
//	POST /api/v1/explore   a query (ExploreRequest) compiled for the active
//	                       engine and run: {"sql", "columns", "rows"}, and
//	                       "pivot" when it pivots; with "dry_run": true
//	                       only {"sql", "columns"}
//
// A query the model cannot answer (an unknown field, a bad operator, a value
// of the wrong type) is a 400 whose message names the part of the query:
// "filters[0].values[0]: …".
func exploreRoutes(mux *router, o Options) {
	mux.Handle("GET /api/v1/explores", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := ExploresResponse{Explores: []semantic.ExploreInfo{}, Operators: semantic.Operators}
		if m := models(o); m != nil {
			out.Explores = m.Describe()
		}
		writeJSON(w, http.StatusOK, out)
	}))
	var cache *exploreCache
	if o.ExploreCacheSize > 0 {
		cache = newExploreCache(o.ExploreCacheAge, o.ExploreCacheSize)
	}
	mux.Handle("POST /api/v1/explore", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := models(o)
		if m == nil {
			fail(w, http.StatusNotFound, "no semantic models: set semantic.models in the config (docs/semantic.md)")
			return
		}
		var req ExploreRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxSQLBody))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, `body must be JSON like {"explore": "orders", "fields": ["users.country", "orders.count"]}: `+err.Error())
			return
		}
		d := dialect(o.Warehouse)
		c, err := m.Compile(req.Query, d)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if req.DryRun {
			writeJSON(w, http.StatusOK, struct {
				SQL     string            `json:"sql"`
				Columns []semantic.Column `json:"columns"`
			}{c.SQL, c.Columns})
			return
		}
		maxRows := min(c.Limit, o.MaxRows)
		ctx := r.Context()
		run := func() (int, []byte) {
			status, v := explore(ctx, o, req.Explore, c, maxRows)
			body, _ := json.Marshal(v)
			return status, body
		}
		vw, versioned := o.Warehouse.(warehouse.Versioned)
		var status int
		var body []byte
		if cache == nil || !versioned {
			status, body = run()
		} else {
			// The query goes on when its asker leaves: others may be
			// waiting for the same answer, and the cache keeps it.
			ctx = context.WithoutCancel(ctx)
			// The same query compiled at a fixed time: the same SQL as
			// long as the model's definitions are the same.
			k, err := m.CompileAt(req.Query, d, time.Unix(0, 0))
			if err != nil {
				fail(w, http.StatusBadRequest, err.Error())
				return
			}
			var at time.Time
			var hit bool
			status, body, at, hit = cache.answer(cacheKey(k.SQL, maxRows), vw.DataVersion(), c.Window, req.NoCache, run)
			w.Header().Set("X-Sluice-Cache", map[bool]string{true: "hit", false: "miss"}[hit])
			if hit {
				w.Header().Set("Age", strconv.Itoa(int(time.Since(at).Seconds())))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(append(body, '\n'))
	}))
}

// explore runs the compiled query c of explore name: the status and what
// to answer, an ExploreResponse or an error.
func explore(ctx context.Context, o Options, name string, c *semantic.Compiled, maxRows int) (int, any) {
	ctx, cancel := context.WithTimeout(ctx, o.QueryTimeout)
	defer cancel()
	ranAt := time.Now().UTC()
	res, err := o.Warehouse.Query(ctx, c.SQL, maxRows)
	var qe *warehouse.QueryError
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return http.StatusGatewayTimeout, errorBody("query took longer than " + o.QueryTimeout.String() + " and was cancelled")
	case errors.As(err, &qe):
		// The SQL is the model's: a column it names may be missing.
		return http.StatusBadRequest, errorBody("explore " + name + ": the warehouse refused the model's SQL (check the model's table and columns): " + err.Error())
	default:
		return http.StatusInternalServerError, errorBody(err.Error())
	}
	c.Normalize(res.Rows)
	out := ExploreResponse{SQL: c.SQL, Columns: c.Columns, Rows: res.Rows, Truncated: res.Truncated, RanAt: ranAt}
	if c.Pivot != nil {
		out.Rows, out.Pivot = c.Pivoted(res.Rows)
	}
	return http.StatusOK, out
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

// ExploreRequest is the body of POST /api/v1/explore.
type ExploreRequest struct {
	semantic.Query
	DryRun bool `json:"dry_run,omitempty"` // compile only: answer the SQL, run nothing
	// NoCache runs the query even when the cache has its answer (which
	// the new answer then replaces).
	NoCache bool `json:"no_cache,omitempty"`
}

// ExploreResponse is the answer of POST /api/v1/explore: the SQL that ran,
// the columns (named view.field, dimensions first) and the rows. A dry run
// answers only sql and columns. A query with pivots answers its cells as
// rows and the table in pivot.
type ExploreResponse struct {
	SQL       string               `json:"sql"`
	Columns   []semantic.Column    `json:"columns"`
	Rows      [][]any              `json:"rows"`
	Truncated bool                 `json:"truncated,omitempty"`
	Pivot     *semantic.PivotTable `json:"pivot,omitempty"`
	// RanAt is when the query ran: an answer from the cache (the header
	// X-Sluice-Cache: hit) is as of then.
	RanAt time.Time `json:"ran_at"`
}

// ExploresResponse is the answer of GET /api/v1/explores.
type ExploresResponse struct {
	Explores  []semantic.ExploreInfo `json:"explores"`
	Operators []string               `json:"operators"` // what filters may use
}

func models(o Options) *semantic.Model {
	if o.Models == nil {
		return nil
	}
	return o.Models()
}

// dialect is the SQL the warehouse speaks.
func dialect(e warehouse.Engine) semantic.Dialect {
	if _, ok := e.(*warehouse.Postgres); ok {
		return semantic.Postgres
	}
	return semantic.DuckDB
}
