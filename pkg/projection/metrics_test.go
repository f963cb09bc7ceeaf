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

// updateLog collects the updates a projector hands out.
type updateLog struct {
	mu      sync.Mutex
	updates []Update
}

func (l *updateLog) add(u Update) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updates = append(l.updates, u)
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

// TestUpdatesAreTheViewAtTheirSeq: a burst of orders, some without a
// usable seller and one for an employee whose code is 10 KB long. Every
// line and every total an update carries is exactly the view's at its seq,
// the last totals equal the view's final ones (orders that could not be
// used move them too), and the first update, when the view becomes ready,
// holds every employee's line.
func TestUpdatesAreTheViewAtTheirSeq(t *testing.T) {
	h := newSnapshotHarness(t)
	long := strings.Repeat("L", 10<<10)
	h.publish(5)
	h.pub(emp(cdc.OpInsert, long, "vendedor", true, 1))
	var log updateLog
	p, stop := h.run(WithSnapshots("", 0), WithUpdates(log.add))
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
		f, err := h.js.PublishAsync(cdc.Subject("snap.cdc", ev), data, jetstream.WithMsgID(ev.ID))
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
		n := len(log.updates)
		if n == 0 {
			return false, "no update"
		}
		last := log.updates[n-1]
		return last.Seq == h.lastSeq() && last.Totals != nil && last.Totals.Global == want,
			fmt.Sprintf("last update at %d with %+v, view %+v at seq %d", last.Seq, last.Totals, want, h.lastSeq())
	})
	log.mu.Lock()
	defer log.mu.Unlock()
	first := log.updates[0]
	lines := map[string]bool{}
	for _, s := range first.Sellers {
		lines[s.Empleado] = true
	}
	for _, s := range p.View().Dashboard().DetallePorVendedor {
		if !lines[s.Empleado] {
			t.Errorf("the first update lacks %.20s: it must hold every employee's line", s.Empleado)
		}
	}
	if first.Totals == nil {
		t.Error("the first update lacks the totals")
	}
	from := log.updates[0].Seq
	for _, u := range log.updates[1:] {
		if u.From != from {
			t.Errorf("update covers (%d, %d], the previous ended at %d", u.From, u.Seq, from)
		}
		from = u.Seq
		if u.Totals != nil {
			if ref := h.viewAt(u.Totals.Seq).Totals(); u.Totals.Global != ref {
				t.Errorf("totals labelled seq %d hold %+v; the view at that seq holds %+v", u.Totals.Seq, u.Totals.Global, ref)
			}
		}
		for _, s := range u.Sellers {
			ref, isEmp := h.viewAt(s.Seq).Seller(s.Empleado)
			if s.Seller != ref || s.EsEmpleado != isEmp {
				t.Errorf("%.20s labelled seq %d holds %+v; the view at that seq holds %+v", s.Empleado, s.Seq, s.Seller, ref)
			}
		}
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
