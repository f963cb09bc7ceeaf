package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/devstack"
)

// TestCompactedHistory: the ingestor's stream keeps the last event of each
// key (NATS_HISTORY defaults to compact), so after many updates of the same
// orders it holds about one message per order while its sequence went far
// past that. A fresh API restoring a snapshot saved before the updates, and
// one rebuilding from the compacted stream alone, both equal the recount,
// and neither counts the compacted events as missed.
func TestCompactedHistory(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	w := newWorkload(e, 22)
	for range 6 {
		w.hire(t)
	}
	ctx := context.Background()
	const orders, rounds = 150, 12
	id := func(i int) string { return fmt.Sprintf("pedido %d.%d*>", i/10, i%10) } // reserved characters in the key
	docs := make([]any, orders)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: id(i)}, {Key: "vendedor", Value: w.seller()}, {Key: "producto", Value: "p"}}
	}
	if _, err := e.orders.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)
	// A snapshot of the view before the updates, then no more.
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		return e.metric("api", `reportes_projection_snapshots_total{result="saved"}`) > 0, "no view snapshot saved"
	})
	e.kill("api", syscall.SIGKILL)

	for r := range rounds {
		for i := range orders {
			if _, err := e.orders.UpdateOne(ctx, bson.D{{Key: "_id", Value: id(i)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "vendedor", Value: w.seller()}, {Key: "ronda", Value: r}}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < orders; i += 10 {
		if _, err := e.orders.DeleteOne(ctx, bson.D{{Key: "_id", Value: id(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	w.step(t) // and a change of an employee or another order
	info := e.waitCompacted(t, orders*(rounds+1)+orders/10)

	for _, snapshots := range []string{"300ms", "0"} {
		e.vars["VIEW_SNAPSHOT_INTERVAL"] = snapshots
		e.start("api")
		e.converges(60 * time.Second)
		if got := e.metric("api", "reportes_projection_events_missed_total"); got != 0 {
			t.Errorf("snapshots %s: the api counted %v events as missed on a compacted stream", snapshots, got)
		}
		e.mu.Lock()
		out := e.procs["api"].out.String()
		e.mu.Unlock()
		if strings.Contains(out, "no longer holds events") {
			t.Errorf("snapshots %s: the api said events are missing", snapshots)
		}
		if restored := strings.Contains(out, "view restored from its snapshot"); restored != (snapshots != "0") {
			t.Errorf("snapshots %s: restored from a snapshot: %t", snapshots, restored)
		}
		e.kill("api", syscall.SIGKILL)
		e.procs["api"].out.Reset()
	}
	t.Logf("stream after %d changes: %d messages from sequence %d", info.State.LastSeq, info.State.Msgs, info.State.FirstSeq)
}

// waitCompacted waits until the stream stored at least changes events and
// checks it holds at most one per key: the orders, the employees, and the
// snapshot markers (170 is generous).
func (e *env) waitCompacted(t *testing.T, changes int) *jetstream.StreamInfo {
	t.Helper()
	nc, err := nats.Connect(e.stack.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var info *jetstream.StreamInfo
	devstack.Eventually(t, 90*time.Second, func() (bool, string) {
		s, err := js.Stream(context.Background(), e.vars["NATS_STREAM"])
		if err != nil {
			return false, err.Error()
		}
		if info, err = s.Info(context.Background()); err != nil {
			return false, err.Error()
		}
		return info.State.LastSeq >= uint64(changes), fmt.Sprintf("stream at %d, want %d events", info.State.LastSeq, changes)
	})
	if got := info.Config.MaxMsgsPerSubject; got != 1 {
		t.Fatalf("the ingestor created a stream with max messages per subject %d, want 1", got)
	}
	if keys := uint64(170); info.State.Msgs > keys {
		t.Fatalf("stream holds %d messages after %d events; want at most one per key, %d", info.State.Msgs, info.State.LastSeq, keys)
	}
	return info
}
