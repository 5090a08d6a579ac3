package collect

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	collectorRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_collector_requests_total",
		Help: "Collector requests by HTTP status.",
	}, []string{"code"})
	collectorEventsReceived = promauto.NewCounter(prometheus.CounterOpts{
		Name: "sluice_collector_received_events_total",
		Help: "Events in well-formed requests the collector received.",
	})
	collectorEventsAcked = promauto.NewCounter(prometheus.CounterOpts{
		Name: "sluice_collector_acknowledged_events_total",
		Help: "Events acknowledged to clients (durably on the raw stream).",
	})
	collectorBytesReceived = promauto.NewCounter(prometheus.CounterOpts{
		Name: "sluice_collector_received_bytes_total",
		Help: "Body bytes (after decompression) of well-formed requests.",
	})
	syslogMessages = promauto.NewCounter(prometheus.CounterOpts{
		Name: "sluice_collector_syslog_messages_total",
		Help: "Syslog messages received (UDP datagrams and TCP frames).",
	})
	collectorStoreSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "sluice_collector_store_seconds",
		Help:    "Time to store one frame on the bus.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
)
