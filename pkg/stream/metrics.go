package stream

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricPublished = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_events_published_total",
		Help: "Change events acknowledged by JetStream, by source.",
	}, []string{"source"})
	metricDuplicates = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_events_duplicate_total",
		Help: "Change events JetStream acknowledged as duplicates of an earlier publish, by source.",
	}, []string{"source"})
	metricInflight = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reportes_cdc_publish_inflight",
		Help: "Change events published to JetStream and not yet acknowledged, by source. It sits at its bound (4096) while JetStream is slower than the source, and near 0 while the source is slower.",
	}, []string{"source"})
	metricPublishErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_publish_errors_total",
		Help: "Publishes that failed, by source.",
	}, []string{"source"})
	metricReordered = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_publish_reorders_total",
		Help: "Times a publisher found the stream holding its events out of publication order (a publish lost while a later one was stored) and republished from the last acknowledged position under new message ids, by source.",
	}, []string{"source"})
	metricTruncated = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_events_truncated_total",
		Help: "Events too large for a NATS message, published with only the fields consumers need.",
	}, []string{"source"})
)
