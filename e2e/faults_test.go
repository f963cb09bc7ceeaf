package e2e

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// chaos scales the fault suite: `make chaos` sets REPORTES_CHAOS=10 for ten
// times the load and faults of the short version `make test` runs.
func chaos() int {
	n, err := strconv.Atoi(os.Getenv("REPORTES_CHAOS"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// report prints what a scenario did and found.
func report(t *testing.T, scenario string, w *workload, faults int, e *env) {
	got, err := e.dashboard()
	if err != nil {
		t.Fatal(err)
	}
	want := e.recount()
	diff := got.MetricasGlobales.TotalPedidosProcesados - want.MetricasGlobales.TotalPedidosProcesados
	total := 0
	for _, n := range w.ops {
		total += n
	}
	t.Logf("scenario %-18s changes written %5d  faults injected %3d  orders %5d  employees %3d  final difference %d",
		scenario, total, faults, want.MetricasGlobales.TotalPedidosProcesados, want.MetricasGlobales.TotalEmpleados, diff)
}

func (e *env) reconnectPG() {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, e.vars["POSTGRES_URL"])
		if err == nil {
			e.pg.Close(ctx)
			e.pg = conn
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("reconnect to postgres: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // retry pacing, not synchronisation
	}
}

// reconnectMongo waits until the test's client talks to the server again
// (the driver drops its pooled connections on the first failure).
func (e *env) reconnectMongo() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := e.mongo.Ping(context.Background(), nil)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("reconnect to mongo: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // retry pacing, not synchronisation
	}
}

// TestFaultNATSOutage stops the NATS server for a while under load: the
// ingestor must stop acknowledging its sources, retry with backoff, and catch
// up once NATS is back.
func TestFaultNATSOutage(t *testing.T) {
	e := newEnv(t)
	w := newWorkload(e, 3)
	for range 8 {
		w.hire(t)
	}
	w.orders(t, 100)
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)
	faults := 0
	for round := range 2 * chaos() {
		e.stack.NATS.Stop()
		faults++
		// The sources keep changing while NATS is away; the first outage
		// outlasts the publish acknowledgement timeout (10s).
		outage := time.Second
		if round == 0 {
			outage = 12 * time.Second
		}
		for start := time.Now(); time.Since(start) < outage; {
			w.step(t)
		}
		if err := e.stack.NATS.Restart(); err != nil {
			t.Fatal(err)
		}
		for range 20 + round {
			w.step(t)
		}
	}
	e.converges(120 * time.Second)
	// A 12s outage outlasts the publish acknowledgement timeout and the
	// source leases: each source was restarted by its supervisor, or lost
	// its lease and took it again, without the process restarting.
	restarts, captures := e.metric("ingestor", "reportes_cdc_source_restarts_total"), e.metric("ingestor", "reportes_ingestor_captures_total")
	if restarts < 1 && captures <= 2 {
		t.Errorf("the ingestor neither restarted a source nor took its lease again during a 12s NATS outage (restarts %v, captures %v)", restarts, captures)
	}
	// A publish lost while a later one was stored (across the restarts)
	// makes the publisher store the events again in order.
	t.Logf("publisher reorders repaired: %v", e.metric("ingestor", "reportes_cdc_publish_reorders_total"))
	report(t, "nats outage", w, faults, e)
}

// TestFaultSourceRestarts restarts PostgreSQL and FerretDB under load.
func TestFaultSourceRestarts(t *testing.T) {
	e := newEnv(t)
	w := newWorkload(e, 4)
	for range 8 {
		w.hire(t)
	}
	w.orders(t, 100)
	e.start("ingestor")
	e.start("api")
	faults := 0
	ctx := context.Background()
	for round := range 2 * chaos() {
		for range 30 {
			w.step(t)
		}
		if round%2 == 0 {
			if err := e.stack.Postgres.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			e.reconnectPG()
		} else {
			if err := e.ferret.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			e.reconnectMongo()
		}
		faults++
	}
	for range 30 {
		w.step(t)
	}
	e.converges(120 * time.Second)
	report(t, "source restarts", w, faults, e)
}

// TestFaultKills kills the ingestor and the API with SIGKILL many times at
// moments drawn from the workload's random source.
func TestFaultKills(t *testing.T) {
	e := newEnv(t)
	w := newWorkload(e, 5)
	for range 8 {
		w.hire(t)
	}
	w.orders(t, 100)
	e.start("ingestor")
	e.start("api")
	faults := 0
	for range 300 * chaos() {
		w.step(t)
		switch w.rng.IntN(60) {
		case 0:
			e.kill("ingestor", syscall.SIGKILL)
			e.start("ingestor")
			faults++
		case 1:
			e.kill("api", syscall.SIGKILL)
			e.start("api")
			faults++
		}
	}
	e.converges(120 * time.Second)
	report(t, "sigkill", w, faults, e)
}

// TestGracefulStop: SIGTERM makes every process drain, acknowledge what was
// published and exit promptly with status 0; the view is exact afterwards.
func TestGracefulStop(t *testing.T) {
	e := newEnv(t)
	w := newWorkload(e, 6)
	for range 5 {
		w.hire(t)
	}
	w.orders(t, 50)
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)
	for range 50 {
		w.step(t)
	}
	for _, name := range []string{"ingestor", "api"} {
		e.mu.Lock()
		cmd := e.procs[name].cmd
		e.mu.Unlock()
		start := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		took := time.Since(start)
		e.mu.Lock()
		e.procs[name].cmd = nil
		e.mu.Unlock()
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM", name, err)
		}
		if took > 20*time.Second {
			t.Errorf("%s took %s to stop", name, took)
		}
		t.Logf("%s stopped in %s", name, took.Round(time.Millisecond))
	}
	// Its final position was confirmed: the slot is not behind the last
	// transaction the ingestor published.
	var active bool
	if err := e.pg.QueryRow(context.Background(), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, e.vars["PG_SLOT"]).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active {
		t.Error("slot still active after the ingestor exited")
	}
	for range 20 {
		w.step(t)
	}
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)
	report(t, "graceful stop", w, 2, e)
}
