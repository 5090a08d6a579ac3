// Package server is Sluice's HTTP API and web UI (the pages are package
// web's): SQL over the warehouse, health and metrics. It listens apart from
// the collector so the public side and the operator side can be exposed
// differently.
//
// Routes: GET /healthz, GET /metrics (Prometheus), POST /api/v1/sql,
// POST /api/v1/bad/replay, POST /api/v1/lake/compact, GET /api/v1/tap (live
// events of a stream, tap.go), GET /api/v1/status (the flow's numbers,
// status.go), the jobs and runs routes (jobs.go), the rollup routes
// (rollups.go), the UI's pages, assets and login (ui.go), and Go's profiler
// under /debug/pprof/. When a token is configured every route but /healthz,
// /metrics, the login page and the assets requires it: as a bearer token or
// a session cookie from the login page, with a CSRF token for changes
// (auth.go).
package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/sluice-data/sluice/dashboard"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/rollup"
	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/warehouse"
)

// Options configure the API.
type Options struct {
	// Warehouse answers POST /api/v1/sql: DuckDB, or PostgreSQL when it
	// is the active engine.
	Warehouse    warehouse.Engine
	Token        string        // empty: no auth
	MaxRows      int           // rows per SQL answer; default 10000
	QueryTimeout time.Duration // default 60s
	// Replay serves POST /api/v1/bad/replay; nil: the route answers 501.
	Replay func(ctx context.Context, req ReplayRequest) (any, error)
	// Compact serves POST /api/v1/lake/compact (one compaction pass now);
	// nil: the route answers 501.
	Compact func(ctx context.Context) (any, error)
	// Tap serves GET /api/v1/tap; nil: the route answers 501.
	Tap *Tap
	// Reload serves POST /api/v1/reload (read the config file again and
	// swap the pipelines that changed); nil: the route answers 501.
	Reload func(ctx context.Context) (any, error)
	// Jobs serves the job and run routes (jobs.go); nil: they answer 501.
	Jobs *jobs.Scheduler
	// Rollups finds a rollup for POST /api/v1/rollups/{name}/query;
	// RebuildRollup serves POST /api/v1/rollups/{name}/rebuild.
	Rollups       func(name string) (*rollup.Table, bool)
	RollupNames   func() []string
	RebuildRollup func(ctx context.Context, name string, from, to time.Time) (any, error)
	// Models is the semantic model of the explore routes (explore.go); nil, or nil answers: none.
	Models func() *semantic.Model
	// ExploreCacheSize bounds the explore answers kept (explorecache.go),
	// each for at most ExploreCacheAge; 0: none are kept.
	ExploreCacheSize int64
	ExploreCacheAge  time.Duration
	// Dashboards are the UI's dashboards (dashboards.go); nil: none.
	Dashboards func() []*dashboard.Dashboard
	// Status serves GET /api/v1/status (status.go), the numbers of the
	// overview and streams pages; nil: the route answers 501.
	Status func(ctx context.Context) (*Status, error)
}

// ReplayRequest is the body of POST /api/v1/bad/replay: which bad rows to
// hand back to enrich.
type ReplayRequest struct {
	Types  []string  `json:"types,omitempty"` // empty: every type
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until,omitzero"` // zero: now
	DryRun bool      `json:"dry_run,omitempty"`
}

// maxSQLBody bounds a SQL request body.
const maxSQLBody = 1 << 20

// Handler returns the API's and the UI's routes, behind the gate of
// auth.go.
func Handler(o Options) http.Handler {
	mux, a := routes(o)
	return a.guard(mux.ServeMux)
}

// router is a mux that remembers its patterns, so that a test can check
// every route the server has (auth_test.go).
type router struct {
	*http.ServeMux
	patterns []string
}

// Handle registers h for pattern.
func (m *router) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// HandleFunc registers f for pattern.
func (m *router) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// routes registers every route: all of them, public or not, go through
// here.
func routes(o Options) (*router, *access) {
	if o.MaxRows <= 0 {
		o.MaxRows = 10000
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = time.Minute
	}
	a := newAccess(o.Token)
	mux := &router{ServeMux: http.NewServeMux()}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.Handle("POST /api/v1/sql", sqlHandler(o))
	mux.Handle("POST /api/v1/bad/replay", replayHandler(o))
	mux.Handle("POST /api/v1/lake/compact", compactHandler(o))
	mux.Handle("POST /api/v1/reload", actionHandler(o.Reload, "reload its config"))
	mux.Handle("GET /api/v1/tap", tapHandler(o))
	mux.Handle("GET /api/v1/status", statusHandler(o))
	jobRoutes(mux, o)
	rollupRoutes(mux, o)
	exploreRoutes(mux, o)
	dashboardRoutes(mux, o)
	mux.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	uiRoutes(mux, o, a)
	return mux, a
}

// SQLRequest is the body of POST /api/v1/sql.
type SQLRequest struct {
	SQL string `json:"sql"`
}

func sqlHandler(o Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req SQLRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSQLBody))
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, `body must be JSON like {"sql": "SELECT 1"}: `+err.Error())
			return
		}
		if strings.TrimSpace(req.SQL) == "" {
			fail(w, http.StatusBadRequest, `"sql" is empty`)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), o.QueryTimeout)
		defer cancel()
		res, err := o.Warehouse.Query(ctx, req.SQL, o.MaxRows)
		var qe *warehouse.QueryError
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, res)
		case errors.Is(err, warehouse.ErrNotReadOnly):
			fail(w, http.StatusForbidden, err.Error())
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			fail(w, http.StatusGatewayTimeout, "query took longer than "+o.QueryTimeout.String()+" and was cancelled")
		case errors.As(err, &qe):
			fail(w, http.StatusBadRequest, err.Error())
		default:
			fail(w, http.StatusInternalServerError, err.Error())
		}
	}
}

// actionHandler serves a POST that runs do and answers its result as JSON.
func actionHandler(do func(ctx context.Context) (any, error), what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if do == nil {
			fail(w, http.StatusNotImplemented, "this server cannot "+what)
			return
		}
		res, err := do(r.Context())
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func compactHandler(o Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o.Compact == nil {
			fail(w, http.StatusNotImplemented, "this server cannot compact the lake")
			return
		}
		res, err := o.Compact(r.Context())
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func tapHandler(o Options) http.Handler {
	if o.Tap == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fail(w, http.StatusNotImplemented, "this server cannot tap streams")
		})
	}
	return o.Tap
}

func replayHandler(o Options) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o.Replay == nil {
			fail(w, http.StatusNotImplemented, "this server cannot replay bad rows")
			return
		}
		var req ReplayRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSQLBody))
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, `body must be JSON like {"types": ["schema_violation"], "since": "2026-11-25T00:00:00Z"}: `+err.Error())
			return
		}
		res, err := o.Replay(r.Context(), req)
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
