package server

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Status is the answer of GET /api/v1/status: the flow of this node (its
// sources, stages, pipelines and sinks, and the streams between them) with
// their numbers. Totals count since the process started; rates are per
// second over the last few seconds, measured between requests (the first
// answers 0).
type Status struct {
	Time       time.Time         `json:"time"`
	Streams    []StreamStatus    `json:"streams"`
	Components []ComponentStatus `json:"components"`
}

// StreamStatus is a stream on the bus.
type StreamStatus struct {
	Name     string  `json:"name"`
	Messages uint64  `json:"messages"` // held (within retention)
	Bytes    uint64  `json:"bytes"`
	LastSeq  uint64  `json:"last_seq"`
	Rate     float64 `json:"rate"` // messages appended per second
}

// ComponentStatus is a part of the flow that reads or writes streams.
type ComponentStatus struct {
	Name string `json:"name"`
	// Kind is source, stage (enrich), pipeline or sink (archive to the
	// lake, a rollup).
	Kind string   `json:"kind"`
	Type string   `json:"type,omitempty"` // of a source: http, syslog, file, postgres_cdc
	From []string `json:"from,omitempty"` // streams it reads
	To   []string `json:"to,omitempty"`   // streams it writes, or lake/<table>, warehouse/<table>, …
	// Total is the events it has handled, Errors those it failed (sent to
	// bad, or refused requests); HasTotal is false where nothing is counted.
	Total     float64  `json:"total"`
	Errors    float64  `json:"errors"`
	HasTotal  bool     `json:"has_total"`
	Lag       *float64 `json:"lag,omitempty"` // messages of From not yet processed
	Rate      float64  `json:"rate"`
	ErrorRate float64  `json:"error_rate"`
}

// rater turns successive snapshots into rates: against a snapshot at
// least a second old, which it renews every few seconds.
type rater struct {
	mu    sync.Mutex
	prev  *Status
	rates map[string]float64 // of the last answer, for a request that comes too soon
}

func (r *rater) apply(cur *Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prev == nil {
		r.prev = cur
		return
	}
	dt := cur.Time.Sub(r.prev.Time).Seconds()
	if dt >= 1 {
		r.rates = map[string]float64{}
		prevStream := map[string]StreamStatus{}
		for _, s := range r.prev.Streams {
			prevStream[s.Name] = s
		}
		for _, s := range cur.Streams {
			if p, ok := prevStream[s.Name]; ok && s.LastSeq >= p.LastSeq {
				r.rates["stream "+s.Name] = float64(s.LastSeq-p.LastSeq) / dt
			}
		}
		prevComp := map[string]ComponentStatus{}
		for _, c := range r.prev.Components {
			prevComp[c.Name] = c
		}
		for _, c := range cur.Components {
			if p, ok := prevComp[c.Name]; ok && c.Total >= p.Total {
				r.rates[c.Name] = (c.Total - p.Total) / dt
				r.rates[c.Name+" errors"] = max(c.Errors-p.Errors, 0) / dt
			}
		}
		if dt >= 5 {
			r.prev = cur
		}
	}
	for i, s := range cur.Streams {
		cur.Streams[i].Rate = r.rates["stream "+s.Name]
	}
	for i, c := range cur.Components {
		cur.Components[i].Rate = r.rates[c.Name]
		cur.Components[i].ErrorRate = r.rates[c.Name+" errors"]
	}
}

func statusHandler(o Options) http.HandlerFunc {
	var r rater
	return func(w http.ResponseWriter, req *http.Request) {
		if o.Status == nil {
			fail(w, http.StatusNotImplemented, "this server reports no status")
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		defer cancel()
		st, err := o.Status(ctx)
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		r.apply(st)
		writeJSON(w, http.StatusOK, st)
	}
}
