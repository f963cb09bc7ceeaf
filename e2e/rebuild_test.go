package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

// monotone is what one reader saw last; nothing it sees may be less.
type monotone struct {
	seq              uint64
	employees, total int
	sellers          map[string]int64
}

// check compares d with what was seen before, then remembers d.
func (m *monotone) check(d projection.Dashboard) error {
	g := d.MetricasGlobales
	if d.Frescura.Secuencia < m.seq || g.TotalEmpleados < m.employees || g.TotalPedidosProcesados < m.total {
		return fmt.Errorf("went backwards: seq %d after %d, employees %d after %d, orders %d after %d",
			d.Frescura.Secuencia, m.seq, g.TotalEmpleados, m.employees, g.TotalPedidosProcesados, m.total)
	}
	m.seq, m.employees, m.total = d.Frescura.Secuencia, g.TotalEmpleados, g.TotalPedidosProcesados
	for _, s := range d.DetallePorVendedor {
		if s.PedidosRealizados < m.sellers[s.Empleado] {
			return fmt.Errorf("%s went backwards: %d orders after %d", s.Empleado, s.PedidosRealizados, m.sellers[s.Empleado])
		}
		m.sellers[s.Empleado] = s.PedidosRealizados
	}
	return nil
}

// getJSON GETs path from the API with the token and decodes a 200 into out.
func (e *env) getJSON(path string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", e.apiPort, path), nil)
	req.Header.Set("Authorization", "Bearer "+e.vars["API_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// reader GETs the dashboard and a seller's line until quit, failing the
// test on any error and on anything going backwards; an event stream
// client's figures must not go backwards either.
func (e *env) reader(t *testing.T, quit <-chan struct{}, f *follower) int {
	dash, line := monotone{sellers: map[string]int64{}}, map[string]int64{}
	streamed := monotone{sellers: map[string]int64{}}
	reads := 0
	for ; ; reads++ {
		select {
		case <-quit:
			return reads
		default:
		}
		var d projection.Dashboard
		if err := e.getJSON("/reportes/dashboard", &d); err != nil {
			t.Error(err)
			return reads
		}
		if err := dash.check(d); err != nil {
			t.Errorf("dashboard: %v", err)
			return reads
		}
		if len(d.DetallePorVendedor) > 0 {
			code := d.DetallePorVendedor[reads%len(d.DetallePorVendedor)].Empleado
			var s projection.Seller
			if err := e.getJSON("/reportes/vendedores/"+code, &s); err != nil {
				t.Error(err)
				return reads
			}
			if s.PedidosRealizados < line[code] {
				t.Errorf("seller %s went backwards: %d orders after %d", code, s.PedidosRealizados, line[code])
				return reads
			}
			line[code] = s.PedidosRealizados
		}
		if err := streamed.check(f.dashboard()); err != nil {
			t.Errorf("event stream: %v", err)
			return reads
		}
	}
}

// advances waits until the served view applied new events.
func (e *env) advances(t *testing.T) {
	t.Helper()
	var d projection.Dashboard
	if err := e.getJSON("/reportes/dashboard", &d); err != nil {
		t.Fatal(err)
	}
	from := d.Frescura.Secuencia
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		if err := e.getJSON("/reportes/dashboard", &d); err != nil {
			return false, err.Error()
		}
		return d.Frescura.Secuencia > from+20, fmt.Sprintf("view at seq %d, waiting for %d", d.Frescura.Secuencia, from+20)
	})
}

// runRebuild runs `api rebuild args...` against the deployment's API.
func (e *env) runRebuild(t *testing.T, token string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "api"), append([]string{"rebuild"}, args...)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("API_URL=http://127.0.0.1:%d", e.apiPort), "API_TOKEN="+token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestRebuild rebuilds the view of a running API, from the stream's start
// and then from its snapshot, while orders and employees keep coming and
// readers keep asking: no GET fails, nothing they or an event stream
// client see goes backwards, `api rebuild` shows its progress and exits 0,
// and the dashboard then equals the recount.
func TestRebuild(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	e.vars["API_TOKEN"] = "rebuild-secret"
	w := newWorkload(e, 22)
	for range 8 {
		w.hire(t)
	}
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)
	for range 4 { // a history to replay, through the live capture
		w.orders(t, 1000)
	}
	e.converges(90 * time.Second)
	if out, err := e.runRebuild(t, "wrong"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("rebuild with a wrong token: %v\n%s", err, out)
	}

	f := followWith(t, fmt.Sprintf("http://127.0.0.1:%d/reportes/dashboard/stream", e.apiPort), "", e.vars["API_TOKEN"])
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the workload: only additions, so that nothing may go down
		// Paced, not as fast as it can: the capture of FerretDB's oplog
		// slows down with its length.
		pace := time.NewTicker(40 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			case <-pace.C:
			}
			w.orders(t, 2)
			if i%10 == 0 {
				w.hire(t)
			}
		}
	})
	reads := make([]int, 2)
	for i := range reads {
		wg.Go(func() { reads[i] = e.reader(t, quit, f) })
	}

	mid := time.Now()
	for _, args := range [][]string{{"--from-seq", "1"}, {"--from-time", mid.UTC().Format(time.RFC3339Nano)}, {}} {
		e.advances(t) // so that events come in while it rebuilds
		out, err := e.runRebuild(t, e.vars["API_TOKEN"], args...)
		t.Logf("api rebuild %s:\n%s", strings.Join(args, " "), out)
		if err != nil || !strings.Contains(out, "swapped: the new view is served") {
			t.Errorf("api rebuild %s: %v", strings.Join(args, " "), err)
		}
	}
	e.advances(t) // and after the last swap
	close(quit)
	wg.Wait()
	t.Logf("reads per reader: %v", reads)

	want := e.converges(120 * time.Second)
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		got := f.dashboard()
		got.Titulo = want.Titulo
		return reflect.DeepEqual(got, want), fmt.Sprintf("event stream client holds %s, want %s", brief(got), brief(want))
	})
	port := e.vars["PORT"]
	if n := e.metricAt(port, `reportes_projection_rebuilds_total{result="swapped"}`); n != 3 {
		t.Errorf("rebuilds swapped = %v, want 3", n)
	}
	var st projection.RebuildStatus
	if err := e.getJSON("/reportes/admin/rebuild", &st); err != nil || st.ID != 3 || st.Base != "snapshot" {
		t.Errorf("last rebuild %+v, %v: want the third, from the snapshot", st, err)
	}
}
