package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
)

// backfillChangeEvery paces the live changes of the backfill figure: one
// every 20 ms (50/s), alternating an employee update in PostgreSQL and an
// order insert in MongoDB.
const backfillChangeEvery = 20 * time.Millisecond

// backfillMaxChanges bounds the changes of one kind in one window (10
// minutes at 25/s).
const backfillMaxChanges = 15_000

// What the dashboard poll reads, without decoding the JSON: the role of
// S-0000, which each PostgreSQL change sets to u<k>, and the order count.
var (
	roleKey   = []byte(`"empleado":"S-0000","rol":"u`)
	ordersKey = []byte(`"total_pedidos_procesados":`)
)

// windowRun is one window of live changes: their freshness per source and
// how many were made.
type windowRun struct {
	pg, mg       []time.Duration
	pgN, mgN     int
	took         time.Duration
	missed       int    // changes not visible within a minute of the window's end
	cpu          cpuUse // share of a core per process over the window
	bf           cdc.Backfill
	profiledSecs int
}

// cpuUse is the share of a core each process used: ingestor, NATS server,
// api and the bench process (where FerretDB runs).
type cpuUse struct{ ingestor, nats, api, bench float64 }

// backfillRun is one run of the figure: the backfill at the default chunk
// size, the reference window without a backfill, and the backfill at
// -backfill-chunk.
type backfillRun struct {
	orders          int
	filled          time.Duration
	during, ref     windowRun
	big             *windowRun
	bigChunk        int
	profile, status string
}

func (e *benchEnv) backfillFigure(ctx context.Context, rep *report) error {
	var runs []backfillRun
	for range e.o.liveRuns {
		r, err := e.backfillOnce(ctx)
		if err != nil {
			return err
		}
		e.logger.Info("backfill run", "orders", r.orders, "rows", r.during.bf.Rows, "superseded", r.during.bf.Superseded,
			"chunks", r.during.bf.Chunks, "rows_per_s", bfRate(r.during.bf),
			"pg_p99_ms", msf(percentile(r.during.pg, .99)), "ref_pg_p99_ms", msf(percentile(r.ref.pg, .99)),
			"mongo_p99_ms", msf(percentile(r.during.mg, .99)), "ref_mongo_p99_ms", msf(percentile(r.ref.mg, .99)))
		runs = append(runs, r)
	}
	addBackfillRows(rep, runs)
	return nil
}

// bfRate is a finished backfill's rows published per second.
func bfRate(b cdc.Backfill) float64 {
	d := b.Finished.Sub(b.Started).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(b.Rows) / d
}

func (e *benchEnv) backfillOnce(ctx context.Context) (r backfillRun, err error) {
	rig, err := e.startRig(ctx, "bf", liveSellers)
	if err != nil {
		return r, err
	}
	defer rig.stop(ctx, e)
	r.orders = e.o.backfillOrders
	debug := ""
	if e.o.backfillProfile != "" {
		port, err := devstack.FreePort()
		if err != nil {
			return r, err
		}
		debug = "127.0.0.1:" + strconv.Itoa(port)
		r.profile = e.o.backfillProfile
	}
	if r.filled, err = e.fillOrders(ctx, rig, r.orders, debug); err != nil {
		return r, err
	}
	if r.during, err = e.backfillWindow(ctx, rig, 0, debug); err != nil {
		return r, fmt.Errorf("backfill at the default chunk size: %w", err)
	}
	if r.status, err = e.backfillStatusJSON(ctx, rig); err != nil {
		return r, err
	}
	if r.ref, err = e.changeWindow(ctx, rig, func() (bool, error) { return false, nil }, r.during.took); err != nil {
		return r, fmt.Errorf("reference window: %w", err)
	}
	if e.o.backfillChunk > 0 {
		w, err := e.backfillWindow(ctx, rig, e.o.backfillChunk, "")
		if err != nil {
			return r, fmt.Errorf("backfill at chunk size %d: %w", e.o.backfillChunk, err)
		}
		r.big, r.bigChunk = &w, e.o.backfillChunk
	}
	return r, nil
}

// fillOrders inserts n orders over the rig's sellers with the ingestor
// stopped (tailing FerretDB during a burst slows both down, see the burst
// figure), starts it again (with INGESTOR_DEBUG_ADDR=debug when set) and
// waits until the api counts them all.
func (e *benchEnv) fillOrders(ctx context.Context, rig *liveRig, n int, debug string) (time.Duration, error) {
	d, err := getDashboard(rig.api.url + "/reportes/dashboard")
	if err != nil {
		return 0, err
	}
	want := d.MetricasGlobales.TotalPedidosProcesados + n
	if err := rig.ing.stop(); err != nil {
		return 0, fmt.Errorf("stop ingestor: %w", err)
	}
	rig.ing = nil
	// FerretDB reads its whole oplog for every query, the tail's getMore
	// included: with n entries in it every watermark would wait seconds for
	// the tail, a cost MongoDB (whose oplog is read from a position) does
	// not have. The orders are inserted while FerretDB keeps no oplog, and
	// captured by a first backfill.
	local := rig.ferret.client.Database("local")
	if err := local.Collection("oplog.rs").Drop(ctx); err != nil {
		return 0, fmt.Errorf("drop the oplog: %w", err)
	}
	start := time.Now()
	docs := make([]any, 0, 1000)
	for i := range n {
		docs = append(docs, bson.D{{Key: "vendedor", Value: fmt.Sprintf("S-%04d", i%liveSellers)}, {Key: "producto", Value: "Tornillos M6"}, {Key: "cantidad", Value: i % 100}})
		if len(docs) == cap(docs) || i == n-1 {
			if _, err := rig.orders.InsertMany(ctx, docs); err != nil {
				return 0, fmt.Errorf("insert orders: %w", err)
			}
			docs = docs[:0]
		}
	}
	e.logger.Info("backfill figure: orders inserted", "orders", n, "took", time.Since(start).Round(time.Millisecond))
	if err := local.CreateCollection(ctx, "oplog.rs", options.CreateCollection().SetCapped(true).SetSizeInBytes(devstack.OplogSize)); err != nil {
		return 0, fmt.Errorf("create the oplog: %w", err)
	}
	env := []string{"EMPLOYEES_TABLE=" + rig.table}
	if debug != "" {
		env = append(env, "INGESTOR_DEBUG_ADDR="+debug)
	}
	if rig.ing, err = e.startIngestor(ctx, rig.name, rig.ferret.URI, rig.name, rig.stream, true, env...); err != nil {
		return 0, err
	}
	id, err := e.requestBackfill(ctx, rig, 0)
	if err != nil {
		return 0, err
	}
	if _, err := e.waitBackfill(ctx, rig, id, 10*time.Minute); err != nil {
		return 0, err
	}
	if err := poll(5*time.Minute, 50*time.Millisecond, func() (bool, error) {
		d, err := getDashboard(rig.api.url + "/reportes/dashboard")
		return err == nil && d.MetricasGlobales.TotalPedidosProcesados >= want, nil
	}); err != nil {
		return 0, fmt.Errorf("api view after inserting the orders: %w", err)
	}
	took := time.Since(start)
	e.logger.Info("backfill figure: orders captured", "orders", n, "took", took.Round(time.Millisecond))
	return took, nil
}

// ingestorCommand runs the ingestor binary's command line with args
// against the rig (its bucket, collection and table) and returns its
// output.
func (e *benchEnv) ingestorCommand(ctx context.Context, rig *liveRig, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.o.ingestorBin, args...) //nolint:gosec // the binary under test
	cmd.Env = append(os.Environ(), "NATS_URL="+e.nats.url, "NATS_CHECKPOINT_BUCKET=P_"+rig.name,
		"MONGO_URI="+rig.ferret.URI, "MONGO_DB=bench", "MONGO_COLLECTION="+rig.name,
		"POSTGRES_URL="+e.pgURL, "EMPLOYEES_TABLE="+rig.table, "LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ingestor %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// requestBackfill runs `ingestor backfill mongo --detach` (with
// --chunk-size when chunk > 0) and returns the backfill's ID.
func (e *benchEnv) requestBackfill(ctx context.Context, rig *liveRig, chunk int) (string, error) {
	args := []string{"backfill", cdc.SourceMongo, "--detach"}
	if chunk > 0 {
		args = append(args, "--chunk-size", strconv.Itoa(chunk))
	}
	out, err := e.ingestorCommand(ctx, rig, args...)
	if err != nil {
		return "", err
	}
	// "backfill <id> of mongo <collection> requested"
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "backfill" {
		return "", fmt.Errorf("ingestor backfill: unexpected output %q", out)
	}
	return f[1], nil
}

// backfillStatusJSON is `ingestor backfill status --json`.
func (e *benchEnv) backfillStatusJSON(ctx context.Context, rig *liveRig) (string, error) {
	out, err := e.ingestorCommand(ctx, rig, "backfill", "status", "--json")
	return string(out), err
}

// finishedBackfill reads backfill id from `ingestor backfill status
// --json`.
func (e *benchEnv) finishedBackfill(ctx context.Context, rig *liveRig, id string) (cdc.Backfill, error) {
	out, err := e.backfillStatusJSON(ctx, rig)
	if err != nil {
		return cdc.Backfill{}, err
	}
	var list []cdc.Backfill
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return cdc.Backfill{}, fmt.Errorf("ingestor backfill status --json: %w", err)
	}
	for _, b := range list {
		if b.ID == id {
			return b, nil
		}
	}
	return cdc.Backfill{}, fmt.Errorf("ingestor backfill status --json does not list %s", id)
}

// backfillWindow requests a backfill of the rig's orders (chunk 0: the
// default chunk size) and makes live changes from its start to its end.
// With debug set, it takes a CPU profile of the ingestor meanwhile.
func (e *benchEnv) backfillWindow(ctx context.Context, rig *liveRig, chunk int, debug string) (windowRun, error) {
	store, err := e.checkpoints(ctx, rig.name)
	if err != nil {
		return windowRun{}, err
	}
	id, err := e.requestBackfill(ctx, rig, chunk)
	if err != nil {
		return windowRun{}, err
	}
	key := cdc.BackfillKey(cdc.SourceMongo, id)
	state := func() (cdc.Backfill, error) {
		var b cdc.Backfill
		_, err := store.Load(ctx, key, &b)
		return b, err
	}
	if err := poll(time.Minute, 10*time.Millisecond, func() (bool, error) {
		b, err := state()
		return b.State != "" && b.State != cdc.BackfillRequested, err
	}); err != nil {
		return windowRun{}, fmt.Errorf("backfill %s not started: %w", id, err)
	}
	profiled := make(chan error, 1)
	if debug != "" {
		go func() { profiled <- profileCPU(debug, e.o.backfillProfileSecs, e.o.backfillProfile) }()
	} else {
		profiled <- nil
	}
	logged := time.Now()
	w, err := e.changeWindow(ctx, rig, func() (bool, error) {
		b, err := state()
		if time.Since(logged) >= 5*time.Second {
			logged = time.Now()
			e.logger.Info("backfill running", "id", id, "state", b.State, "rows", b.Rows, "superseded", b.Superseded, "chunks", b.Chunks, "estimate", b.Estimate)
		}
		return b.Over(), err
	}, 0)
	if perr := <-profiled; perr != nil && err == nil {
		err = fmt.Errorf("profile the ingestor: %w", perr)
	}
	if err != nil {
		return w, err
	}
	if debug != "" {
		w.profiledSecs = e.o.backfillProfileSecs
	}
	if w.bf, err = e.finishedBackfill(ctx, rig, id); err != nil {
		return w, err
	}
	if w.bf.State != cdc.BackfillDone {
		return w, fmt.Errorf("backfill %s: %s %s", id, w.bf.State, w.bf.Error)
	}
	return w, nil
}

// profileCPU saves secs seconds of CPU profile of the process serving
// pprof on addr to path.
func profileCPU(addr string, secs int, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)) //nolint:gosec,noctx // loopback
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	f, err := os.Create(path) //nolint:gosec // the path the user gave
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// changeWindow makes live changes, alternating an update of S-0000's role
// to u<k> in PostgreSQL and an order insert in MongoDB, one every
// backfillChangeEvery, until done reports true (checked every 250 ms) or,
// when dur > 0, for dur; then waits for each to be visible in the
// dashboard, polled every millisecond as the freshness figure does.
func (e *benchEnv) changeWindow(ctx context.Context, rig *liveRig, done func() (bool, error), dur time.Duration) (w windowRun, err error) {
	url := rig.api.url + "/reportes/dashboard"
	body, err := getRaw(url)
	if err != nil {
		return w, err
	}
	basePG, _ := figureAfter(body, roleKey)
	baseMG, ok := figureAfter(body, ordersKey)
	if !ok {
		return w, fmt.Errorf("dashboard without %s", ordersKey)
	}
	pgW, mgW := newWatcher(backfillMaxChanges), newWatcher(backfillMaxChanges)
	stopPoll := pollRaw(ctx, url, func(b []byte, at time.Time) {
		if k, ok := figureAfter(b, roleKey); ok {
			pgW.observe(k-basePG, at)
		}
		if n, ok := figureAfter(b, ordersKey); ok {
			mgW.observe(n-baseMG, at)
		}
	})
	defer stopPoll()
	pids := []int{rig.ing.cmd.Process.Pid, e.nats.cmd.Process.Pid, rig.api.cmd.Process.Pid, os.Getpid()}
	cpu0, err := cpuTimes(pids)
	if err != nil {
		return w, err
	}
	start := time.Now()
	pgC, mgC, err := e.makeChanges(ctx, rig, basePG, done, dur)
	w.took = time.Since(start)
	if err != nil {
		return w, err
	}
	if w.cpu, err = cpuShares(pids, cpu0, w.took); err != nil {
		return w, err
	}
	w.pgN, w.mgN = len(pgC)-1, len(mgC)-1
	_ = poll(time.Minute, 5*time.Millisecond, func() (bool, error) {
		return seen(pgW) >= w.pgN && seen(mgW) >= w.mgN, nil
	})
	stopPoll()
	w.missed = max(0, w.pgN-seen(pgW)) + max(0, w.mgN-seen(mgW))
	w.pg, w.mg = pgW.latencies(pgC), mgW.latencies(mgC)
	return w, nil
}

// seen is the highest change w saw.
func seen(w *watcher) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

// makeChanges is changeWindow's loop: it returns the commit times of the
// PostgreSQL and the MongoDB changes, indexed from 1.
func (e *benchEnv) makeChanges(ctx context.Context, rig *liveRig, basePG int, done func() (bool, error), dur time.Duration) (pg, mg []time.Time, err error) {
	pg, mg = make([]time.Time, 1, backfillMaxChanges+1), make([]time.Time, 1, backfillMaxChanges+1)
	update := fmt.Sprintf("UPDATE %s SET rol = $1 WHERE codigo = 'S-0000'", rig.table)
	tick := time.NewTicker(backfillChangeEvery)
	defer tick.Stop()
	start, checked := time.Now(), time.Now()
	for i := 0; len(pg) <= backfillMaxChanges && len(mg) <= backfillMaxChanges; i++ {
		<-tick.C
		if dur > 0 && time.Since(start) >= dur {
			break
		}
		if dur == 0 && time.Since(checked) >= 250*time.Millisecond {
			checked = time.Now()
			over, err := done()
			if err != nil || over {
				return pg, mg, err
			}
		}
		if i%2 == 0 {
			if _, err := e.conn.Exec(ctx, update, "u"+strconv.Itoa(basePG+len(pg))); err != nil {
				return pg, mg, fmt.Errorf("update employee: %w", err)
			}
			pg = append(pg, time.Now())
			continue
		}
		order := bson.D{{Key: "vendedor", Value: fmt.Sprintf("S-%04d", i%liveSellers)}, {Key: "producto", Value: "en vivo"}, {Key: "cantidad", Value: i}}
		if _, err := rig.orders.InsertOne(ctx, order); err != nil {
			return pg, mg, fmt.Errorf("insert order: %w", err)
		}
		mg = append(mg, time.Now())
	}
	return pg, mg, nil
}

// getRaw is a GET of url's body.
func getRaw(url string) ([]byte, error) {
	resp, err := http.Get(url) //nolint:gosec,noctx // the bench's own loopback server
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// pollRaw GETs url every millisecond and hands each body to seen, with the
// time it was read, until the function it returns is called (more than
// once is fine).
func pollRaw(ctx context.Context, url string, seen func([]byte, time.Time)) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if b, err := getRaw(url); err == nil {
				seen(b, time.Now())
			}
			time.Sleep(time.Millisecond) // the dashboard poll interval
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

func cpuTimes(pids []int) ([]time.Duration, error) {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		var err error
		if out[i], err = childCPU(pid); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cpuShares is the share of a core each of pids (ingestor, NATS, api,
// bench) used since cpu0, over took.
func cpuShares(pids []int, cpu0 []time.Duration, took time.Duration) (cpuUse, error) {
	cpu1, err := cpuTimes(pids)
	if err != nil {
		return cpuUse{}, err
	}
	s := func(i int) float64 { return (cpu1[i] - cpu0[i]).Seconds() / took.Seconds() }
	return cpuUse{ingestor: s(0), nats: s(1), api: s(2), bench: s(3)}, nil
}

// p is the percentile q of d in milliseconds.
func p(d []time.Duration, q float64) float64 { return msf(percentile(d, q)) }

func addBackfillRows(rep *report, runs []backfillRun) {
	var rate, pg50, pg99, mg50, mg99, rpg50, rpg99, rmg50, rmg99, big, bigRef []float64
	for _, r := range runs {
		rate = append(rate, bfRate(r.during.bf))
		pg50, pg99 = append(pg50, p(r.during.pg, .5)), append(pg99, p(r.during.pg, .99))
		mg50, mg99 = append(mg50, p(r.during.mg, .5)), append(mg99, p(r.during.mg, .99))
		rpg50, rpg99 = append(rpg50, p(r.ref.pg, .5)), append(rpg99, p(r.ref.pg, .99))
		rmg50, rmg99 = append(rmg50, p(r.ref.mg, .5)), append(rmg99, p(r.ref.mg, .99))
		if r.big != nil {
			big, bigRef = append(big, bfRate(r.big.bf)), append(bigRef, bfRate(r.during.bf))
		}
	}
	last := runs[len(runs)-1]
	d, b := last.during, last.during.bf
	orders := thousands(last.orders)
	rep.add(row{figure: fmt.Sprintf("Backfill of %s orders (FerretDB), `ingestor backfill mongo` at the default chunk size (%d), while changes stream: rows published/s", orders, b.ChunkSize),
		ours: summarize(rate), unit: "rows/s",
		note: fmt.Sprintf("rows / (finished − started) from `ingestor backfill status --json`: %s rows published, %s superseded, %d chunks in %.1f s; the ingestor and api binaries, a dashboard of %d sellers, the orders inserted while FerretDB kept no oplog (it reads its whole oplog for every query, the tail's included) and captured by a first backfill (%.1f s); the goal is for 1M orders: %s keep this figure to about 4.5 minutes on 2 cores, as each chunk's read on FerretDB grows with the collection (about 0.8 s a chunk at 5,000 orders, 2.5 s at 20,000, 5 s at 40,000; -backfill-orders); rows include the orders inserted meanwhile; CPU over the backfill, cores: ingestor %.2f, NATS server %.2f, api %.2f, bench process with FerretDB %.2f%s",
			thousands(int(b.Rows)), thousands(int(b.Superseded)), b.Chunks, b.Finished.Sub(b.Started).Seconds(), liveSellers, last.filled.Seconds(), orders,
			d.cpu.ingestor, d.cpu.nats, d.cpu.api, d.cpu.bench, profiled(last))})
	ref := "same changes, same duration, no backfill"
	rep.add(row{figure: "PostgreSQL employee update → dashboard during the backfill, p50 (ms)", ours: summarize(pg50), ref: summarize(rpg50), refName: ref, unit: "ms",
		note: fmt.Sprintf("one change every %s, alternating an employee update (PostgreSQL) and an order insert (MongoDB), from the backfill's start to its end: %d and %d changes in %.1f s (%d and %d in the reference); commit → seen in GET /reportes/dashboard polled every millisecond, as in the freshness figure; not seen within a minute: %d (reference %d)",
			backfillChangeEvery, d.pgN, d.mgN, d.took.Seconds(), last.ref.pgN, last.ref.mgN, d.missed, last.ref.missed)})
	rep.add(row{figure: "PostgreSQL employee update → dashboard during the backfill, p99 (ms)", ours: summarize(pg99), ref: summarize(rpg99), refName: ref, unit: "ms",
		absBar: 100, barText: "p99 < 100 ms (the goal: during a 1M-order backfill)"})
	rep.add(row{figure: "MongoDB (FerretDB) order insert → dashboard during the backfill, p50 (ms)", ours: summarize(mg50), ref: summarize(rmg50), refName: ref, unit: "ms"})
	rep.add(row{figure: "MongoDB (FerretDB) order insert → dashboard during the backfill, p99 (ms)", ours: summarize(mg99), ref: summarize(rmg99), refName: ref, unit: "ms"})
	if last.big == nil {
		return
	}
	g := last.big
	rep.add(row{figure: fmt.Sprintf("Backfill of the same %s orders at --chunk-size %d: rows published/s", orders, last.bigChunk),
		ours: summarize(big), ref: summarize(bigRef), refName: fmt.Sprintf("chunk size %d", b.ChunkSize), unit: "rows/s", ratios: ratios(big, bigRef),
		note: fmt.Sprintf("%s rows, %s superseded, %d chunks in %.1f s, with the same live changes: PostgreSQL p50 %.1f / p99 %.1f ms, MongoDB p50 %.1f / p99 %.1f ms",
			thousands(int(g.bf.Rows)), thousands(int(g.bf.Superseded)), g.bf.Chunks, g.bf.Finished.Sub(g.bf.Started).Seconds(),
			p(g.pg, .5), p(g.pg, .99), p(g.mg, .5), p(g.mg, .99))})
}

// profiled says where the ingestor's CPU profile went, if one was taken.
func profiled(r backfillRun) string {
	if r.profile == "" {
		return ""
	}
	return fmt.Sprintf("; the ingestor's CPU profile of the backfill's first %d s is in %s (the profile costs a little CPU of its own)", r.during.profiledSecs, r.profile)
}

// waitBackfill waits for backfill id to be over, logging its progress.
func (e *benchEnv) waitBackfill(ctx context.Context, rig *liveRig, id string, timeout time.Duration) (cdc.Backfill, error) {
	store, err := e.checkpoints(ctx, rig.name)
	if err != nil {
		return cdc.Backfill{}, err
	}
	var b cdc.Backfill
	logged := time.Now()
	err = poll(timeout, 100*time.Millisecond, func() (bool, error) {
		b = cdc.Backfill{}
		_, err := store.Load(ctx, cdc.BackfillKey(cdc.SourceMongo, id), &b)
		if time.Since(logged) >= 5*time.Second {
			logged = time.Now()
			e.logger.Info("backfill running", "id", id, "state", b.State, "rows", b.Rows, "chunks", b.Chunks, "estimate", b.Estimate)
		}
		return b.Over(), err
	})
	if err == nil && b.State != cdc.BackfillDone {
		err = fmt.Errorf("backfill %s: %s %s", id, b.State, b.Error)
	}
	return b, err
}
