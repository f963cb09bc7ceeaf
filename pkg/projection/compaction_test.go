package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/cdc"
)

// history generates the events of a life of the sources: orders and
// employees inserted, updated and deleted, deletes lost while a position
// was lost, re-snapshots whose rows later updates supersede, a chunked
// backfill (rows carry the version at which their chunk was read) with
// changes and a TRUNCATE of the employees inside its open bracket.
type history struct {
	r       *rand.Rand
	version uint64
	orders  map[string]string // the source's truth: key -> seller JSON
	emps    map[string]bool   // code -> active
	events  []*cdc.Event
}

func newHistory(seed uint64) *history {
	return &history{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), orders: map[string]string{}, emps: map[string]bool{}}
}

func (h *history) next() uint64 { h.version++; return h.version }

func (h *history) add(ev *cdc.Event) {
	ev.ID = fmt.Sprintf("%d:%s", len(h.events)+1, ev.ID) // every event is stored
	h.events = append(h.events, ev)
}

// change makes one random change of an order or an employee; published
// says whether its event reaches the stream (false: lost with a position).
func (h *history) change(published bool) {
	v := h.next()
	if h.r.IntN(4) == 0 {
		code := fmt.Sprintf("S-%02d", h.r.IntN(6))
		op := cdc.OpUpdate
		if _, ok := h.emps[code]; !ok {
			op = cdc.OpInsert
		}
		if ok := h.emps[code]; ok && h.r.IntN(4) == 0 {
			delete(h.emps, code)
			if published {
				h.add(emp(cdc.OpDelete, code, "", false, v))
			}
			return
		}
		h.emps[code] = h.r.IntN(2) == 0
		if published {
			h.add(emp(op, code, "vendedor", h.emps[code], v))
		}
		return
	}
	key := fmt.Sprintf("o-%02d", h.r.IntN(30))
	if _, ok := h.orders[key]; ok && h.r.IntN(5) == 0 {
		delete(h.orders, key)
		if published {
			h.add(ord(cdc.OpDelete, key, "", v))
		}
		return
	}
	op := cdc.OpUpdate
	if _, ok := h.orders[key]; !ok {
		op = cdc.OpInsert
	}
	h.orders[key] = fmt.Sprintf(`"S-%02d"`, h.r.IntN(7)) // S-06 is no employee
	if published {
		h.add(ord(op, key, h.orders[key], v))
	}
}

func (h *history) changes(n int, published bool) {
	for range n {
		h.change(published)
	}
}

// orderSnapshot publishes a snapshot of the orders: begin, the rows read
// in chunks between changes (each chunk at the version it was read, as a
// backfill does), end.
func (h *history) orderSnapshot(name string) {
	at := h.next()
	h.add(marker(cdc.OpSnapshotBegin, "inventory_db.orders", name+"@"+fmt.Sprint(at), at))
	h.events[len(h.events)-1].Source = cdc.SourceMongo
	keys := make([]string, 0, len(h.orders))
	for k := range h.orders {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 7)]
		keys = keys[len(chunk):]
		read := h.next()
		for _, k := range chunk {
			if seller, ok := h.orders[k]; ok {
				ev := ord(cdc.OpSnapshot, k, seller, read)
				ev.Snapshot = name + "@" + fmt.Sprint(at)
				h.add(ev)
			}
		}
		h.changes(h.r.IntN(5), true)
	}
	h.add(marker(cdc.OpSnapshotEnd, "inventory_db.orders", name+"@"+fmt.Sprint(at), at))
	h.events[len(h.events)-1].Source = cdc.SourceMongo
}

// employeeSnapshot publishes a snapshot of the employees; with truncate, a
// TRUNCATE of the table happens while its bracket is open.
func (h *history) employeeSnapshot(truncate bool) {
	at := h.next()
	name := fmt.Sprintf("reportes@%d", at)
	h.add(marker(cdc.OpSnapshotBegin, "public.empleados", name, at))
	for code, active := range h.emps {
		ev := emp(cdc.OpSnapshot, code, "vendedor", active, at)
		ev.Snapshot = name
		h.add(ev)
		if truncate && h.r.IntN(3) == 0 {
			clear(h.emps)
			tv := h.next()
			tname := fmt.Sprintf("truncate:public.empleados@%d", tv)
			h.add(marker(cdc.OpSnapshotBegin, "public.empleados", tname, tv))
			h.add(marker(cdc.OpSnapshotEnd, "public.empleados", tname, tv))
			break
		}
	}
	h.changes(3, true)
	h.add(marker(cdc.OpSnapshotEnd, "public.empleados", name, at))
}

// generate returns a whole history.
func generate(seed uint64) []*cdc.Event {
	h := newHistory(seed)
	h.employeeSnapshot(false)
	h.changes(60, true)
	h.orderSnapshot("inventory_db.orders")
	h.changes(80, true)
	h.changes(15, false) // the source's position is lost: these never reach the stream
	h.orderSnapshot("inventory_db.orders")
	h.employeeSnapshot(true)
	h.changes(60, true)
	h.employeeSnapshot(h.r.IntN(2) == 0)
	h.orderSnapshot("inventory_db.orders")
	h.changes(40, true)
	for _, ev := range h.events {
		if ev.Source == "x" {
			ev.Source = cdc.SourcePostgres
		}
		ev.CommitTime = time.Unix(int64(ev.Version), 0).UTC()
	}
	return h.events
}

// compact returns the events of a stream that keeps the last message of
// each subject (MaxMsgsPerSubject 1), as the NATS server does: an event
// stays when no later one shares its subject. Sequences are positions + 1.
func compact(events []*cdc.Event) []Entry {
	last := map[string]int{}
	for i, ev := range events {
		last[cdc.Subject(cdc.DefaultSubjectPrefix, ev)] = i
	}
	var out []Entry
	for i, ev := range events {
		if last[cdc.Subject(cdc.DefaultSubjectPrefix, ev)] == i {
			out = append(out, Entry{Seq: uint64(i + 1), Event: *ev})
		}
	}
	return out
}

// viewState describes what a view holds, sequences and times aside.
func viewState(v *View) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var b strings.Builder
	var orders []string
	v.orders.each(func(k string, o order) {
		seller := "-"
		if o.seller != noSeller {
			seller = v.sellers[o.seller]
		}
		orders = append(orders, fmt.Sprintf("%s=%s@%d", k, seller, o.version()))
	})
	slices.Sort(orders)
	fmt.Fprintln(&b, "orders", orders)
	var emps []string
	for k, e := range v.employees {
		emps = append(emps, fmt.Sprintf("%s=%s/%s/%t@%d", k, e.code, e.role, e.active, e.version))
	}
	slices.Sort(emps)
	fmt.Fprintln(&b, "employees", emps)
	d := v.dashboardLocked()
	body, _ := json.Marshal([]any{d.MetricasGlobales, d.DetallePorVendedor})
	fmt.Fprintln(&b, string(body))
	for _, coll := range []string{"inventory_db.orders", "public.empleados"} {
		if p := v.pending[coll]; p != nil {
			var stale []string
			for k := range p.stale {
				stale = append(stale, k)
			}
			slices.Sort(stale)
			fmt.Fprintln(&b, "pending", coll, p.id, stale)
		}
	}
	return b.String()
}

func applyAll(t *testing.T, v *View, entries []Entry) {
	t.Helper()
	batch := slices.Clone(entries)
	v.ApplyBatch(batch)
}

// TestCompactedRebuildEqualsLive: after any number of events, a view
// rebuilt from what a compacted stream holds then (the last event of each
// key and of each marker subject), or restored from a snapshot of the live
// view taken earlier and fed the compacted stream after it, equals the view
// that applied every event live. The histories hold re-snapshot brackets
// whose rows later updates superseded, deletes lost with a position, a
// backfill bracket left open across changes and a TRUNCATE.
func TestCompactedRebuildEqualsLive(t *testing.T) {
	for seed := range uint64(8) {
		events := generate(seed)
		all := make([]Entry, len(events))
		for i, ev := range events {
			all[i] = Entry{Seq: uint64(i + 1), Event: *ev}
		}
		live, _ := NewView(DefaultSchema())
		var snaps [][]byte
		for i := range all {
			applyAll(t, live, all[i:i+1])
			if i%37 == 0 {
				data, _ := live.Snapshot()
				snaps = append(snaps, data)
			}
			if i%5 != 0 && i != len(all)-1 {
				continue
			}
			want := viewState(live)
			kept := compact(events[:i+1])
			rebuilt, _ := NewView(DefaultSchema())
			applyAll(t, rebuilt, kept)
			if got := viewState(rebuilt); got != want {
				t.Fatalf("seed %d, after event %d of %d (%d kept): rebuilt from the compacted stream\n%s\nwant the live view\n%s", seed, i+1, len(all), len(kept), got, want)
			}
			snap := snaps[len(snaps)/2]
			restored, _ := NewView(DefaultSchema())
			at, err := restored.Restore(snap)
			if err != nil {
				t.Fatal(err)
			}
			after := slices.DeleteFunc(slices.Clone(kept), func(e Entry) bool { return e.Seq <= at })
			applyAll(t, restored, after)
			if got := viewState(restored); got != want {
				t.Fatalf("seed %d, after event %d: restored at %d and fed the compacted stream\n%s\nwant the live view\n%s", seed, i+1, at, got, want)
			}
		}
		if n := len(compact(events)); n >= len(events)/2 {
			t.Errorf("seed %d: compaction kept %d of %d events; the history does not exercise it", seed, n, len(events))
		}
	}
}

// keepEverything makes the harness's stream keep every event, as streams
// did before compaction.
func (h *snapshotHarness) keepEverything() {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, h.stream)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgsPerSubject = -1
	if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
		h.t.Fatal(err)
	}
}

// updateOrders publishes rounds of updates of the harness's first orders
// orders, each moving every order to the next seller.
func (h *snapshotHarness) updateOrders(orders, rounds int) {
	h.t.Helper()
	for r := range rounds {
		for i := 1; i <= orders; i++ {
			h.seq++
			h.pub(ord(cdc.OpUpdate, fmt.Sprintf("%024x", i), fmt.Sprintf(`"S-%02d"`, (i+r+1)%5), uint64(h.seq)))
		}
	}
}

// TestProjectorCompactedStream: on a stream that keeps the last event of
// each key, a fresh projector starts from the first event left, counts
// nothing as missed (every gap is an event a later one of its key
// superseded), and builds the view of the projector that followed every
// event live.
func TestProjectorCompactedStream(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(50)
	livep, stop := h.run(WithSnapshots("", 0))
	defer stop()
	h.updateOrders(50, 20)
	for i := range 5 {
		h.pub(emp(cdc.OpUpdate, fmt.Sprintf("S-%02d", i), "vendedor", i%2 == 0, 2))
	}
	h.waitApplied(livep)
	s, err := h.js.Stream(context.Background(), h.stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 55 || info.State.FirstSeq <= 1000 {
		t.Fatalf("stream holds %d messages from %d, want the last of each of the 55 keys", info.State.Msgs, info.State.FirstSeq)
	}
	missed := counterValue(t, metricMissed)
	fresh, stopFresh := h.run(WithSnapshots("", 0))
	defer stopFresh()
	h.waitApplied(fresh)
	if got := counterValue(t, metricMissed) - missed; got != 0 {
		t.Fatalf("counted %v events as missed on a compacted stream", got)
	}
	if got, want := viewState(fresh.View()), viewState(livep.View()); got != want {
		t.Fatalf("fresh view\n%s\nwant the live one\n%s", got, want)
	}
}

// TestProjectorCompactedStreamLosses: on a compacted stream, what a gap
// may have lost is still counted: a limit that drops a key's last event,
// and a purge that emptied the stream.
func TestProjectorCompactedStreamLosses(t *testing.T) {
	ctx := context.Background()
	t.Run("limit", func(t *testing.T) {
		h := newSnapshotHarness(t)
		s, _ := h.js.Stream(ctx, h.stream)
		cfg := s.CachedInfo().Config
		cfg.MaxMsgs = 30
		if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		h.publish(45) // 50 events, 30 kept
		missed := counterValue(t, metricMissed)
		p, stop := h.run(WithSnapshots("", 0))
		defer stop()
		if got := counterValue(t, metricMissed) - missed; got != 20 {
			t.Fatalf("missed %v events, want the 20 the limit dropped", got)
		}
		h.waitApplied(p)
	})
	t.Run("purge", func(t *testing.T) {
		h := newSnapshotHarness(t)
		h.publish(10)
		s, _ := h.js.Stream(ctx, h.stream)
		if err := s.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		missed := counterValue(t, metricMissed)
		_, stop := h.run(WithSnapshots("", 0))
		defer stop()
		if got := counterValue(t, metricMissed) - missed; got != 15 {
			t.Fatalf("missed %v events, want the 15 purged", got)
		}
	})
}
