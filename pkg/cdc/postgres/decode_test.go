package postgres

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestRow(t *testing.T) {
	cols := []column{
		{name: "codigo", oid: pgtype.TextOID, key: true},
		{name: "activo", oid: pgtype.BoolOID},
		{name: "n", oid: pgtype.Int4OID},
		{name: "precio", oid: pgtype.NumericOID},
		{name: "meta", oid: pgtype.JSONBOID},
		{name: "alta", oid: pgtype.DateOID},
		{name: "nota", oid: pgtype.TextOID},
		{name: "color", oid: 99999}, // an enum: unknown to the type map
	}
	all := func(int) bool { return true }
	tests := []struct {
		name    string
		values  [][]byte
		present func(int) bool
		want    string
		key     string
	}{
		{
			name:    "every type",
			values:  [][]byte{[]byte(`S-"01"`), []byte("t"), []byte("42"), []byte("12.50"), []byte(`{"a":[1]}`), []byte("2026-01-02"), nil, []byte("rojo")},
			present: all,
			want:    `{"codigo":"S-\"01\"","activo":true,"n":42,"precio":12.50,"meta":{"a":[1]},"alta":"2026-01-02","nota":null,"color":"rojo"}`,
			key:     `S-"01"`,
		},
		{
			name:    "unchanged toasted value is left out",
			values:  [][]byte{[]byte("S-1"), []byte("f"), []byte("1"), []byte("1"), []byte("{}"), []byte("2026-01-02"), nil, nil},
			present: func(i int) bool { return i != 6 },
			want:    `{"codigo":"S-1","activo":false,"n":1,"precio":1,"meta":{},"alta":"2026-01-02","color":null}`,
			key:     "S-1",
		},
		{
			// Values that cannot be decoded as their type go out as their
			// text, for consumers to judge, instead of stopping capture.
			name:    "undecodable values as text",
			values:  [][]byte{[]byte("S-1"), []byte("yes"), []byte("4x"), nil, []byte(`{"a":`), nil, nil, nil},
			present: all,
			want:    `{"codigo":"S-1","activo":"yes","n":"4x","precio":null,"meta":"{\"a\":","alta":null,"nota":null,"color":null}`,
			key:     "S-1",
		},
		{
			name:    "empty key",
			values:  [][]byte{{}, nil, nil, nil, nil, nil, nil, nil},
			present: all,
			want:    `{"codigo":"","activo":null,"n":null,"precio":null,"meta":null,"alta":null,"nota":null,"color":null}`,
			key:     `[""]`,
		},
	}
	d := newDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, key, ok := d.row(cols, tt.values, tt.present)
			if !ok {
				t.Fatalf("row %s has no key", got)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON %s", got)
			}
			var g, w any
			_ = json.Unmarshal(got, &g)
			_ = json.Unmarshal([]byte(tt.want), &w)
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			if string(gj) != string(wj) || key != tt.key {
				t.Fatalf("row = %s key %q\nwant %s key %q", got, key, tt.want, tt.key)
			}
		})
	}
}

// TestRowKey: every value of a key, the empty string included, gets a key
// of its own; a key is missing only when a key column was not sent or a
// one-column key is NULL.
func TestRowKey(t *testing.T) {
	one := []column{{name: "k", oid: pgtype.TextOID, key: true}, {name: "v", oid: pgtype.TextOID}}
	composite := []column{
		{name: "a", oid: pgtype.TextOID, key: true},
		{name: "b", oid: pgtype.TextOID, key: true},
		{name: "c", oid: pgtype.TextOID},
		{name: "d", oid: pgtype.TextOID, key: true},
	}
	all := func(int) bool { return true }
	tests := []struct {
		cols    []column
		values  [][]byte
		present func(int) bool
		want    string
		ok      bool
	}{
		{one, [][]byte{[]byte("S-1"), nil}, all, "S-1", true},
		{one, [][]byte{{}, nil}, all, `[""]`, true},
		{one, [][]byte{[]byte(`[""]`), nil}, all, `["[\"\"]"]`, true},
		{one, [][]byte{[]byte("[x"), nil}, all, `["[x"]`, true},
		{one, [][]byte{[]byte(" a.b*>\n"), nil}, all, " a.b*>\n", true},
		{one, [][]byte{nil, []byte("v")}, all, "", false},
		{one, [][]byte{nil, []byte("v")}, func(i int) bool { return i != 0 }, "", false},
		{composite, [][]byte{[]byte("1"), []byte("x"), []byte("-"), []byte("y")}, all, `["1","x","y"]`, true},
		{composite, [][]byte{{}, []byte("x"), []byte("-"), []byte("y")}, all, `["","x","y"]`, true},
		{composite, [][]byte{nil, []byte("x"), []byte("-"), nil}, all, `[null,"x",null]`, true},
		{composite, [][]byte{[]byte("1"), nil, []byte("-"), []byte("y")}, func(i int) bool { return i != 1 }, "", false},
		{[]column{{name: "v", oid: pgtype.TextOID}}, [][]byte{[]byte("v")}, all, "", false},
	}
	for _, tt := range tests {
		_, key, ok := newDecoder().row(tt.cols, tt.values, tt.present)
		if key != tt.want || ok != tt.ok {
			t.Errorf("key of %q = %q, %v; want %q, %v", tt.values, key, ok, tt.want, tt.ok)
		}
	}
}

// FuzzRow: any text value of any common type decodes to valid JSON and
// never panics.
func FuzzRow(f *testing.F) {
	f.Add(uint32(pgtype.TextOID), []byte("hola"))
	f.Add(uint32(pgtype.NumericOID), []byte("NaN"))
	f.Add(uint32(pgtype.TimestamptzOID), []byte("2026-01-02 03:04:05+00"))
	f.Add(uint32(pgtype.JSONBOID), []byte(`{"a":`))
	f.Add(uint32(pgtype.Float8OID), []byte("Infinity"))
	d := newDecoder()
	f.Fuzz(func(t *testing.T, oid uint32, data []byte) {
		cols := []column{{name: "k", oid: pgtype.TextOID, key: true}, {name: "v", oid: oid}}
		out, _, _ := d.row(cols, [][]byte{[]byte("k"), data}, func(int) bool { return true })
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for oid %d value %q: %s", oid, data, out)
		}
	})
}
