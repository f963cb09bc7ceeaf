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
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/pgstore"
	"github.com/reportes/reportes/pkg/stream"
)

// The view store figures (VIEW_STORE=postgres): a cmd/projector process
// applying a stream into the PostgreSQL view store with 1, 2 and 4
// partitions, against the api's in-memory projection of the same stream and
// a COPY into a plain table; an api replica mirroring a store of millions
// of orders (time to ready, memory); and its dashboard GET against a
// trivial server of the same bytes.

// storePartitions are the partition counts the projection figure runs.
var storePartitions = []int{1, 2, 4}

// storeDuplicates is the deduplication window of the store figure's
// stream: short, so that the NATS server has dropped the fill's message IDs
// (as for a stream holding its events longer than its window, see
// fillDuplicates) a few seconds after the fill instead of 30.
const storeDuplicates = 2 * time.Second

// storeSellers and storeEmployees shape the projection figure's stream:
// orders are spread over storeSellers codes, of which the first
// storeEmployees are employees (the others' orders count as without one).
const (
	storeSellers   = 300
	storeEmployees = 200
)

// storeStream is a stream fillStoreStream filled, and what a correct view
// of it holds.
type storeStream struct {
	name, prefix string
	events       int // in the stream, employees included: its last sequence
	orders, keys int
	employees    int
	sinEmpleado  int // orders whose seller is no employee
}

// fillStoreStream publishes employees, then orders order events over keys
// order keys, as fillStream does (the ingestor's events, ids as
// Nats-Msg-Id, a subject per key), to a new stream that keeps every event:
// the first event of a key inserts it, the next ones update it and move it
// to another seller. On the default compacted stream only each key's last
// event would remain to be read.
func (e *benchEnv) fillStoreStream(ctx context.Context, orders, keys int) (storeStream, error) {
	s := storeStream{prefix: e.name("store") + ".cdc", events: storeEmployees + orders, orders: orders, keys: min(keys, orders), employees: storeEmployees}
	s.name = "S_" + strings.ReplaceAll(s.prefix, ".", "_")
	if _, err := stream.Ensure(ctx, e.js, stream.Config{Name: s.name, SubjectPrefix: s.prefix, Duplicates: storeDuplicates, History: stream.HistoryAll}); err != nil {
		return s, fmt.Errorf("create stream %s: %w", s.name, err)
	}
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return s, fmt.Errorf("jetstream: %w", err)
	}
	publish := func(subject string, data []byte, id string) error {
		_, err := js.PublishAsync(subject, append([]byte(nil), data...), jetstream.WithMsgID(id), waitWhenStalled)
		return err
	}
	buf := make([]byte, 0, 512)
	empSubj, ordSubj := s.prefix+".postgres.public.empleados", s.prefix+".mongo.inventory_db.orders"
	for i := range storeEmployees {
		buf = fmt.Appendf(buf[:0], `{"id":"pg:s:0/1:e%d","source":"postgres","collection":"public.empleados","op":"snapshot","key":"S-%04d","position":"0/1","version":1,"commit_time":"2026-11-27T00:00:00Z","snapshot":"s","after":{"codigo":"S-%04d","nombre":"Empleado %d","rol":"vendedor","activo":true}}`, i, i, i, i)
		if err := publish(fmt.Sprintf("%s.S-%04d", empSubj, i), buf, fmt.Sprintf("pg:s:0/1:e%d", i)); err != nil {
			return s, fmt.Errorf("publish employee %d: %w", i, err)
		}
	}
	final := make([]int, s.keys)
	for i := range orders {
		k, seller, op := i%s.keys, (i+i/s.keys*7)%storeSellers, "insert"
		if i >= s.keys {
			op = "update"
		}
		final[k] = seller
		buf = fmt.Appendf(buf[:0], `{"id":"mongo:inventory_db.orders:%d.1:0","source":"mongo","collection":"inventory_db.orders","op":"%s","key":"%024x","position":"%d.1","version":%d,"commit_time":"2026-11-27T00:00:00Z","after":{"_id":{"$oid":"%024x"},"vendedor":"S-%04d","producto":"Tornillos M6","cantidad":%d}}`,
			i, op, k, i, uint64(i)<<32|1, k, seller, i%100)
		if err := publish(fmt.Sprintf("%s.%024x", ordSubj, k), buf, fmt.Sprintf("mongo:inventory_db.orders:%d.1:0", i)); err != nil {
			return s, fmt.Errorf("publish order event %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		return s, fmt.Errorf("filling stream %s: publishes not acknowledged", s.name)
	}
	for _, seller := range final {
		if seller >= storeEmployees {
			s.sinEmpleado++
		}
	}
	return s, nil
}

// storeEnv is the view store configuration of a projector or an api
// replica on schema.
func (e *benchEnv) storeEnv(schema string, partitions int) []string {
	return []string{"VIEW_STORE=postgres", "VIEW_POSTGRES_URL=" + e.pgURL, "POSTGRES_URL=" + e.pgURL, "VIEW_SCHEMA=" + schema,
		"VIEW_PARTITIONS=" + strconv.Itoa(partitions), "VIEW_UPDATES_PREFIX=bench." + schema}
}

// startProjector starts the projector binary on the stream and schema,
// holding every partition itself, without waiting for anything.
func (e *benchEnv) startProjector(s storeStream, schema string, partitions int) (*apiProc, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return nil, fmt.Errorf("projector port: %w", err)
	}
	cmd := exec.Command(e.o.projectorBin) //nolint:gosec,noctx // the binary under test
	cmd.Env = append(os.Environ(), "NATS_URL="+e.nats.url, "NATS_STREAM="+s.name, "NATS_SUBJECT_PREFIX="+s.prefix,
		"PROJECTOR_PORT="+strconv.Itoa(port), "LEASE_BUCKET=bench_leases", "LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, e.storeEnv(schema, partitions)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (make build first): %w", e.o.projectorBin, err)
	}
	return &apiProc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port)}, nil
}

// projectorReady says whether the projector at base owns partitions
// partitions and caught up with the stream in each.
func projectorReady(base string, partitions int) bool {
	resp, err := http.Get(base + "/readyz") //nolint:gosec,noctx // loopback
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Ready      bool  `json:"ready"`
		Partitions []int `json:"partitions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return false
	}
	return resp.StatusCode == http.StatusOK && st.Ready && len(st.Partitions) == partitions
}

// waitProjected polls the schema's positions every 20 ms until every
// partition's is last, and returns when that was seen. A partition whose
// last batch held none of its events records its position only with its
// next event (pgstore's positionEvery): when the projector has said it
// caught up for 3 s and a position still lags, the time it said so is
// returned, with lagged set.
func (e *benchEnv) waitProjected(ctx context.Context, proj *apiProc, schema string, partitions int, last uint64) (time.Time, bool, error) {
	q := fmt.Sprintf(`SELECT COALESCE(min(seq), 0), count(*) FROM %s.positions`, pgx.Identifier{schema}.Sanitize())
	deadline := time.Now().Add(5 * time.Minute)
	var readyAt time.Time
	for {
		var seq, n int64
		if err := e.conn.QueryRow(ctx, q).Scan(&seq, &n); err == nil && n == int64(partitions) && uint64(seq) >= last { //nolint:gosec // sequences
			return time.Now(), false, nil
		}
		if readyAt.IsZero() && projectorReady(proj.url, partitions) {
			readyAt = time.Now()
		}
		switch {
		case !readyAt.IsZero() && time.Since(readyAt) > 3*time.Second:
			return readyAt, true, nil
		case time.Now().After(deadline):
			return time.Time{}, false, fmt.Errorf("schema %s: partitions not at sequence %d after 5 minutes", schema, last)
		case proj.cmd.ProcessState != nil:
			return time.Time{}, false, fmt.Errorf("projector exited: %s", proj.cmd.ProcessState)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// checkStore checks that the store in schema holds what s published: the
// employees, one order per key, and the orders without an employee.
func (e *benchEnv) checkStore(ctx context.Context, schema string, want projection.Global) error {
	id := pgx.Identifier{schema}.Sanitize()
	var got projection.Global
	var detail int64
	err := e.conn.QueryRow(ctx, fmt.Sprintf(`SELECT t.total_empleados, t.total_pedidos_procesados, t.pedidos_sin_empleado,
		(SELECT COALESCE(sum(pedidos_realizados), 0) FROM %[1]s.dashboard)::bigint FROM %[1]s.totals t`, id)).
		Scan(&got.TotalEmpleados, &got.TotalPedidosProcesados, &got.PedidosSinEmpleado, &detail)
	if err != nil {
		return fmt.Errorf("read the totals of %s: %w", schema, err)
	}
	if got != want || detail != int64(want.TotalPedidosProcesados)-want.PedidosSinEmpleado {
		return fmt.Errorf("view store %s holds %+v (%d orders of employees), want %+v", schema, got, detail, want)
	}
	return nil
}

func (s storeStream) totals() projection.Global {
	return projection.Global{TotalEmpleados: s.employees, TotalPedidosProcesados: s.keys, PedidosSinEmpleado: int64(s.sinEmpleado)}
}

// projected is what projectOnce measures.
type projected struct {
	perSec, cpu, pgCPU, natsCPU float64 // events/s, µs of CPU per event
	lagged                      bool
	disconnects                 int // the projector's NATS disconnects (-1: not reported)
}

// serverCPU is the CPU time PostgreSQL and the NATS server have used.
type serverCPU struct{ pg, nats time.Duration }

func (e *benchEnv) serverCPU() (serverCPU, error) {
	pg, err := e.postgresCPU()
	if err != nil {
		return serverCPU{}, err
	}
	nats, err := childCPU(e.nats.cmd.Process.Pid)
	return serverCPU{pg: pg, nats: nats}, err
}

// projectOnce times a fresh projector process applying the whole stream
// into a fresh schema with partitions partitions, reads the CPU it,
// PostgreSQL and the NATS server spent per event, checks the store, and
// drops the schema.
func (e *benchEnv) projectOnce(ctx context.Context, s storeStream, partitions int) (projected, error) {
	schema := e.name("store")
	c0, err := e.serverCPU()
	if err != nil {
		return projected{}, err
	}
	start := time.Now()
	proj, err := e.startProjector(s, schema, partitions)
	if err != nil {
		return projected{}, err
	}
	defer proj.stop()
	done, lagged, err := e.waitProjected(ctx, proj, schema, partitions, uint64(s.events)) //nolint:gosec // a count
	if err != nil {
		return projected{}, err
	}
	cpu, err := childCPU(proj.cmd.Process.Pid)
	if err != nil {
		return projected{}, err
	}
	c1, err := e.serverCPU()
	if err != nil {
		return projected{}, err
	}
	disconnects := metricValue(proj.url+"/metrics", "reportes_nats_disconnects_total")
	if err := e.checkStore(ctx, schema, s.totals()); err != nil {
		return projected{}, err
	}
	proj.stop()
	if _, err := e.conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		return projected{}, fmt.Errorf("drop schema %s: %w", schema, err)
	}
	n, us := float64(s.events), func(d time.Duration) float64 { return d.Seconds() * 1e6 / float64(s.events) }
	return projected{perSec: n / done.Sub(start).Seconds(), cpu: us(cpu), pgCPU: us(c1.pg - c0.pg), natsCPU: us(c1.nats - c0.nats),
		lagged: lagged, disconnects: disconnects}, nil
}

// metricValue reads an unlabelled counter from a Prometheus endpoint; -1
// when it is not there.
func metricValue(url, name string) int {
	resp, err := http.Get(url) //nolint:gosec,noctx // loopback
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}

// postgresCPU is the CPU time the PostgreSQL cluster has used: its
// postmaster, the children it reaped, and those alive (backends,
// autovacuum, writers).
func (e *benchEnv) postgresCPU() (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join(e.pg.Dir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("postgres pid: %w", err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("postgres pid in postmaster.pid: %w", err)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	var ticks int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil {
			continue // exited meanwhile: its CPU is in the postmaster's reaped children
		}
		switch {
		case pid == master:
			ticks += f[11] + f[12] + f[13] + f[14]
		case f[1] == master:
			ticks += f[11] + f[12]
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// procStat reads the numeric fields of /proc/<pid>/stat after the command
// name (state reads as 0): f[1] is the parent, f[11] to f[14] utime,
// stime, cutime and cstime in clock ticks.
func procStat(pid int) ([]int, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("reading /proc/%d/stat: %q", pid, stat)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 15 {
		return nil, fmt.Errorf("reading /proc/%d/stat: %q", pid, stat)
	}
	out := make([]int, 15)
	for j := 1; j < 15; j++ {
		out[j], _ = strconv.Atoi(fields[j])
	}
	return out, nil
}

// memoryRun is the in-memory reference of the projection figure.
type memoryRun struct {
	perSec, cpu, readyMS, rssMB float64
}

// memoryProjection times a fresh api process in memory mode from its start
// until it rebuilt its view of the stream, as rebuildView does, checks its
// totals, and reads its settled resident memory.
func (e *benchEnv) memoryProjection(s storeStream) (memoryRun, error) {
	start := time.Now()
	api, err := e.startAPIPolling(s.name, s.prefix, 5*time.Millisecond)
	if err != nil {
		return memoryRun{}, err
	}
	took := time.Since(start)
	defer api.stop()
	cpu, err := childCPU(api.cmd.Process.Pid)
	if err != nil {
		return memoryRun{}, err
	}
	d, err := getDashboard(api.url + "/reportes/dashboard")
	if err != nil {
		return memoryRun{}, fmt.Errorf("memory-mode dashboard: %w", err)
	}
	if d.MetricasGlobales != s.totals() {
		return memoryRun{}, fmt.Errorf("memory-mode view holds %+v, want %+v", d.MetricasGlobales, s.totals())
	}
	rss, err := api.rssMB()
	if err != nil {
		return memoryRun{}, err
	}
	n := float64(s.events)
	return memoryRun{perSec: n / took.Seconds(), cpu: cpu.Seconds() * 1e6 / n, readyMS: float64(took.Milliseconds()), rssMB: rss}, nil
}

// copyFloor times a COPY of n rows (key bytea, seller text, version bigint)
// into a new plain table with a primary key, and returns rows/s and the
// CPU PostgreSQL spent per row (µs).
func (e *benchEnv) copyFloor(ctx context.Context, n int) (float64, float64, error) {
	table := pgx.Identifier{"public", e.name("copyfloor")}
	if _, err := e.conn.Exec(ctx, `CREATE TABLE `+table.Sanitize()+` (key bytea PRIMARY KEY, seller text, version bigint NOT NULL)`); err != nil {
		return 0, 0, fmt.Errorf("create the COPY table: %w", err)
	}
	defer func() { _, _ = e.conn.Exec(ctx, `DROP TABLE `+table.Sanitize()) }()
	pg0, err := e.postgresCPU()
	if err != nil {
		return 0, 0, err
	}
	i := 0
	key := make([]byte, 12)
	start := time.Now()
	_, err = e.conn.CopyFrom(ctx, table, []string{"key", "seller", "version"}, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		k := append([]byte(nil), key...)
		k[4], k[5], k[6], k[7], k[8], k[9], k[10], k[11] = byte(i>>56), byte(i>>48), byte(i>>40), byte(i>>32), byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		i++
		return []any{k, fmt.Sprintf("S-%04d", i%storeSellers), int64(i)}, nil
	}))
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("COPY %d rows: %w", n, err)
	}
	pg1, err := e.postgresCPU()
	return float64(n) / took.Seconds(), (pg1 - pg0).Seconds() * 1e6 / float64(n), err
}

// storeRuns are the projection figure's runs.
type storeRuns struct {
	perSec, cpu, pgCPU, natsCPU map[int][]float64 // by partition count
	lagged                      map[int]int
	disconnects                 map[int][]int // per run, -1 when not reported
	mem                         []memoryRun
	copyRate, copyCPU           []float64
}

func (r *storeRuns) memory(f func(memoryRun) float64) []float64 {
	out := make([]float64, len(r.mem))
	for i, m := range r.mem {
		out[i] = f(m)
	}
	return out
}

// measureProjection runs the projector with each partition count, the
// in-memory reference and the COPY floor, e.o.runs times.
func (e *benchEnv) measureProjection(ctx context.Context, s storeStream) (*storeRuns, error) {
	r := &storeRuns{perSec: map[int][]float64{}, cpu: map[int][]float64{}, pgCPU: map[int][]float64{}, natsCPU: map[int][]float64{},
		lagged: map[int]int{}, disconnects: map[int][]int{}}
	for range e.o.runs {
		for _, p := range storePartitions {
			pr, err := e.projectOnce(ctx, s, p)
			if err != nil {
				return nil, fmt.Errorf("%d partitions: %w", p, err)
			}
			r.perSec[p], r.cpu[p], r.pgCPU[p] = append(r.perSec[p], pr.perSec), append(r.cpu[p], pr.cpu), append(r.pgCPU[p], pr.pgCPU)
			r.natsCPU[p] = append(r.natsCPU[p], pr.natsCPU)
			if pr.lagged {
				r.lagged[p]++
			}
			r.disconnects[p] = append(r.disconnects[p], pr.disconnects)
			e.logger.Info("view store projection run", "partitions", p, "events_per_s", int(pr.perSec), "projector_cpu_us", pr.cpu,
				"postgres_cpu_us", pr.pgCPU, "nats_server_cpu_us", pr.natsCPU, "nats_disconnects", pr.disconnects, "position_lagged", pr.lagged)
		}
		m, err := e.memoryProjection(s)
		if err != nil {
			return nil, err
		}
		rate, cpu, err := e.copyFloor(ctx, s.orders)
		if err != nil {
			return nil, err
		}
		r.mem, r.copyRate, r.copyCPU = append(r.mem, m), append(r.copyRate, rate), append(r.copyCPU, cpu)
		e.logger.Info("view store references", "memory_events_per_s", int(m.perSec), "memory_cpu_us", m.cpu, "memory_rss_mb", m.rssMB,
			"copy_rows_per_s", int(rate), "copy_postgres_cpu_us", cpu)
	}
	return r, nil
}

// reportProjection adds the projection figure's rows.
func (r *storeRuns) reportProjection(rep *report, s storeStream) {
	memRate, memCPU := r.memory(func(m memoryRun) float64 { return m.perSec }), r.memory(func(m memoryRun) float64 { return m.cpu })
	for _, p := range storePartitions {
		rep.add(row{figure: fmt.Sprintf("View store: projection into PostgreSQL, %d partition(s), one process (events/s)", p), ours: summarize(r.perSec[p]), ref: summarize(memRate),
			refName: "in-memory projection (api, VIEW_STORE=memory)", ratios: ratios(r.perSec[p], memRate), absMin: 50_000, barText: ">= 50,000 events/s", note: r.projectionNote(p, s)})
	}
	for _, p := range storePartitions {
		rep.add(row{figure: fmt.Sprintf("View store: CPU per event of the projector process, %d partition(s) (µs)", p), ours: summarize(r.cpu[p]), ref: summarize(memCPU),
			refName: "api rebuilding in memory", ratios: ratios(r.cpu[p], memCPU)})
	}
	for _, p := range storePartitions {
		rep.add(row{figure: fmt.Sprintf("View store: CPU per event of PostgreSQL, %d partition(s) (µs)", p), ours: summarize(r.pgCPU[p]), ref: summarize(r.copyCPU),
			refName: "per row of the COPY below", ratios: ratios(r.pgCPU[p], r.copyCPU)})
	}
	rep.add(row{figure: "View store: projection with 1 partition against PostgreSQL's bulk write floor (rows/s)", ours: summarize(r.perSec[1]), ref: summarize(r.copyRate),
		refName: fmt.Sprintf("COPY of %s rows (key bytea, seller text, version bigint) into a plain table with a primary key", thousands(s.orders)), ratios: ratios(r.perSec[1], r.copyRate)})
}

// projectionNote is the note of the projection row of p partitions.
func (r *storeRuns) projectionNote(p int, s storeStream) string {
	var notes []string
	if p == storePartitions[0] {
		notes = append(notes, fmt.Sprintf("%s events (%d employees, then %s order events over %s keys: an insert each, then updates moving it to another of %d sellers) in a stream keeping every event; "+
			"one projector process holding every partition, timed from its start until every partition's row in positions is at the stream's last sequence; the SQL view's totals are checked against what was published",
			thousands(s.events), s.employees, thousands(s.orders), thousands(s.keys), storeSellers))
	}
	notes = append(notes, fmt.Sprintf("NATS server CPU per event %.1f µs (median)", summarize(r.natsCPU[p]).med))
	lost := 0
	for _, d := range r.disconnects[p] {
		lost += max(d, 0)
	}
	if lost > 0 {
		notes = append(notes, fmt.Sprintf("the NATS server closed the projector's connection %d time(s) over the runs (per run: %v): "+
			"a slow consumer past its 64 MiB of pending bytes, with every partition's ordered consumer on one connection (see the profile notes); the projector resumed, its leases lapsing meanwhile", lost, r.disconnects[p]))
	}
	if r.lagged[p] > 0 {
		notes = append(notes, fmt.Sprintf("%d run(s) timed to the projector's readiness: a partition's position stayed behind the last sequence (no event of its own in the last batch)", r.lagged[p]))
	}
	return strings.Join(notes, "; ")
}

// fillStore creates a store of one partition in schema (migrated by
// pgstore.Open) and fills it with SQL: orders orders over 1,000 sellers,
// 500 employees, and the position and counts consistent with them.
func (e *benchEnv) fillStore(ctx context.Context, schema string, orders int) (projection.Global, error) {
	st, err := pgstore.Open(ctx, e.pgURL, schema, projection.Schema{Orders: "inventory_db.orders", Employees: "public.empleados"}, pgstore.WithPartitions(1))
	if err != nil {
		return projection.Global{}, fmt.Errorf("create the store: %w", err)
	}
	st.Close()
	const sellers, employees = 1000, 500
	id := pgx.Identifier{schema}.Sanitize()
	// Versions are stored with their top bit flipped (pgstore): # is XOR.
	steps := []struct {
		sql  string
		args []any
	}{
		// The bench's own store: no autovacuum of millions of fresh rows
		// while the replica is timed (it never reads them).
		{`ALTER TABLE %[1]s.orders SET (autovacuum_enabled = false)`, nil},
		{`INSERT INTO %[1]s.orders (key, partition, seller, version)
			SELECT decode(lpad(to_hex(g), 24, '0'), 'hex'), 0, 'S-' || lpad((g %% $2::integer)::text, 4, '0'), ((g::bigint << 32) | 1) # '-9223372036854775808'::bigint
			FROM generate_series(0, $1::integer - 1) g`, []any{orders, sellers}},
		{`INSERT INTO %[1]s.seller_orders (partition, seller, orders)
			SELECT 0, 'S-' || lpad(s::text, 4, '0'), $1::bigint / $2::integer + CASE WHEN s < $1::bigint %% $2::integer THEN 1 ELSE 0 END
			FROM generate_series(0, $2::integer - 1) s`, []any{orders, sellers}},
		{`INSERT INTO %[1]s.employees (key, code, role, active, version)
			SELECT convert_to('S-' || lpad(g::text, 4, '0'), 'UTF8'), 'S-' || lpad(g::text, 4, '0'), 'vendedor', true, 1 # '-9223372036854775808'::bigint
			FROM generate_series(0, $1::integer - 1) g`, []any{employees}},
		{`UPDATE %[1]s.positions SET seq = $1::bigint + $2::integer, orders = $1::bigint, commit_time = now(), applied_at = now() WHERE partition = 0`, []any{orders, employees}},
	}
	for i, step := range steps {
		if _, err := e.conn.Exec(ctx, fmt.Sprintf(step.sql, id), step.args...); err != nil {
			return projection.Global{}, fmt.Errorf("fill the store, step %d: %w", i+1, err)
		}
	}
	without := orders - orders/sellers*employees - min(orders%sellers, employees)
	return projection.Global{TotalEmpleados: employees, TotalPedidosProcesados: orders, PedidosSinEmpleado: int64(without)}, nil
}

// storeFigure measures the view store: the projection into PostgreSQL,
// then an api replica mirroring a large store and its dashboard GET.
func (e *benchEnv) storeFigure(ctx context.Context, rep *report) error {
	if err := ensureWrk(); err != nil {
		return err
	}
	e.logger.Info("filling the view store stream", "order_events", e.o.storeEvents, "keys", e.o.storeKeys)
	s, err := e.fillStoreStream(ctx, e.o.storeEvents, e.o.storeKeys)
	if err != nil {
		return err
	}
	time.Sleep(storeDuplicates + time.Second) // until the server dropped the fill's message IDs
	r, err := e.measureProjection(ctx, s)
	if err != nil {
		return err
	}
	r.reportProjection(rep, s)
	return e.storeReplica(ctx, rep, r, s)
}

// storeReplica fills a store of e.o.storeOrders orders with SQL, runs an
// idle projector on it (its heartbeats keep the replicas' view current),
// and times fresh api replicas in postgres mode from start to ready; the
// last one serves the dashboard GET figure.
func (e *benchEnv) storeReplica(ctx context.Context, rep *report, r *storeRuns, s storeStream) error {
	schema := e.name("store")
	e.logger.Info("filling the view store with SQL", "orders", e.o.storeOrders)
	t := time.Now()
	want, err := e.fillStore(ctx, schema, e.o.storeOrders)
	if err != nil {
		return err
	}
	filled := time.Since(t)
	defer func() { _, _ = e.conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) }()
	empty := storeStream{prefix: e.name("replica") + ".cdc"}
	if empty.name, err = e.stream(ctx, empty.prefix); err != nil {
		return fmt.Errorf("replica stream: %w", err)
	}
	proj, err := e.startProjector(empty, schema, 1)
	if err != nil {
		return err
	}
	defer proj.stop()
	if err := poll(time.Minute, 20*time.Millisecond, func() (bool, error) { return projectorReady(proj.url, 1), nil }); err != nil {
		return fmt.Errorf("projector of the filled store: %w", err)
	}
	var ready, rss []float64
	var api *apiProc
	for i := range e.o.runs {
		ms, mb, a, err := e.replicaOnce(ctx, empty, schema, want)
		if err != nil {
			return err
		}
		ready, rss = append(ready, ms), append(rss, mb)
		e.logger.Info("view store replica run", "orders", e.o.storeOrders, "ready_ms", ms, "rss_mb", mb)
		if i < e.o.runs-1 {
			a.stop()
		} else {
			api = a
		}
	}
	defer api.stop()
	label := thousands(e.o.storeOrders) + " orders, 1,000 sellers, 500 employees in the store"
	memRef := fmt.Sprintf("api in memory mode, %s orders (the projection figure's stream)", thousands(s.keys))
	rep.add(row{figure: "View store: api replica (VIEW_STORE=postgres) from start to ready, " + label + " (ms)", ours: summarize(ready),
		ref: summarize(r.memory(func(m memoryRun) float64 { return m.readyMS })), refName: memRef, unit: "ms", absBar: 2000, barText: "< 2 s",
		note: fmt.Sprintf("store filled with SQL (generate_series) in %s; the replica loads the per-seller rows only; its dashboard totals are checked equal to the store's SQL view", filled.Round(time.Second))})
	rep.add(row{figure: "View store: api replica resident memory once ready, " + label + " (MB)", ours: summarize(rss),
		ref: summarize(r.memory(func(m memoryRun) float64 { return m.rssMB })), refName: memRef, unit: "MB", absBar: 50, barText: "< 50 MB",
		note: "VmRSS once settled (two readings 200 ms apart within 1%)"})
	return e.storeRead(rep, api, label)
}

// replicaOnce times one api replica in postgres mode on schema from its
// start to ready, reads its settled resident memory, checks its totals
// against the store's, and returns it running.
func (e *benchEnv) replicaOnce(ctx context.Context, s storeStream, schema string, want projection.Global) (float64, float64, *apiProc, error) {
	start := time.Now()
	api, err := e.startAPIPolling(s.name, s.prefix, 5*time.Millisecond, e.storeEnv(schema, 1)...)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("api replica: %w", err)
	}
	took := time.Since(start)
	mb, err := api.rssMB()
	if err == nil {
		err = e.checkStore(ctx, schema, want)
	}
	if err == nil {
		var d projection.Dashboard
		if d, err = getDashboard(api.url + "/reportes/dashboard"); err == nil && d.MetricasGlobales != want {
			err = fmt.Errorf("replica's dashboard holds %+v, the store %+v", d.MetricasGlobales, want)
		}
	}
	if err != nil {
		api.stop()
		return 0, 0, nil, err
	}
	return float64(took.Microseconds()) / 1000, mb, api, nil
}

// storeRead is readCost's dashboard GET figure for the replica api: wrk
// against it and against a trivial server of the same bytes, alternating.
func (e *benchEnv) storeRead(rep *report, api *apiProc, label string) error {
	resp, err := http.Get(api.url + "/reportes/dashboard") //nolint:gosec,noctx // loopback
	if err != nil {
		return fmt.Errorf("replica dashboard: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("replica dashboard: %w", err)
	}
	if resp.Header.Get(httpapi.StaleHeader) != "" {
		return fmt.Errorf("replica serves a stale dashboard: %s", body[:min(len(body), 300)])
	}
	turl, stopTrivial, err := trivial(body)
	if err != nil {
		return err
	}
	defer stopTrivial()
	var ourRPS, refRPS, ourP99, refP99 []float64
	for range e.o.runs {
		o, err := wrk(api.url+"/reportes/dashboard", e.o.wrkSecs)
		if err != nil {
			return err
		}
		t, err := wrk(turl, e.o.wrkSecs)
		if err != nil {
			return err
		}
		ourRPS, refRPS, ourP99, refP99 = append(ourRPS, o.rps), append(refRPS, t.rps), append(ourP99, o.p99), append(refP99, t.p99)
		e.logger.Info("view store read run", "api_rps", int(o.rps), "trivial_rps", int(t.rps), "api_p99_ms", o.p99, "trivial_p99_ms", t.p99)
	}
	rep.add(row{figure: "View store: dashboard GET from the replica, " + label + " (requests/s)", ours: summarize(ourRPS), ref: summarize(refRPS),
		refName: "trivial Go server, same bytes", ratios: ratios(ourRPS, refRPS), bar: 0.8, barText: ">= 80% of reference",
		note: fmt.Sprintf("%d bytes per response; an idle projector on the store publishes its heartbeats meanwhile", len(body))})
	rep.add(row{figure: "View store: dashboard GET from the replica, p99 (ms)", ours: summarize(ourP99), ref: summarize(refP99), refName: "trivial Go server",
		ratios: ratios(ourP99, refP99), maxRatio: 1.5, barText: "<= 1.5x reference", unit: "ms"})
	return nil
}
