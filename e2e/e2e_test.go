package e2e

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

// TestPipeline: data exists before the ingestor starts (snapshot), then both
// sources change while the pipeline runs; the dashboard must equal a recount.
func TestPipeline(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	// The local cluster trusts local connections, so any password works:
	// it must never show up in the logs.
	e.vars["POSTGRES_URL"] = strings.Replace(e.vars["POSTGRES_URL"], "postgres@", "postgres:n0-leak-s3cret@", 1)
	e.vars["VIEW_TABLE"] = "public.reportes_vista"
	w := newWorkload(e, 1)
	for range 15 {
		w.hire(t)
	}
	w.orders(t, 300)

	e.start("ingestor")
	e.start("api")
	d := e.converges(60 * time.Second)
	if d.MetricasGlobales.TotalPedidosProcesados != 300 || d.MetricasGlobales.TotalEmpleados != 15 {
		t.Fatalf("snapshot: got %+v, want 300 orders and 15 employees", d.MetricasGlobales)
	}

	for range 400 {
		w.step(t)
	}
	d = e.converges(60 * time.Second)
	t.Logf("after %v: %d employees, %d orders, %d without employee",
		w.ops, d.MetricasGlobales.TotalEmpleados, d.MetricasGlobales.TotalPedidosProcesados, d.MetricasGlobales.PedidosSinEmpleado)

	// A fresh API starts from the snapshot its predecessor saved on stop...
	e.kill("api", syscall.SIGTERM)
	e.start("api")
	want := e.converges(60 * time.Second)
	e.mu.Lock()
	restored := strings.Contains(e.procs["api"].out.String(), "view restored from its snapshot")
	e.mu.Unlock()
	if !restored {
		t.Errorf("the restarted api did not start from the snapshot saved on stop")
	}
	// ...and one without snapshots rebuilds the same view from the stream alone.
	e.kill("api", syscall.SIGTERM)
	e.vars["VIEW_SNAPSHOT_INTERVAL"] = "0"
	e.start("api")
	if got := e.converges(60 * time.Second); !reflect.DeepEqual(got.DetallePorVendedor, want.DetallePorVendedor) {
		t.Errorf("rebuilt without snapshot: %v\nwant %v", got.DetallePorVendedor, want.DetallePorVendedor)
	}

	// The copy of the view in PostgreSQL says the same.
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		rows, err := e.pg.Query(context.Background(), `SELECT empleado, rol, pedidos_realizados, estado FROM public.reportes_vista ORDER BY pedidos_realizados DESC, empleado, rol`)
		if err != nil {
			return false, err.Error()
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[projection.Seller])
		if err != nil {
			return false, err.Error()
		}
		return reflect.DeepEqual(got, want.DetallePorVendedor), fmt.Sprintf("table %v\nwant %v", got, want.DetallePorVendedor)
	})

	e.mu.Lock()
	defer e.mu.Unlock()
	for name, p := range e.procs {
		if strings.Contains(p.out.String(), "n0-leak-s3cret") {
			t.Errorf("%s logged the PostgreSQL password", name)
		}
		if !strings.Contains(p.out.String(), "postgres:xxxxx@") && name == "ingestor" {
			t.Errorf("ingestor did not log the redacted URL")
		}
	}
}

// TestCrashes kills the ingestor and the API with SIGKILL at moments chosen
// by the workload while both sources keep changing; the final dashboard must
// still equal the recount: nothing lost, nothing counted twice.
func TestCrashes(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	w := newWorkload(e, 2)
	for range 10 {
		w.hire(t)
	}
	w.orders(t, 200)
	e.start("ingestor")
	e.start("api")

	kills := 0
	for i := range 300 * chaos() {
		w.step(t)
		switch {
		case i%97 == 50:
			e.kill("ingestor", syscall.SIGKILL)
			kills++
			w.step(t) // changes while the ingestor is down
			w.step(t)
			e.start("ingestor")
		case i%151 == 100:
			e.kill("api", syscall.SIGKILL)
			kills++
			e.start("api")
		}
	}
	d := e.converges(90 * time.Second)
	t.Logf("%d kills during %v: final %d employees, %d orders", kills, w.ops,
		d.MetricasGlobales.TotalEmpleados, d.MetricasGlobales.TotalPedidosProcesados)
}
