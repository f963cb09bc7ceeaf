package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/internal/httpapi/web"
	"github.com/reportes/reportes/pkg/projection"
)

// shown is what the page shows a person, read from its DOM.
type shown struct {
	Totals [3]string           `json:"totals"`
	Rows   []projection.Seller `json:"rows"`
	Seq    string              `json:"seq"`
	Commit string              `json:"commit"`
	Age    string              `json:"age"`
	State  string              `json:"state"`
	Marker string              `json:"marker"`
	Alert  string              `json:"alert"`
	Bars   int                 `json:"bars"`
}

// readPage reads the table as the page sorts it by default (most orders
// first, then by code, as the API does), the totals, the freshness line
// and the connection state. Numbers lose their thousands separators.
const readPage = `(() => {
	const $ = id => document.getElementById(id);
	const n = s => s.replace(/\D/g, '');
	return {
		totals: [n($('total-empleados').textContent), n($('total-pedidos').textContent), n($('sin-empleado').textContent)],
		rows: Array.from(document.querySelectorAll('#vendedores tbody tr[data-empleado]')).map(tr => ({
			empleado: tr.cells[0].textContent,
			rol: tr.cells[1].textContent === '—' ? '' : tr.cells[1].textContent,
			pedidos_realizados: Number(n(tr.cells[2].textContent)),
			estado: tr.cells[3].textContent,
		})),
		seq: $('secuencia').textContent,
		commit: $('ultimo-cambio').getAttribute('datetime') || '',
		age: $('antiguedad').dataset.segundos || '',
		state: $('conexion').dataset.estado,
		marker: String(window.__sinRecargar || ''),
		alert: $('aviso').hidden ? '' : $('aviso').textContent,
		bars: document.querySelectorAll('#grafico .barra').length,
	};
})()`

// TestBrowserDashboard loads the dashboard page in a real headless
// Chromium and checks that it shows the recount of the sources, then that
// an order inserted in MongoDB and employees changed in PostgreSQL reach
// its table and totals through the event stream, without a reload.
func TestBrowserDashboard(t *testing.T) {
	chromium, err := devstack.Chromium()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ctx := context.Background()
	for _, emp := range []struct {
		code, role string
		active     bool
	}{
		{"S-01", "vendedor", true}, {"S-02", "vendedor", true}, {"S-03", "operario", true},
		{"S-04", "supervisor", true}, {"S-05", "vendedor", false},
	} {
		if _, err := e.pg.Exec(ctx, `INSERT INTO empleados (codigo, nombre, rol, activo) VALUES ($1, $2, $3, $4)`,
			emp.code, "Empleado "+emp.code, emp.role, emp.active); err != nil {
			t.Fatal(err)
		}
	}
	var docs []any
	for code, n := range map[string]int{"S-01": 12, "S-02": 7, "S-03": 4, "S-05": 2, "X-09": 3} {
		for range n {
			docs = append(docs, bson.D{{Key: "vendedor", Value: code}, {Key: "producto", Value: "p"}})
		}
	}
	if _, err := e.orders.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	e.start("ingestor")
	e.start("api")
	want := e.converges(90 * time.Second)

	bctx := newBrowser(t, chromium)
	url := fmt.Sprintf("http://127.0.0.1:%d/", e.apiPort)
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	// Set once after the load: a reload would lose it.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`window.__sinRecargar = 'sí'`)); err != nil {
		t.Fatal(err)
	}
	first := pageShows(bctx, t, want, 30*time.Second)
	if first.Bars != len(want.DetallePorVendedor) {
		t.Errorf("the chart has %d bars, want one per seller (%d)", first.Bars, len(want.DetallePorVendedor))
	}

	// One order for an employee, and every kind of employee change: a new
	// role, deactivated, hired, and dismissed (the row must go).
	if _, err := e.orders.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-02"}, {Key: "producto", Value: "nuevo"}}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE empleados SET rol = 'supervisor' WHERE codigo = 'S-03'`,
		`UPDATE empleados SET activo = false WHERE codigo = 'S-01'`,
		`INSERT INTO empleados (codigo, nombre, rol, activo) VALUES ('X-09', 'Empleado X-09', 'vendedor', true)`,
		`DELETE FROM empleados WHERE codigo = 'S-05'`,
	} {
		if _, err := e.pg.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	want = e.converges(60 * time.Second)
	if reflect.DeepEqual(want.DetallePorVendedor, first.Rows) {
		t.Fatal("the changes did not change the recount")
	}
	last := pageShows(bctx, t, want, 30*time.Second)
	if last.Marker != "sí" {
		t.Fatalf("the page was reloaded (its marker is %q): it must follow the stream in place", last.Marker)
	}
	if last.Seq == first.Seq {
		t.Errorf("the page's sequence stayed %s through the changes", last.Seq)
	}
	if last.Commit == "" || last.Age == "" {
		t.Errorf("the page shows no commit time (%q) or age (%q)", last.Commit, last.Age)
	}
	screenshot(bctx, t)
}

// pageShows polls the page until its table and totals equal want, with
// the connection state "conectado", and returns what it showed.
func pageShows(bctx context.Context, t *testing.T, want projection.Dashboard, timeout time.Duration) shown {
	t.Helper()
	g := want.MetricasGlobales
	totals := [3]string{fmt.Sprint(g.TotalEmpleados), fmt.Sprint(g.TotalPedidosProcesados), fmt.Sprint(g.PedidosSinEmpleado)}
	return waitPage(bctx, t, timeout, fmt.Sprintf("connected, totals %v, rows %v", totals, want.DetallePorVendedor), func(s shown) bool {
		return s.State == "conectado" && s.Totals == totals && reflect.DeepEqual(s.Rows, want.DetallePorVendedor)
	})
}

// waitPage polls what the page shows until ok holds, and returns it.
func waitPage(bctx context.Context, t *testing.T, timeout time.Duration, want string, ok func(shown) bool) shown {
	t.Helper()
	var got shown
	devstack.Eventually(t, timeout, func() (bool, string) {
		cctx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		raw, err := chromedp.Run(cctx, chromedp.Evaluate[[]byte](readPage))
		if err != nil {
			return false, "read the page: " + err.Error()
		}
		got = shown{}
		if err := json.Unmarshal(raw, &got); err != nil {
			return false, "decode the page: " + err.Error()
		}
		return ok(got), fmt.Sprintf("the page shows %s\nwant %s", raw, want)
	})
	return got
}

// newBrowser starts a headless Chromium with a profile of its own; an
// uncaught exception of the page fails the test, and its console is logged.
func newBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container has no user namespaces for the sandbox
		chromedp.Flag("disable-gpu", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Starts the browser, with no timeout: it lives as long as bctx.
	messages := chromedp.Console(bctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				t.Errorf("page: %s", m)
			} else {
				t.Logf("page console: %s", m)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	return bctx
}

// screenshot saves the page in the test's artifacts ($REPORTES_ARTIFACTS,
// else a temporary folder) and, with REPORTES_UPDATE_SCREENSHOT=1, as the
// README's docs/dashboard.png.
func screenshot(bctx context.Context, t *testing.T) {
	t.Helper()
	cctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	defer cancel()
	// The highlight of changed rows fades out first, for a calm picture.
	if _, err := chromedp.Run(cctx, chromedp.Poll[chromedp.Void](`document.getAnimations().length === 0`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Logf("animations still running: %v", err)
	}
	png, err := chromedp.Run(cctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("REPORTES_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	if os.Getenv("REPORTES_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("screenshot: ../docs/dashboard.png updated")
	}
}

// TestBrowserStreamProtocol runs the page against a scripted event stream,
// for what the pipeline seldom does on cue: a 401 and the token form, an
// update older than the view, a seller that is no longer an employee, a
// stream the server cannot read, a dropped connection and its resumption
// from Last-Event-ID.
func TestBrowserStreamProtocol(t *testing.T) {
	chromium, err := devstack.Chromium()
	if err != nil {
		t.Fatal(err)
	}
	const token = "s3creto"
	type request struct{ auth, lastID string }
	requests := make(chan request, 10)
	drop := make(chan struct{})
	var mu sync.Mutex
	n := 0
	stream := func(w http.ResponseWriter, r *http.Request) {
		requests <- request{r.Header.Get("Authorization"), r.Header.Get("Last-Event-ID")}
		mu.Lock()
		n++
		conn := n
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"missing or wrong bearer token"}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		send := func(s string) {
			// In pieces that cut lines and CRLFs, as a network may.
			for len(s) > 0 {
				k := min(7, len(s))
				_, _ = io.WriteString(w, s[:k])
				_ = rc.Flush()
				s = s[k:]
			}
		}
		switch conn {
		case 2:
			send("retry: 100\n: hola\n\n" +
				"id: 10\nevent: dashboard\ndata: " + `{"titulo":"Panel de prueba","metricas_globales":{"total_empleados":3,"total_pedidos_procesados":8,"pedidos_sin_empleado":2},` +
				`"detalle_por_vendedor":[{"empleado":"S-01","rol":"vendedor","pedidos_realizados":3,"estado":"Activo"},{"empleado":"S-02","rol":"vendedor","pedidos_realizados":2,"estado":"Activo"},{"empleado":"S-03","rol":"operario","pedidos_realizados":1,"estado":"Inactivo"}],` +
				`"frescura":{"ultimo_cambio":"2026-01-02T03:04:05Z","aplicado":"2026-01-02T03:04:06Z","secuencia":10}}` + "\n\n" +
				"id: 11\r\nevent: update\r\ndata: " + `{"secuencia":11,"ultimo_cambio":"2026-01-02T03:04:07Z","metricas_globales":{"total_empleados":3,"total_pedidos_procesados":9,"pedidos_sin_empleado":0},` +
				`"vendedores":[{"empleado":"S-02","rol":"vendedor","pedidos_realizados":5,"estado":"Activo","es_empleado":true,"seq":11},{"empleado":"S-03","rol":"","pedidos_realizados":1,"estado":"Inactivo","es_empleado":false,"seq":11},{"empleado":"X-01","rol":"","pedidos_realizados":1,"estado":"Activo","es_empleado":true,"seq":11}]}` + "\r\n\r\n" +
				"id: 9\nevent: update\ndata: " + `{"secuencia":9,"ultimo_cambio":null,"vendedores":[{"empleado":"S-01","rol":"vendedor","pedidos_realizados":999,"estado":"Activo","es_empleado":true,"seq":9}]}` + "\n\n" +
				"event: estado\ndata: " + `{"conectado":false,"error":"cannot reach NATS at nats://127.0.0.1:4222","sin_conexion_desde":"2026-01-02T03:05:00Z"}` + "\n\n")
			select {
			case <-drop:
			case <-r.Context().Done():
			}
		default:
			send("id: 12\nevent: update\ndata: " + `{"secuencia":12,"ultimo_cambio":"2026-01-02T03:04:08Z","vendedores":[{"empleado":"S-01","rol":"vendedor","pedidos_realizados":6,"estado":"Activo","es_empleado":true,"seq":12}]}` + "\n\n")
			<-r.Context().Done()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/reportes/dashboard/stream", stream)
	mux.Handle("/", web.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	bctx := newBrowser(t, chromium)
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`window.__sinRecargar = 'sí'`)); err != nil {
		t.Fatal(err)
	}
	if r := <-requests; r.auth != "" || r.lastID != "" {
		t.Errorf("first request: Authorization %q, Last-Event-ID %q, want neither", r.auth, r.lastID)
	}
	waitPage(bctx, t, 10*time.Second, "unauthorized", func(s shown) bool { return s.State == "no-autorizado" })
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('token-form').hidden ||
		(document.getElementById('token').value = '`+token+`', document.getElementById('token-form').requestSubmit())`)); err != nil {
		t.Fatal(err)
	}
	if r := <-requests; r.auth != "Bearer "+token {
		t.Errorf("after the form: Authorization %q", r.auth)
	}
	wantRows := []projection.Seller{
		{Empleado: "S-02", Rol: "vendedor", PedidosRealizados: 5, Estado: "Activo"},
		{Empleado: "S-01", Rol: "vendedor", PedidosRealizados: 3, Estado: "Activo"},
		{Empleado: "X-01", PedidosRealizados: 1, Estado: "Activo"},
	}
	stale := waitPage(bctx, t, 10*time.Second, fmt.Sprintf("stale, seq 11, rows %v", wantRows), func(s shown) bool {
		return s.State == "desactualizado" && s.Seq == "11" && reflect.DeepEqual(s.Rows, wantRows)
	})
	if stale.Totals != [3]string{"3", "9", "0"} || !strings.Contains(stale.Alert, "cannot reach NATS") || stale.Commit != "2026-01-02T03:04:07Z" {
		t.Errorf("stale page: totals %v, alert %q, commit %q", stale.Totals, stale.Alert, stale.Commit)
	}

	close(drop)
	if r := <-requests; r.auth != "Bearer "+token || r.lastID != "11" {
		t.Errorf("reconnection: Authorization %q, Last-Event-ID %q, want the token and 11", r.auth, r.lastID)
	}
	wantRows[0], wantRows[1] = projection.Seller{Empleado: "S-01", Rol: "vendedor", PedidosRealizados: 6, Estado: "Activo"}, wantRows[0]
	resumed := waitPage(bctx, t, 10*time.Second, fmt.Sprintf("connected, seq 12, rows %v", wantRows), func(s shown) bool {
		return s.State == "conectado" && s.Seq == "12" && reflect.DeepEqual(s.Rows, wantRows)
	})
	if resumed.Totals != [3]string{"3", "9", "0"} || resumed.Alert != "" || resumed.Marker != "sí" {
		t.Errorf("resumed page: totals %v (an update without totals keeps them), alert %q, marker %q", resumed.Totals, resumed.Alert, resumed.Marker)
	}
}
