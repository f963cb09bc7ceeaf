package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/pkg/cdc"
)

// fillDuplicates is the deduplication window of the streams fillStream
// fills. The NATS server keeps the ID of every event published within the
// window in a table that its garbage collector scans: filled in seconds, a
// stream of 1M events would keep all 1M IDs for the ingestor's default
// window of 2 minutes, and the server would spend more per event it
// delivers in a rebuild (see the profile notes). A stream rebuilt from in
// production has held most of its events for longer than its window, so
// the rebuild is measured once this shorter window has passed
// (waitDuplicatesExpired); one pair of runs right after the fill, while
// the IDs are held, shows what the table costs.
const fillDuplicates = 30 * time.Second

// fillStream publishes employees and orders events, as the ingestor would
// (with their ids as Nats-Msg-Id, on their keys' subjects), to a new stream
// and returns its name and subject prefix.
func (e *benchEnv) fillStream(ctx context.Context, employees, orders int) (string, string, error) {
	prefix := e.name("view") + ".cdc"
	stream, err := e.streamDeduplicating(ctx, prefix, fillDuplicates)
	if err != nil {
		return "", "", err
	}
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return "", "", err
	}
	empSubj, ordSubj := prefix+".postgres.public.empleados", prefix+".mongo.inventory_db.orders"
	buf := make([]byte, 0, 512)
	for i := range employees {
		buf = buf[:0]
		buf = fmt.Appendf(buf, `{"id":"pg:s:0/1:e%d","source":"postgres","collection":"public.empleados","op":"snapshot","key":"S-%04d","position":"0/1","version":1,"commit_time":"2026-11-27T00:00:00Z","snapshot":"s","after":{"codigo":"S-%04d","nombre":"Empleado %d","rol":"vendedor","activo":true}}`, i, i, i, i)
		if _, err := js.PublishAsync(empSubj+"."+cdc.KeyToken(fmt.Sprintf("S-%04d", i)), append([]byte(nil), buf...), jetstream.WithMsgID(fmt.Sprintf("pg:s:0/1:e%d", i)), waitWhenStalled); err != nil {
			return "", "", err
		}
	}
	for i := range orders {
		buf = buf[:0]
		buf = fmt.Appendf(buf, `{"id":"mongo:inventory_db.orders:%d.1:0","source":"mongo","collection":"inventory_db.orders","op":"insert","key":"%024x","position":"%d.1","version":%d,"commit_time":"2026-11-27T00:00:00Z","after":{"_id":{"$oid":"%024x"},"vendedor":"S-%04d","producto":"Tornillos M6","cantidad":%d}}`,
			i, i, i, uint64(i)<<32|1, i, i%employees, i%100)
		if _, err := js.PublishAsync(fmt.Sprintf("%s.%024x", ordSubj, i), append([]byte(nil), buf...), jetstream.WithMsgID(fmt.Sprintf("mongo:inventory_db.orders:%d.1:0", i)), waitWhenStalled); err != nil {
			return "", "", err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		return "", "", fmt.Errorf("filling stream: publishes not acknowledged")
	}
	return stream, prefix, nil
}

// waitDuplicatesExpired waits until the NATS server has dropped the IDs of a
// stream fillStream filled at filled: its timer drops each ID within 50 ms
// of the window passing. The server reports no count of the IDs it holds,
// so this waits the window from the last acknowledgement, and a second more.
func waitDuplicatesExpired(ctx context.Context, filled time.Time) error {
	select {
	case <-time.After(time.Until(filled.Add(fillDuplicates + time.Second))):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bareConsume reads the whole stream with an ordered consumer, doing nothing
// with the messages: the reference for the rebuild. The consumer is the
// push-based one of nats.go the api uses, or with pull the pull-based one
// of its jetstream package. It returns events/s and the CPU this process
// spent per event (NATS runs in a process of its own).
func (e *benchEnv) bareConsume(ctx context.Context, stream string, n int, pull bool) (float64, float64, error) {
	cpu0 := processCPU()
	start := time.Now()
	got := 0
	done := make(chan struct{})
	count := func() {
		if got++; got == n {
			close(done)
		}
	}
	if pull {
		s, err := e.js.Stream(ctx, stream)
		if err != nil {
			return 0, 0, err
		}
		cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			return 0, 0, err
		}
		cc, err := cons.Consume(func(jetstream.Msg) { count() }, jetstream.PullMaxMessages(4096))
		if err != nil {
			return 0, 0, err
		}
		defer cc.Stop()
	} else {
		js, err := e.nc.JetStream()
		if err != nil {
			return 0, 0, err
		}
		sub, err := js.Subscribe("", func(*nats.Msg) { count() }, nats.OrderedConsumer(), nats.BindStream(stream), nats.DeliverAll())
		if err != nil {
			return 0, 0, err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("bare consumer: %d of %d messages after 5 minutes", got, n)
	}
	took := time.Since(start)
	return float64(n) / took.Seconds(), (processCPU() - cpu0).Seconds() * 1e6 / float64(n), nil
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rebuilt is what rebuildView measures.
type rebuilt struct {
	perSec, cpuPerEvent, peakMB float64
}

// rebuildView times a fresh api process, the binary users run, from its
// start until /readyz says its view caught up with the whole stream, and
// reads the CPU it spent per event and its peak resident memory.
func (e *benchEnv) rebuildView(stream, prefix string, n int) (rebuilt, error) {
	start := time.Now()
	api, err := e.startAPIPolling(stream, prefix, 5*time.Millisecond)
	if err != nil {
		return rebuilt{}, err
	}
	took := time.Since(start)
	defer api.stop()
	cpu, err := childCPU(api.cmd.Process.Pid)
	if err != nil {
		return rebuilt{}, err
	}
	peak, err := api.peakRSS()
	if err != nil {
		return rebuilt{}, err
	}
	d, err := getDashboard(api.url + "/reportes/dashboard")
	if err != nil {
		return rebuilt{}, err
	}
	if got := d.MetricasGlobales.TotalPedidosProcesados; got+1000 != n {
		return rebuilt{}, fmt.Errorf("rebuilt view holds %d orders, want %d", got, n-1000)
	}
	return rebuilt{perSec: float64(n) / took.Seconds(), cpuPerEvent: cpu.Seconds() * 1e6 / float64(n), peakMB: peak}, nil
}

// cpuPerEvent runs fn and returns the CPU time the processes pids used
// meanwhile, all together, in µs per event of n.
func cpuPerEvent(n int, fn func() error, pids ...int) (float64, error) {
	total := func() (time.Duration, error) {
		var sum time.Duration
		for _, pid := range pids {
			c, err := childCPU(pid)
			if err != nil {
				return 0, err
			}
			sum += c
		}
		return sum, nil
	}
	c0, err := total()
	if err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	c1, err := total()
	return (c1 - c0).Seconds() * 1e6 / float64(n), err
}

// childCPU is the CPU time process pid has used so far, in clock ticks of
// 10 ms (USER_HZ is 100 on Linux).
func childCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, err1 := strconv.Atoi(f[11])
	st, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("reading /proc/%d/stat: %q", pid, stat)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func (e *benchEnv) rebuildFigure(ctx context.Context, rep *report) error {
	e.logger.Info("filling the rebuild stream", "orders", e.o.rebuild)
	fillStart := time.Now()
	stream, prefix, err := e.fillStream(ctx, 1000, e.o.rebuild)
	if err != nil {
		return err
	}
	filled := time.Now()
	e.rebuildStream, e.rebuildPrefix = stream, prefix
	n := 1000 + e.o.rebuild
	// serverCPU is the NATS server's CPU per event while fn runs.
	serverCPU := func(fn func() error) (float64, error) { return cpuPerEvent(n, fn, e.nats.cmd.Process.Pid) }
	held, err := e.rebuildHeldIDs(ctx, stream, prefix, n, fillStart, serverCPU)
	if err != nil {
		return err
	}
	if err := waitDuplicatesExpired(ctx, filled); err != nil {
		return err
	}
	var ours, bare, pull, oursCPU, bareCPU, oursSrv, bareSrv, peak []float64
	for range e.o.runs {
		var b, bc float64
		var o rebuilt
		bs, err := serverCPU(func() (err error) { b, bc, err = e.bareConsume(ctx, stream, n, false); return err })
		if err != nil {
			return err
		}
		p, _, err := e.bareConsume(ctx, stream, n, true)
		if err != nil {
			return err
		}
		pull = append(pull, p)
		as, err := serverCPU(func() (err error) { o, err = e.rebuildView(stream, prefix, n); return err })
		if err != nil {
			return err
		}
		ours, bare, oursCPU, bareCPU = append(ours, o.perSec), append(bare, b), append(oursCPU, o.cpuPerEvent), append(bareCPU, bc)
		oursSrv, bareSrv, peak = append(oursSrv, as), append(bareSrv, bs), append(peak, o.peakMB)
		e.logger.Info("rebuild run", "bare_consumer", int(b), "bare_pull_consumer", int(p), "view", int(o.perSec), "bare_cpu_us", bc,
			"api_cpu_us", o.cpuPerEvent, "server_cpu_us_bare", bs, "server_cpu_us_api", as, "api_peak_mb", o.peakMB)
	}
	rep.add(row{figure: "Rebuild: a fresh api process from start to ready, " + strconv.Itoa(n) + " events (events/s)", ours: summarize(ours), ref: summarize(bare),
		refName: "bare push-based ordered consumer", ratios: ratios(ours, bare), absMin: 300_000, barText: ">= 300,000 events/s",
		note: fmt.Sprintf("measured once the stream's deduplication window (%s here) has passed since it was filled, as for a stream that has held its events longer than that; the next row measures within it", fillDuplicates)})
	rep.add(held)
	rep.add(row{figure: "Rebuild: bare ordered consumers, push-based (as the api) and pull-based (events/s)", ours: summarize(bare), ref: summarize(pull),
		refName: "pull-based, nats.go's jetstream package", ratios: ratios(bare, pull),
		note: "why the api consumes with nats.go's push-based ordered consumer: the server pushes the stream with flow control instead of answering pull requests"})
	rep.add(row{figure: "Rebuild: CPU per event in the consuming process (µs)", ours: summarize(oursCPU), ref: summarize(bareCPU),
		refName: "bare push-based ordered consumer", ratios: ratios(oursCPU, bareCPU)})
	rep.add(row{figure: "Rebuild: CPU per event of the NATS server delivering the stream (µs)", ours: summarize(oursSrv), ref: summarize(bareSrv),
		refName: "to the bare consumer", ratios: ratios(oursSrv, bareSrv),
		note: "2 cores give 2 s of CPU per second: server and consumer together bound any consumer to 2 / (server + consumer µs) million events/s"})
	rep.add(row{figure: "Rebuild: peak resident memory of the api (MB)", ours: summarize(peak), unit: "MB",
		note: "VmHWM at ready; the GC runs less often until the view is ready, then gives the memory back (the memory figure below)"})
	return e.restartFigure(ctx, rep, stream, prefix, n, ours)
}

// rebuildHeldIDs times one bare consumer and one api rebuild right after
// the stream was filled, while the NATS server still holds the message IDs
// of its deduplication window, and returns the row that reports them. The
// first IDs expire fillDuplicates after fillStart.
func (e *benchEnv) rebuildHeldIDs(ctx context.Context, stream, prefix string, n int, fillStart time.Time,
	serverCPU func(func() error) (float64, error)) (row, error) {
	var b float64
	var o rebuilt
	bs, err := serverCPU(func() (err error) { b, _, err = e.bareConsume(ctx, stream, n, false); return err })
	if err != nil {
		return row{}, err
	}
	as, err := serverCPU(func() (err error) { o, err = e.rebuildView(stream, prefix, n); return err })
	if err != nil {
		return row{}, err
	}
	note := fmt.Sprintf("one run each, started as soon as the stream was filled, while the NATS server held its %d message IDs (a window of %s); NATS server CPU per event delivered: %.2f µs to the api, %.2f to the bare consumer",
		n, fillDuplicates, as, bs)
	if since := time.Since(fillStart); since > fillDuplicates {
		note += fmt.Sprintf(" (the runs ended %s after the fill began: its first IDs had expired)", since.Round(time.Second))
	}
	e.logger.Info("rebuild run within the deduplication window", "bare_consumer", int(b), "view", int(o.perSec), "server_cpu_us_bare", bs, "server_cpu_us_api", as)
	return row{figure: "Rebuild within the deduplication window of the fill (events/s)", ours: summarize([]float64{o.perSec}), ref: summarize([]float64{b}),
		refName: "bare push-based ordered consumer", ratios: []float64{o.perSec / b}, note: note}, nil
}

// restartFigure times a fresh api process that starts from the view
// snapshot its predecessor saved when it was stopped (the default
// deployment), on the same stream as the rebuild.
func (e *benchEnv) restartFigure(ctx context.Context, rep *report, stream, prefix string, n int, rebuild []float64) error {
	bucket := e.name("snapshots")
	env := []string{"VIEW_SNAPSHOT_BUCKET=" + bucket, "VIEW_SNAPSHOT_INTERVAL=1h"}
	api, err := e.startAPIPolling(stream, prefix, 5*time.Millisecond, env...)
	if err != nil {
		return err
	}
	if err := api.terminate(); err != nil {
		return fmt.Errorf("stop the api that saves the snapshot: %w", err)
	}
	obj, err := e.js.ObjectStore(ctx, bucket)
	if err != nil {
		return fmt.Errorf("snapshot bucket: %w", err)
	}
	infos, err := obj.List(ctx)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(infos) != 1 {
		return fmt.Errorf("want one snapshot saved on stop, have %d", len(infos))
	}
	var ours, full []float64
	for i := range e.o.runs {
		start := time.Now()
		api, err := e.startAPIPolling(stream, prefix, time.Millisecond, env...)
		if err != nil {
			return err
		}
		took := time.Since(start)
		d, err := getDashboard(api.url + "/reportes/dashboard")
		api.stop()
		if err != nil {
			return err
		}
		if got := d.MetricasGlobales.TotalPedidosProcesados; got+1000 != n {
			return fmt.Errorf("view restored from the snapshot holds %d orders, want %d", got, n-1000)
		}
		ours = append(ours, float64(took.Milliseconds()))
		full = append(full, float64(n)/rebuild[i%len(rebuild)]*1000)
		e.logger.Info("restart run", "ms", took.Milliseconds(), "snapshot_bytes", infos[0].Size)
	}
	rep.add(row{figure: fmt.Sprintf("Restart: a fresh api process from start to ready with the view snapshot its predecessor saved, %d events in the stream (ms)", n),
		ours: summarize(ours), ref: summarize(full), refName: "full rebuild above", ratios: ratios(ours, full), unit: "ms",
		note: fmt.Sprintf("snapshot of %.1f MB in a JetStream object store (VIEW_SNAPSHOT_BUCKET); the rebuild figure is measured with snapshots off", float64(infos[0].Size)/1e6)})
	return nil
}
