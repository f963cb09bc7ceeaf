package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

// snapshotHarness is a NATS server with a stream of change events.
type snapshotHarness struct {
	t      *testing.T
	srv    *devstack.NATS
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
	seq    int
}

func newSnapshotHarness(t *testing.T) *snapshotHarness {
	t.Helper()
	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	h := &snapshotHarness{t: t, srv: srv, nc: nc, js: js, stream: "SNAP"}
	if _, err := stream.Ensure(context.Background(), js, stream.Config{Name: h.stream, SubjectPrefix: "snap.cdc"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// publish appends orders for sellers S-00..S-04, and the employees once.
func (h *snapshotHarness) publish(orders int) {
	h.t.Helper()
	pub := h.pub
	if h.seq == 0 {
		for i := range 5 {
			pub(emp(cdc.OpInsert, fmt.Sprintf("S-%02d", i), "vendedor", true, 1))
		}
	}
	for range orders {
		h.seq++
		pub(ord(cdc.OpInsert, fmt.Sprintf("%024x", h.seq), fmt.Sprintf(`"S-%02d"`, h.seq%5), uint64(h.seq)))
	}
}

// pub appends one event.
func (h *snapshotHarness) pub(ev *cdc.Event) {
	h.t.Helper()
	data, _ := json.Marshal(ev)
	subj := cdc.Subject("snap.cdc", ev)
	if _, err := h.js.Publish(context.Background(), subj, data, jetstream.WithMsgID(ev.ID)); err != nil {
		h.t.Fatal(err)
	}
}

// run starts a projector with snapshots on a fresh view and waits until it
// is ready; stop stops it (saving a last snapshot).
func (h *snapshotHarness) run(opts ...Option) (p *Projector, stop func()) {
	h.t.Helper()
	v, _ := NewView(DefaultSchema())
	opts = append([]Option{WithStream(h.stream), WithSubjectPrefix("snap.cdc"), WithSnapshots("snapshots", time.Hour)}, opts...)
	p, err := NewProjector(h.nc, v, opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	devstack.Eventually(h.t, 30*time.Second, func() (bool, string) { return p.Ready(), "projector not ready" })
	return p, func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Error(err)
		}
	}
}

// following returns a harness with orders in its stream and a projector,
// without snapshots, that has caught up with them and follows the stream
// until the test ends.
func following(t *testing.T, orders int) (*snapshotHarness, *Projector) {
	t.Helper()
	h := newSnapshotHarness(t)
	h.publish(orders)
	p, stop := h.run(WithSnapshots("", 0))
	t.Cleanup(stop)
	return h, p
}

// waitApplied waits until p's view reflects the stream's last message.
func (h *snapshotHarness) waitApplied(p *Projector) {
	h.t.Helper()
	devstack.Eventually(h.t, 60*time.Second, func() (bool, string) {
		return p.View().Seq() == h.lastSeq(), fmt.Sprintf("view at %d, stream at %d", p.View().Seq(), h.lastSeq())
	})
}

// caughtUp waits for p to apply the whole stream and checks it counted
// orders, each once.
func (h *snapshotHarness) caughtUp(p *Projector, orders int) {
	h.t.Helper()
	h.waitApplied(p)
	if got := p.View().Totals().TotalPedidosProcesados; got != orders {
		h.t.Fatalf("view holds %d orders, want %d", got, orders)
	}
}

func (h *snapshotHarness) lastSeq() uint64 {
	s, _ := h.js.Stream(context.Background(), h.stream)
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestProjectorSnapshots: a projector saves its view when it stops; the
// next one starts from that snapshot, replays only what came after, and
// ends with the view a full replay builds.
func TestProjectorSnapshots(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(500)
	restored := metricValue(t, "restored")
	first, stop := h.run()
	stop()
	if got := metricValue(t, "restored") - restored; got != 0 {
		t.Fatalf("restored %v snapshots with an empty bucket", got)
	}

	h.publish(200)
	applied := counterValue(t, metricApplied)
	second, stop := h.run()
	if got := second.View().Seq(); got != h.lastSeq() {
		t.Fatalf("view at %d, stream at %d", got, h.lastSeq())
	}
	// The view started at the snapshot: it applied only the new events.
	if got := counterValue(t, metricApplied) - applied; got != 200 {
		t.Fatalf("applied %v events, want the 200 after the snapshot", got)
	}
	if first.View().Seq() != 505 {
		t.Fatalf("first view at %d, want 505", first.View().Seq())
	}
	full, _ := NewView(DefaultSchema())
	replayAll(t, h, full)
	if a, b := fmt.Sprint(state(second.View())), fmt.Sprint(state(full)); a != b {
		t.Fatalf("view from snapshot + tail differs from a full replay:\n%s\n%s", a, b)
	}
	if got := metricValue(t, "restored") - restored; got != 1 {
		t.Fatalf("snapshots restored = %v, want 1", got)
	}
	stop()
}

// TestProjectorCountsEventsTheStreamDropped: events a stream's limits or a
// purge removed before the view applied them are counted as missed, not
// skipped in silence.
func TestProjectorCountsEventsTheStreamDropped(t *testing.T) {
	h := newSnapshotHarness(t)
	h.keepEverything() // on a compacted stream a partial purge looks like compaction
	h.publish(100)     // 5 employees, then 100 orders: sequences 1 to 105
	s, err := h.js.Stream(context.Background(), h.stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background(), jetstream.WithPurgeSequence(41)); err != nil {
		t.Fatal(err)
	}
	missed := counterValue(t, metricMissed)
	p, stop := h.run(WithSnapshots("", 0))
	defer stop()
	if got := counterValue(t, metricMissed) - missed; got != 40 {
		t.Fatalf("missed %v events, want the 40 purged", got)
	}
	h.waitApplied(p)
	if got := p.View().Totals().TotalPedidosProcesados; got != 65 {
		t.Fatalf("view holds %d orders, want the 65 left in the stream", got)
	}
}

// TestProjectorSnapshotOfAnotherStream: a snapshot of an earlier stream of
// the same name is not used.
func TestProjectorSnapshotOfAnotherStream(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(100)
	_, stop := h.run()
	stop()
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, h.stream); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Ensure(ctx, h.js, stream.Config{Name: h.stream, SubjectPrefix: "snap.cdc"}); err != nil {
		t.Fatal(err)
	}
	h.seq = 0
	h.publish(10)
	failed := metricValue(t, "restore_failed")
	p, stop := h.run()
	defer stop()
	if got := p.View().Totals().TotalPedidosProcesados; got != 10 {
		t.Fatalf("view holds %d orders, want the new stream's 10", got)
	}
	if got := metricValue(t, "restore_failed") - failed; got != 1 {
		t.Fatalf("snapshots refused = %v, want 1", got)
	}
}

// replayAll applies the stream to v from the event after v's sequence (the
// whole stream for a new view), as a projector without snapshots would.
func replayAll(t *testing.T, h *snapshotHarness, v *View) {
	t.Helper()
	s, _ := h.js.Stream(context.Background(), h.stream)
	last := h.lastSeq()
	for seq := v.Seq() + 1; seq <= last; seq++ {
		msg, err := s.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // compacted away: a later event of its subject supersedes it
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev cdc.Event
		if err := cdc.Decode(msg.Data, &ev); err != nil {
			t.Fatal(err)
		}
		_, _ = v.Apply(&ev, seq)
	}
}

func metricValue(t *testing.T, result string) float64 {
	t.Helper()
	return counterValue(t, metricSnapshots.WithLabelValues(result))
}

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestAckSequence reads sequences and pending counts from the reply subjects
// of real messages, and from the other forms of the subject, as
// msg.Metadata does.
func TestAckSequence(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(20)
	ctx := context.Background()
	s, err := h.js.Stream(ctx, h.stream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for msg := range batch.Messages() {
		n++
		meta, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seq, pending, ok := ackSequence(msg.Reply())
		if !ok || seq != meta.Sequence.Stream || pending != meta.NumPending {
			t.Fatalf("ackSequence(%q) = %d, %d, %v; metadata says %d, %d", msg.Reply(), seq, pending, ok, meta.Sequence.Stream, meta.NumPending)
		}
	}
	if n != 25 {
		t.Fatalf("read %d messages, want 25", n)
	}
	for _, tt := range []struct {
		reply        string
		seq, pending uint64
		ok           bool
	}{
		{"$JS.ACK.hub.ACCHASH.ORDERS.cons.1.42.7.1700000000000000000.3.rand", 42, 3, true},
		{"$JS.ACK._.ACCHASH.ORDERS.cons.1.42.7.1700000000000000000.3.rand.extra", 42, 3, true},
		{"$JS.ACK.ORDERS.cons.1.42.7.1700000000000000000.3", 42, 3, true},
		{"$JS.ACK.ORDERS.cons.1.42.7.1700000000000000000.3.x", 0, 0, false},
		{"$JS.ACK.ORDERS.cons.1.x.7.1700000000000000000.3", 0, 0, false},
		{"$JS.NAK.ORDERS.cons.1.42.7.1700000000000000000.3", 0, 0, false},
		{"", 0, 0, false},
	} {
		seq, pending, ok := ackSequence(tt.reply)
		if seq != tt.seq || pending != tt.pending || ok != tt.ok {
			t.Errorf("ackSequence(%q) = %d, %d, %v; want %d, %d, %v", tt.reply, seq, pending, ok, tt.seq, tt.pending, tt.ok)
		}
	}
}

// widen adds the subjects other.> to the stream, as when it is shared.
func (h *snapshotHarness) widen() {
	h.t.Helper()
	if _, err := h.js.UpdateStream(context.Background(), jetstream.StreamConfig{Name: h.stream, Subjects: []string{"snap.cdc.>", "other.>"}, Storage: jetstream.FileStorage, Duplicates: stream.DefaultDuplicates}); err != nil {
		h.t.Fatal(err)
	}
}

// TestProjectorOtherSubjects: events are read from the stream's subjects
// under the prefix only. The stream's subjects are exactly the prefix at
// first (the consumer then reads unfiltered) and are widened while the
// projector runs; a fresh projector reads the widened stream filtered, and
// is ready once it has all there is under the prefix. Both skip a
// well-formed order event published outside the prefix.
func TestProjectorOtherSubjects(t *testing.T) {
	h, first := following(t, 10)

	ctx := context.Background()
	h.widen()
	foreign, _ := json.Marshal(ord(cdc.OpInsert, fmt.Sprintf("%024x", 999), `"S-01"`, 999))
	publishForeign := func() {
		if _, err := h.js.Publish(ctx, "other.cdc.mongo.inventory_db.orders", foreign); err != nil {
			t.Fatal(err)
		}
	}
	publishForeign()
	h.publish(5)
	// The stream's last message is not under the prefix: a filtered
	// consumer never delivers it, and is caught up all the same.
	publishForeign()
	dead := counterValue(t, metricDeadLetters)
	h.waitApplied(first)
	second, stop2 := h.run(WithSnapshots("", 0))
	defer stop2()
	for name, p := range map[string]*Projector{"unfiltered, stream widened": first, "filtered": second} {
		if got := p.View().Totals().TotalPedidosProcesados; got != 15 {
			t.Errorf("%s: %d orders, want the 15 under the prefix", name, got)
		}
	}
	if got := counterValue(t, metricDeadLetters) - dead; got != 0 {
		t.Errorf("%v dead letters, want none", got)
	}
}

// TestProjectorNothingUnderThePrefix: a projector on a stream that holds
// messages, none of them under the prefix, is ready with an empty view.
func TestProjectorNothingUnderThePrefix(t *testing.T) {
	h := newSnapshotHarness(t)
	ctx := context.Background()
	h.widen()
	if _, err := h.js.Publish(ctx, "other.cdc.mongo.inventory_db.orders", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	p, stop := h.run(WithSnapshots("", 0)) // fails unless ready
	defer stop()
	if got := p.View().Totals().TotalPedidosProcesados; got != 0 {
		t.Fatalf("view holds %d orders, want none", got)
	}
}

// TestProjectorConsumerDeleted: when its consumer disappears from the
// server (deleted by an operator, lost with a server's state), the
// projector goes on from the next sequence with a new one, neither missing
// nor repeating an event.
func TestProjectorConsumerDeleted(t *testing.T) {
	h, p := following(t, 10)

	ctx := context.Background()
	s, err := h.js.Stream(ctx, h.stream)
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for name := range s.ConsumerNames(ctx).Name() {
		if err := s.DeleteConsumer(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != 1 {
		t.Fatalf("deleted %d consumers, want the projector's one", deleted)
	}
	h.publish(7)
	h.caughtUp(p, 17)
}

// TestProjectorNATSRestart: a NATS server that restarts loses the
// projector's consumer (ordered consumers live in memory); the projector
// goes on after the last event it applied once reconnected.
func TestProjectorNATSRestart(t *testing.T) {
	h, p := following(t, 10)

	if err := h.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		return h.nc.IsConnected(), "client not reconnected"
	})
	h.publish(7)
	h.caughtUp(p, 17)
}
