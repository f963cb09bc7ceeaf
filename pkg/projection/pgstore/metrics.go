package pgstore

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricCommits = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_view_store_commits_total",
		Help: "Transactions of the PostgreSQL view store by partition and result: committed, fenced (another writer moved the partition), failed.",
	}, []string{"partition", "result"})
	metricCommitSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "reportes_view_store_commit_seconds",
		Help:    "Time to read and write one batch of a partition of the PostgreSQL view store.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	metricPosition = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reportes_view_store_position",
		Help: "Stream sequence each partition of the PostgreSQL view store committed, as this process last wrote it.",
	}, []string{"partition"})
)
