package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/cdc"
	cdcmongo "github.com/reportes/reportes/pkg/cdc/mongo"
	"github.com/reportes/reportes/pkg/cdc/postgres"
	"github.com/reportes/reportes/pkg/live"
	"github.com/reportes/reportes/pkg/projection"
)

// pipeline is a whole reportes in this process: source, projector, view
// and HTTP API.
type pipeline struct {
	url     string
	metrics string
	stop    func()
}

type dash struct {
	v *projection.View
	p *projection.Projector
}

func (d dash) JSON() []byte { return d.v.JSON() }
func (d dash) Ready() bool  { return d.p.Ready() }

func (e *benchEnv) pipeline(ctx context.Context, name string, src cdc.Source, schema projection.Schema) (*pipeline, error) {
	stream, err := e.stream(ctx, name+".cdc")
	if err != nil {
		return nil, err
	}
	r, err := e.start(src, name+".cdc")
	if err != nil {
		return nil, err
	}
	view, err := projection.NewView(schema)
	if err != nil {
		return nil, err
	}
	// Metric updates go out as the API sends them: coalesced, into a stream
	// that keeps the last per subject.
	subjects := live.NewSubjects(func() *nats.Conn { return e.nc }, live.StreamConfig{Name: stream + "_METRICS", Prefix: name + ".metrics"})
	proj, err := projection.NewProjector(e.nc, view, projection.WithStream(stream), projection.WithSubjectPrefix(name+".cdc"),
		projection.WithUpdates(subjects.Add))
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	go func() { _ = proj.Run(pctx) }()
	go func() { _ = subjects.Run(pctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, err
	}
	srv := &http.Server{Handler: httpapi.New(dash{view, proj}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	p := &pipeline{url: "http://" + ln.Addr().String() + "/reportes/dashboard", metrics: name + ".metrics.global"}
	p.stop = func() {
		_ = srv.Close()
		cancel()
		_ = r.stop()
		_ = e.js.DeleteStream(context.WithoutCancel(ctx), stream)
		_ = e.js.DeleteStream(context.WithoutCancel(ctx), stream+"_METRICS")
		e.dropCapture(context.WithoutCancel(ctx), name)
	}
	deadline := time.Now().Add(time.Minute)
	for !proj.Ready() || view.Seq() < 2 {
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("pipeline %s not ready", name)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	return p, nil
}

// watcher records when each count (1..n) first becomes visible.
type watcher struct {
	mu      sync.Mutex
	seen    []time.Time
	max     int
	commits []time.Time
}

func newWatcher(n int) *watcher { return &watcher{seen: make([]time.Time, n+1)} }

func (w *watcher) observe(count int, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := w.max + 1; k <= count && k < len(w.seen); k++ {
		w.seen[k] = at
	}
	if count > w.max {
		w.max = count
	}
}

func (w *watcher) latencies(commits []time.Time) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for k := 1; k < len(commits); k++ {
		if !w.seen[k].IsZero() {
			out = append(out, w.seen[k].Sub(commits[k]))
		}
	}
	return out
}

// measure makes n changes, one every 10ms, and returns per change the time
// from its commit until the dashboard (polled every millisecond) and the
// metric-update subject showed it. count extracts the figure that grows by
// one per change.
func (e *benchEnv) measure(ctx context.Context, p *pipeline, n int, change func(i int) error, count func(projection.Dashboard) int, global func(projection.GlobalUpdate) int, extra *watcher) (dashLat, subjLat []time.Duration, err error) {
	base := 0
	if d, err := getDashboard(p.url); err == nil {
		base = count(d)
	}
	dashW, subjW := newWatcher(n), newWatcher(n)
	sub, err := e.nc.Subscribe(p.metrics, func(m *nats.Msg) {
		var g projection.GlobalUpdate
		if json.Unmarshal(m.Data, &g) == nil {
			subjW.observe(global(g)-base, time.Now())
		}
	})
	if err != nil {
		return nil, nil, err
	}
	defer sub.Unsubscribe() //nolint:errcheck
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pollCtx.Err() == nil {
			if d, err := getDashboard(p.url); err == nil {
				dashW.observe(count(d)-base, time.Now())
			}
			time.Sleep(time.Millisecond) // the dashboard poll interval
		}
	}()
	commits := make([]time.Time, n+1)
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 1; i <= n; i++ {
		<-tick.C
		if err := change(i); err != nil {
			tick.Stop()
			stopPoll()
			return nil, nil, err
		}
		commits[i] = time.Now()
	}
	tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		dashW.mu.Lock()
		done := dashW.max >= n
		dashW.mu.Unlock()
		if extra != nil {
			extra.mu.Lock()
			done = done && extra.max >= n
			extra.mu.Unlock()
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	stopPoll()
	wg.Wait()
	if extra != nil {
		extra.commits = commits
	}
	return dashW.latencies(commits), subjW.latencies(commits), nil
}

func getDashboard(url string) (projection.Dashboard, error) {
	var d projection.Dashboard
	resp, err := http.Get(url) //nolint:gosec,noctx // the bench's own loopback server
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal(body, &d)
}

func (e *benchEnv) freshness(ctx context.Context, rep *report) error {
	var pgP50, pgP99, pgSubjP99, mgP50, mgP99, mgSubjP99, tailP99, tailP50 []float64
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for range e.o.runs {
		// PostgreSQL: one employee inserted every 10ms.
		name := e.name("fpg")
		table := "public." + name
		if _, err := e.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (codigo text primary key, nombre text, rol text, activo boolean)", table)); err != nil {
			return err
		}
		cp, err := e.checkpoints(ctx, name)
		if err != nil {
			return err
		}
		src, err := postgres.New(postgres.Config{ConnString: e.pgURL, Tables: []string{table}, Slot: name, Publication: name}, cp)
		if err != nil {
			return err
		}
		schema := projection.DefaultSchema()
		schema.Employees, schema.Orders = table, "bench."+name
		p, err := e.pipeline(ctx, name, src, schema)
		if err != nil {
			return err
		}
		dl, sl, err := e.measure(ctx, p, e.o.changes, func(i int) error {
			_, err := e.conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES ($1, 'n', 'vendedor', true)", table), fmt.Sprint("S-", i))
			return err
		}, func(d projection.Dashboard) int { return d.MetricasGlobales.TotalEmpleados },
			func(g projection.GlobalUpdate) int { return g.TotalEmpleados }, nil)
		p.stop()
		if err != nil {
			return err
		}
		pgP50, pgP99, pgSubjP99 = append(pgP50, ms(percentile(dl, .5))), append(pgP99, ms(percentile(dl, .99))), append(pgSubjP99, ms(percentile(sl, .99)))

		// MongoDB on FerretDB: one order inserted every 10ms, timed against
		// a bare oplog tail following the same inserts. FerretDB rescans its
		// whole oplog on every poll, so each run gets a fresh instance: the
		// figure is then not an artefact of the capture runs before it.
		name = e.name("fmg")
		fdb, err := e.freshFerret(ctx, name)
		if err != nil {
			return err
		}
		client, stopFerret := fdb.client, fdb.stop
		cp, err = e.checkpoints(ctx, name)
		if err != nil {
			stopFerret()
			return err
		}
		msrc, err := cdcmongo.New(cdcmongo.Config{URI: fdb.URI, Database: "bench", Collection: name, Mode: cdcmongo.ModeOplog}, cp)
		if err != nil {
			stopFerret()
			return err
		}
		schema.Employees, schema.Orders = "public.none", "bench."+name
		coll := client.Database("bench").Collection(name)
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-0"}}); err != nil {
			return err
		}
		p, err = e.pipeline(ctx, name, msrc, schema)
		if err != nil {
			return err
		}
		ts, err := latestTS(ctx, client)
		if err != nil {
			return err
		}
		tail := newWatcher(e.o.changes)
		tailCtx, stopTail := context.WithCancel(ctx)
		go func() {
			_ = bareTail(tailCtx, client, "bench."+name, ts, func(n int, _ bson.Raw) bool {
				tail.observe(n, time.Now())
				return n >= e.o.changes
			})
		}()
		dl, sl, err = e.measure(ctx, p, e.o.changes, func(i int) error {
			_, err := coll.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-1"}, {Key: "n", Value: i}})
			return err
		}, func(d projection.Dashboard) int { return d.MetricasGlobales.TotalPedidosProcesados },
			func(g projection.GlobalUpdate) int { return g.TotalPedidosProcesados }, tail)
		stopTail()
		p.stop()
		stopFerret()
		if err != nil {
			return err
		}
		tl := tail.latencies(tail.commits)
		mgP50, mgP99, mgSubjP99 = append(mgP50, ms(percentile(dl, .5))), append(mgP99, ms(percentile(dl, .99))), append(mgSubjP99, ms(percentile(sl, .99)))
		tailP50, tailP99 = append(tailP50, ms(percentile(tl, .5))), append(tailP99, ms(percentile(tl, .99)))
		e.logger.Info("freshness run", "pg_p50_ms", pgP50[len(pgP50)-1], "pg_p99_ms", pgP99[len(pgP99)-1],
			"mongo_p99_ms", mgP99[len(mgP99)-1], "bare_tail_p99_ms", tailP99[len(tailP99)-1])
	}
	rep.add(row{figure: "PostgreSQL commit → dashboard, p50 (ms)", ours: summarize(pgP50), unit: "ms"})
	rep.add(row{figure: "PostgreSQL commit → dashboard, p99 (ms)", ours: summarize(pgP99), unit: "ms", absBar: 50, barText: "p99 < 50 ms"})
	rep.add(row{figure: "PostgreSQL commit → metric subject, p99 (ms)", ours: summarize(pgSubjP99), unit: "ms"})
	rep.add(row{figure: "MongoDB (FerretDB) insert → dashboard, p50 (ms)", ours: summarize(mgP50), ref: summarize(tailP50), refName: "bare oplog tail", unit: "ms"})
	diff := make([]float64, len(mgP99))
	for i := range diff {
		diff[i] = mgP99[i] - tailP99[i]
	}
	rep.add(row{figure: "MongoDB (FerretDB) insert → dashboard, p99 (ms)", ours: summarize(mgP99), ref: summarize(tailP99), refName: "bare oplog tail",
		unit: "ms", diff: summarize(diff), absBar: 25, barText: "p99 <= bare tail p99 + 25 ms"})
	rep.add(row{figure: "MongoDB (FerretDB) insert → metric subject, p99 (ms)", ours: summarize(mgSubjP99), ref: summarize(tailP99), refName: "bare oplog tail", unit: "ms"})
	return nil
}
