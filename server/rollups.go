package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sluice-data/sluice/rollup"
)

// POST /api/v1/rollups/{name}/query answers Druid's query shapes over a
// rollup (package rollup: timeseries, topN, groupBy), merging rows coarser
// than the stored grain, sketches included.
func rollupRoutes(mux *router, o Options) {
	// GET /api/v1/rollups: each rollup's definition and intervals (their
	// grain and version); GET /api/v1/rollups/{name}: one.
	mux.Handle("GET /api/v1/rollups", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := []rollup.Description{}
		if o.RollupNames != nil {
			for _, name := range o.RollupNames() {
				if t, ok := o.Rollups(name); ok {
					out = append(out, t.Describe(name))
				}
			}
		}
		writeJSON(w, http.StatusOK, out)
	}))
	mux.Handle("GET /api/v1/rollups/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Rollups == nil {
			fail(w, http.StatusNotFound, fmt.Sprintf("no rollup %q", r.PathValue("name")))
			return
		}
		t, ok := o.Rollups(r.PathValue("name"))
		if !ok {
			fail(w, http.StatusNotFound, fmt.Sprintf("no rollup %q", r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, t.Describe(r.PathValue("name")))
	}))
	mux.Handle("POST /api/v1/rollups/{name}/rebuild", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.RebuildRollup == nil {
			fail(w, http.StatusNotImplemented, "this server runs no rollups")
			return
		}
		var req RebuildRequest
		if !readJSON(w, r, &req) {
			return
		}
		if req.From.IsZero() || req.To.IsZero() {
			fail(w, http.StatusBadRequest, `give "from" and "to" (RFC 3339)`)
			return
		}
		res, err := o.RebuildRollup(r.Context(), r.PathValue("name"), req.From, req.To)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	mux.Handle("POST /api/v1/rollups/{name}/query", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Rollups == nil {
			fail(w, http.StatusNotImplemented, "this server runs no rollups")
			return
		}
		t, ok := o.Rollups(r.PathValue("name"))
		if !ok {
			fail(w, http.StatusNotFound, fmt.Sprintf("no rollup %q", r.PathValue("name")))
			return
		}
		var q rollup.Query
		if !readJSON(w, r, &q) {
			return
		}
		res, err := t.Run(q)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if res == nil {
			res = []rollup.Result{}
		}
		writeJSON(w, http.StatusOK, res)
	}))
}

// RebuildRequest is the body of POST /api/v1/rollups/{name}/rebuild: the
// interval to count again from the lake.
type RebuildRequest struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}
