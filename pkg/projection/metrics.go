package projection

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricApplied = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_projection_events_applied_total",
		Help: "Events applied to the view.",
	})
	metricDeadLetters = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_projection_dead_letters_total",
		Help: "Events the view could not fully apply (published to the dead-letter subject with the reason).",
	})
	metricPending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_projection_consumer_pending",
		Help: "Events in the stream the view has not applied yet (JetStream consumer pending).",
	})
	metricReady = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_projection_ready",
		Help: "1 once the view caught up with the stream.",
	})
	metricSnapshots = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_projection_snapshots_total",
		Help: "View snapshots by result: saved, save_failed, restored, restore_failed, and orphan_purged (chunks left by an interrupted or concurrent save, purged).",
	}, []string{"result"})
	metricSnapshotBytes = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_projection_snapshot_bytes",
		Help: "Size of the last view snapshot saved.",
	})
	metricMissed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_projection_events_missed_total",
		Help: "Events the view needed that the stream no longer held (dropped by its limits or a purge before the view applied them).",
	})
	metricLag = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "reportes_projection_end_to_end_lag_seconds",
		Help:    "Time from the source commit of a change to its application to the view.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
)
