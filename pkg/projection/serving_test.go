package projection

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
)

// updateFollower keeps what the updates handed on describe, as the live
// followers do, and checks they come in order without a gap.
type updateFollower struct {
	t       *testing.T
	mu      sync.Mutex
	n       int
	seq     uint64
	totals  Global
	sellers map[string]SellerUpdate
}

func (f *updateFollower) add(u Update) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 && (u.Seq <= f.seq || u.From > f.seq) {
		f.t.Errorf("update (%d, %d] after one at %d: out of order or a gap", u.From, u.Seq, f.seq)
	}
	f.n++
	f.seq = u.Seq
	if u.Totals != nil {
		f.totals = u.Totals.Global
	}
	for _, s := range u.Sellers {
		f.sellers[s.Empleado] = s
	}
}

// holds checks the follower holds v's figures.
func (f *updateFollower) holds(v *View) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.totals != v.Totals() {
		return false, fmt.Sprintf("follower totals %+v, view %+v", f.totals, v.Totals())
	}
	for code, s := range f.sellers {
		want, isEmployee := v.Seller(code)
		if s.Seller != want || s.EsEmpleado != isEmployee {
			return false, fmt.Sprintf("follower has %+v for %s, view %+v (employee %t)", s, code, want, isEmployee)
		}
	}
	return true, ""
}

// servingHarness serves a view of the harness's stream through a Serving.
func (h *snapshotHarness) serving(f *updateFollower) (*Serving, func()) {
	h.t.Helper()
	build := func(v *View, opts ...Option) (*Projector, error) {
		base := []Option{WithStream(h.stream), WithSubjectPrefix("snap.cdc"), WithSnapshots("snapshots", time.Hour)}
		return NewProjector(h.nc, v, append(base, opts...)...)
	}
	v, _ := NewView(DefaultSchema())
	s, err := NewServing(v, build, f.add)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	devstack.Eventually(h.t, 30*time.Second, func() (bool, string) { return s.Projector().Ready(), "not ready" })
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Error(err)
		}
	}
}

// readers read the served view until stop, checking that nothing goes
// backwards: the sequence, the orders in total and per seller (the
// workload only adds orders; S-04 is deleted as an employee, its orders
// go on counting in the total).
func readers(t *testing.T, s *Serving, n int) (stop func() int64) {
	var wg sync.WaitGroup
	var reads atomic.Int64
	quit := make(chan struct{})
	for range n {
		wg.Go(func() {
			var seq uint64
			var total int
			counts := map[string]int64{}
			for {
				select {
				case <-quit:
					return
				default:
				}
				d := s.View().Dashboard()
				reads.Add(1)
				if d.Frescura.Secuencia < seq || d.MetricasGlobales.TotalPedidosProcesados < total {
					t.Errorf("went backwards: seq %d after %d, orders %d after %d", d.Frescura.Secuencia, seq, d.MetricasGlobales.TotalPedidosProcesados, total)
					return
				}
				seq, total = d.Frescura.Secuencia, d.MetricasGlobales.TotalPedidosProcesados
				for _, l := range d.DetallePorVendedor {
					if l.PedidosRealizados < counts[l.Empleado] {
						t.Errorf("%s went backwards: %d after %d", l.Empleado, l.PedidosRealizados, counts[l.Empleado])
						return
					}
					counts[l.Empleado] = l.PedidosRealizados
				}
			}
		})
	}
	return func() int64 {
		close(quit)
		wg.Wait()
		return reads.Load()
	}
}

// writer publishes orders until stop, and deletes employee S-04 once.
func (h *snapshotHarness) writer() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			h.publish(5)
			if i == 20 {
				h.pub(emp(cdc.OpDelete, "S-04", "", false, 2))
			}
		}
	}()
	return func() { close(quit); <-done }
}

func waitRebuilt(t *testing.T, r *Rebuild) RebuildStatus {
	t.Helper()
	devstack.Eventually(t, 60*time.Second, func() (bool, string) {
		st := r.Status()
		if st.State == RebuildFailed {
			t.Fatalf("rebuild failed: %s", st.Error)
		}
		return st.State == RebuildSwapped, fmt.Sprintf("rebuild %+v", st)
	})
	st := r.Status()
	t.Logf("rebuild %d: %s from %s at %d, %d events in %s, served view at %d", st.ID, st.State, st.Base, st.BaseSeq, st.Applied, st.Finished.Sub(st.Started), st.ServedSeq)
	return st
}

// TestServingRebuildSwap: a rebuild from the stream's start, then one from
// the snapshot, while events keep coming: readers never see the view go
// back, the followers' updates come in order without a gap and end with
// the view's figures, the old projector stops at the swap, and the view
// served after equals a full replay.
func TestServingRebuildSwap(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(3000)
	f := &updateFollower{t: t, sellers: map[string]SellerUpdate{}}
	s, stop := h.serving(f)
	defer stop()
	ctx := context.Background()
	stopReaders := readers(t, s, 3)
	stopWriter := h.writer()

	first := s.Projector()
	r, err := s.Rebuild(ctx, RebuildFrom{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rebuild(ctx, RebuildFrom{}); !errors.Is(err, ErrRebuildRunning) {
		t.Errorf("second rebuild while one runs: %v, want ErrRebuildRunning", err)
	}
	st := waitRebuilt(t, r)
	if st.Base != "stream" || st.BaseSeq != 0 || st.Seq < st.ServedSeq || s.Projector() == first {
		t.Errorf("full rebuild: %+v", st)
	}
	if got := first.View().Seq(); got != st.ServedSeq {
		t.Errorf("old view at %d after the swap, it was at %d when it stopped", got, st.ServedSeq)
	}
	// A snapshot of the served view is where the next rebuild starts.
	s.Projector().saveSnapshot(ctx)
	r, err = s.Rebuild(ctx, RebuildFrom{})
	if err != nil {
		t.Fatal(err)
	}
	if st = waitRebuilt(t, r); st.Base != "snapshot" || st.BaseSeq == 0 {
		t.Errorf("rebuild from the snapshot: %+v", st)
	}

	stopWriter()
	h.waitApplied(s.Projector())
	f.mu.Lock()
	updates := f.n
	f.mu.Unlock()
	t.Logf("%d reads, %d updates", stopReaders(), updates)
	full, _ := NewView(DefaultSchema())
	replayAll(t, h, full)
	if !reflect.DeepEqual(stateOf(s.View()), stateOf(full)) {
		t.Errorf("served view after the rebuilds differs from a full replay:\n got %+v\nwant %+v", stateOf(s.View()), stateOf(full))
	}
	devstack.Eventually(t, 10*time.Second, func() (bool, string) { return f.holds(s.View()) })
}

func stateOf(v *View) []any {
	d, g, seq, sellers := state(v)
	d.Frescura = Freshness{}
	return []any{d, g, seq, sellers}
}

// TestServingRebuildRefused: no rebuild before the view is ready, from a
// start the stream does not have, or from the start of a stream that
// dropped its first events.
func TestServingRebuildRefused(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(50)
	ctx := context.Background()
	idle, err := NewServing(mustView(t), func(v *View, opts ...Option) (*Projector, error) {
		return NewProjector(h.nc, v, append([]Option{WithStream(h.stream), WithSubjectPrefix("snap.cdc")}, opts...)...)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Rebuild(ctx, RebuildFrom{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("rebuild before ready: %v, want ErrNotReady", err)
	}

	f := &updateFollower{t: t, sellers: map[string]SellerUpdate{}}
	s, stop := h.serving(f)
	defer stop()
	last := h.lastSeq()
	for _, from := range []RebuildFrom{
		{Seq: last + 1},
		{Time: time.Now().Add(time.Hour)},
		{Seq: 2, Time: time.Now()},
	} {
		if _, err := s.Rebuild(ctx, from); !errors.Is(err, ErrBadStart) {
			t.Errorf("rebuild from %+v: %v, want ErrBadStart", from, err)
		}
	}
	st, _ := h.js.Stream(ctx, h.stream)
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rebuild(ctx, RebuildFrom{Seq: 1}); !errors.Is(err, ErrLacksHistory) {
		t.Errorf("full rebuild of a stream that dropped events: %v, want ErrLacksHistory", err)
	}
}

// TestRebuildFromTime: a time names the first event stored at or after it.
func TestRebuildFromTime(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(10)
	ctx := context.Background()
	st, _ := h.js.Stream(ctx, h.stream)
	msg, err := st.GetMsg(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[time.Time]uint64{msg.Time: 8, msg.Time.Add(-time.Hour): 1} {
		got, err := startSeq(ctx, h.js, info, "snap.cdc", RebuildFrom{Time: at})
		if err != nil || got != want {
			t.Errorf("start at %s = %d, %v; want %d", at, got, err, want)
		}
	}
}

func mustView(t *testing.T) *View {
	t.Helper()
	v, err := NewView(DefaultSchema())
	if err != nil {
		t.Fatal(err)
	}
	return v
}
