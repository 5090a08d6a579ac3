package server

import (
	"net/http"

	"github.com/sluice-data/sluice/dashboard"
)

// The dashboards (package dashboard) for the UI, which runs each tile's
// query through POST /api/v1/explore with the date filter it chose:
//
//	GET /api/v1/dashboards         every dashboard: name, title, description, tiles
//	GET /api/v1/dashboards/{name}  one dashboard, its tiles' queries and time fields
func dashboardRoutes(mux *router, o Options) {
	list := func() []*dashboard.Dashboard {
		if o.Dashboards == nil {
			return nil
		}
		return o.Dashboards()
	}
	mux.HandleFunc("GET /api/v1/dashboards", func(w http.ResponseWriter, r *http.Request) {
		type summary struct {
			Name        string `json:"name"`
			Title       string `json:"title"`
			Description string `json:"description,omitempty"`
			Tiles       int    `json:"tiles"`
		}
		out := []summary{}
		for _, d := range list() {
			out = append(out, summary{d.Name, d.Title, d.Description, len(d.Tiles)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"dashboards": out})
	})
	mux.HandleFunc("GET /api/v1/dashboards/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, d := range list() {
			if d.Name == r.PathValue("name") {
				writeJSON(w, http.StatusOK, d)
				return
			}
		}
		fail(w, http.StatusNotFound, "no dashboard "+r.PathValue("name")+": GET /api/v1/dashboards lists them (dashboards.dir)")
	})
}
