package mongo

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/reportes/reportes/pkg/cdc"
)

// BenchmarkOplogInsert: the ingestor's CPU per inserted order, from the raw
// oplog entry to the event's wire form (publishing excluded).
func BenchmarkOplogInsert(b *testing.B) {
	raw, err := bson.Marshal(bson.D{
		{Key: "ts", Value: primitive.Timestamp{T: 1_790_000_000, I: 7}}, {Key: "op", Value: "i"}, {Key: "ns", Value: "inventory_db.orders"},
		{Key: "wall", Value: time.Unix(1_790_000_000, 0)},
		{Key: "o", Value: bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "vendedor", Value: "S-0042"}, {Key: "producto", Value: "Tornillos M6"}, {Key: "cantidad", Value: int32(12)}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	origin := cdc.NewOrigin(cdc.SourceMongo, "inventory_db.orders")
	for b.Loop() {
		e, err := decodeEntry(append(bson.Raw(nil), raw...)) // as the tail copies it off the batch
		if err != nil {
			b.Fatal(err)
		}
		key, after, err := documentJSON(e.O)
		if err != nil {
			b.Fatal(err)
		}
		pos := oplogTS{T: e.TS.T, I: e.TS.I}
		id, position := oplogEventID(origin, pos, 0)
		ev := cdc.Event{ID: id, Source: cdc.SourceMongo, Collection: "inventory_db.orders", Op: cdc.OpInsert,
			Key: key, After: after, Position: position, Version: pos.version(), CommitTime: e.Wall}
		buf = ev.AppendJSON(buf[:0])
	}
}
