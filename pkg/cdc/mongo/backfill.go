package mongo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/pkg/cdc"
)

// DefaultWatermarkCollection is the collection, in the captured database,
// that backfill watermarks are written to: an insert of a document whose
// _id is the watermark, which the change stream or the oplog carries in
// order with the changes of the captured collection.
const DefaultWatermarkCollection = "reportes_watermarks"

// chunks reads the chunks of the source's backfills (cdc.ChunkReader).
type chunks struct {
	s          *Source
	coll       *mongo.Collection
	watermarks *mongo.Collection
	written    string // the last watermark written, removed with the next
}

func (s *Source) newChunks(client *mongo.Client) *chunks {
	db := client.Database(s.cfg.Database)
	return &chunks{s: s, coll: db.Collection(s.cfg.Collection), watermarks: db.Collection(s.cfg.WatermarkCollection)}
}

func (c *chunks) check(collection string) error {
	if collection != c.s.ns {
		return cdc.Permanent(fmt.Errorf("collection %s is not captured (captured: %s)", collection, c.s.ns))
	}
	return nil
}

// filter decodes a backfill's filter, a document in Extended JSON.
func filter(text string) (bson.D, error) {
	if text == "" {
		return bson.D{}, nil
	}
	var f bson.D
	if err := bson.UnmarshalExtJSON([]byte(text), false, &f); err != nil {
		return nil, cdc.Permanent(fmt.Errorf("filter %q is no MongoDB filter document in Extended JSON: %w", text, err))
	}
	return f, nil
}

// Estimate implements cdc.ChunkReader.
func (c *chunks) Estimate(ctx context.Context, collection, text string) (int64, error) {
	if err := c.check(collection); err != nil {
		return 0, err
	}
	if text == "" {
		return c.coll.EstimatedDocumentCount(ctx)
	}
	f, err := filter(text)
	if err != nil {
		return 0, err
	}
	return c.coll.CountDocuments(ctx, f)
}

// WriteWatermark implements cdc.ChunkReader. It removes the watermark it
// wrote before, which the capture read or will not wait for any more (one
// left behind by a restart is a small document nobody reads).
func (c *chunks) WriteWatermark(ctx context.Context, id string) error {
	if c.written != "" {
		_, _ = c.watermarks.DeleteOne(ctx, bson.D{{Key: "_id", Value: c.written}})
	}
	c.written = id
	if _, err := c.watermarks.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "at", Value: time.Now()}}); err != nil {
		return fmt.Errorf("write watermark to %s.%s: %w", c.s.cfg.Database, c.s.cfg.WatermarkCollection, err)
	}
	return nil
}

// ReadChunk implements cdc.ChunkReader, in _id order. An _id of any type
// is reached: a comparison in a query only matches values of the same
// type, so the chunk after a key is what is greater within its type, or of
// a type that sorts after it.
func (c *chunks) ReadChunk(ctx context.Context, collection, text string, after json.RawMessage, n int) ([]cdc.Row, json.RawMessage, bool, error) {
	if err := c.check(collection); err != nil {
		return nil, nil, false, err
	}
	f, err := filter(text)
	if err != nil {
		return nil, nil, false, err
	}
	if len(after) > 0 {
		var last bson.Raw
		if err := bson.UnmarshalExtJSON(after, true, &last); err != nil {
			return nil, nil, false, cdc.Permanent(fmt.Errorf("backfill position %s: %w", after, err))
		}
		id := last.Lookup("_id")
		next := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: id}}}}
		if later := typesAfter(id.Type); len(later) > 0 {
			next = bson.D{{Key: "$or", Value: bson.A{next, bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: later}}}}}}}
		}
		f = bson.D{{Key: "$and", Value: bson.A{f, next}}}
	}
	cur, err := c.coll.Find(ctx, f, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(n)).SetBatchSize(int32(min(n, 10000)))) //nolint:gosec // bounded
	if err != nil {
		return nil, nil, false, fmt.Errorf("read chunk of %s: %w", c.s.ns, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var rows []cdc.Row
	var lastID bson.RawValue
	read := 0
	for cur.Next(ctx) {
		read++
		doc := append(bson.Raw(nil), cur.Current...)
		lastID = doc.Lookup("_id")
		if r, ok := c.row(doc); ok {
			rows = append(rows, r)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, nil, false, fmt.Errorf("read chunk of %s: %w", c.s.ns, err)
	}
	if lastID.Type == 0 {
		return rows, nil, true, nil
	}
	next, err := bson.MarshalExtJSON(bson.D{{Key: "_id", Value: lastID}}, true, false)
	return rows, next, read < n, err
}

// row turns a document of a chunk into a row, or what of it can be
// published (see Source.salvage).
func (c *chunks) row(doc bson.Raw) (cdc.Row, bool) {
	key, after, err := documentJSON(doc)
	if err != nil {
		publish, _ := c.s.salvage(err, cdc.OpSnapshot, "backfill:"+cdc.Bound(key), key)
		return cdc.Row{Key: key}, publish
	}
	return cdc.Row{Key: key, After: after}, true
}

// typeOrder is the order in which MongoDB sorts values of different BSON
// types (as $type aliases); the types of one group compare by value.
var typeOrder = []struct {
	types   []bsontype.Type
	aliases []string
}{
	{[]bsontype.Type{bson.TypeMinKey}, nil}, // no $type alias on some compatible servers (FerretDB)
	{[]bsontype.Type{bson.TypeNull}, []string{"null"}},
	{[]bsontype.Type{bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128}, []string{"number"}},
	{[]bsontype.Type{bson.TypeString, bson.TypeSymbol}, []string{"string"}},
	{[]bsontype.Type{bson.TypeEmbeddedDocument}, []string{"object"}},
	{[]bsontype.Type{bson.TypeArray}, []string{"array"}},
	{[]bsontype.Type{bson.TypeBinary}, []string{"binData"}},
	{[]bsontype.Type{bson.TypeObjectID}, []string{"objectId"}},
	{[]bsontype.Type{bson.TypeBoolean}, []string{"bool"}},
	{[]bsontype.Type{bson.TypeDateTime}, []string{"date"}},
	{[]bsontype.Type{bson.TypeTimestamp}, []string{"timestamp"}},
	{[]bsontype.Type{bson.TypeRegex}, []string{"regex"}},
	{[]bsontype.Type{bson.TypeMaxKey}, nil}, // nothing sorts after it
}

// typesAfter returns the $type aliases of the groups that sort after the
// group of t.
func typesAfter(t bsontype.Type) bson.A {
	out := bson.A{}
	found := false
	for _, group := range typeOrder {
		if found {
			for _, a := range group.aliases {
				out = append(out, a)
			}
		}
		if slices.Contains(group.types, t) {
			found = true
		}
	}
	return out
}
