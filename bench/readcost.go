package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/recount"
)

// apiProc is the real api binary serving a view rebuilt from a stream.
type apiProc struct {
	cmd *exec.Cmd
	url string
}

func (e *benchEnv) startAPI(stream, prefix string, env ...string) (*apiProc, error) {
	return e.startAPIPolling(stream, prefix, 20*time.Millisecond, env...)
}

// startAPIPolling starts the api binary on the stream, view snapshots off
// unless env (NAME=value, winning over the defaults) turns them on, and
// polls /readyz every interval until it is ready.
func (e *benchEnv) startAPIPolling(stream, prefix string, every time.Duration, env ...string) (*apiProc, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.o.apiBin) //nolint:gosec,noctx // the binary under test
	cmd.Env = append(os.Environ(), "NATS_URL="+e.nats.url, "NATS_STREAM="+stream, "NATS_SUBJECT_PREFIX="+prefix,
		"NATS_METRICS_PREFIX=", "PORT="+strconv.Itoa(port), "LOG_LEVEL=warn", "VIEW_SNAPSHOT_INTERVAL=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (make build first): %w", e.o.apiBin, err)
	}
	a := &apiProc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if err := waitReady(a.url, every, 5*time.Minute); err != nil {
		a.stop()
		return nil, fmt.Errorf("api: %w", err)
	}
	return a, nil
}

// waitReady polls base/readyz every interval until it answers 200.
func waitReady(base string, every, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(base + "/readyz") //nolint:gosec,noctx // loopback
		if err == nil {
			// Read the body to its end so the connection is reused: a new
			// connection per poll costs both processes CPU the rebuild needs.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", timeout)
		}
		time.Sleep(every) // polling interval
	}
}

func (a *apiProc) stop() {
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}

// terminate stops the api the way an orchestrator does (SIGTERM), letting
// it save its view snapshot.
func (a *apiProc) terminate() error {
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return a.cmd.Wait()
}

// rssMB is the resident memory of the process once it settled (two
// readings 200ms apart within 1%), from /proc.
func (a *apiProc) rssMB() (float64, error) {
	prev, err := a.rssNow()
	for range 50 {
		if err != nil {
			return 0, err
		}
		time.Sleep(200 * time.Millisecond) // spacing of the readings
		var cur float64
		cur, err = a.rssNow()
		if err == nil && cur <= prev*1.01 && cur >= prev*0.99 {
			return cur, nil
		}
		prev = cur
	}
	return prev, err
}

func (a *apiProc) rssNow() (float64, error) { return a.statusMB("VmRSS") }

// peakRSS is the most resident memory the process has had, in MB.
func (a *apiProc) peakRSS() (float64, error) { return a.statusMB("VmHWM") }

// statusMB reads field, in kB, from the process's /proc status, in MB.
func (a *apiProc) statusMB(field string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), field+":") {
			kb, err := strconv.ParseFloat(strings.Fields(s.Text())[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, a.cmd.Process.Pid)
}

// trivial serves body from memory: the best any server could do here.
func trivial(body []byte) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

type wrkResult struct {
	rps      float64
	p50, p99 float64 // ms
}

var (
	reRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	rePct = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

func wrk(url string, seconds int) (wrkResult, error) {
	out, err := exec.Command("wrk", "-t2", "-c16", fmt.Sprintf("-d%ds", seconds), "--latency", url).CombinedOutput() //nolint:gosec,noctx // loopback load, bounded
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	var r wrkResult
	m := reRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output without Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, p := range rePct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(p[2]), 64)
		switch string(p[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if string(p[1]) == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	return r, nil
}

func ensureWrk() error {
	if _, err := exec.LookPath("wrk"); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("wrk not found: install it (Debian: apt-get install wrk)")
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "wrk"}} {
		if out, err := exec.Command("apt-get", args...).CombinedOutput(); err != nil { //nolint:noctx // one-off install
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// recountOnce times the original service's per-request recount over 1,000
// employees and orders orders.
func (e *benchEnv) recountOnce(ctx context.Context, orders int) (time.Duration, error) {
	if _, err := e.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.empleados (codigo text primary key, nombre text, rol text, activo boolean);
		INSERT INTO public.empleados SELECT 'S-'||lpad(g::text, 4, '0'), 'Empleado', 'vendedor', true FROM generate_series(0, 999) g ON CONFLICT DO NOTHING`); err != nil {
		return 0, err
	}
	coll := e.mongo.Database("inventory_db").Collection("orders")
	have, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	docs := make([]any, 0, 10_000)
	for i := int(have); i < orders; i++ {
		docs = append(docs, bson.D{{Key: "vendedor", Value: fmt.Sprintf("S-%04d", i%1000)}, {Key: "producto", Value: "Tornillos M6"}, {Key: "cantidad", Value: i % 100}})
		if len(docs) == cap(docs) || i == orders-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				return 0, err
			}
			docs = docs[:0]
		}
	}
	start := time.Now()
	d, err := recount.Dashboard(ctx, e.conn, coll, projection.DefaultSchema())
	if err != nil {
		return 0, err
	}
	if d.MetricasGlobales.TotalPedidosProcesados != orders {
		return 0, fmt.Errorf("recount saw %d orders, want %d", d.MetricasGlobales.TotalPedidosProcesados, orders)
	}
	return time.Since(start), nil
}

func (e *benchEnv) readCost(ctx context.Context, rep *report) error {
	if err := ensureWrk(); err != nil {
		return err
	}
	// Memory baseline: the API holding the 1,000 employees and no order.
	stream, prefix, err := e.fillStream(ctx, 1000, 0)
	if err != nil {
		return err
	}
	base, err := e.startAPI(stream, prefix)
	if err != nil {
		return err
	}
	rss0, err := base.rssMB()
	base.stop()
	if err != nil {
		return err
	}
	for _, n := range e.o.viewOrders {
		stream, prefix := e.rebuildStream, e.rebuildPrefix
		if n != e.o.rebuild || stream == "" {
			if stream, prefix, err = e.fillStream(ctx, 1000, n); err != nil {
				return err
			}
		}
		// As deployed: view snapshots on, measured once one has been saved
		// (encoding one holds a copy of the orders for a moment).
		bucket := e.name("snapshots")
		api, err := e.startAPI(stream, prefix, "VIEW_SNAPSHOT_BUCKET="+bucket, "VIEW_SNAPSHOT_INTERVAL=1s")
		if err != nil {
			return err
		}
		if err := e.waitSnapshot(ctx, bucket); err != nil {
			api.stop()
			return err
		}
		rss, err := api.rssMB()
		if err != nil {
			api.stop()
			return err
		}
		resp, err := http.Get(api.url + "/reportes/dashboard") //nolint:gosec,noctx // loopback
		if err != nil {
			api.stop()
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(body, []byte(`"total_pedidos_procesados":`+strconv.Itoa(n))) {
			api.stop()
			return fmt.Errorf("api view does not hold %d orders", n)
		}
		turl, stopTrivial, err := trivial(body)
		if err != nil {
			api.stop()
			return err
		}
		var ourRPS, refRPS, ourP99, refP99, ourP50, refP50 []float64
		for range e.o.runs {
			o, err := wrk(api.url+"/reportes/dashboard", e.o.wrkSecs)
			if err != nil {
				return err
			}
			t, err := wrk(turl, e.o.wrkSecs)
			if err != nil {
				return err
			}
			ourRPS, refRPS = append(ourRPS, o.rps), append(refRPS, t.rps)
			ourP99, refP99 = append(ourP99, o.p99), append(refP99, t.p99)
			ourP50, refP50 = append(ourP50, o.p50), append(refP50, t.p50)
			e.logger.Info("read cost run", "orders", n, "api_rps", int(o.rps), "trivial_rps", int(t.rps), "api_p99_ms", o.p99, "trivial_p99_ms", t.p99)
		}
		stopTrivial()
		api.stop()
		label := fmt.Sprintf("1,000 sellers, %s orders", thousands(n))
		rep.add(row{figure: "Dashboard GET, " + label + " (requests/s)", ours: summarize(ourRPS), ref: summarize(refRPS),
			refName: "trivial Go server, same bytes", ratios: ratios(ourRPS, refRPS), bar: 0.8, barText: ">= 80% of reference"})
		rep.add(row{figure: "Dashboard GET, " + label + ", p50 (ms)", ours: summarize(ourP50), ref: summarize(refP50), refName: "trivial Go server", unit: "ms"})
		rep.add(row{figure: "Dashboard GET, " + label + ", p99 (ms)", ours: summarize(ourP99), ref: summarize(refP99), refName: "trivial Go server",
			ratios: ratios(ourP99, refP99), maxRatio: 1.5, barText: "<= 1.5x reference", unit: "ms"})
		if n <= e.o.recountMax {
			e.logger.Info("timing the original recount", "orders", n)
			d, err := e.recountOnce(ctx, n)
			if err != nil {
				return err
			}
			ms := float64(d) / float64(time.Millisecond)
			rep.add(row{figure: "Original per-request recount, " + label + " (one request, ms)", ours: stats{ms, ms, ms}, unit: "ms",
				note: fmt.Sprintf("%.2f requests/s; reportes serves the same dashboard %.0fx faster (median requests/s)", 1000/ms, summarize(ourRPS).med*ms/1000)})
		}
		if n == e.o.viewOrders[len(e.o.viewOrders)-1] {
			per := (rss - rss0) * 1024 * 1024 / float64(n)
			rep.add(row{figure: "API resident memory, " + label + " (MB)", ours: stats{rss, rss, rss}, unit: "MB", absBar: 150, barText: "< 150 MB",
				note: fmt.Sprintf("%.0f bytes per order (baseline with 1,000 sellers and no order: %.1f MB); view snapshots on, after one was saved", per, rss0)})
		}
	}
	return nil
}

// waitSnapshot polls the bucket until a view snapshot is in it.
func (e *benchEnv) waitSnapshot(ctx context.Context, bucket string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if obj, err := e.js.ObjectStore(ctx, bucket); err == nil {
			if infos, err := obj.List(ctx); err == nil && len(infos) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no view snapshot in %s after 2 minutes", bucket)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
