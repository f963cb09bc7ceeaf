package cdc

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricRead = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_events_read_total",
		Help: "Change events read from a source, by source.",
	}, []string{"source"})
	metricIgnored = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_entries_ignored_total",
		Help: "Source entries that describe no document change (commands, unknown operations), by source and operation.",
	}, []string{"source", "op"})
	metricRestarts = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_source_restarts_total",
		Help: "Times a source stopped on an error and was restarted from its last acknowledged position.",
	}, []string{"source"})
	metricSnapshots = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_snapshots_total",
		Help: "Snapshots taken, by source and reason (initial, position_lost, incomplete).",
	}, []string{"source", "reason"})
	metricLastCommit = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reportes_cdc_last_commit_timestamp_seconds",
		Help: "Commit time of the last change read from a source.",
	}, []string{"source"})
)

// bySource caches the child of a metric vector for each source: the
// vector's WithLabelValues hashes the label and takes a lock, and the
// counters below move for every event.
type bySource[T any] struct {
	children sync.Map // source -> T
	child    func(source string) T
}

func (b *bySource[T]) of(source string) T {
	if c, ok := b.children.Load(source); ok {
		return c.(T) //nolint:forcetypeassert // only T is stored
	}
	c, _ := b.children.LoadOrStore(source, b.child(source))
	return c.(T) //nolint:forcetypeassert // only T is stored
}

var (
	readCounters    = bySource[prometheus.Counter]{child: func(s string) prometheus.Counter { return metricRead.WithLabelValues(s) }}
	lastCommitTimes = bySource[prometheus.Gauge]{child: func(s string) prometheus.Gauge { return metricLastCommit.WithLabelValues(s) }}
)

// CountRead records that a source read n events.
func CountRead(source string, n int) { readCounters.of(source).Add(float64(n)) }

// SetLastCommit records the commit time (Unix seconds) of the last change read.
func SetLastCommit(source string, unixSeconds float64) {
	lastCommitTimes.of(source).Set(unixSeconds)
}

// CountIgnored records a source entry that changed no row or document.
func CountIgnored(source, op string) { metricIgnored.WithLabelValues(source, op).Inc() }
