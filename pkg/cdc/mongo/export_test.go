package mongo

import dto "github.com/prometheus/client_model/go"

// ReaderWait returns the oplog reader's wait on publishing so far, in
// seconds, for tests.
func ReaderWait() float64 {
	var m dto.Metric
	if err := metricReaderWait.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// DocumentKey returns the key events carry for doc, for tests.
func DocumentKey(doc []byte) (string, error) {
	key, _, err := documentJSON(doc)
	return key, err
}
