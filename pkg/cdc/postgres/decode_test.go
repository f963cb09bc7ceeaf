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
		wantErr bool
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
		{name: "bad boolean", values: [][]byte{[]byte("S-1"), []byte("yes"), nil, nil, nil, nil, nil, nil}, present: all, wantErr: true},
		{name: "bad integer", values: [][]byte{[]byte("S-1"), nil, []byte("4x"), nil, nil, nil, nil, nil}, present: all, wantErr: true},
	}
	d := newDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, key, err := d.row(cols, tt.values, tt.present)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
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

func TestCompositeKey(t *testing.T) {
	cols := []column{
		{name: "a", oid: pgtype.TextOID, key: true},
		{name: "b", oid: pgtype.TextOID, key: true},
		{name: "c", oid: pgtype.TextOID},
		{name: "d", oid: pgtype.TextOID, key: true},
	}
	tests := []struct {
		values [][]byte
		want   string
	}{
		{[][]byte{[]byte("1"), []byte("x"), []byte("-"), []byte("y")}, `["1","x","y"]`},
		{[][]byte{[]byte(""), []byte("x"), []byte("-"), []byte("y")}, `["","x","y"]`},
		{[][]byte{nil, []byte("x"), []byte("-"), nil}, "x"},
		{[][]byte{nil, nil, []byte("-"), nil}, ""},
	}
	for _, tt := range tests {
		_, key, err := newDecoder().row(cols, tt.values, func(int) bool { return true })
		if err != nil || key != tt.want {
			t.Errorf("key of %q = %q, %v; want %q", tt.values, key, err, tt.want)
		}
	}
}

// FuzzRow: any text value of any common type either decodes to valid JSON
// or fails with an error; it never panics.
func FuzzRow(f *testing.F) {
	f.Add(uint32(pgtype.TextOID), []byte("hola"))
	f.Add(uint32(pgtype.NumericOID), []byte("NaN"))
	f.Add(uint32(pgtype.TimestamptzOID), []byte("2026-01-02 03:04:05+00"))
	f.Add(uint32(pgtype.JSONBOID), []byte(`{"a":`))
	f.Add(uint32(pgtype.Float8OID), []byte("Infinity"))
	d := newDecoder()
	f.Fuzz(func(t *testing.T, oid uint32, data []byte) {
		cols := []column{{name: "k", oid: pgtype.TextOID, key: true}, {name: "v", oid: oid}}
		out, _, err := d.row(cols, [][]byte{[]byte("k"), data}, func(int) bool { return true })
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON for oid %d value %q: %s", oid, data, out)
		}
	})
}
