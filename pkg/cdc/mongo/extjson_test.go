package mongo

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// extJSONSamples holds a document of every type appendDocument encodes
// itself, and of some it leaves to the driver.
func extJSONSamples() []bson.D {
	oid := primitive.NewObjectID()
	dec, _ := primitive.ParseDecimal128("12.50")
	return []bson.D{
		{{Key: "_id", Value: oid}, {Key: "vendedor", Value: "S-01 <&> \"q\" \u00e9\u2028"}, {Key: "n", Value: int32(-7)}, {Key: "big", Value: int64(1) << 60}},
		{{Key: "f", Value: 1.0}, {Key: "g", Value: 0.1}, {Key: "h", Value: 1e300}, {Key: "i", Value: -2.5e-10}, {Key: "nan", Value: math.NaN()}, {Key: "inf", Value: math.Inf(-1)}},
		{{Key: "t", Value: true}, {Key: "nil", Value: nil}, {Key: "when", Value: primitive.NewDateTimeFromTime(time.Date(2026, 11, 27, 23, 6, 44, 776e6, time.UTC))}},
		{{Key: "old", Value: primitive.NewDateTimeFromTime(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))}, {Key: "dec", Value: dec}},
		{{Key: "nested", Value: bson.D{{Key: "a", Value: bson.A{1, "x", bson.D{{Key: "b", Value: nil}}, bson.A{}}}}}},
		{{Key: "bin", Value: primitive.Binary{Subtype: 0, Data: []byte("hi")}}, {Key: "re", Value: primitive.Regex{Pattern: "^a", Options: "i"}},
			{Key: "ts", Value: primitive.Timestamp{T: 5, I: 6}}, {Key: "min", Value: primitive.MinKey{}}},
		{},
	}
}

// TestExtJSON: appendDocument says what the driver's relaxed Extended JSON
// says, type by type.
func TestExtJSON(t *testing.T) {
	docs := extJSONSamples()
	for _, d := range docs {
		raw, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendDocument(nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		want, err := bson.MarshalExtJSON(bson.Raw(raw), false, false)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("invalid JSON %s: %v", got, err)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("appendDocument:\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzExtJSON(f *testing.F) {
	raw, _ := bson.Marshal(bson.D{{Key: "vendedor", Value: "S-01"}, {Key: "n", Value: 1.5}, {Key: "a", Value: bson.A{int64(3)}}})
	f.Add(raw)
	for _, d := range extJSONSamples() {
		raw, _ := bson.Marshal(d)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := encodeDocument(nil, data)
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("invalid JSON from %x: %s", data, got)
		}
		// Where the driver encodes it too, both say the same.
		want, err := driverExtJSON(data)
		if err != nil || !utf8.Valid(want) {
			return
		}
		var g, w any
		if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
			return
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("encodeDocument(%x):\n got %s\nwant %s", data, got, want)
		}
	})
}

// driverExtJSON is the driver's relaxed Extended JSON of doc, or an error
// where the driver fails or panics (it does on some documents its own
// validation accepts).
func driverExtJSON(doc []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("driver panicked: %v", r)
		}
	}()
	return bson.MarshalExtJSON(bson.Raw(doc), false, false)
}
