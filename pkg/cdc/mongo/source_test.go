package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	cdcmongo "github.com/reportes/reportes/pkg/cdc/mongo"
)

func TestMain(m *testing.M) { devstack.Main(m) }

type harness struct {
	t      *testing.T
	client *mongo.Client
	coll   *mongo.Collection
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    cdcmongo.Config
	prefix string
	stream string
	cp     *cdc.Checkpoints
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	stack := devstack.Shared(t)
	ctx := context.Background()
	name := devstack.Name(t)
	h := &harness{t: t, prefix: name + ".cdc", stream: "S_" + name}
	var err error
	if h.client, err = mongo.Connect(ctx, options.Client().ApplyURI(stack.Ferret.URI)); err != nil {
		t.Fatal(err)
	}
	h.coll = h.client.Database(name).Collection("orders")
	if h.nc, err = nats.Connect(stack.NATS.URL()); err != nil {
		t.Fatal(err)
	}
	h.js, _ = jetstream.New(h.nc)
	if _, err := cdc.EnsureStream(ctx, h.js, cdc.StreamConfig{Name: h.stream, SubjectPrefix: h.prefix}); err != nil {
		t.Fatal(err)
	}
	if h.cp, err = cdc.OpenCheckpoints(ctx, h.js, "P_"+name); err != nil {
		t.Fatal(err)
	}
	h.cfg = cdcmongo.Config{URI: stack.Ferret.URI, Database: name, Collection: "orders", SaveInterval: 10 * time.Millisecond}
	t.Cleanup(func() {
		_ = h.stop()
		_ = h.client.Disconnect(context.Background())
		h.nc.Close()
	})
	return h
}

func (h *harness) start() {
	h.t.Helper()
	src, err := cdcmongo.New(h.cfg, h.cp)
	if err != nil {
		h.t.Fatal(err)
	}
	pub, err := cdc.NewPublisher(h.nc, cdc.WithSubjectPrefix(h.prefix),
		cdc.WithKeepOnOversize(map[string][]string{h.cfg.Database + ".orders": {"vendedor"}}))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() {
		defer pub.Close()
		h.done <- src.Run(ctx, pub)
	}()
}

func (h *harness) stop() error {
	if h.cancel == nil {
		return nil
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("source did not stop in 30s")
		return nil
	}
}

func (h *harness) events() []cdc.Event {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, h.stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	var out []cdc.Event
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		var ev cdc.Event
		if err := cdc.Decode(m.Data, &ev); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func (h *harness) waitEvents(n int) []cdc.Event {
	h.t.Helper()
	var evs []cdc.Event
	devstack.Eventually(h.t, 30*time.Second, func() (bool, string) {
		evs = h.events()
		return len(evs) >= n, fmt.Sprintf("%d events of %d: %s", len(evs), n, summary(evs))
	})
	if len(evs) != n {
		h.t.Fatalf("got %d events, want %d: %s", len(evs), n, summary(evs))
	}
	return evs
}

func summary(evs []cdc.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s:%s ", e.Op, e.Key)
	}
	return b.String()
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
	evs := h.waitEvents(4)
	if got := summary(evs); got != "snapshot_begin: snapshot:a snapshot:b snapshot_end: " {
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
	evs = h.waitEvents(8)
	hexID := oid.InsertedID.(interface{ Hex() string }).Hex()
	if got := summary(evs[4:]); got != "insert:c update:a delete:b insert:"+hexID+" " {
		t.Fatalf("stream: %s", got)
	}
	if string(evs[5].After) != `{"_id":"a","vendedor":"S-02"}` {
		t.Fatalf("update must carry the whole document: %s", evs[5].After)
	}
	if err := h.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("graceful stop: %v", err)
	}

	// Restart: resumes after the saved oplog position.
	h.insert("d", "S-01")
	h.start()
	evs = h.waitEvents(9)
	if evs[8].Key != "d" || evs[8].Op != cdc.OpInsert {
		t.Fatalf("after restart: %s", summary(evs[8:]))
	}
}

func TestLostOplogPositionTakesNewSnapshot(t *testing.T) {
	h := newHarness(t)
	h.insert("a", "S-01")
	h.start()
	h.waitEvents(3)
	_ = h.stop()
	// Pretend the oplog rolled over past our position while we were away.
	key := "mongo." + h.cfg.Database + ".orders"
	err := h.cp.Save(context.Background(), key, map[string]any{"mode": "oplog", "snapshot_done": true, "oplog_ts": map[string]uint32{"t": 1, "i": 1}})
	if err != nil {
		t.Fatal(err)
	}
	h.insert("b", "S-01")
	h.start()
	evs := h.waitEvents(7)
	if got := summary(evs[3:]); got != "snapshot_begin: snapshot:a snapshot:b snapshot_end: " {
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
	h.waitEvents(2)
	big := strings.Repeat("x", 3<<20)
	if _, err := h.coll.InsertOne(context.Background(), bson.D{{Key: "_id", Value: "big"}, {Key: "vendedor", Value: "S-01"}, {Key: "blob", Value: big}}); err != nil {
		t.Fatal(err)
	}
	h.insert("after", "S-02")
	evs := h.waitEvents(4)
	if !evs[2].Truncated || string(evs[2].After) != `{"_id":"big","vendedor":"S-01"}` {
		t.Fatalf("oversized event: truncated=%t after=%.200s", evs[2].Truncated, evs[2].After)
	}
	if evs[3].Key != "after" {
		t.Fatalf("the source must go on after an oversized document: %s", summary(evs))
	}
}
