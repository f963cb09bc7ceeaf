package mongo

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var metricReaderWait = promauto.NewCounter(prometheus.CounterOpts{
	Name: "reportes_mongo_oplog_reader_wait_seconds_total",
	Help: "Time the oplog reader waited for the publishing side to take a batch it had read. Near zero, the ingestor keeps up and MongoDB sets the pace; growing by about a second per second, publishing (or JetStream) does.",
})
