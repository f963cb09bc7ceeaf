package live

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricMessages = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_live_metric_messages_total",
		Help: "Metric-update messages by result: stored; duplicate (the same id stored by another replica within the window); current (the stream held this line or a newer one: not published); failed (published again later with the latest line).",
	}, []string{"result"})
	metricSSEClients = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_live_sse_clients",
		Help: "Clients connected to the dashboard's event stream.",
	})
	metricSSEResyncs = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_live_sse_resyncs_total",
		Help: "Times a client that fell behind was sent the whole dashboard again instead of the updates it missed.",
	})
)
