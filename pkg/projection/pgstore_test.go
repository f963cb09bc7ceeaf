package projection_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/mirror"
	"github.com/reportes/reportes/pkg/projection/pgstore"
)

func TestMain(m *testing.M) { devstack.Main(m) }

// entriesOf numbers events as a stream that keeps every event would.
func entriesOf(events []*cdc.Event) []projection.Entry {
	out := make([]projection.Entry, len(events))
	for i, ev := range events {
		out[i] = projection.Entry{Seq: uint64(i + 1), Event: *ev}
	}
	return out
}

// feed applies entries to part as a projector with the partition's subject
// filter would: in batches of random sizes, the other partitions' events
// reduced to their sequence. With crash, it starts again from an earlier
// point once, as a projector killed before it acknowledged would.
func feed(t *testing.T, st *pgstore.Store, n int, entries []projection.Entry, r *rand.Rand, crash bool) {
	t.Helper()
	ctx := context.Background()
	keep := st.Keeps(n)
	part, err := st.Partition(ctx, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	crashAt := len(entries) / 2
	for i := 0; i < len(entries); {
		size := 1 + r.IntN(40)
		batch := make([]projection.Entry, 0, size)
		for _, e := range entries[i:min(i+size, len(entries))] {
			if !keep(cdc.Subject(cdc.DefaultSubjectPrefix, &e.Event)) {
				e.Event = cdc.Event{CommitTime: e.Event.CommitTime}
			}
			batch = append(batch, e)
		}
		if err := part.Apply(ctx, batch); err != nil {
			t.Fatalf("partition %d: %v", n, err)
		}
		i += size
		if crash && i > crashAt {
			crash = false
			if part, err = st.Partition(ctx, n, nil); err != nil { // a new owner reads the position
				t.Fatal(err)
			}
			// and the stream redelivers from before it
			i = max(0, slices.IndexFunc(entries, func(e projection.Entry) bool { return e.Seq > part.Seq() })-r.IntN(30))
		}
	}
}

// sqlDashboard reads the dashboard with the documented queries.
func sqlDashboard(t *testing.T, url, schema string) (projection.Global, []projection.Seller) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var g projection.Global
	if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT total_empleados, total_pedidos_procesados, pedidos_sin_empleado FROM %s.totals`, schema)).
		Scan(&g.TotalEmpleados, &g.TotalPedidosProcesados, &g.PedidosSinEmpleado); err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, fmt.Sprintf(`SELECT empleado, rol, pedidos_realizados, estado FROM %s.dashboard ORDER BY pedidos_realizados DESC, empleado, rol`, schema))
	sellers, err := pgx.CollectRows(rows, pgx.RowToStructByPos[projection.Seller])
	if err != nil {
		t.Fatal(err)
	}
	return g, sellers
}

// TestPostgresStoreEqualsView: the PostgreSQL store, with one or three
// partitions fed in random batches, with a partition's owner crashing and
// the stream redelivered, reads (through its SQL views) exactly the
// dashboard of the in-memory view that applied the same stream, whole or
// compacted.
func TestPostgresStoreEqualsView(t *testing.T) {
	url := devstack.Shared(t).Database(t)
	ctx := context.Background()
	for seed := range uint64(4) {
		events := projection.Generate(seed)
		for _, stream := range []struct {
			name    string
			entries []projection.Entry
		}{{"all", entriesOf(events)}, {"compacted", projection.Compact(events)}} {
			view, _ := projection.NewView(projection.DefaultSchema())
			view.ApplyBatch(slices.Clone(stream.entries))
			want := view.Dashboard()
			for _, parts := range []int{1, 3} {
				schema := fmt.Sprintf("s%d_%s_%d", seed, stream.name, parts)
				st, err := pgstore.Open(ctx, url, schema, projection.DefaultSchema(), pgstore.WithPartitions(parts))
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(seed, uint64(parts)))
				for n := range parts {
					feed(t, st, n, stream.entries, r, n == parts-1)
				}
				g, sellers := sqlDashboard(t, url, schema)
				if g != want.MetricasGlobales || !slices.Equal(sellers, want.DetallePorVendedor) {
					t.Errorf("%s: store\n%+v %+v\nview\n%+v %+v", schema, g, sellers, want.MetricasGlobales, want.DetallePorVendedor)
				}
				st.Close()
			}
		}
	}
}

// TestPostgresStoreFencing: two writers of one partition never both
// commit from the same position: the second fails with ErrFenced, writes
// nothing, and after reading the position again applies what follows.
func TestPostgresStoreFencing(t *testing.T) {
	url := devstack.Shared(t).Database(t)
	ctx := context.Background()
	st, err := pgstore.Open(ctx, url, "", projection.DefaultSchema(), pgstore.WithPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, _ := st.Partition(ctx, 0, nil)
	b, _ := st.Partition(ctx, 0, nil)
	order := func(seq uint64, key, seller string) []projection.Entry {
		return []projection.Entry{{Seq: seq, Event: cdc.Event{ID: key, Source: cdc.SourceMongo, Collection: "inventory_db.orders", Op: cdc.OpInsert,
			Key: key, Version: seq, After: []byte(`{"vendedor":"` + seller + `"}`)}}}
	}
	if err := a.Apply(ctx, order(1, "o1", "S-1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, order(1, "o1", "S-2")); !errors.Is(err, pgstore.ErrFenced) {
		t.Fatalf("second writer: %v, want ErrFenced", err)
	}
	if got := b.Seq(); got != 1 {
		t.Fatalf("fenced writer at %d, want the position it read again, 1", got)
	}
	if err := b.Apply(ctx, order(2, "o2", "S-2")); err != nil {
		t.Fatal(err)
	}
	g, _ := sqlDashboard(t, url, pgstore.DefaultSchema)
	if g.TotalPedidosProcesados != 2 {
		t.Fatalf("orders %d, want 2 (each applied once)", g.TotalPedidosProcesados)
	}
	if _, err := pgstore.Open(ctx, url, "", projection.DefaultSchema(), pgstore.WithPartitions(4)); err == nil {
		t.Fatal("a store of 1 partition opened with 4")
	}
}

// TestMirrorFollowsStore: a mirror that loads the store while three
// partitions apply a history, and follows their deltas, some of which
// never arrive (a projector killed between commit and publish), ends
// with exactly the dashboard of the in-memory view, and every Update it
// handed on moved its sequence forward from where the last one left it.
func TestMirrorFollowsStore(t *testing.T) {
	stack := devstack.Shared(t)
	url := stack.Database(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, err := nats.Connect(stack.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	prefix := devstack.Name(t)
	st, err := pgstore.Open(ctx, url, "", projection.DefaultSchema(), pgstore.WithPartitions(3), pgstore.WithUpdatesPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	var last uint64
	var backwards []string
	m := mirror.New(st, "t", mirror.WithUpdates(func(u projection.Update) {
		mu.Lock()
		defer mu.Unlock()
		if u.Seq < last {
			backwards = append(backwards, fmt.Sprintf("%d after %d", u.Seq, last))
		}
		last = u.Seq
	}))
	go func() {
		if err := m.Run(ctx, nc); err != nil {
			t.Error(err)
		}
	}()
	r := rand.New(rand.NewPCG(7, 7))
	var rmu sync.Mutex
	lossy := func(subject string, data []byte) error {
		rmu.Lock()
		lost := r.IntN(10) == 0
		rmu.Unlock()
		if lost {
			return nil // lost
		}
		return nc.Publish(subject, data)
	}
	events := projection.Generate(5)
	entries := entriesOf(events)
	view, _ := projection.NewView(projection.DefaultSchema())
	view.ApplyBatch(slices.Clone(entries))
	for n := range 3 {
		part, err := st.Partition(ctx, n, lossy)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = part.Run(ctx) }() // heartbeats tell the mirror what it missed
		keep := st.Keeps(n)
		for i := 0; i < len(entries); i += 17 {
			batch := slices.Clone(entries[i:min(i+17, len(entries))])
			for j := range batch {
				if !keep(cdc.Subject(cdc.DefaultSubjectPrefix, &batch[j].Event)) {
					batch[j].Event = cdc.Event{}
				}
			}
			if err := part.Apply(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := view.Dashboard()
	devstack.Eventually(t, 20*time.Second, func() (bool, string) {
		got := m.Dashboard()
		ok := got.MetricasGlobales == want.MetricasGlobales && slices.Equal(got.DetallePorVendedor, want.DetallePorVendedor)
		return ok, fmt.Sprintf("mirror %+v %+v\nview %+v %+v", got.MetricasGlobales, got.DetallePorVendedor, want.MetricasGlobales, want.DetallePorVendedor)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(backwards) > 0 {
		t.Errorf("updates went back: %v", backwards)
	}
	if h := m.Health(); !h.Ready || h.Err != nil {
		t.Errorf("mirror health %+v", h)
	}
}
