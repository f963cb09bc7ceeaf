package live

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func jetStream(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// run runs s until the test ends.
func run(t *testing.T, s interface{ Run(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestSubjectsOneCopyLastPerSubject: three replicas publishing the same
// updates store one copy of each, and a subscriber that joins late reads
// every seller's current line and the totals at once.
func TestSubjectsOneCopyLastPerSubject(t *testing.T) {
	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	var replicas []*Subjects
	for range 3 {
		nc := connect(t, srv.URL())
		replicas = append(replicas, NewSubjects(func() *nats.Conn { return nc }, StreamConfig{}))
		if _, err := EnsureStream(ctx, replicas[len(replicas)-1].jetStream(), StreamConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	commit := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	updates := []projection.Update{
		{From: 0, Seq: 1, CommitTime: commit, Sellers: []projection.SellerUpdate{seller("A", 1, 1)}, Totals: totals(1, 1)},
		{From: 1, Seq: 2, CommitTime: commit, Sellers: []projection.SellerUpdate{seller("B.x y", 1, 2)}, Totals: totals(2, 2)},
		{From: 2, Seq: 3, CommitTime: commit, Sellers: []projection.SellerUpdate{seller("A", 2, 3)}, Totals: totals(3, 3)},
	}
	for _, u := range updates {
		for _, r := range replicas {
			r.Publish(u)
		}
	}
	js := jetStream(t, srv.URL())
	s, err := js.Stream(ctx, DefaultMetricsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != 6 {
		t.Errorf("the stream stored %d messages from 3 replicas, want 6 (one per subject and seq)", info.State.LastSeq)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{DefaultMetricsPrefix + ".>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range 3 {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got[msg.Subject()] = string(msg.Data())
	}
	var a SellerMessage
	_ = json.Unmarshal([]byte(got["reportes.metrics.vendedor.A"]), &a)
	if a.Seq != 3 || a.PedidosRealizados != 2 || a.UltimoCambio == nil || !a.UltimoCambio.Equal(commit) {
		t.Errorf("late joiner read A as %s, want seq 3, 2 orders, ultimo_cambio %s", got["reportes.metrics.vendedor.A"], commit)
	}
	var g GlobalMessage
	_ = json.Unmarshal([]byte(got["reportes.metrics.global"]), &g)
	if g.Seq != 3 || g.TotalPedidosProcesados != 3 {
		t.Errorf("late joiner read the totals as %s, want seq 3 and 3 orders", got["reportes.metrics.global"])
	}
	if len(got) != 3 {
		t.Errorf("late joiner read %d subjects, want 3: %v", len(got), fmt.Sprint(got))
	}
}

// TestSubjectsRetry: what could not be stored is handed back, and goes
// out once NATS is back.
func TestSubjectsRetry(t *testing.T) {
	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc := connect(t, srv.URL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	subjects := NewSubjects(func() *nats.Conn { return nc }, StreamConfig{}, WithInterval(10*time.Millisecond))
	subjects.timeout = 500 * time.Millisecond
	run(t, subjects)
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		_, err := js.Stream(ctx, DefaultMetricsStream)
		return err == nil, fmt.Sprint(err)
	})

	srv.Stop()
	subjects.Add(projection.Update{Seq: 7, Sellers: []projection.SellerUpdate{seller("A", 7, 7)}, Totals: totals(7, 7)})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		s, err := js.Stream(ctx, DefaultMetricsStream)
		if err != nil {
			return false, err.Error()
		}
		msg, err := s.GetLastMsgForSubject(ctx, "reportes.metrics.vendedor.A")
		if err != nil {
			return false, err.Error()
		}
		return msg.Header.Get(jetstream.MsgIDHeader) == "reportes.metrics.vendedor.A:7", string(msg.Data)
	})
}

// TestSubjectsNeverOlder: a replica behind another publishes an older
// line after the newer one was stored; the stream keeps the newer.
func TestSubjectsNeverOlder(t *testing.T) {
	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	ahead, behind := connect(t, srv.URL()), connect(t, srv.URL())
	a := NewSubjects(func() *nats.Conn { return ahead }, StreamConfig{})
	b := NewSubjects(func() *nats.Conn { return behind }, StreamConfig{})
	if _, err := EnsureStream(ctx, a.jetStream(), StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	a.Publish(projection.Update{From: 150, Seq: 160, Sellers: []projection.SellerUpdate{seller("X", 5, 160)}})
	b.Publish(projection.Update{From: 140, Seq: 150, Sellers: []projection.SellerUpdate{seller("X", 4, 150)}})
	s, err := a.jetStream().Stream(ctx, DefaultMetricsStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, SellerSubject(DefaultMetricsPrefix, "X"))
	if err != nil {
		t.Fatal(err)
	}
	var got SellerMessage
	_ = json.Unmarshal(msg.Data, &got)
	if got.Seq != 160 || got.PedidosRealizados != 5 || msg.Sequence != 1 {
		t.Errorf("the stream holds X at seq %d with %d orders (message %d), want the line of 160 alone", got.Seq, got.PedidosRealizados, msg.Sequence)
	}
}
