package mongo

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/reportes/reportes/pkg/cdc"
)

func mustMarshal(t testing.TB, d bson.D) []byte {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeEntry(t *testing.T) {
	wall := time.UnixMilli(1_790_000_000_123).UTC()
	raw := mustMarshal(t, bson.D{
		{Key: "ts", Value: primitive.Timestamp{T: 1_790_000_000, I: 7}}, {Key: "op", Value: "u"}, {Key: "ns", Value: "inventory_db.orders"},
		{Key: "ui", Value: primitive.NewObjectID()}, {Key: "wall", Value: wall},
		{Key: "o", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "vendedor", Value: "S-0042"}}}}},
		{Key: "o2", Value: bson.D{{Key: "_id", Value: int32(3)}}},
	})
	e, err := decodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	if e.TS != (primitive.Timestamp{T: 1_790_000_000, I: 7}) || e.Op != "u" || e.NS != "inventory_db.orders" || !e.Wall.Equal(wall) {
		t.Fatalf("decoded %+v", e)
	}
	if v := e.O2.Lookup("_id").Int32(); v != 3 {
		t.Fatalf("o2._id = %d, want 3", v)
	}
	if v := e.O.Lookup("$set", "vendedor").StringValue(); v != "S-0042" {
		t.Fatalf("o.$set.vendedor = %q", v)
	}

	for _, tt := range []struct {
		doc  bson.D
		want string
	}{
		{bson.D{{Key: "ts", Value: int64(5)}}, "field ts is a 64-bit integer, want a timestamp"},
		{bson.D{{Key: "op", Value: int32(1)}}, "field op is a 32-bit integer, want a string"},
		{bson.D{{Key: "o", Value: "x"}}, "field o is a string, want a embedded document"},
		{bson.D{{Key: "wall", Value: "yesterday"}}, "field wall is a string, want a UTC datetime"},
	} {
		if _, err := decodeEntry(mustMarshal(t, tt.doc)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decodeEntry(%v) = %v, want an error saying %q", tt.doc, err, tt.want)
		}
	}
	if _, err := decodeEntry(raw[:len(raw)-3]); err == nil {
		t.Error("a truncated entry was accepted")
	}
	null, err := decodeEntry(mustMarshal(t, bson.D{{Key: "ts", Value: nil}, {Key: "o", Value: nil}, {Key: "op", Value: "n"}}))
	if err != nil || null.Op != "n" || null.O != nil || !null.TS.IsZero() {
		t.Errorf("null fields: %+v, %v", null, err)
	}
}

// FuzzDecodeEntry checks the one-walk decoder against the driver's struct
// decoding: whatever it accepts, the driver decodes to the same entry, and
// whatever the driver decodes, it accepts unless a field has a type the
// oplog never writes there.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(mustMarshal(f, bson.D{{Key: "ts", Value: primitive.Timestamp{T: 1, I: 2}}, {Key: "op", Value: "i"}, {Key: "ns", Value: "a.b"},
		{Key: "wall", Value: time.UnixMilli(-1_500)}, {Key: "o", Value: bson.D{{Key: "_id", Value: "k"}, {Key: "vendedor", Value: "S-1"}}}}))
	f.Add(mustMarshal(f, bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"},
		{Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{bson.D{{Key: "op", Value: "i"}, {Key: "o", Value: bson.D{}}}}}}}}))
	f.Add(mustMarshal(f, bson.D{{Key: "o2", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "o2", Value: nil}, {Key: "ts", Value: "x"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range keysOf(data) {
			for _, ours := range []string{"ts", "op", "ns", "o", "o2", "wall"} {
				if k != ours && strings.EqualFold(k, ours) {
					return // the driver also matches field names ignoring case; the oplog's are exact
				}
			}
		}
		got, err := decodeEntry(data)
		want, werr := driverDecode(data)
		switch {
		case err == nil && werr != nil:
			t.Fatalf("accepted what the driver refuses (%v): %+v", werr, got)
		case err != nil && werr == nil:
			if !strings.Contains(err.Error(), "oplog entry field") {
				t.Fatalf("refused what the driver decodes: %v", err)
			}
		case err == nil:
			if got.TS != want.TS || got.Op != want.Op || got.NS != want.NS || !got.Wall.Equal(want.Wall) ||
				!bytes.Equal(got.O, want.O) || !bytes.Equal(got.O2, want.O2) {
				t.Fatalf("decoded %#v, the driver %#v", got, want)
			}
		}
	})
}

// driverDecode decodes with the driver, which panics on some malformed
// documents (for example an element claiming a string longer than itself):
// that counts as refusing them.
func driverDecode(data []byte) (e oplogEntry, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("driver panicked: %v", p)
		}
	}()
	err = bson.Unmarshal(data, &e)
	return e, err
}

// keysOf lists the top-level keys of a valid document (none otherwise).
func keysOf(data []byte) []string {
	elems, err := bsoncore.Document(data).Elements()
	if err != nil {
		return nil
	}
	keys := make([]string, len(elems))
	for i, e := range elems {
		keys[i] = e.Key()
	}
	return keys
}

func TestDecodeApplyOps(t *testing.T) {
	o := bson.Raw(mustMarshal(t, bson.D{{Key: "applyOps", Value: bson.A{
		bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "inventory_db.orders"}, {Key: "o", Value: bson.D{{Key: "_id", Value: "a"}}}},
		bson.D{{Key: "op", Value: "d"}, {Key: "ns", Value: "other.coll"}, {Key: "o", Value: bson.D{{Key: "_id", Value: "b"}}}},
	}}}))
	ops, err := decodeApplyOps(o.Lookup("applyOps"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Op != "i" || ops[0].NS != "inventory_db.orders" || ops[1].Op != "d" || ops[1].O.Lookup("_id").StringValue() != "b" {
		t.Fatalf("decoded %+v", ops)
	}
	for _, tt := range []struct {
		ops  any
		want string
	}{
		{"x", "applyOps is a string, want an array"},
		{bson.A{int32(1)}, "applyOps operation 0 is a 32-bit integer, want a document"},
		{bson.A{bson.D{{Key: "ns", Value: true}}}, "applyOps operation 0: oplog entry field ns is a boolean, want a string"},
	} {
		o := bson.Raw(mustMarshal(t, bson.D{{Key: "applyOps", Value: tt.ops}}))
		if _, err := decodeApplyOps(o.Lookup("applyOps")); err == nil || err.Error() != tt.want {
			t.Errorf("decodeApplyOps(%v) = %v, want %q", tt.ops, err, tt.want)
		}
	}
}

func TestOplogEventID(t *testing.T) {
	for _, pos := range []oplogTS{{}, {T: 1_790_000_000, I: 7}, {T: 1<<32 - 1, I: 1<<32 - 1}} {
		for _, idx := range []int{0, 1, 12} {
			id, position := oplogEventID(cdc.NewOrigin(cdc.SourceMongo, "inventory_db.orders"), pos, idx)
			wantPos := fmt.Sprintf("%d.%d", pos.T, pos.I)
			if want := fmt.Sprintf("mongo:inventory_db.orders:%s:%d", wantPos, idx); id != want || position != wantPos || pos.String() != wantPos {
				t.Errorf("oplogEventID(%v, %d) = %q, %q (String %q); want %q, %q", pos, idx, id, position, pos.String(), want, wantPos)
			}
		}
	}
}

// FuzzOplogChange: whatever oplog entry decodes, the event built from it
// has a message id bounded whatever the document holds (for a snapshot
// too), the same for the same entry so that a republish is deduplicated,
// and is either accepted by consumers (cdc.Decode) or unusable (errUnusable,
// which publishChange logs instead of stopping on it).
func FuzzOplogChange(f *testing.F) {
	const ns = "inventory_db.orders"
	ts := primitive.Timestamp{T: 1_790_000_000, I: 3}
	for _, id := range []any{"", "k", strings.Repeat("é", 5000), primitive.NewObjectID(), int32(7), 1.5,
		primitive.Binary{Data: []byte{0, 0xff}}, bson.D{{Key: "a", Value: "x\x00y"}}, primitive.MinKey{}} {
		f.Add(mustMarshal(f, bson.D{{Key: "ts", Value: ts}, {Key: "op", Value: "i"}, {Key: "ns", Value: ns},
			{Key: "o", Value: bson.D{{Key: "_id", Value: id}, {Key: "vendedor", Value: id}}}}), uint8(0))
	}
	f.Add(mustMarshal(f, bson.D{{Key: "ts", Value: ts}, {Key: "op", Value: "u"}, {Key: "ns", Value: ns},
		{Key: "o", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "_id", Value: "a"}, {Key: "vendedor", Value: ""}}}}}}), uint8(1))
	f.Add(mustMarshal(f, bson.D{{Key: "ts", Value: ts}, {Key: "op", Value: "u"}, {Key: "ns", Value: ns},
		{Key: "o", Value: bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{}}}}, {Key: "o2", Value: bson.D{{Key: "_id", Value: "a"}}}}), uint8(2))
	f.Add(mustMarshal(f, bson.D{{Key: "ts", Value: ts}, {Key: "op", Value: "d"}, {Key: "ns", Value: ns}, {Key: "o", Value: bson.D{}}}), uint8(0))
	maxID := len("mongo:"+ns+":snap:") + len("4294967295.4294967295:") + cdc.MaxTokenBytes
	origin := cdc.NewOrigin(cdc.SourceMongo, ns)
	f.Fuzz(func(t *testing.T, data []byte, idx uint8) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		ev, lookup, err := oplogChange(origin, ns, e, int(idx))
		again, _, _ := oplogChange(origin, ns, e, int(idx))
		if ev.ID != again.ID || ev.Key != again.Key {
			t.Fatalf("two ids for one entry: %q %q, keys %.80q %.80q", ev.ID, again.ID, ev.Key, again.Key)
		}
		if snap := origin.SnapshotRow(ev.Position, ns, ev.Key); len(ev.ID) > maxID || len(snap) > maxID {
			t.Fatalf("message ids of %d and %d bytes: %.100q %.100q", len(ev.ID), len(snap), ev.ID, snap)
		}
		if err == nil && lookup.Type != 0 {
			ev.Key, err = keyOf(lookup) // as if the document was deleted since
		}
		if err != nil {
			if !errors.Is(err, errUnusable) {
				t.Fatalf("an error that would stop the source on this entry for ever: %v", err)
			}
			return
		}
		var got cdc.Event
		if err := cdc.Decode(ev.AppendJSON(nil), &got); err != nil {
			t.Fatalf("consumers refuse the event: %v", err)
		}
	})
}
