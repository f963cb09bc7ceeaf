package projection

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/reportes/reportes/pkg/cdc"
)

// randomEvents is a history touching every part of the view's state:
// ObjectID and other order keys, moves between sellers, deletes, problems,
// employees renamed and deactivated, and source snapshots left open.
func randomEvents(r *rand.Rand, n int) []*cdc.Event {
	var evs []*cdc.Event
	key := func() string {
		if r.IntN(4) == 0 {
			return fmt.Sprintf("k%d", r.IntN(30))
		}
		return fmt.Sprintf("%024x", r.IntN(60))
	}
	for i := range n {
		version := uint64(i + 1)
		if r.IntN(5) == 0 {
			version -= uint64(r.IntN(i + 1)) // a stale copy of an older change
		}
		switch x := r.IntN(20); {
		case x < 10:
			evs = append(evs, ord(cdc.OpInsert, key(), fmt.Sprintf(`"S-%02d"`, r.IntN(12)), version))
		case x < 12:
			evs = append(evs, ord(cdc.OpDelete, key(), "", version))
		case x == 12:
			evs = append(evs, ord(cdc.OpUpdate, key(), `{"not":"a code"}`, version))
		case x < 16:
			evs = append(evs, emp(cdc.OpUpdate, fmt.Sprintf("S-%02d", r.IntN(10)), fmt.Sprintf("rol%d", r.IntN(3)), r.IntN(2) == 0, version))
		case x == 16:
			evs = append(evs, emp(cdc.OpDelete, fmt.Sprintf("S-%02d", r.IntN(10)), "", false, version))
		case x == 17:
			evs = append(evs, marker(cdc.OpSnapshotBegin, "inventory_db.orders", fmt.Sprint("o", i), version))
		case x == 18:
			evs = append(evs, marker(cdc.OpSnapshotBegin, "public.empleados", fmt.Sprint("e", i), version))
		default:
			// Ends whichever snapshot of the orders began last, if any.
			for j := len(evs) - 1; j >= 0; j-- {
				if evs[j].Op == cdc.OpSnapshotBegin && evs[j].Collection == "inventory_db.orders" {
					evs = append(evs, marker(cdc.OpSnapshotEnd, "inventory_db.orders", evs[j].Snapshot, version))
					break
				}
			}
		}
	}
	return evs
}

// state is what readers of a view can observe, less the time it applied.
func state(v *View) (Dashboard, Global, uint64, map[string]Seller) {
	d := v.Dashboard()
	d.Frescura.Aplicado = nil
	sellers := map[string]Seller{}
	for i := range 14 {
		code := fmt.Sprintf("S-%02d", i)
		s, _ := v.Seller(code)
		sellers[code] = s
	}
	return d, v.Totals(), v.Seq(), sellers
}

// TestSnapshotRestore: a view restored from a snapshot taken at any point,
// then fed the rest of the history, ends where the view that never stopped
// ends.
func TestSnapshotRestore(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		evs := randomEvents(r, 300)
		cut := r.IntN(len(evs) + 1)
		whole, _ := NewView(DefaultSchema())
		for i, ev := range evs[:cut] {
			_, _ = whole.Apply(ev, uint64(i+1))
		}
		data, seq := whole.Snapshot()
		if seq != uint64(cut) {
			t.Fatalf("snapshot at sequence %d, want %d", seq, cut)
		}
		restored, _ := NewView(DefaultSchema())
		got, err := restored.Restore(data)
		if err != nil || got != seq {
			t.Fatalf("seed %d: Restore = %d, %v", seed, got, err)
		}
		if a, b := fmt.Sprint(state(whole)), fmt.Sprint(state(restored)); a != b {
			t.Fatalf("seed %d: restored view differs at the cut:\n%s\n%s", seed, a, b)
		}
		if !reflect.DeepEqual(whole.counts, restored.counts) || whole.assigned != restored.assigned {
			t.Fatalf("seed %d: recomputed counts differ", seed)
		}
		for i, ev := range evs[cut:] {
			seq := uint64(cut + i + 1)
			ch1, err1 := whole.Apply(ev, seq)
			ch2, err2 := restored.Apply(ev, seq)
			// A source snapshot's end removes what it did not see in map
			// order: the sellers it names are compared as a set.
			slices.Sort(ch1.Sellers)
			slices.Sort(ch2.Sellers)
			if fmt.Sprint(ch1, err1) != fmt.Sprint(ch2, err2) {
				t.Fatalf("seed %d, event %d: changes differ: %v %v / %v %v", seed, seq, ch1, err1, ch2, err2)
			}
		}
		if a, b := fmt.Sprint(state(whole)), fmt.Sprint(state(restored)); a != b {
			t.Fatalf("seed %d: views differ at the end:\n%s\n%s", seed, a, b)
		}
	}
}

func TestSnapshotRefused(t *testing.T) {
	v, _ := NewView(DefaultSchema())
	for i, ev := range randomEvents(rand.New(rand.NewPCG(1, 2)), 200) {
		_, _ = v.Apply(ev, uint64(i+1))
	}
	data, _ := v.Snapshot()

	other := DefaultSchema()
	other.SellerField = "venta.vendedor"
	w, _ := NewView(other)
	if _, err := w.Restore(data); !errors.Is(err, ErrSnapshotMismatch) {
		t.Errorf("snapshot of another schema: %v, want ErrSnapshotMismatch", err)
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), data[:len(data)/2], data[:len(data)-1], append(append([]byte(nil), data...), 0)} {
		w, _ := NewView(DefaultSchema())
		if _, err := w.Restore(bad); err == nil {
			t.Errorf("Restore accepted %d bytes of a %d-byte snapshot", len(bad), len(data))
		}
		if w.Seq() != 0 || w.Totals() != (Global{}) {
			t.Errorf("a refused snapshot left state behind")
		}
	}
	if _, err := v.Restore(data); err == nil {
		t.Errorf("Restore into a view that already applied events succeeded")
	}
}

// FuzzRestore: no input makes Restore panic, loop or accept an
// inconsistent state.
func FuzzRestore(f *testing.F) {
	v, _ := NewView(DefaultSchema())
	for i, ev := range randomEvents(rand.New(rand.NewPCG(3, 4)), 40) {
		_, _ = v.Apply(ev, uint64(i+1))
	}
	data, _ := v.Snapshot()
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		w, _ := NewView(DefaultSchema())
		if _, err := w.Restore(data); err != nil {
			return
		}
		g := w.Totals()
		if g.PedidosSinEmpleado < 0 || int64(g.TotalPedidosProcesados) < g.PedidosSinEmpleado {
			t.Fatalf("restored inconsistent totals: %+v", g)
		}
		for _, c := range w.counts {
			if c < 0 {
				t.Fatalf("negative count after restore")
			}
		}
	})
}
