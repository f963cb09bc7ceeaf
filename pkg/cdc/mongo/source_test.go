package mongo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	cdcmongo "github.com/reportes/reportes/pkg/cdc/mongo"
	"github.com/reportes/reportes/pkg/stream"
)

func TestMain(m *testing.M) { devstack.Main(m) }

type harness struct {
	*cdctest.Stream
	t      *testing.T
	client *mongo.Client
	coll   *mongo.Collection
	cfg    cdcmongo.Config
	opts   []cdcmongo.Option
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	stack := devstack.Shared(t)
	h := &harness{Stream: cdctest.New(t), t: t}
	var err error
	if h.client, err = mongo.Connect(context.Background(), options.Client().ApplyURI(stack.Ferret.URI)); err != nil {
		t.Fatal(err)
	}
	h.coll = h.client.Database(h.Name).Collection("orders")
	h.cfg = cdcmongo.Config{URI: stack.Ferret.URI, Database: h.Name, Collection: "orders", SaveInterval: 10 * time.Millisecond}
	t.Cleanup(func() {
		_ = h.Stop()
		_ = h.client.Disconnect(context.Background())
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	src, err := cdcmongo.New(h.cfg, h.Checkpoints, h.opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.Start(src, stream.WithKeepOnOversize(map[string][]string{h.cfg.Database + ".orders": {"vendedor"}}))
}

func (h *harness) insert(id, seller string) {
	h.t.Helper()
	if _, err := h.coll.InsertOne(context.Background(), bson.D{{Key: "_id", Value: id}, {Key: "vendedor", Value: seller}}); err != nil {
		h.t.Fatal(err)
	}
}

func TestOplogSnapshotThenStream(t *testing.T) {
	h := newHarness(t)
	h.insert("a", "S-01")
	h.insert("b", "S-01")
	h.start()
	evs := h.WaitEvents(4)
	if got := cdctest.Summary(evs); got != "snapshot_begin: snapshot:a snapshot:b snapshot_end: " {
		t.Fatalf("snapshot: %s", got)
	}
	if string(evs[1].After) != `{"_id":"a","vendedor":"S-01"}` {
		t.Fatalf("snapshot doc: %s", evs[1].After)
	}

	ctx := context.Background()
	h.insert("c", "S-02")
	if _, err := h.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "vendedor", Value: "S-02"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "b"}}); err != nil {
		t.Fatal(err)
	}
	oid, err := h.coll.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-03"}, {Key: "n", Value: 1}})
	if err != nil {
		t.Fatal(err)
	}
	evs = h.WaitEvents(8)
	hexID := oid.InsertedID.(interface{ Hex() string }).Hex()
	if got := cdctest.Summary(evs[4:]); got != "insert:c update:a delete:b insert:"+hexID+" " {
		t.Fatalf("stream: %s", got)
	}
	if string(evs[5].After) != `{"_id":"a","vendedor":"S-02"}` {
		t.Fatalf("update must carry the whole document: %s", evs[5].After)
	}
	if err := h.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("graceful stop: %v", err)
	}

	// Restart: resumes after the saved oplog position.
	h.insert("d", "S-01")
	h.start()
	evs = h.WaitEvents(9)
	if evs[8].Key != "d" || evs[8].Op != cdc.OpInsert {
		t.Fatalf("after restart: %s", cdctest.Summary(evs[8:]))
	}
}

func TestLostOplogPositionTakesNewSnapshot(t *testing.T) {
	h := newHarness(t)
	h.insert("a", "S-01")
	h.start()
	h.WaitEvents(3)
	_ = h.Stop()
	// Pretend the oplog rolled over past our position while we were away.
	key := "mongo." + h.cfg.Database + ".orders"
	err := h.Checkpoints.Save(context.Background(), key, map[string]any{"mode": "oplog", "snapshot_done": true, "oplog_ts": map[string]uint32{"t": 1, "i": 1}})
	if err != nil {
		t.Fatal(err)
	}
	h.insert("b", "S-01")
	h.start()
	evs := h.WaitEvents(7)
	if got := cdctest.Summary(evs[3:]); got != "snapshot_begin: snapshot:a snapshot:b snapshot_end: " {
		t.Fatalf("after losing the position: %s", got)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]cdcmongo.Mode{"": cdcmongo.ModeAuto, "OPLOG": cdcmongo.ModeOplog, "changestream": cdcmongo.ModeChangeStream} {
		if got, err := cdcmongo.ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := cdcmongo.ParseMode("tail"); err == nil || !strings.Contains(err.Error(), "auto, changestream or oplog") {
		t.Errorf("ParseMode(tail) error = %v", err)
	}
}

// TestOversizedDocument: a document larger than a NATS message is published
// with its key and seller only, instead of stalling the source.
func TestOversizedDocument(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.WaitEvents(2)
	big := strings.Repeat("x", 3<<20)
	if _, err := h.coll.InsertOne(context.Background(), bson.D{{Key: "_id", Value: "big"}, {Key: "vendedor", Value: "S-01"}, {Key: "blob", Value: big}}); err != nil {
		t.Fatal(err)
	}
	h.insert("after", "S-02")
	evs := h.WaitEvents(4)
	if !evs[2].Truncated || string(evs[2].After) != `{"_id":"big","vendedor":"S-01"}` {
		t.Fatalf("oversized event: truncated=%t after=%.200s", evs[2].Truncated, evs[2].After)
	}
	if evs[3].Key != "after" {
		t.Fatalf("the source must go on after an oversized document: %s", cdctest.Summary(evs))
	}
}

// TestOplogReaderWaitIsMeasured: when publishing stalls, the oplog reader
// waits to hand over what it read, and the wait is counted.
func TestOplogReaderWaitIsMeasured(t *testing.T) {
	h := newHarness(t)
	h.insert("a", "S-01")
	h.start()
	h.WaitEvents(3)
	if err := h.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("graceful stop: %v", err)
	}
	// Three batches of backlog: one being published, one handed over, and
	// one the reader holds while it waits.
	docs := make([]any, 2500)
	for i := range docs {
		docs[i] = bson.D{{Key: "vendedor", Value: "S-01"}}
	}
	if _, err := h.coll.InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	// A plain subscriber stands where the stream would and acknowledges
	// nothing, so the first publish never completes.
	held := h.Name + ".held"
	sub, err := h.NC.Subscribe(held+".>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	before := cdcmongo.ReaderWait()
	src, err := cdcmongo.New(h.cfg, h.Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	h.Start(src, stream.WithSubjectPrefix(held), stream.WithMaxPending(1), stream.WithAckTimeout(time.Minute))
	for deadline := time.Now().Add(30 * time.Second); cdcmongo.ReaderWait()-before < 0.05; {
		if time.Now().After(deadline) {
			t.Fatalf("reader wait grew by %.3fs in 30s while publishing stalled", cdcmongo.ReaderWait()-before)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
