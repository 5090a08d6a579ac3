package server

import (
	"fmt"
	"net/http"

	"github.com/sluice-data/sluice/rollup"
)

// POST /api/v1/rollups/{name}/query answers Druid's query shapes over a
// rollup (package rollup: timeseries, topN, groupBy), merging rows coarser
// than the stored grain, sketches included.
func rollupRoutes(mux *http.ServeMux, o Options) {
	mux.Handle("POST /api/v1/rollups/{name}/query", auth(o.Token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	})))
}
