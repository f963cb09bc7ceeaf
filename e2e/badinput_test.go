package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

// TestBadInput: orders without a seller, with a seller of the wrong type,
// huge or deeply nested, and employees with NULLs. The service keeps
// running, counts what it can define (the dashboard still equals the
// recount) and reports each order it could not attribute on the dead-letter
// subject with the reason.
func TestBadInput(t *testing.T) {
	// Not parallel: once, with the parallel tests' load, an order inserted
	// here never reached the stream; FerretDB writes the oplog entry after
	// the document and only logs when that fails (devstack now prints
	// FerretDB's errors). Sequential until that is understood.
	e := newEnv(t)
	nc, err := nats.Connect(e.stack.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var letters atomic.Int64
	var reasons atomic.Value
	reasons.Store("")
	sub, err := nc.Subscribe(e.vars["NATS_DEAD_LETTER_SUBJECT"], func(m *nats.Msg) {
		var dl projection.DeadLetter
		if json.Unmarshal(m.Data, &dl) == nil && dl.Reason != "" {
			letters.Add(1)
			reasons.Store(reasons.Load().(string) + dl.Reason + "\n")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck

	ctx := context.Background()
	if _, err := e.pg.Exec(ctx, `INSERT INTO empleados VALUES ('S-01','Ana',NULL,NULL), ('S-02',NULL,'vendedor',true)`); err != nil {
		t.Fatal(err)
	}
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)

	nested := bson.D{{Key: "fin", Value: true}}
	for range 60 {
		nested = bson.D{{Key: "n", Value: nested}}
	}
	docs := []any{
		bson.D{{Key: "producto", Value: "sin vendedor"}},
		bson.D{{Key: "vendedor", Value: 7}},
		bson.D{{Key: "vendedor", Value: nil}},
		bson.D{{Key: "vendedor", Value: bson.D{{Key: "codigo", Value: "S-01"}}}},
		bson.D{{Key: "vendedor", Value: "S-01"}, {Key: "profundo", Value: nested}},
		bson.D{{Key: "vendedor", Value: "S-02"}, {Key: "blob", Value: strings.Repeat("x", 3<<20)}},
		bson.D{{Key: "vendedor", Value: "S-01"}},
	}
	for _, d := range docs {
		if _, err := e.orders.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	got := e.converges(60 * time.Second)
	if got.MetricasGlobales.TotalPedidosProcesados != len(docs) || got.MetricasGlobales.PedidosSinEmpleado != 4 {
		t.Fatalf("totals %+v, want %d orders, 4 without employee", got.MetricasGlobales, len(docs))
	}
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		return letters.Load() >= 4, "dead letters: " + reasons.Load().(string)
	})
	if n := e.metric("api", "reportes_projection_dead_letters_total"); n < 4 {
		t.Errorf("dead letter counter = %v, want >= 4", n)
	}
	if n := e.metric("ingestor", "reportes_cdc_events_truncated_total"); n != 1 {
		t.Errorf("truncated events = %v, want 1", n)
	}
	t.Logf("dead letters:\n%s", reasons.Load())
}

// TestHostileSellerCode: an employee whose code is 10 KB long (and one whose
// code is the empty string), with orders naming them. The metric-update
// subject built from such a code must stay within what NATS accepts, the
// API's connection must stay open, and the dashboard must keep following
// the sources: every update after them arrives and equals the recount.
func TestHostileSellerCode(t *testing.T) {
	e := newEnv(t)
	nc, err := nats.Connect(e.stack.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var globals atomic.Value
	globals.Store(projection.GlobalUpdate{})
	sub, err := nc.Subscribe(e.vars["NATS_METRICS_PREFIX"]+".global", func(m *nats.Msg) {
		var g projection.GlobalUpdate
		if json.Unmarshal(m.Data, &g) == nil {
			globals.Store(g)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck

	ctx := context.Background()
	long := strings.Repeat("Ñ", 5<<10) // 10 KB, compressible enough for a btree key
	if _, err := e.pg.Exec(ctx, `INSERT INTO empleados VALUES ($1,'Largo','vendedor',true), ('','Vacío','vendedor',true), ('S-01','Ana','operario',true)`, long); err != nil {
		t.Fatal(err)
	}
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)
	for _, seller := range []string{long, "", long, "S-01"} {
		if _, err := e.orders.InsertOne(ctx, bson.D{{Key: "vendedor", Value: seller}}); err != nil {
			t.Fatal(err)
		}
	}
	got := e.converges(60 * time.Second)
	if got.MetricasGlobales.TotalPedidosProcesados != 4 || got.MetricasGlobales.TotalEmpleados != 3 {
		t.Fatalf("totals %+v, want 4 orders and 3 employees", got.MetricasGlobales)
	}
	// The view still follows both sources after the hostile values.
	if _, err := e.pg.Exec(ctx, `UPDATE empleados SET activo = false WHERE codigo = $1`, long); err != nil {
		t.Fatal(err)
	}
	if _, err := e.orders.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-01"}}); err != nil {
		t.Fatal(err)
	}
	final := e.converges(60 * time.Second)
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		g := globals.Load().(projection.GlobalUpdate)
		return g.Global == final.MetricasGlobales, fmt.Sprintf("last global update %+v, dashboard %+v", g, final.MetricasGlobales)
	})
}
