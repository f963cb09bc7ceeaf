package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

// TestScaleOut: VIEW_STORE=postgres with two projectors sharing four
// partitions and three API replicas, under the mixed workload on both
// sources, with SIGKILLs of a projector (the other takes its partitions
// over) and of replicas (they load the store again): every replica, and
// the SQL views, converge to the recount.
func TestScaleOut(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	name := devstack.Name(t)
	ports, err := devstack.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"VIEW_STORE": "postgres", "VIEW_PARTITIONS": "4", "VIEW_SCHEMA": "vista", "VIEW_UPDATES_PREFIX": name + ".view",
		"LEASE_TTL": "2s",
	} {
		e.vars[k] = v
	}
	projectors := map[string]string{"projector-1": strconv.Itoa(ports[0]), "projector-2": strconv.Itoa(ports[1])}
	replicas := map[string]int{"api-1": ports[2], "api-2": ports[3], "api-3": ports[4]}
	startProjector := func(n string) { e.startAs(n, "projector", map[string]string{"PROJECTOR_PORT": projectors[n]}) }
	startReplica := func(n string) { e.startAs(n, "api", map[string]string{"PORT": strconv.Itoa(replicas[n])}) }

	w := newWorkload(e, 3)
	for range 10 {
		w.hire(t)
	}
	w.orders(t, 200)
	e.start("ingestor")
	for n := range projectors {
		startProjector(n)
	}
	for n := range replicas {
		startReplica(n)
	}
	e.replicasConverge(replicas, 90*time.Second)

	for i := range 300 * chaos() {
		w.step(t)
		switch i % 300 {
		case 60:
			e.kill("projector-1", syscall.SIGKILL)
			took := e.ownsAll(projectors["projector-2"], 4, 30*time.Second)
			t.Logf("projector-2 owns all 4 partitions %s after projector-1's SIGKILL", took.Round(time.Millisecond))
		case 120:
			startProjector("projector-1")
		case 150:
			e.kill("api-2", syscall.SIGKILL)
		case 200:
			startReplica("api-2")
			e.kill("api-3", syscall.SIGKILL)
			startReplica("api-3")
		}
	}
	want := e.replicasConverge(replicas, 90*time.Second)
	e.sqlViewEquals(want, 30*time.Second)
	t.Logf("after %v: %d employees, %d orders, %d without employee", w.ops,
		want.MetricasGlobales.TotalEmpleados, want.MetricasGlobales.TotalPedidosProcesados, want.MetricasGlobales.PedidosSinEmpleado)
}

// replicasConverge waits until every replica's dashboard equals a recount.
func (e *env) replicasConverge(replicas map[string]int, timeout time.Duration) projection.Dashboard {
	e.t.Helper()
	var want projection.Dashboard
	for n, port := range replicas {
		e.apiPort = port
		want = e.converges(timeout)
		e.t.Logf("%s equals the recount", n)
	}
	return want
}

// ownsAll waits until the projector on port owns n partitions, and says
// how long that took.
func (e *env) ownsAll(port string, n int, timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	devstack.Eventually(e.t, timeout, func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var st struct {
			Partitions []int `json:"partitions"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, err.Error()
		}
		return len(st.Partitions) == n, fmt.Sprintf("owns %v", st.Partitions)
	})
	return time.Since(start)
}

// sqlViewEquals waits until the store's SQL views read want.
func (e *env) sqlViewEquals(want projection.Dashboard, timeout time.Duration) {
	e.t.Helper()
	devstack.Eventually(e.t, timeout, func() (bool, string) {
		ctx := context.Background()
		var g projection.Global
		if err := e.pg.QueryRow(ctx, `SELECT total_empleados, total_pedidos_procesados, pedidos_sin_empleado FROM vista.totals`).
			Scan(&g.TotalEmpleados, &g.TotalPedidosProcesados, &g.PedidosSinEmpleado); err != nil {
			return false, err.Error()
		}
		rows, _ := e.pg.Query(ctx, `SELECT empleado, rol, pedidos_realizados, estado FROM vista.dashboard ORDER BY pedidos_realizados DESC, empleado, rol`)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[projection.Seller])
		if err != nil {
			return false, err.Error()
		}
		ok := g == want.MetricasGlobales && reflect.DeepEqual(got, want.DetallePorVendedor) ||
			g == want.MetricasGlobales && len(got) == 0 && len(want.DetallePorVendedor) == 0
		return ok, fmt.Sprintf("SQL %+v %v\nwant %+v %v", g, got, want.MetricasGlobales, want.DetallePorVendedor)
	})
}
