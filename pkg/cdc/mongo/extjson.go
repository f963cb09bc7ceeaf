package mongo

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/pkg/cdc"
)

// encodeDocument validates doc and appends its relaxed Extended JSON to buf.
// Malformed BSON is an error, never a crash: fuzzing found inputs on which
// the driver's own validation panics, so that is recovered too.
func encodeDocument(buf []byte, doc bson.Raw) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("malformed BSON document: %v", r)
		}
	}()
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("malformed BSON document: %w", err)
	}
	return appendDocument(buf, doc)
}

// appendDocument appends the relaxed Extended JSON of a document, walking
// the raw BSON without reflection: the driver's MarshalExtJSON dominated the
// cost of capturing an order. Types with no natural JSON form (binary,
// regular expressions, code, min/max keys...) are left to the driver, so the
// output is relaxed Extended JSON either way (TestExtJSON compares the two).
func appendDocument(buf []byte, doc bson.Raw) ([]byte, error) {
	els, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	buf = append(buf, '{')
	for i, el := range els {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = cdc.AppendString(buf, el.Key())
		buf = append(buf, ':')
		if buf, err = appendValue(buf, el.Value()); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

func appendArray(buf []byte, arr bson.Raw) ([]byte, error) {
	vals, err := arr.Values()
	if err != nil {
		return nil, err
	}
	buf = append(buf, '[')
	for i, v := range vals {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, err = appendValue(buf, v); err != nil {
			return nil, err
		}
	}
	return append(buf, ']'), nil
}

func appendValue(buf []byte, v bson.RawValue) ([]byte, error) {
	switch v.Type {
	case bson.TypeString:
		s, ok := v.StringValueOK()
		if ok {
			return cdc.AppendString(buf, s), nil
		}
	case bson.TypeEmbeddedDocument:
		if d, ok := v.DocumentOK(); ok {
			return appendDocument(buf, d)
		}
	case bson.TypeArray:
		if a, ok := v.ArrayOK(); ok {
			return appendArray(buf, a)
		}
	case bson.TypeInt32:
		if n, ok := v.Int32OK(); ok {
			return strconv.AppendInt(buf, int64(n), 10), nil
		}
	case bson.TypeInt64:
		if n, ok := v.Int64OK(); ok {
			return strconv.AppendInt(buf, n, 10), nil
		}
	case bson.TypeDouble:
		if f, ok := v.DoubleOK(); ok && !math.IsInf(f, 0) && !math.IsNaN(f) {
			start := len(buf)
			buf = strconv.AppendFloat(buf, f, 'G', -1, 64)
			for _, c := range buf[start:] {
				if c == '.' || c == 'E' {
					return buf, nil
				}
			}
			return append(buf, '.', '0'), nil
		}
	case bson.TypeBoolean:
		if b, ok := v.BooleanOK(); ok {
			return strconv.AppendBool(buf, b), nil
		}
	case bson.TypeNull:
		return append(buf, "null"...), nil
	case bson.TypeObjectID:
		if id, ok := v.ObjectIDOK(); ok {
			buf = append(buf, `{"$oid":"`...)
			buf = hex.AppendEncode(buf, id[:])
			return append(buf, `"}`...), nil
		}
	case bson.TypeDateTime:
		if ms, ok := v.DateTimeOK(); ok {
			t := time.UnixMilli(ms).UTC()
			if y := t.Year(); y >= 1970 && y <= 9999 {
				buf = append(buf, `{"$date":"`...)
				buf = t.AppendFormat(buf, "2006-01-02T15:04:05.999Z07:00")
				return append(buf, `"}`...), nil
			}
		}
	}
	out, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, false, false)
	if err != nil {
		return nil, err
	}
	return append(buf, out[5:len(out)-1]...), nil // {"v":<value>}
}
