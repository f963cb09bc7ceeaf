package mongo

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/internal/devstack"
)

// TestOplogBatchesBoundedInBytes: large documents are handed to publishing
// in batches bounded in bytes, not a thousand at a time, and none is lost.
func TestOplogBatchesBoundedInBytes(t *testing.T) {
	stack := devstack.Shared(t)
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(stack.Ferret.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	db := devstack.Name(t)
	oplog := client.Database("local").Collection("oplog.rs")
	from := oplogTS{}
	if latest, err := edgeTS(ctx, oplog, -1); err != nil {
		t.Fatal(err)
	} else if latest != nil {
		from = *latest
	}
	const n, docBytes = 100, 2 << 10
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "vendedor", Value: "S-01"}, {Key: "blob", Value: strings.Repeat("x", docBytes)}}
	}
	if _, err := client.Database(db).Collection("orders").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	s, err := New(Config{URI: stack.Ferret.URI, Database: db, Collection: "orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.batchBytes = 8 * docBytes
	out := make(chan entries, n) // the reader never waits for publishing
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readOplog(rctx, oplog, from, out)
	}()
	defer func() {
		cancel()
		<-done
	}()
	got, batches := 0, 0
	deadline := time.After(30 * time.Second)
	for got < n {
		select {
		case b := <-out:
			if b.err != nil {
				t.Fatal(b.err)
			}
			// Each entry is larger than a document: the bound is reached
			// with the eighth at the latest.
			if len(b.list) > 8 {
				t.Fatalf("batch of %d entries of over %d bytes each, bound %d bytes", len(b.list), docBytes, s.batchBytes)
			}
			got += len(b.list)
			batches++
		case <-deadline:
			t.Fatalf("%d of %d entries read in 30s", got, n)
		}
	}
	if got != n || batches < n/8 {
		t.Fatalf("%d entries in %d batches, want %d in at least %d", got, batches, n, n/8)
	}
}

// TestOplogEntryVisibleLateIsRead: FerretDB stamps an entry before it
// commits it, so with two writers an entry stamped earlier can appear
// after one stamped later has been read. The tail reads the last seconds
// again on every cursor and hands over that entry once, and nothing it
// handed over before a second time.
func TestOplogEntryVisibleLateIsRead(t *testing.T) {
	stack := devstack.Shared(t)
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(stack.Ferret.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(ctx) }()
	db := devstack.Name(t)
	oplog := client.Database("local").Collection("oplog.rs")
	from := oplogTS{}
	if latest, err := edgeTS(ctx, oplog, -1); err != nil {
		t.Fatal(err)
	} else if latest != nil {
		from = *latest
	}
	s, err := New(Config{URI: stack.Ferret.URI, Database: db, Collection: "orders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan entries, 16)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readOplog(rctx, oplog, from, out)
	}()
	defer func() {
		cancel()
		<-done
	}()
	read := func(want int) []oplogEntry {
		var got []oplogEntry
		deadline := time.After(10 * time.Second)
		for len(got) < want {
			select {
			case b := <-out:
				if b.err != nil {
					t.Fatal(b.err)
				}
				got = append(got, b.list...)
			case <-deadline:
				t.Fatalf("%d of %d entries read in 10s", len(got), want)
			}
		}
		return got
	}
	if _, err := client.Database(db).Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: "first"}}); err != nil {
		t.Fatal(err)
	}
	first := read(1)[0]
	late := bson.D{{Key: "ts", Value: primitive.Timestamp{T: first.TS.T, I: 0}}, {Key: "op", Value: "i"},
		{Key: "ns", Value: db + ".orders"}, {Key: "o", Value: bson.D{{Key: "_id", Value: "late"}}}, {Key: "wall", Value: time.Now()}}
	if _, err := oplog.InsertOne(ctx, late); err != nil {
		t.Fatal(err)
	}
	got := read(1)
	if len(got) != 1 || got[0].TS.I != 0 || !strings.Contains(got[0].O.String(), "late") {
		t.Fatalf("read %d entries after the late one, want it alone: %v", len(got), got)
	}
	// Nothing more: the first entry is not handed over again.
	select {
	case b := <-out:
		t.Fatalf("read again: %v", b.list)
	case <-time.After(time.Second):
	}
}
