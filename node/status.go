package node

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/pipeline"
	"github.com/sluice-data/sluice/server"
)

// Status describes this node's flow with its numbers, for GET
// /api/v1/status: the components come from the config, the counts from the
// process's Prometheus metrics (what /metrics shows), the streams from the
// bus, and the lags from the positions of the stages that read them (a
// durable consumer's, an archiver's committed position, a pipeline's
// checkpoints, a rollup's count) against the streams' last message.
func (n *Node) Status(ctx context.Context) (*server.Status, error) {
	st := &server.Status{Time: time.Now().UTC()}
	names, err := n.bus.Streams(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for _, name := range names {
		info, err := n.bus.Info(ctx, name)
		if err != nil {
			return nil, err
		}
		st.Streams = append(st.Streams, server.StreamStatus{Name: name, Messages: info.Msgs, Bytes: info.Bytes, LastSeq: info.LastSeq})
	}
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return nil, err
	}
	m := metrics{}
	for _, f := range fams {
		m[f.GetName()] = f.GetMetric()
	}
	cfg := n.cfg
	add := func(c server.ComponentStatus) { st.Components = append(st.Components, c) }

	add(server.ComponentStatus{Name: "collector", Kind: "source", Type: "http", To: []string{sluice.StreamRaw}, HasTotal: true,
		Total:  m.sum("sluice_collector_acknowledged_events_total", nil),
		Errors: m.sum("sluice_collector_requests_total", func(l map[string]string) bool { return l["code"] >= "400" })})
	syslogs := 0
	for _, s := range cfg.Sources {
		if s.Type == "syslog" {
			syslogs++
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Sources)) {
		src := cfg.Sources[name]
		c := server.ComponentStatus{Name: name, Kind: "source", Type: src.Type}
		switch src.Type {
		case "syslog":
			c.To = []string{sluice.StreamRaw}
			// One counter for every syslog listener: a total only when it
			// is this source's alone.
			if syslogs == 1 {
				c.HasTotal, c.Total = true, m.sum("sluice_collector_syslog_messages_total", nil)
			}
		case "file":
			c.To = []string{cmp(src.Stream, sluice.StreamLogs)}
		case "postgres_cdc":
			c.To = []string{cmp(src.Stream, name)}
		default:
			continue
		}
		add(c)
	}
	enrichLag, err := n.enr.Lag(ctx)
	add(server.ComponentStatus{Name: "enrich", Kind: "stage", From: []string{sluice.StreamRaw},
		To: []string{sluice.StreamEvents, sluice.StreamBad, sluice.StreamLogs}, HasTotal: true,
		Total:  m.sum("sluice_enrich_events_total", func(l map[string]string) bool { return l["result"] == "enriched" || l["result"] == "log" }),
		Errors: m.sum("sluice_enrich_events_total", func(l map[string]string) bool { return l["result"] == "bad" }),
		Lag:    lag(enrichLag, err)})
	pipes := n.pipelineConfigs()
	for _, name := range slices.Sorted(maps.Keys(pipes)) {
		p := pipes[name]
		c := server.ComponentStatus{Name: name, Kind: "pipeline", HasTotal: true}
		for _, in := range p.From {
			c.From = append(c.From, in.String())
		}
		for _, o := range p.To {
			to := o.BusStream()
			if to == "" {
				to = o.String()
			}
			c.To = append(c.To, to)
		}
		is := func(l map[string]string) bool { return l["pipeline"] == name }
		c.Total = m.sum("sluice_pipeline_events_in_total", is)
		c.Errors = m.sum("sluice_pipeline_bad_total", is)
		if l, err := pipeline.Lag(ctx, n.bus, name, p); err == nil && len(l) > 0 {
			c.Lag = lag(sum(l), nil)
		}
		add(c)
	}
	n.archMu.Lock()
	arch, tables := slices.Clone(n.arch), slices.Clone(n.archived)
	n.archMu.Unlock()
	for i, a := range arch {
		table := tables[i]
		is := func(l map[string]string) bool { return l["table"] == table }
		archLag, err := a.Lag(ctx)
		add(server.ComponentStatus{Name: "archive " + table, Kind: "sink", From: []string{a.Stream()}, To: []string{"lake/" + table}, HasTotal: true,
			Total:  m.sum("sluice_archive_rows_total", is),
			Errors: m.sum("sluice_archive_flush_failures_total", is),
			Lag:    lag(archLag, err)})
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Rollups)) {
		is := func(l map[string]string) bool { return l["rollup"] == name }
		c := server.ComponentStatus{Name: "rollup " + name, Kind: "sink", From: []string{cmp(cfg.Rollups[name].From, sluice.StreamEvents)}, To: []string{"rollup/" + name},
			HasTotal: true, Total: m.sum("sluice_rollup_events_total", is), Errors: m.sum("sluice_rollup_skipped_total", is)}
		if n.roll != nil && n.roll.runners[name] != nil {
			if l, ok, err := n.roll.runners[name].Lag(ctx); ok {
				c.Lag = lag(l, err)
			}
		}
		add(c)
	}
	return st, nil
}

// lag is a measured lag for the status (nil: not measured).
func lag(v uint64, err error) *float64 {
	if err != nil {
		return nil
	}
	f := float64(v)
	return &f
}

func sum(m map[string]uint64) uint64 {
	var t uint64
	for _, v := range m {
		t += v
	}
	return t
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// metrics are the gathered metrics by name.
type metrics map[string][]*dto.Metric

// sum adds the counters and gauges of name whose labels match (nil: all).
func (m metrics) sum(name string, match func(labels map[string]string) bool) float64 {
	total := 0.0
	for _, x := range m[name] {
		if match != nil {
			l := map[string]string{}
			for _, p := range x.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if !match(l) {
				continue
			}
		}
		total += x.GetCounter().GetValue() + x.GetGauge().GetValue()
	}
	return total
}
