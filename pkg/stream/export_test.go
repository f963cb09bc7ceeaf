package stream

import dto "github.com/prometheus/client_model/go"

// Inflight returns the value of source's in-flight gauge, for tests.
func Inflight(source string) float64 {
	var m dto.Metric
	if err := metricInflight.WithLabelValues(source).Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

// Covers is covers, for tests.
var Covers = covers
