package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// fanoutKey is what the fan-out clients follow: each change of the figure
// inserts one employee.
const fanoutKey = `"total_empleados":`

// fanoutRun is one run of the fan-out figure.
type fanoutRun struct {
	clients, wanted                  int
	connectTook                      time.Duration
	all, newest, ref                 []time.Duration
	missing, refMissing              int
	rss0, rss1                       float64 // MB, before and after the clients connected
	heap, stacks                     float64 // bytes the api's Go heap and goroutine stacks use with the clients connected
	cpu, refCPU                      float64 // µs of CPU per event delivered to one client, the api's and the reference's
	events, eventBytes, refConnected int
}

func (e *benchEnv) fanout(ctx context.Context, rep *report) error {
	var ourP50, ourP99, newP50, newP99, refP50, refP99, perClient, cpu, refCPU []float64
	var last fanoutRun
	for range e.o.liveRuns {
		r, err := e.fanoutOnce(ctx)
		if err != nil {
			return err
		}
		ourP50, ourP99 = append(ourP50, msf(percentile(r.all, .5))), append(ourP99, msf(percentile(r.all, .99)))
		newP50, newP99 = append(newP50, msf(percentile(r.newest, .5))), append(newP99, msf(percentile(r.newest, .99)))
		refP50, refP99 = append(refP50, msf(percentile(r.ref, .5))), append(refP99, msf(percentile(r.ref, .99)))
		perClient = append(perClient, (r.rss1-r.rss0)*1024/float64(r.clients))
		cpu, refCPU = append(cpu, r.cpu), append(refCPU, r.refCPU)
		e.logger.Info("fan-out run", "clients", r.clients, "p50_ms", ourP50[len(ourP50)-1], "p99_ms", ourP99[len(ourP99)-1],
			"newest_p99_ms", newP99[len(newP99)-1], "reference_p50_ms", refP50[len(refP50)-1], "reference_p99_ms", refP99[len(refP99)-1],
			"kb_per_client", perClient[len(perClient)-1], "cpu_us", r.cpu, "reference_cpu_us", r.refCPU, "missing", r.missing, "reference_missing", r.refMissing)
		last = r
	}
	clients := thousands(last.clients) + " SSE clients"
	if last.clients < last.wanted {
		clients += fmt.Sprintf(" (of %s asked: the rest could not connect)", thousands(last.wanted))
	}
	ref := "trivial Go SSE broadcaster, trigger → received"
	missing := ""
	if last.missing > 0 || last.refMissing > 0 {
		missing = fmt.Sprintf("; not received within 30 s: %d (reference: %d)", last.missing, last.refMissing)
	}
	rep.add(row{figure: "Fan-out, " + clients + ", one change every 10 ms: commit → update event received, p50 (ms)",
		ours: summarize(ourP50), ref: summarize(refP50), refName: ref, unit: "ms",
		note: fmt.Sprintf("%s PostgreSQL inserts through the ingestor and api binaries, LIVE_INTERVAL 100 ms, a dashboard of 100 sellers; every client × every change (%s latencies), one run unless -live-runs%s",
			thousands(e.o.changes), thousands(len(last.all)), missing)})
	rep.add(row{figure: "Fan-out, " + clients + ": commit → update event received, p99 (ms)",
		ours: summarize(ourP99), ref: summarize(refP99), refName: ref, unit: "ms", absBar: 100, barText: "p99 < 100 ms",
		note: "a change that comes less than LIVE_INTERVAL after the last event sent waits for the next one: up to 100 ms of this is the coalescing"})
	rep.add(row{figure: "Fan-out, " + clients + ": commit of the newest change an event carries → received, p99 (ms)",
		ours: summarize(newP99), ref: summarize(refP99), refName: ref, unit: "ms", ratios: ratios(newP99, refP99),
		note: fmt.Sprintf("without the wait in the coalescing: capture, projection and fan-out against fan-out alone; the reference sends as many events (%d, about %d bytes each) at the same times to as many clients (%s)",
			last.events, last.eventBytes, thousands(last.refConnected))})
	rep.add(row{figure: "Fan-out, " + clients + ": commit of the newest change an event carries → received, p50 (ms)",
		ours: summarize(newP50), ref: summarize(refP50), refName: ref, unit: "ms", ratios: ratios(newP50, refP50)})
	rep.add(row{figure: "Fan-out: CPU per update event delivered to one client (µs)", ours: summarize(cpu), ref: summarize(refCPU),
		refName: "trivial Go SSE broadcaster", ratios: ratios(cpu, refCPU),
		note: "the server process's CPU time (/proc) while the changes were delivered, over the events the clients received; the api's includes applying the changes and publishing the metric subjects"})
	rep.add(row{figure: "Fan-out: api resident memory per connected SSE client (KB)", ours: summarize(perClient), unit: "KB", absBar: 20, barText: "< 20 KB",
		note: fmt.Sprintf("VmRSS with %s clients connected minus before, divided by the clients: %.1f → %.1f MB, connected in %s; the Go heap in use is then %.1f KB per client, goroutine stacks %.1f KB (two goroutines per connection: net/http's and its background read)",
			thousands(last.clients), last.rss0, last.rss1, last.connectTook.Round(100*time.Millisecond),
			last.heap/1024/float64(last.clients), last.stacks/1024/float64(last.clients))})
	return nil
}

func (e *benchEnv) fanoutOnce(ctx context.Context) (r fanoutRun, err error) {
	r.wanted = e.o.clients
	rig, err := e.startRig(ctx, "fan", liveSellers)
	if err != nil {
		return r, err
	}
	defer func() {
		if rig != nil {
			rig.stop(ctx, e)
		}
	}()
	if r.rss0, err = rig.api.rssMB(); err != nil {
		return r, err
	}
	t := time.Now()
	crowd := connectCrowd(rig.addr(), "/reportes/dashboard/stream", fanoutKey, e.o.clients, 2*time.Minute)
	r.connectTook, r.clients = time.Since(t), int(crowd.connected.Load())
	defer crowd.close()
	if r.clients == 0 {
		return r, fmt.Errorf("no event stream client connected: %w", crowd.err())
	}
	if r.clients < e.o.clients {
		e.logger.Warn("not every fan-out client connected", "connected", r.clients, "asked", e.o.clients, "first_err", crowd.err())
	}
	if r.rss1, err = rig.api.rssMB(); err != nil {
		return r, err
	}
	r.heap, _ = rig.api.metric("go_memstats_heap_inuse_bytes")
	r.stacks, _ = rig.api.metric("go_memstats_stack_inuse_bytes")
	d, err := getDashboard(rig.api.url + "/reportes/dashboard")
	if err != nil {
		return r, err
	}
	base := d.MetricasGlobales.TotalEmpleados
	n := e.o.changes
	crowd.target.Store(int64(base + n))
	commits := make([]time.Duration, n+1)
	cpu0, err := childCPU(rig.api.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	insert := fmt.Sprintf("INSERT INTO %s VALUES ($1, 'Empleado', 'vendedor', true)", rig.table)
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 1; i <= n; i++ {
		<-tick.C
		if _, err := e.conn.Exec(ctx, insert, "F-"+strconv.Itoa(i)); err != nil {
			tick.Stop()
			return r, err
		}
		commits[i] = time.Since(crowd.t0)
	}
	tick.Stop()
	crowd.waitDone(30 * time.Second)
	cpu1, err := childCPU(rig.api.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	crowd.close()
	r.all, r.newest, r.missing = crowd.latencies(base, commits)
	r.cpu = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(crowd.deliveries(base))

	// The events one client received, their times and a typical one's
	// bytes, for the reference to send the same.
	first := crowd.clients[0]
	var offsets []time.Duration
	for _, s := range first.seen {
		if s.total > base {
			offsets = append(offsets, s.at-commits[1])
		}
	}
	sample := typicalLine(first.lines)
	rig.stop(ctx, e) // the reference gets the machine to itself, as the api had
	rig = nil
	if len(offsets) == 0 || sample == nil {
		return r, fmt.Errorf("the first fan-out client received no update event")
	}
	r.events, r.eventBytes = len(offsets), len(sample)+len("id: 1234\nevent: update\ndata: \n\n")
	r.ref, r.refMissing, r.refConnected, r.refCPU, err = e.fanoutReference(sample, offsets, r.clients)
	return r, err
}

// typicalLine is the line of median length.
func typicalLine(lines [][]byte) []byte {
	if len(lines) == 0 {
		return nil
	}
	s := slices.Clone(lines)
	slices.SortFunc(s, func(a, b []byte) int { return len(a) - len(b) })
	return s[len(s)/2]
}

// fanoutReference connects clients to the reference broadcaster and
// triggers it at the offsets, each time with sample carrying the next
// figure, and returns every client's trigger → received latencies, how
// many never came, how many clients connected and the broadcaster's CPU
// per event delivered (µs).
func (e *benchEnv) fanoutReference(sample []byte, offsets []time.Duration, clients int) ([]time.Duration, int, int, float64, error) {
	i := bytes.Index(sample, []byte(fanoutKey))
	if i < 0 {
		return nil, 0, 0, 0, fmt.Errorf("update event without %s: %.200s", fanoutKey, sample)
	}
	j := i + len(fanoutKey)
	for j < len(sample) && sample[j] >= '0' && sample[j] <= '9' {
		j++
	}
	head, tail := sample[:i+len(fanoutKey)], sample[j:]
	b, err := startBroadcaster()
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer b.stop()
	crowd := connectCrowd(b.addr, "/", fanoutKey, clients, 2*time.Minute)
	defer crowd.close()
	connected := int(crowd.connected.Load())
	if connected == 0 {
		return nil, 0, 0, 0, fmt.Errorf("no client of the reference broadcaster connected: %w", crowd.err())
	}
	cpu0, err := childCPU(b.cmd.Process.Pid)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	crowd.target.Store(int64(len(offsets)))
	at := make([]time.Duration, len(offsets)+1)
	start := time.Now()
	for k, off := range offsets {
		time.Sleep(time.Until(start.Add(off))) // the api's pacing
		data := slices.Concat(head, []byte(strconv.Itoa(k+1)), tail)
		at[k+1] = time.Since(crowd.t0)
		if err := b.trigger(data); err != nil {
			return nil, 0, 0, 0, err
		}
	}
	crowd.waitDone(30 * time.Second)
	cpu1, err := childCPU(b.cmd.Process.Pid)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	crowd.close()
	all, _, missing := crowd.latencies(0, at)
	return all, missing, connected, float64(cpu1-cpu0) / float64(time.Microsecond) / float64(crowd.deliveries(0)), nil
}
