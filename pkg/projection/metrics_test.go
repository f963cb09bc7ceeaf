package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
)

// metricLog collects the metric updates a projector publishes.
type metricLog struct {
	mu      sync.Mutex
	globals []GlobalUpdate
	sellers map[string][]SellerUpdate // by subject
}

func subscribeMetrics(t *testing.T, nc *nats.Conn, prefix string) *metricLog {
	t.Helper()
	l := &metricLog{sellers: map[string][]SellerUpdate{}}
	sub, err := nc.Subscribe(prefix+".>", func(m *nats.Msg) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if m.Subject == prefix+".global" {
			var g GlobalUpdate
			if err := json.Unmarshal(m.Data, &g); err != nil {
				t.Errorf("global update %s: %v", m.Data, err)
			}
			l.globals = append(l.globals, g)
			return
		}
		var s SellerUpdate
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Errorf("seller update %s: %v", m.Data, err)
		}
		l.sellers[m.Subject] = append(l.sellers[m.Subject], s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return l
}

// viewAt replays the harness's stream up to seq into a fresh view.
func (h *snapshotHarness) viewAt(seq uint64) *View {
	h.t.Helper()
	v, _ := NewView(DefaultSchema())
	s, err := h.js.Stream(context.Background(), h.stream)
	if err != nil {
		h.t.Fatal(err)
	}
	for n := uint64(1); n <= seq; n++ {
		msg, err := s.GetMsg(context.Background(), n)
		if err != nil {
			h.t.Fatal(err)
		}
		var ev cdc.Event
		if err := cdc.Decode(msg.Data, &ev); err != nil {
			h.t.Fatal(err)
		}
		_, _ = v.Apply(&ev, n)
	}
	return v
}

// TestMetricUpdatesAreTheViewAtTheirSeq: a burst of orders, some without a
// usable seller and one for an employee whose code is 10 KB long. Every
// metric update carries exactly the view's figures at its seq, the last
// totals equal the view's final ones (dead-lettered orders move them too),
// and the long code neither breaks the connection nor makes a subject
// longer than NATS allows.
func TestMetricUpdatesAreTheViewAtTheirSeq(t *testing.T) {
	h := newSnapshotHarness(t)
	long := strings.Repeat("L", 10<<10)
	h.publish(5)
	h.pub(emp(cdc.OpInsert, long, "vendedor", true, 1))
	log := subscribeMetrics(t, h.nc, "snap.metrics")
	p, stop := h.run(WithSnapshots("", 0), WithMetricUpdates("snap.metrics"))
	defer stop()

	ctx := context.Background()
	burst := []*cdc.Event{
		ord(cdc.OpInsert, "b1", `"S-01"`, 1), ord(cdc.OpInsert, "b2", `"`+long+`"`, 1),
		ord(cdc.OpInsert, "b3", `"S-02"`, 1), ord(cdc.OpInsert, "b4", `"S-01"`, 1),
		ord(cdc.OpInsert, "b5", `7`, 1), ord(cdc.OpInsert, "b6", `null`, 1),
	}
	futures := make([]jetstream.PubAckFuture, 0, len(burst))
	for _, ev := range burst {
		data, _ := json.Marshal(ev)
		f, err := h.js.PublishAsync(cdc.Subject("snap.cdc", ev.Source, ev.Collection), data, jetstream.WithMsgID(ev.ID))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
		}
	}
	h.waitApplied(p)
	want := p.View().Totals()
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		log.mu.Lock()
		defer log.mu.Unlock()
		n := len(log.globals)
		if n == 0 {
			return false, "no global update"
		}
		last := log.globals[n-1]
		return last.Seq == h.lastSeq() && last.Global == want, fmt.Sprintf("last global %+v, view %+v at seq %d", last, want, h.lastSeq())
	})
	if !h.nc.IsConnected() {
		t.Fatal("the connection was closed")
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, g := range log.globals {
		if ref := h.viewAt(g.Seq).Totals(); g.Global != ref {
			t.Errorf("global update labelled seq %d holds %+v; the view at that seq holds %+v", g.Seq, g.Global, ref)
		}
	}
	for subject, updates := range log.sellers {
		if len(subject) > 256 {
			t.Errorf("subject of %d bytes", len(subject))
		}
		for _, u := range updates {
			ref, _ := h.viewAt(u.Seq).Seller(u.Empleado)
			if u.Seller != ref {
				t.Errorf("%s labelled seq %d holds %+v; the view at that seq holds %+v", subject, u.Seq, u.Seller, ref)
			}
		}
	}
	if len(log.sellers) == 0 {
		t.Error("no seller update")
	}
}

// TestProjectorReopensAClosedConnection: nats.go closes a connection for
// good on some protocol errors; the projector opens a new one and the view
// follows the stream again.
func TestProjectorReopensAClosedConnection(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(10)
	nc, err := nats.Connect(h.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewView(DefaultSchema())
	p, err := NewProjector(nc, v, WithStream(h.stream), WithSubjectPrefix("snap.cdc"),
		WithRedial(func() (*nats.Conn, error) { return nats.Connect(h.srv.URL()) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	h.caughtUp(p, 10)
	nc.Close()
	h.publish(5)
	h.caughtUp(p, 15)
}

// TestProjectorHealth: Health says when NATS cannot be reached, since when,
// and stops saying it once NATS is back.
func TestProjectorHealth(t *testing.T) {
	h, p := following(t, 3)
	if hl := p.Health(); !hl.Ready || hl.Err != nil {
		t.Fatalf("health %+v, want ready without error", hl)
	}
	before := time.Now()
	h.srv.Stop()
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		hl := p.Health()
		return hl.Err != nil && strings.Contains(hl.Err.Error(), "cannot reach NATS"), fmt.Sprintf("health %+v", hl)
	})
	if hl := p.Health(); !hl.Ready || hl.Since.Before(before.Add(-time.Second)) || hl.Since.After(time.Now()) {
		t.Errorf("health %+v: want ready, unreachable since about %s", hl, before)
	}
	if err := h.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		hl := p.Health()
		return hl.Err == nil, fmt.Sprintf("health %+v", hl)
	})
}

// TestProjectorHealthWithoutStream: connected, but the stream is missing.
func TestProjectorHealthWithoutStream(t *testing.T) {
	h := newSnapshotHarness(t)
	v, _ := NewView(DefaultSchema())
	p, err := NewProjector(h.nc, v, WithStream("MISSING"), WithSubjectPrefix("snap.cdc"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		hl := p.Health()
		return hl.Err != nil && strings.Contains(hl.Err.Error(), "stream MISSING not found"), fmt.Sprintf("health %+v", hl)
	})
	if p.Health().Ready {
		t.Error("ready without a stream")
	}
}
