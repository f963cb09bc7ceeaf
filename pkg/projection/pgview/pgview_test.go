package pgview

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
)

func TestMain(m *testing.M) { devstack.Main(m) }

func view(t *testing.T, orders int) *projection.View {
	v, err := projection.NewView(projection.DefaultSchema())
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	apply := func(ev cdc.Event) {
		seq++
		if _, err := v.Apply(&ev, seq); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		apply(cdc.Event{ID: "e", Source: "postgres", Collection: "public.empleados", Op: cdc.OpInsert, Key: fmt.Sprintf("S-%d", i),
			CommitTime: time.Now(), After: json.RawMessage(fmt.Sprintf(`{"codigo":"S-%d","rol":"vendedor","activo":%t}`, i, i != 2))})
	}
	for i := range orders {
		apply(cdc.Event{ID: "o", Source: "mongo", Collection: "inventory_db.orders", Op: cdc.OpInsert, Key: fmt.Sprint(i),
			CommitTime: time.Now(), After: json.RawMessage(fmt.Sprintf(`{"vendedor":"S-%d"}`, i%4))})
	}
	return v
}

func read(t *testing.T, conn *pgx.Conn) ([]projection.Seller, int64, int64) {
	rows, err := conn.Query(context.Background(), `SELECT empleado, rol, pedidos_realizados, estado FROM public.vista ORDER BY pedidos_realizados DESC, empleado`)
	if err != nil {
		t.Fatal(err)
	}
	sellers, err := pgx.CollectRows(rows, pgx.RowToStructByPos[projection.Seller])
	if err != nil {
		t.Fatal(err)
	}
	var seq, total int64
	if err := conn.QueryRow(context.Background(), `SELECT secuencia, total_pedidos_procesados FROM public.vista_estado`).Scan(&seq, &total); err != nil {
		t.Fatal(err)
	}
	return sellers, seq, total
}

func TestWriter(t *testing.T) {
	ctx := context.Background()
	url := devstack.Shared(t).Database(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	newer := view(t, 10)
	w, err := New(ctx, url, "public.vista", newer)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx); err != nil {
		t.Fatal(err)
	}
	want := newer.Dashboard()
	got, seq, total := read(t, conn)
	if !reflect.DeepEqual(got, want.DetallePorVendedor) || seq != int64(want.Frescura.Secuencia) || total != 10 {
		t.Fatalf("table = %+v seq %d total %d\nwant %+v seq %d", got, seq, total, want.DetallePorVendedor, want.Frescura.Secuencia)
	}

	// A replica behind the stored sequence must not move the table back.
	older, err := New(ctx, url, "public.vista", view(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := older.Write(ctx); err != nil {
		t.Fatal(err)
	}
	if _, seq2, total2 := read(t, conn); seq2 != seq || total2 != 10 {
		t.Fatalf("an older view overwrote the table: seq %d total %d", seq2, total2)
	}

	// Run writes after Changed.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	more := view(t, 12)
	w2, err := New(ctx, url, "public.vista", more, WithInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w2.Run(rctx) }()
	w2.Changed()
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		_, _, total := read(t, conn)
		return total == 12, fmt.Sprintf("total %d", total)
	})
	if _, err := New(ctx, url, "vista", more); err == nil {
		t.Fatal("a table without schema must be refused")
	}
}
