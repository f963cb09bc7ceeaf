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

// tailTest is a Source on the shared FerretDB, for a collection of the
// test's own, and the oplog position when the test began.
type tailTest struct {
	client *mongo.Client
	oplog  *mongo.Collection
	db     string
	from   oplogTS
	s      *Source
}

func newTailTest(t *testing.T) *tailTest {
	t.Helper()
	stack := devstack.Shared(t)
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(stack.Ferret.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	tt := &tailTest{client: client, oplog: client.Database("local").Collection("oplog.rs"), db: devstack.Name(t)}
	if latest, err := edgeTS(ctx, tt.oplog, -1); err != nil {
		t.Fatal(err)
	} else if latest != nil {
		tt.from = *latest
	}
	if tt.s, err = New(Config{URI: stack.Ferret.URI, Database: tt.db, Collection: "orders"}, nil); err != nil {
		t.Fatal(err)
	}
	return tt
}

// read runs the oplog reader from tt.from into out until the test ends.
func (tt *tailTest) read(t *testing.T, out chan entries) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tt.s.readOplog(ctx, tt.oplog, tt.from, out)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestOplogBatchesBoundedInBytes: large documents are handed to publishing
// in batches bounded in bytes, not a thousand at a time, and none is lost.
func TestOplogBatchesBoundedInBytes(t *testing.T) {
	tt := newTailTest(t)
	ctx := context.Background()
	const n, docBytes = 100, 2 << 10
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "vendedor", Value: "S-01"}, {Key: "blob", Value: strings.Repeat("x", docBytes)}}
	}
	if _, err := tt.client.Database(tt.db).Collection("orders").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	tt.s.batchBytes = 8 * docBytes
	out := make(chan entries, n) // the reader never waits for publishing
	tt.read(t, out)
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
				t.Fatalf("batch of %d entries of over %d bytes each, bound %d bytes", len(b.list), docBytes, tt.s.batchBytes)
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
	tt := newTailTest(t)
	ctx := context.Background()
	out := make(chan entries, 16)
	tt.read(t, out)
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
	// The late entry is stamped at the start of the first entry's second,
	// which must come after where the tail started.
	for time.Now().Unix() <= int64(tt.from.T) {
		time.Sleep(10 * time.Millisecond) // waiting for the clock, not for the tail
	}
	if _, err := tt.client.Database(tt.db).Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: "first"}}); err != nil {
		t.Fatal(err)
	}
	first := read(1)[0]
	late := bson.D{{Key: "ts", Value: primitive.Timestamp{T: first.TS.T, I: 0}}, {Key: "op", Value: "i"},
		{Key: "ns", Value: tt.db + ".orders"}, {Key: "o", Value: bson.D{{Key: "_id", Value: "late"}}}, {Key: "wall", Value: time.Now()}}
	if _, err := tt.oplog.InsertOne(ctx, late); err != nil {
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
