package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// The explore API (the semantic layer, package semantic):
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
		c, err := m.Compile(req.Query, dialect(o.Warehouse))
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
		ctx, cancel := context.WithTimeout(r.Context(), o.QueryTimeout)
		defer cancel()
		res, err := o.Warehouse.Query(ctx, c.SQL, min(c.Limit, o.MaxRows))
		var qe *warehouse.QueryError
		switch {
		case err == nil:
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			fail(w, http.StatusGatewayTimeout, "query took longer than "+o.QueryTimeout.String()+" and was cancelled")
			return
		case errors.As(err, &qe):
			// The SQL is the model's: a column it names may be missing.
			fail(w, http.StatusBadRequest, "explore "+req.Explore+": the warehouse refused the model's SQL (check the model's table and columns): "+err.Error())
			return
		default:
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		c.Normalize(res.Rows)
		out := ExploreResponse{SQL: c.SQL, Columns: c.Columns, Rows: res.Rows, Truncated: res.Truncated}
		if c.Pivot != nil {
			out.Rows, out.Pivot = c.Pivoted(res.Rows)
		}
		writeJSON(w, http.StatusOK, out)
	}))
}

// ExploreRequest is the body of POST /api/v1/explore.
type ExploreRequest struct {
	semantic.Query
	DryRun bool `json:"dry_run,omitempty"` // compile only: answer the SQL, run nothing
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
