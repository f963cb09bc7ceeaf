package live

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

func seller(code string, n int64, seq uint64) projection.SellerUpdate {
	return projection.SellerUpdate{Seq: seq, Seller: projection.Seller{Empleado: code, PedidosRealizados: n, Estado: "Activo"}, EsEmpleado: true}
}

func totals(n int, seq uint64) *projection.GlobalUpdate {
	return &projection.GlobalUpdate{Seq: seq, Global: projection.Global{TotalPedidosProcesados: n}}
}

// collector records what a coalescer sends.
type collector struct {
	mu   sync.Mutex
	sent []projection.Update
}

func (c *collector) sink(u projection.Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, u)
}

func (c *collector) updates() []projection.Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]projection.Update(nil), c.sent...)
}

func runCoalescer(t *testing.T, interval time.Duration) (*Coalescer, *collector) {
	t.Helper()
	var got collector
	c := NewCoalescer(interval, got.sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, &got
}

// TestCoalescerMerges: a burst goes out as few updates, the last one with
// the latest line of every seller and the latest totals, covering the
// whole burst.
func TestCoalescerMerges(t *testing.T) {
	c, got := runCoalescer(t, 50*time.Millisecond)
	const n = 1000
	for i := 1; i <= n; i++ {
		code := fmt.Sprintf("S%d", i%7)
		c.Add(projection.Update{From: uint64(i - 1), Seq: uint64(i), Sellers: []projection.SellerUpdate{seller(code, int64(i), uint64(i))}, Totals: totals(i, uint64(i))})
	}
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		u := got.updates()
		return len(u) > 0 && u[len(u)-1].Seq == n, fmt.Sprintf("%d updates sent", len(u))
	})
	sent := got.updates()
	if len(sent) >= n/10 {
		t.Errorf("%d updates for a burst of %d: not coalesced", len(sent), n)
	}
	latest := map[string]int64{}
	var from uint64
	for i, u := range sent {
		if u.From != from {
			t.Fatalf("update %d covers (%d, %d], the previous ended at %d: a gap", i, u.From, u.Seq, from)
		}
		from = u.Seq
		for _, s := range u.Sellers {
			latest[s.Empleado] = s.PedidosRealizados
		}
	}
	for i := n - 6; i <= n; i++ {
		if code := fmt.Sprintf("S%d", i%7); latest[code] != int64(i) {
			t.Errorf("%s ends at %d, want %d", code, latest[code], i)
		}
	}
	if last := sent[len(sent)-1]; last.Totals == nil || last.Totals.TotalPedidosProcesados != n {
		t.Errorf("last totals %+v, want %d orders", last.Totals, n)
	}
}

// TestCoalescerQuietChangeGoesAtOnce: after a quiet interval a change is
// sent without waiting for the interval.
func TestCoalescerQuietChangeGoesAtOnce(t *testing.T) {
	c, got := runCoalescer(t, time.Hour)
	c.Add(projection.Update{Seq: 1, Sellers: []projection.SellerUpdate{seller("A", 1, 1)}})
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(got.updates()) == 1, fmt.Sprintf("%d updates", len(got.updates()))
	})
}

// TestCoalescerKeepsNewest: an older line added later (a retry) does not
// replace a newer one.
func TestCoalescerKeepsNewest(t *testing.T) {
	c := NewCoalescer(time.Hour)
	c.merge(projection.Update{From: 10, Seq: 12, Sellers: []projection.SellerUpdate{seller("A", 5, 12)}, Totals: totals(9, 12)})
	c.merge(projection.Update{From: 3, Seq: 4, Sellers: []projection.SellerUpdate{seller("A", 2, 4), seller("B", 1, 4)}, Totals: totals(3, 4)})
	u, ok := c.take()
	if !ok || u.From != 3 || u.Seq != 12 {
		t.Fatalf("took %+v, %v", u, ok)
	}
	if len(u.Sellers) != 2 || u.Sellers[0].PedidosRealizados != 5 || u.Sellers[1].Empleado != "B" {
		t.Errorf("sellers %+v, want A at 5 and B", u.Sellers)
	}
	if u.Totals.Seq != 12 {
		t.Errorf("totals %+v, want those of seq 12", u.Totals)
	}
	if _, ok := c.take(); ok {
		t.Error("take after take returned an update")
	}
}
