// Package e2e runs the ingestor and the API as the binaries users run,
// against a real PostgreSQL, NATS JetStream and FerretDB, and compares the
// dashboard with a recount taken directly from the sources.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/recount"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reportes-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/ingestor", "../cmd/api", "../cmd/projector").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	defer os.RemoveAll(dir)
	devstack.Main(m)
}

// env is one isolated deployment: its own database, collection, slot,
// stream, subjects and ports on the shared services.
type env struct {
	t       *testing.T
	stack   *devstack.Stack
	ferret  *devstack.Ferret
	vars    map[string]string
	pg      *pgx.Conn
	mongo   *mongo.Client
	orders  *mongo.Collection
	apiPort int
	schema  projection.Schema
	mu      sync.Mutex
	procs   map[string]*proc
}

type proc struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	stack := devstack.Shared(t)
	ctx := context.Background()
	name := devstack.Name(t)
	// A FerretDB of the test's own: FerretDB rescans its whole oplog on
	// every tail poll and never prunes it, so a shared one slows every test
	// that comes after a busy one.
	ferret, err := devstack.StartFerret(ctx, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ferret.Stop)
	pgURL := stack.Database(t)
	ports, err := devstack.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	apiPort, ingPort := ports[0], ports[1]
	e := &env{
		t: t, stack: stack, ferret: ferret, apiPort: apiPort, procs: map[string]*proc{},
		vars: map[string]string{
			"POSTGRES_URL":             pgURL,
			"MONGO_URI":                ferret.URI,
			"MONGO_DB":                 name,
			"MONGO_COLLECTION":         "orders",
			"NATS_URL":                 stack.NATS.URL(),
			"NATS_STREAM":              "S_" + name,
			"NATS_SUBJECT_PREFIX":      name + ".cdc",
			"NATS_METRICS_PREFIX":      name + ".metrics",
			"NATS_METRICS_STREAM":      "M_" + name,
			"NATS_DEAD_LETTER_SUBJECT": name + ".deadletter",
			"NATS_CHECKPOINT_BUCKET":   "P_" + name,
			"VIEW_SNAPSHOT_BUCKET":     "V_" + name,
			"LEASE_BUCKET":             "L_" + name,
			"VIEW_SNAPSHOT_INTERVAL":   "300ms", // often, so restarts start from snapshots
			"PG_SLOT":                  name,
			"PG_PUBLICATION":           name,
			"PORT":                     strconv.Itoa(apiPort),
			"INGESTOR_PORT":            strconv.Itoa(ingPort),
			"LOG_LEVEL":                "debug",
		},
		schema: projection.DefaultSchema(),
	}
	e.schema.Orders = name + ".orders"
	if e.pg, err = pgx.Connect(ctx, pgURL); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pg.Exec(ctx, devstack.EmployeesDDL); err != nil {
		t.Fatal(err)
	}
	if e.mongo, err = mongo.Connect(ctx, options.Client().ApplyURI(ferret.URI)); err != nil {
		t.Fatal(err)
	}
	e.orders = e.mongo.Database(name).Collection("orders")
	t.Cleanup(func() {
		e.stopAll()
		if t.Failed() {
			e.dumpStream()
		}
		e.pg.Close(context.Background())
		_ = e.mongo.Disconnect(context.Background())
		if t.Failed() {
			for n, p := range e.procs {
				t.Logf("--- %s output (last 6000 bytes):\n%s", n, tail(p.out.String(), 6000))
				keepLog(t, n, p.out.Bytes())
			}
		}
	})
	return e
}

// keepLog writes a failed test's whole process output to
// $REPORTES_E2E_LOGS/<test>.<name>.log when that directory is set.
func keepLog(t *testing.T, name string, out []byte) {
	dir := os.Getenv("REPORTES_E2E_LOGS")
	if dir == "" {
		return
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"."+name+".log")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Logf("keep %s output: %v", name, err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// start runs a binary with the deployment's environment.
func (e *env) start(name string) {
	e.t.Helper()
	e.startAs(name, name, nil)
}

// startAs runs binary as the process called name, with the deployment's
// environment and extra on top (another PORT for a second API replica).
func (e *env) startAs(name, binary string, extra map[string]string) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, binary))
	cmd.Env = os.Environ()
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.procs[name]
	if p == nil {
		p = &proc{out: &bytes.Buffer{}}
		e.procs[name] = p
	}
	w := &syncWriter{w: p.out, mu: &e.mu}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	p.cmd = cmd
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// kill sends sig to a running binary and waits for it to exit.
func (e *env) kill(name string, sig syscall.Signal) {
	e.t.Helper()
	e.mu.Lock()
	p := e.procs[name]
	e.mu.Unlock()
	if p == nil || p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
	e.mu.Lock()
	p.cmd = nil
	e.mu.Unlock()
}

func (e *env) stopAll() {
	e.mu.Lock()
	names := make([]string, 0, len(e.procs))
	for n := range e.procs {
		names = append(names, n)
	}
	e.mu.Unlock()
	for _, n := range names {
		e.kill(n, syscall.SIGKILL)
	}
}

// dashboard fetches the API's dashboard.
func (e *env) dashboard() (projection.Dashboard, error) {
	var d projection.Dashboard
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/reportes/dashboard", e.apiPort), nil)
	if token := e.vars["API_TOKEN"]; token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("status %s", resp.Status)
	}
	return d, json.NewDecoder(resp.Body).Decode(&d)
}

func (e *env) recount() projection.Dashboard {
	e.t.Helper()
	d, err := recount.Dashboard(context.Background(), e.pg, e.orders, e.schema)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// converges waits until the dashboard equals a recount from the sources.
func (e *env) converges(timeout time.Duration) projection.Dashboard {
	e.t.Helper()
	var last projection.Dashboard
	devstack.Eventually(e.t, timeout, func() (bool, string) {
		got, err := e.dashboard()
		if err != nil {
			return false, err.Error()
		}
		want := e.recount()
		got.Frescura = projection.Freshness{}
		last = want
		if reflect.DeepEqual(got, want) {
			return true, ""
		}
		return false, "dashboard differs from the recount: " + differences(got, want)
	})
	return last
}

func brief(d projection.Dashboard) string {
	b, _ := json.Marshal(d)
	return tail(string(b), 1500)
}

// differences names what got has that want has not: the totals and each
// seller line that differs, at most 20.
func differences(got, want projection.Dashboard) string {
	var out []string
	if got.MetricasGlobales != want.MetricasGlobales {
		out = append(out, fmt.Sprintf("totals %+v, want %+v", got.MetricasGlobales, want.MetricasGlobales))
	}
	lines := func(d projection.Dashboard) map[string]projection.Seller {
		m := map[string]projection.Seller{}
		for _, s := range d.DetallePorVendedor {
			m[s.Empleado] = s
		}
		return m
	}
	g, w := lines(got), lines(want)
	for id, ws := range w {
		if gs, ok := g[id]; !ok {
			out = append(out, fmt.Sprintf("%s missing (want %+v)", id, ws))
		} else if gs != ws {
			out = append(out, fmt.Sprintf("%s %+v, want %+v", id, gs, ws))
		}
	}
	for id, gs := range g {
		if _, ok := w[id]; !ok {
			out = append(out, fmt.Sprintf("%s not in the recount (%+v)", id, gs))
		}
	}
	if len(out) == 0 {
		out = append(out, "the seller lines are in another order")
	}
	slices.Sort(out)
	return strings.Join(out[:min(len(out), 20)], "; ")
}

// metric sums the samples of a Prometheus metric a process exposes.
func (e *env) metric(process, name string) float64 {
	e.t.Helper()
	port := e.vars["PORT"]
	if process == "ingestor" {
		port = e.vars["INGESTOR_PORT"]
	}
	return e.metricAt(port, name)
}

// metricAt sums the samples of a Prometheus metric served on port.
func (e *env) metricAt(port, name string) float64 {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+port+"/metrics", nil)
	if token := e.vars["API_TOKEN"]; token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
