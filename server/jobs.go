package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-data/sluice/jobs"
)

// Job routes (Genie's shape):
//
//	GET  /api/v1/jobs                   every job, its schedule, requirements, last run, disabled state
//	POST /api/v1/jobs/{name}/runs       {"params": {...}, "force": false} → 201 and the run; 409 while the same job+params runs
//	POST /api/v1/jobs/{name}/backfill   {"from": D, "to": D, "parallel": N} → progress as NDJSON, then a summary line
//	POST /api/v1/jobs/{name}/enable     clear a job disabled after failures
//	GET  /api/v1/runs?job=NAME&limit=N  runs, newest first
//	GET  /api/v1/runs/{id}              one run: state, attempts, logs
//	POST /api/v1/runs/{id}/cancel       stop a run

// RunRequest is the body of POST /api/v1/jobs/{name}/runs.
type RunRequest struct {
	Params map[string]string `json:"params,omitempty"`
	Force  bool              `json:"force,omitempty"`
}

// RunAnswer is its answer: the run started, or why none was needed.
type RunAnswer struct {
	Run      *jobs.Run `json:"run,omitempty"`
	Complete bool      `json:"complete,omitempty"` // the output exists; nothing ran
	Message  string    `json:"message,omitempty"`
}

// BackfillRequest is the body of POST /api/v1/jobs/{name}/backfill.
type BackfillRequest struct {
	From     string            `json:"from"`
	To       string            `json:"to"`
	Parallel int               `json:"parallel,omitempty"`
	Params   map[string]string `json:"params,omitempty"` // other parameters than date
}

// BackfillProgress is one line of a backfill's answer: a date that ended,
// or (Summary) the end.
type BackfillProgress struct {
	Date    string `json:"date,omitempty"`
	Error   string `json:"error,omitempty"`
	Done    int    `json:"done"`
	Failed  int    `json:"failed"`
	Total   int    `json:"total"`
	Summary bool   `json:"summary,omitempty"`
}

func jobRoutes(mux *router, o Options) {
	h := func(pattern string, f func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request)) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o.Jobs == nil {
				fail(w, http.StatusNotImplemented, "this server runs no jobs")
				return
			}
			f(o.Jobs, w, r)
		}))
	}
	h("GET /api/v1/jobs", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		st, err := s.Status(r.Context())
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	h("POST /api/v1/jobs/{name}/runs", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		var req RunRequest
		if !readJSON(w, r, &req) {
			return
		}
		name := r.PathValue("name")
		if _, ok := s.Jobs()[name]; !ok {
			fail(w, http.StatusNotFound, fmt.Sprintf("no job %q", name))
			return
		}
		run, err := s.Submit(r.Context(), jobs.Task{Job: name, Params: req.Params}, jobs.SubmitOptions{Force: req.Force, Trigger: "api"})
		switch {
		case errors.Is(err, jobs.ErrComplete):
			writeJSON(w, http.StatusOK, RunAnswer{Complete: true, Message: err.Error() + "; send force: true to run it again"})
		case errors.Is(err, jobs.ErrRunning), errors.Is(err, jobs.ErrDisabled):
			fail(w, http.StatusConflict, err.Error())
		case err != nil:
			fail(w, http.StatusBadRequest, err.Error())
		default:
			writeJSON(w, http.StatusCreated, RunAnswer{Run: run})
		}
	})
	h("POST /api/v1/jobs/{name}/enable", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		if err := s.Enable(r.Context(), r.PathValue("name")); err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"enabled": r.PathValue("name")})
	})
	h("POST /api/v1/jobs/{name}/backfill", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		var req BackfillRequest
		if !readJSON(w, r, &req) {
			return
		}
		name := r.PathValue("name")
		j, ok := s.Jobs()[name]
		if !ok {
			fail(w, http.StatusNotFound, fmt.Sprintf("no job %q", name))
			return
		}
		if j.Params["date"] != "date" {
			fail(w, http.StatusBadRequest, fmt.Sprintf("job %s has no date parameter to backfill", name))
			return
		}
		dates, err := jobs.Dates(req.From, req.To)
		if err != nil {
			fail(w, http.StatusBadRequest, err.Error())
			return
		}
		var tasks []jobs.Task
		for _, d := range dates {
			p := map[string]string{"date": d}
			for k, v := range req.Params {
				if k != "date" {
					p[k] = v
				}
			}
			t, err := jobs.Normalize(s.Jobs(), jobs.Task{Job: name, Params: p})
			if err != nil {
				fail(w, http.StatusBadRequest, err.Error())
				return
			}
			tasks = append(tasks, t)
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		flusher, _ := w.(http.Flusher)
		var mu sync.Mutex
		p := BackfillProgress{Total: len(tasks)}
		enc := json.NewEncoder(w)
		write := func(v BackfillProgress) {
			enc.Encode(v)
			if flusher != nil {
				flusher.Flush()
			}
		}
		write(p)
		s.Build(r.Context(), tasks, "backfill", req.Parallel, func(t jobs.Task, err error) {
			mu.Lock()
			defer mu.Unlock()
			line := BackfillProgress{Date: t.Params["date"], Total: len(tasks)}
			if err != nil {
				p.Failed++
				line.Error = err.Error()
			} else {
				p.Done++
			}
			line.Done, line.Failed = p.Done, p.Failed
			write(line)
		})
		mu.Lock()
		p.Summary = true
		write(p)
		mu.Unlock()
	})
	h("GET /api/v1/runs", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		limit := 100
		if l := r.URL.Query().Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				fail(w, http.StatusBadRequest, "limit must be a whole number (0: all)")
				return
			}
			limit = n
		}
		job := r.URL.Query().Get("job")
		if _, ok := s.Jobs()[job]; job != "" && !ok {
			fail(w, http.StatusNotFound, fmt.Sprintf("no job %q", job))
			return
		}
		runs, err := s.Runs(r.Context(), job, limit)
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		if runs == nil {
			runs = []*jobs.Run{}
		}
		writeJSON(w, http.StatusOK, runs)
	})
	h("GET /api/v1/runs/{id}", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		run, err := s.Run(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, jobs.ErrNoRun):
			fail(w, http.StatusNotFound, err.Error())
		case err != nil:
			fail(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusOK, run)
		}
	})
	h("POST /api/v1/runs/{id}/cancel", func(s *jobs.Scheduler, w http.ResponseWriter, r *http.Request) {
		run, err := s.Cancel(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, jobs.ErrNoRun):
			fail(w, http.StatusNotFound, err.Error())
		case err != nil:
			fail(w, http.StatusConflict, err.Error())
		default:
			writeJSON(w, http.StatusOK, run)
		}
	})
}

// readJSON decodes a small JSON body (empty: nothing set).
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		fail(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}
