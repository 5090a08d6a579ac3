package node

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/server"
)

// Status describes this node's flow with its numbers, for GET
// /api/v1/status: the components come from the config, the counts from the
// process's Prometheus metrics (what /metrics shows), the streams from the
// bus.
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
	enrichLag := m.lag(sluice.StreamRaw, "enrich")
	add(server.ComponentStatus{Name: "enrich", Kind: "stage", From: []string{sluice.StreamRaw},
		To: []string{sluice.StreamEvents, sluice.StreamBad, sluice.StreamLogs}, HasTotal: true,
		Total:  m.sum("sluice_enrich_events_total", func(l map[string]string) bool { return l["result"] == "enriched" || l["result"] == "log" }),
		Errors: m.sum("sluice_enrich_events_total", func(l map[string]string) bool { return l["result"] == "bad" }),
		Lag:    enrichLag})
	for _, name := range slices.Sorted(maps.Keys(cfg.Pipelines)) {
		p := cfg.Pipelines[name]
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
		add(c)
	}
	n.archMu.Lock()
	arch, tables := slices.Clone(n.arch), slices.Clone(n.archived)
	n.archMu.Unlock()
	for i, a := range arch {
		table := tables[i]
		add(server.ComponentStatus{Name: "archive " + table, Kind: "sink", From: []string{a.Stream()}, To: []string{"lake/" + table}, HasTotal: true,
			Total: m.sum("sluice_archive_rows_total", func(l map[string]string) bool { return l["table"] == table }),
			Lag:   m.lag(a.Stream(), "archive")})
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Rollups)) {
		add(server.ComponentStatus{Name: "rollup " + name, Kind: "sink", From: []string{cmp(cfg.Rollups[name].From, sluice.StreamEvents)}, To: []string{"rollup/" + name}})
	}
	return st, nil
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

// lag is a stage's consumer lag on a stream (nil when not measured yet).
func (m metrics) lag(stream, stage string) *float64 {
	for _, x := range m["sluice_consumer_lag_messages"] {
		l := map[string]string{}
		for _, p := range x.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["stream"] == stream && l["stage"] == stage {
			v := x.GetGauge().GetValue()
			return &v
		}
	}
	return nil
}
