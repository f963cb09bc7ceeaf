package mirror

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricDeltas = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_view_mirror_deltas_applied_total",
		Help: "Deltas of the PostgreSQL view store this API replica applied.",
	})
	metricReloads = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_view_mirror_reloads_total",
		Help: "Times this API replica loaded a partition, or the whole store, from the tables (at start, after a missed delta, on a reset).",
	})
)
