package mongo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// decodeEntry reads the fields the tail uses from a raw oplog entry in one
// walk over its elements, instead of the driver's reflection-based struct
// decoding (which was half of converting an inserted document). O and O2
// share raw's bytes. A field that is missing or null is zero; one of
// another type is an error naming it; other fields are ignored.
func decodeEntry(raw bson.Raw) (oplogEntry, error) {
	var e oplogEntry
	doc := bsoncore.Document(raw)
	// Validate indexes the byte before the declared length (it panics on a
	// length below the smallest document's) and allows bytes after it.
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc)) != len(doc) {
		return e, errors.New("oplog entry: length does not match its bytes")
	}
	if err := doc.Validate(); err != nil {
		return e, fmt.Errorf("oplog entry: %w", err)
	}
	rest := doc[4 : len(doc)-1] // the elements, between the length and the final 0
	for len(rest) > 0 {
		elem, next, ok := bsoncore.ReadElement(rest)
		if !ok {
			return e, errors.New("oplog entry: truncated element")
		}
		rest = next
		v := elem.Value()
		key := string(elem.KeyBytes())
		if v.Type == bson.TypeNull {
			e.clear(key) // the last of repeated fields wins, a null one too
			continue
		}
		var want bsontype.Type
		switch key {
		case "ts":
			want = bson.TypeTimestamp
			e.TS.T, e.TS.I, ok = v.TimestampOK()
		case "op":
			want = bson.TypeString
			e.Op, ok = stringOK(v)
		case "ns":
			want = bson.TypeString
			e.NS, ok = stringOK(v)
		case "o", "o2":
			want = bson.TypeEmbeddedDocument
			var d bsoncore.Document
			if d, ok = v.DocumentOK(); key == "o" {
				e.O = bson.Raw(d)
			} else {
				e.O2 = bson.Raw(d)
			}
		case "wall":
			want = bson.TypeDateTime
			var ms int64
			if ms, ok = v.DateTimeOK(); ok {
				e.Wall = time.UnixMilli(ms).UTC()
			}
		default:
			continue
		}
		if !ok {
			return e, fmt.Errorf("oplog entry field %s is a %s, want a %s", key, v.Type, want)
		}
	}
	return e, nil
}

// clear zeroes the field read from key.
func (e *oplogEntry) clear(key string) {
	switch key {
	case "ts":
		e.TS = primitive.Timestamp{}
	case "op":
		e.Op = ""
	case "ns":
		e.NS = ""
	case "o":
		e.O = nil
	case "o2":
		e.O2 = nil
	case "wall":
		e.Wall = time.Time{}
	}
}

// stringOK reads a string value, which Validate lets through without the
// null byte that must end it.
func stringOK(v bsoncore.Value) (string, bool) {
	s, ok := v.StringValueOK()
	return s, ok && v.Data[len(v.Data)-1] == 0
}

// decodeApplyOps reads the operations of a transaction's applyOps array.
func decodeApplyOps(ops bson.RawValue) ([]oplogEntry, error) {
	arr, ok := ops.ArrayOK()
	if !ok {
		return nil, fmt.Errorf("applyOps is a %s, want an array", ops.Type)
	}
	values, err := bsoncore.Array(arr).Values()
	if err != nil {
		return nil, fmt.Errorf("applyOps: %w", err)
	}
	out := make([]oplogEntry, 0, len(values))
	for i, v := range values {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, fmt.Errorf("applyOps operation %d is a %s, want a document", i, v.Type)
		}
		e, err := decodeEntry(bson.Raw(d))
		if err != nil {
			return nil, fmt.Errorf("applyOps operation %d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}
