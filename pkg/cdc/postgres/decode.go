package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reportes/reportes/pkg/rawjson"
)

// column is what the decoder needs to know about a column.
type column struct {
	name string
	oid  uint32
	key  bool
}

// decoder turns text-format values (what pgoutput and a text-format query
// send) into JSON, the same way for the snapshot and the stream.
type decoder struct {
	types *pgtype.Map
}

func newDecoder() *decoder { return &decoder{types: pgtype.NewMap()} }

// value appends the JSON form of one text-format value. NULL is nil data.
func (d *decoder) value(buf *bytes.Buffer, oid uint32, data []byte) error {
	if data == nil {
		buf.WriteString("null")
		return nil
	}
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID, pgtype.UUIDOID, pgtype.DateOID:
		return appendJSONString(buf, data)
	case pgtype.BoolOID:
		switch string(data) {
		case "t", "true":
			buf.WriteString("true")
		case "f", "false":
			buf.WriteString("false")
		default:
			return fmt.Errorf("invalid boolean %q", data)
		}
		return nil
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		n, err := strconv.ParseInt(string(data), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q: %w", data, err)
		}
		buf.Write(strconv.AppendInt(nil, n, 10))
		return nil
	case pgtype.NumericOID, pgtype.Float4OID, pgtype.Float8OID:
		// PostgreSQL prints these as JSON numbers, except NaN and the
		// infinities, which JSON cannot represent: those stay text. The text
		// is used as is, so no precision is lost to a float conversion.
		if isJSONNumber(data) {
			buf.Write(data)
			return nil
		}
		return appendJSONString(buf, data)
	case pgtype.JSONOID, pgtype.JSONBOID:
		if !json.Valid(data) {
			return fmt.Errorf("invalid json value")
		}
		buf.Write(data)
		return nil
	}
	t, ok := d.types.TypeForOID(oid)
	if !ok {
		// Enums, domains and extension types: their text form is the most
		// faithful thing we can publish.
		return appendJSONString(buf, data)
	}
	v, err := t.Codec.DecodeValue(d.types, oid, pgtype.TextFormatCode, data)
	if err != nil {
		return fmt.Errorf("decode %s value: %w", t.Name, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return appendJSONString(buf, data)
	}
	buf.Write(out)
	return nil
}

func appendJSONString(buf *bytes.Buffer, data []byte) error {
	buf.Write(rawjson.AppendString(buf.AvailableBuffer(), data))
	return nil
}

// row builds a JSON object of the given columns and the row's key (see
// rowKey). present(i) reports whether column i has a value to publish
// (unchanged TOASTed values do not), and values[i] is its text (nil for
// NULL). A value that cannot be decoded as its type is published as its
// text: PostgreSQL printed it, so it is a value our decoding does not know,
// and a consumer that needs the column says so (the projector dead-letters
// the row with the reason). Failing instead would stop capture on this
// change for ever, since a restart reads it again.
func (d *decoder) row(cols []column, values [][]byte, present func(i int) bool) (json.RawMessage, string, bool) {
	size := 2
	for i, c := range cols {
		size += len(c.name) + len(values[i]) + 8 // quotes, colon, comma, a little escaping
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteByte('{')
	first := true
	for i, c := range cols {
		if !present(i) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		_ = appendJSONString(buf, []byte(c.name))
		buf.WriteByte(':')
		mark := buf.Len()
		if err := d.value(buf, c.oid, values[i]); err != nil {
			buf.Truncate(mark)
			_ = appendJSONString(buf, values[i])
			metricValuesAsText.Inc()
		}
	}
	buf.WriteByte('}')
	key, ok := rowKey(cols, values, present)
	return buf.Bytes(), key, ok
}

// rowKey returns the key of a row and whether it has one: every key column
// must have been sent, and a one-column key must not be NULL.
//
// An event's Key cannot be empty (the envelope omits an empty key and
// consumers reject a change without one), yet the empty string is a valid primary key.
// So a one-column key is its value as is unless that value is empty or
// starts with '[', and a JSON array of the values (null for NULL) otherwise,
// like a composite key: every row keeps a key of its own, and the keys of
// common values are their plain text.
func rowKey(cols []column, values [][]byte, present func(i int) bool) (string, bool) {
	n, single := 0, -1
	for i, c := range cols {
		if !c.key {
			continue
		}
		if !present(i) {
			return "", false // an unchanged TOASTed key column: the caller may know it
		}
		if n == 0 {
			single = i
		}
		n++
	}
	switch {
	case n == 0:
		return "", false
	case n == 1 && values[single] == nil:
		return "", false
	case n == 1 && len(values[single]) > 0 && values[single][0] != '[':
		return string(values[single]), true
	}
	buf := make([]byte, 0, 2+n*8)
	buf = append(buf, '[')
	k := 0
	for i, c := range cols {
		if !c.key {
			continue
		}
		if k > 0 {
			buf = append(buf, ',')
		}
		k++
		if values[i] == nil {
			buf = append(buf, "null"...)
		} else {
			buf = rawjson.AppendString(buf, values[i])
		}
	}
	return string(append(buf, ']')), true
}

// isJSONNumber reports whether data is a number in JSON's grammar.
func isJSONNumber(data []byte) bool {
	i, n := 0, len(data)
	if i < n && data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && data[i] >= '1' && data[i] <= '9':
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < n && data[i] == '.' {
		i++
		start := i
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		start := i
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == n
}
