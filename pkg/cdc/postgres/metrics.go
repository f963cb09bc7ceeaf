package postgres

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricConfirmedLSN = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_postgres_confirmed_lsn",
		Help: "LSN last reported to PostgreSQL as flushed (all events before it are in JetStream).",
	})
	metricServerLSN = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_postgres_server_lsn",
		Help: "Server WAL position last seen in a keepalive; minus the confirmed LSN it is the slot lag in bytes.",
	})
)
