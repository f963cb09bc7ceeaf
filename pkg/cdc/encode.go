package cdc

import (
	"strconv"
	"time"

	"github.com/reportes/reportes/pkg/rawjson"
)

// AppendJSON appends the JSON encoding of e to buf, without reflection:
// publishing is on the capture hot path. It is byte for byte what
// encoding/json produces, except that After and Before are embedded as given
// where encoding/json would also HTML-escape them (FuzzAppendJSON holds it to
// that).
func (e *Event) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"id":`...)
	buf = rawjson.AppendString(buf, e.ID)
	buf = append(buf, `,"source":`...)
	buf = rawjson.AppendString(buf, e.Source)
	buf = append(buf, `,"collection":`...)
	buf = rawjson.AppendString(buf, e.Collection)
	buf = append(buf, `,"op":`...)
	buf = rawjson.AppendString(buf, string(e.Op))
	if e.Key != "" {
		buf = append(buf, `,"key":`...)
		buf = rawjson.AppendString(buf, e.Key)
	}
	buf = append(buf, `,"position":`...)
	buf = rawjson.AppendString(buf, e.Position)
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendUint(buf, e.Version, 10)
	buf = append(buf, `,"commit_time":"`...)
	buf = e.CommitTime.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	if e.Snapshot != "" {
		buf = append(buf, `,"snapshot":`...)
		buf = rawjson.AppendString(buf, e.Snapshot)
	}
	if len(e.After) > 0 {
		buf = append(buf, `,"after":`...)
		buf = append(buf, e.After...)
	}
	if len(e.Before) > 0 {
		buf = append(buf, `,"before":`...)
		buf = append(buf, e.Before...)
	}
	if e.Truncated {
		buf = append(buf, `,"truncated":true`...)
	}
	return append(buf, '}')
}
