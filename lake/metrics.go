package lake

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	archiveRows = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_rows_total",
		Help: "Rows committed to the lake, by table.",
	}, []string{"table"})
	archiveFiles = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_files_total",
		Help: "Parquet files committed to the lake, by table.",
	}, []string{"table"})
	archiveBuffered = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_archive_buffered_rows",
		Help: "Rows read from the bus and waiting for the next flush, by table.",
	}, []string{"table"})
	archiveBytes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_bytes_total",
		Help: "Parquet bytes written to the lake, by table.",
	}, []string{"table"})
	archiveFlushFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_flush_failures_total",
		Help: "Flushes to the lake that failed and are retried, by table.",
	}, []string{"table"})
)
