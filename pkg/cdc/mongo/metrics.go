package mongo

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var metricReaderWait = promauto.NewCounter(prometheus.CounterOpts{
	Name: "reportes_mongo_oplog_reader_wait_seconds_total",
	Help: "Time the oplog reader waited for the publishing side to take a batch it had read. Near zero, the ingestor keeps up and MongoDB sets the pace; growing by about a second per second, publishing (or JetStream) does.",
})

var metricSkipped = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "reportes_mongo_changes_unusable_total",
	Help: "Changes read from MongoDB that could not be published whole, by reason: no_key (nothing published), unreadable_document (the key alone published), malformed_entry (an oplog entry or change event that could not be decoded, skipped). The log says which and why.",
}, []string{"reason"})
