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
		Help: "Server WAL position last seen in a keepalive.",
	})
	metricSlotLag = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_postgres_slot_lag_bytes",
		Help: "WAL the replication slot retains: server position minus the position confirmed to PostgreSQL.",
	})
	metricSkipped = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_postgres_skipped_changes_total",
		Help: "Rows and changes not published because they identify no row (their key is NULL or was not sent), by reason.",
	}, []string{"reason"})
	metricValuesAsText = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_postgres_values_as_text_total",
		Help: "Column values published as their PostgreSQL text because they could not be decoded as their type.",
	})
)
