package enrich

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var enrichEvents = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "sluice_enrich_events_total",
	Help: "Values enrich read from raw, by result: enriched, bad, duplicate, log (a syslog message on logs).",
}, []string{"result"})

// counts tallies one batch; they are published only once its output is stored.
type counts struct{ enriched, failed, duplicates, logged int }

func (c *counts) add(o counts) {
	c.enriched += o.enriched
	c.failed += o.failed
	c.duplicates += o.duplicates
	c.logged += o.logged
}

func (c counts) publish() {
	enrichEvents.WithLabelValues("enriched").Add(float64(c.enriched))
	enrichEvents.WithLabelValues("bad").Add(float64(c.failed))
	enrichEvents.WithLabelValues("duplicate").Add(float64(c.duplicates))
	enrichEvents.WithLabelValues("log").Add(float64(c.logged))
}
