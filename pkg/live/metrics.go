package live

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricUpdatesPublished = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_live_metric_messages_published_total",
		Help: "Metric-update messages the metric stream acknowledged (copies another replica published first included).",
	})
	metricUpdatesFailed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_live_metric_messages_failed_total",
		Help: "Metric-update messages not acknowledged, published again with the latest value.",
	})
	metricSSEClients = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_live_sse_clients",
		Help: "Clients connected to the dashboard's event stream.",
	})
	metricSSEResyncs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_live_sse_resyncs_total",
		Help: "Times a client that fell behind was sent the whole dashboard again instead of the updates it missed.",
	})
)
