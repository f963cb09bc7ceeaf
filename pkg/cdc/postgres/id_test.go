package postgres

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reportes/reportes/pkg/cdc"
)

// maxIDBytes bounds a snapshot row id with the test's slot and LSN: two
// bounded parts and the fixed text around them.
const maxIDBytes = len("pg:slot:FFFFFFFF/FFFFFFFF:") + 2*cdc.MaxTokenBytes + 1

// checkID fails t unless id can travel as a Nats-Msg-Id unchanged: bounded,
// valid UTF-8, without blanks or control characters (nats.go turns line
// breaks into spaces, NATS trims blanks around a header value).
func checkID(t *testing.T, id string) {
	t.Helper()
	if len(id) > maxIDBytes || !utf8.ValidString(id) {
		t.Fatalf("id %q: %d bytes (max %d) or invalid UTF-8", id, len(id), maxIDBytes)
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		t.Fatalf("id %q has a blank or control character at %d", id, i)
	}
}

// snapshotRowID and snapshotMarkerID are the ids the source gives a
// snapshot's rows and markers.
func snapshotRowID(slot string, lsn pglogrepl.LSN, table, key string) string {
	return cdc.NewOrigin(cdc.SourcePostgres, slot).SnapshotRow(lsn.String(), table, key)
}

func snapshotMarkerID(slot string, lsn pglogrepl.LSN, table string, op cdc.Op) string {
	return cdc.NewOrigin(cdc.SourcePostgres, slot).SnapshotMarker(lsn.String(), table, op)
}

// keyOf is the path from a one-column key value to the event's Key.
func keyOf(t *testing.T, value string) string {
	t.Helper()
	cols := []column{{name: "codigo", oid: pgtype.TextOID, key: true}}
	_, key, ok := newDecoder().row(cols, [][]byte{[]byte(value)}, func(int) bool { return true })
	if !ok || key == "" {
		t.Fatalf("value %q: no key (%q)", value, key)
	}
	return key
}

func TestSnapshotIDs(t *testing.T) {
	lsn := pglogrepl.LSN(0x16B3748)
	values := []string{"", "S-01", " S-01", "S-01 ", "a\nb", "a b", "a\rb", "a\tb", "a.b", "*", ">", "a:b", "a%0Ab",
		"ñandú ☃ 日本", "\x01\x02\x1f\x7f", "snapshot_begin", "~snapshot_begin", `[""]`, "\u2028", "\u00a0",
		strings.Repeat("x", 10_000), strings.Repeat("x", 10_000) + "y", strings.Repeat("é", 5_000)}
	seen := map[string]string{}
	for _, op := range []cdc.Op{cdc.OpSnapshotBegin, cdc.OpSnapshotEnd} {
		id := snapshotMarkerID("slot", lsn, "public.empleados", op)
		checkID(t, id)
		seen[id] = string(op)
	}
	for _, v := range values {
		id := snapshotRowID("slot", lsn, "public.empleados", keyOf(t, v))
		checkID(t, id)
		if other, dup := seen[id]; dup {
			t.Fatalf("values %.40q and %.40q share id %q", v, other, id)
		}
		seen[id] = v
		if again := snapshotRowID("slot", lsn, "public.empleados", keyOf(t, v)); again != id {
			t.Fatalf("id of %.40q is not deterministic: %q then %q", v, id, again)
		}
	}
	if got := snapshotRowID("slot", lsn, "public.empleados", "S-01"); got != "pg:slot:0/16B3748:public.empleados:S-01" {
		t.Fatalf("plain keys must keep their ids: %s", got)
	}
}

// FuzzSnapshotID: the id of the snapshot row of any key value is valid as
// a Nats-Msg-Id, deterministic, and differs from the id of any other value
// and from the snapshot's markers.
func FuzzSnapshotID(f *testing.F) {
	f.Add("", " ")
	f.Add("a\nb", "a b")
	f.Add("S-01", "S-01 ")
	f.Add("snapshot_begin", "~snapshot_begin")
	f.Add(`[""]`, "")
	f.Add(strings.Repeat("x", 100), strings.Repeat("x", 101))
	f.Add("a%0Ab", "a\nb")
	lsn := pglogrepl.LSN(0x16B3748)
	markers := map[string]bool{
		snapshotMarkerID("slot", lsn, "public.empleados", cdc.OpSnapshotBegin): true,
		snapshotMarkerID("slot", lsn, "public.empleados", cdc.OpSnapshotEnd):   true,
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, kb := keyOf(t, a), keyOf(t, b)
		ida := snapshotRowID("slot", lsn, "public.empleados", ka)
		idb := snapshotRowID("slot", lsn, "public.empleados", kb)
		checkID(t, ida)
		if ida != snapshotRowID("slot", lsn, "public.empleados", keyOf(t, a)) {
			t.Fatalf("id of %q is not deterministic", a)
		}
		if markers[ida] {
			t.Fatalf("value %q takes a marker's id %q", a, ida)
		}
		if (a == b) != (ka == kb) || (a == b) != (ida == idb) {
			t.Fatalf("values %q and %q: keys %q %q, ids %q %q", a, b, ka, kb, ida, idb)
		}
	})
}
