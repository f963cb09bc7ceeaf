package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reportes/reportes/pkg/cdc"
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
	buf.Write(cdc.AppendString(buf.AvailableBuffer(), string(data)))
	return nil
}

// row builds a JSON object of the given columns. present(i) reports whether
// column i has a value to publish (unchanged TOASTed values do not), and
// values[i] is its text (nil for NULL). The key is the text of the key
// columns: the value itself for a one-column key, a JSON array otherwise.
func (d *decoder) row(cols []column, values [][]byte, present func(i int) bool) (json.RawMessage, string, error) {
	size := 2
	for i, c := range cols {
		size += len(c.name) + len(values[i]) + 8 // quotes, colon, comma, a little escaping
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteByte('{')
	var key string    // the first key column's value
	var keys []string // all of them, once there is a second
	nkeys, first := 0, true
	for i, c := range cols {
		if c.key && values[i] != nil {
			switch nkeys++; nkeys {
			case 1:
				key = string(values[i])
			case 2:
				keys = []string{key, string(values[i])}
			default:
				keys = append(keys, string(values[i]))
			}
		}
		if !present(i) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		if err := appendJSONString(buf, []byte(c.name)); err != nil {
			return nil, "", err
		}
		buf.WriteByte(':')
		if err := d.value(buf, c.oid, values[i]); err != nil {
			return nil, "", fmt.Errorf("column %s: %w", c.name, err)
		}
	}
	buf.WriteByte('}')
	if keys != nil {
		key = keyString(keys)
	}
	return buf.Bytes(), key, nil
}

func keyString(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	out, _ := json.Marshal(parts)
	return string(out)
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
