package mongo_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/reportes/reportes/pkg/cdc"
	cdcmongo "github.com/reportes/reportes/pkg/cdc/mongo"
)

// hostileOrders are orders a MongoDB server accepts and a source must carry
// through: empty and 10 KB strings (the same one as _id, seller, field name
// and value), an _id over a NATS message, odd BSON types as _id and as
// seller, unicode and NUL bytes, and an _id that is the name of a snapshot
// marker. tag keeps the _ids of two sets apart; only the first has the
// empty _id and MinKey.
func hostileOrders(tag string, first bool) []bson.D {
	big := strings.Repeat("é", 5<<10) + tag // 10 KB
	orders := []bson.D{
		{{Key: "_id", Value: tag}, {Key: "vendedor", Value: ""}},
		{{Key: "_id", Value: big}, {Key: "vendedor", Value: big}, {Key: big, Value: bson.D{{Key: "v", Value: big}}}},
		{{Key: "_id", Value: strings.Repeat("k", 1100<<10) + tag}, {Key: "vendedor", Value: "S-01"}},
		{{Key: "_id", Value: primitive.Binary{Subtype: 0, Data: []byte("\x00\xff" + tag)}}, {Key: "vendedor", Value: primitive.Binary{Data: []byte{1}}}},
		{{Key: "_id", Value: bson.D{{Key: "tag", Value: tag}, {Key: "n", Value: int32(1)}}}, {Key: "vendedor", Value: bson.D{{Key: "codigo", Value: "S-01"}}}},
		{{Key: "_id", Value: "ünï\u2028cødé ☃ 𝄞 " + tag}, {Key: "vendedor", Value: "S-ü\u2029"}},
		{{Key: "_id", Value: "nul\x00inside" + tag}, {Key: "vendedor", Value: "S\x00-01"}},
		{{Key: "_id", Value: "snapshot_begin" + strings.TrimPrefix(tag, "snap")}, {Key: "vendedor", Value: "S-01"}},
		{{Key: "_id", Value: "snapshot_end" + strings.TrimPrefix(tag, "snap")}, {Key: "vendedor", Value: "S-01"}},
		{{Key: "_id", Value: int64(len(big))}, {Key: "vendedor", Value: nil}},
		{{Key: "_id", Value: float64(len(big)) + 0.5}, {Key: "vendedor", Value: 1.5}},
		{{Key: "_id", Value: tag + "-nan"}, {Key: "vendedor", Value: math.NaN()}},
		{{Key: "_id", Value: tag + "-arr"}, {Key: "vendedor", Value: bson.A{"S-01", int32(2)}}},
		{{Key: "_id", Value: tag + "-regex"}, {Key: "vendedor", Value: primitive.Regex{Pattern: "^S-", Options: "i"}}},
		{{Key: "_id", Value: tag + "-dec"}, {Key: "vendedor", Value: primitive.NewDecimal128(1, 2)}},
		// Servers refuse these as _id (MongoDB does); they are tried anyway.
		{{Key: "_id", Value: primitive.NewDecimal128(3, uint64(len(tag)))}, {Key: "vendedor", Value: "S-01"}},
		{{Key: "_id", Value: primitive.Regex{Pattern: tag}}, {Key: "vendedor", Value: "S-01"}},
		{{Key: "_id", Value: bson.A{tag, int32(1)}}, {Key: "vendedor", Value: "S-01"}},
	}
	if first {
		orders = append(orders, bson.D{{Key: "_id", Value: ""}, {Key: "vendedor", Value: "S-01"}},
			bson.D{{Key: "_id", Value: primitive.MinKey{}}, {Key: "vendedor", Value: primitive.MaxKey{}}})
	} else {
		orders = append(orders, bson.D{{Key: "_id", Value: primitive.MaxKey{}}, {Key: "vendedor", Value: primitive.MinKey{}}})
	}
	return orders
}

// insertAccepted inserts orders one by one and returns the keys of those the
// server accepted.
func (h *harness) insertAccepted(orders []bson.D) map[string]bool {
	h.t.Helper()
	keys := map[string]bool{}
	for _, o := range orders {
		if _, err := h.coll.InsertOne(context.Background(), o); err != nil {
			h.t.Logf("the server refused %.80v: %.200v", o, err)
			continue
		}
		raw, err := bson.Marshal(o)
		if err != nil {
			h.t.Fatal(err)
		}
		key, err := cdcmongo.DocumentKey(raw)
		if err != nil {
			h.t.Fatal(err)
		}
		keys[key] = true
	}
	return keys
}

// TestHostileDocuments: whatever documents the server accepts, in the
// snapshot and in the oplog, every one is published once, with a bounded
// message id, and capture goes on: a normal order inserted after them is
// captured.
func TestHostileDocuments(t *testing.T) {
	h := newHarness(t)
	snapKeys := h.insertAccepted(hostileOrders("snap", true))
	h.start()
	evs := h.WaitEvents(len(snapKeys) + 2)
	checkKeys(t, evs[1:len(evs)-1], cdc.OpSnapshot, snapKeys)

	liveKeys := h.insertAccepted(hostileOrders("live", false))
	h.insert("normal-after", "S-01")
	evs = h.WaitEvents(len(snapKeys) + 2 + len(liveKeys) + 1)
	live := evs[len(snapKeys)+2:]
	checkKeys(t, live[:len(live)-1], cdc.OpInsert, liveKeys)
	if last := live[len(live)-1]; last.Key != "normal-after" || string(last.After) != `{"_id":"normal-after","vendedor":"S-01"}` {
		t.Fatalf("the order after the hostile ones: %s %s", last.Key, last.After)
	}
	checkMsgIDs(t, h, len(evs))
}

func checkKeys(t *testing.T, evs []cdc.Event, op cdc.Op, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for _, ev := range evs {
		if ev.Op != op || got[ev.Key] || !want[ev.Key] {
			t.Errorf("unexpected or repeated event %s:%.80q", ev.Op, ev.Key)
		}
		got[ev.Key] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("no event for %.80q", k)
		}
	}
}

// checkMsgIDs checks that no document made a long Nats-Msg-Id.
func checkMsgIDs(t *testing.T, h *harness, n int) {
	t.Helper()
	ctx := context.Background()
	st, err := h.JS.Stream(ctx, "S_"+h.Name)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= uint64(n); seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id == "" || len(id) > 2*cdc.MaxTokenBytes+len(h.cfg.Database)+32 {
			t.Errorf("message %d: Nats-Msg-Id of %d bytes: %.100q", seq, len(id), id)
		}
	}
}
