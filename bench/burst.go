package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/reportes/reportes/pkg/live"
)

// lateChanges is how many single changes the late joiner is timed on.
const lateChanges = 50

// burstRun is one run of the metric-subject figures.
type burstRun struct {
	orders               int
	inserted             time.Duration // the inserts
	applied              time.Duration // from the api's first order of the burst to its last
	messages             uint64
	subjects, mismatches int
	mismatch             string
	late, live           []time.Duration
	intervals, bound     int
}

func (e *benchEnv) burst(ctx context.Context, rep *report) error {
	var msgs, ratio, lateP50, lateP99, liveP50, liveP99, equal, diff []float64
	var last burstRun
	for range e.o.liveRuns {
		r, err := e.burstOnce(ctx)
		if err != nil {
			return err
		}
		msgs, ratio = append(msgs, float64(r.messages)), append(ratio, float64(r.messages)/float64(r.orders))
		equal = append(equal, float64(r.subjects-r.mismatches))
		lateP50, lateP99 = append(lateP50, msf(percentile(r.late, .5))), append(lateP99, msf(percentile(r.late, .99)))
		liveP50, liveP99 = append(liveP50, msf(percentile(r.live, .5))), append(liveP99, msf(percentile(r.live, .99)))
		diff = append(diff, lateP99[len(lateP99)-1]-liveP99[len(liveP99)-1])
		e.logger.Info("metric subjects run", "orders", r.orders, "messages", r.messages, "bound", r.bound,
			"inserted_s", r.inserted.Seconds(), "applied_s", r.applied.Seconds(), "subjects", r.subjects, "mismatches", r.mismatches,
			"late_p50_ms", lateP50[len(lateP50)-1], "late_p99_ms", lateP99[len(lateP99)-1], "live_p99_ms", liveP99[len(liveP99)-1])
		last = r
	}
	orders := thousands(last.orders)
	changes := stats{float64(last.orders), float64(last.orders), float64(last.orders)}
	rep.add(row{figure: fmt.Sprintf("Metric subjects, a burst of %s orders over %d sellers: messages stored in the metric stream", orders, liveSellers),
		ours: summarize(msgs), ref: changes, refName: "orders", unit: "count", ratios: ratio, maxRatio: 0.5, barText: "far fewer than the changes",
		note: fmt.Sprintf("InsertMany in batches of 1,000 (%.1f s) with the ingestor stopped, then read back by it: the api had applied them %.1f s after its restart, %d intervals of 100 ms (LIVE_INTERVAL), at most one message per subject per interval: %s for these %d subjects; one run unless -live-runs",
			last.inserted.Seconds(), last.applied.Seconds(), last.intervals, thousands(last.bound), liveSellers+1)})
	note := "every seller's line and the totals, read by an ordered consumer with DeliverLastPerSubject once the burst was applied, against GET /reportes/dashboard"
	if last.mismatch != "" {
		note += "; first difference: " + last.mismatch
	}
	rep.add(row{figure: "Metric subjects after the burst: subjects whose last message equals the dashboard",
		ours: summarize(equal), unit: "count", absMin: float64(liveSellers + 1), barText: fmt.Sprintf("all %d", liveSellers+1), note: note})
	following := "subscriber following the stream"
	rep.add(row{figure: "Metric subjects: commit → a late joiner sees the current value, p50 (ms)", ours: summarize(lateP50),
		ref: summarize(liveP50), refName: following, unit: "ms",
		note: fmt.Sprintf("%d single PostgreSQL inserts, each after a quiet interval; a new ordered consumer (DeliverLastPerSubject on the totals' subject) created right after each commit", lateChanges)})
	rep.add(row{figure: "Metric subjects: commit → a late joiner sees the current value, p99 (ms)", ours: summarize(lateP99),
		ref: summarize(liveP99), refName: following, unit: "ms", diff: summarize(diff)})
	return nil
}

func (e *benchEnv) burstOnce(ctx context.Context) (r burstRun, err error) {
	rig, err := e.startRig(ctx, "burst", liveSellers)
	if err != nil {
		return r, err
	}
	defer rig.stop(ctx, e)
	metrics, err := e.metricStream(ctx, rig.metricsStream)
	if err != nil {
		return r, err
	}
	info, err := metrics.Info(ctx)
	if err != nil {
		return r, err
	}
	seq0 := info.State.LastSeq
	dashURL := rig.api.url + "/reportes/dashboard"
	d, err := getDashboard(dashURL)
	if err != nil {
		return r, err
	}
	r.orders = e.o.burst
	want := d.MetricasGlobales.TotalPedidosProcesados + r.orders

	// FerretDB tailed during a burst of inserts slows down both (it
	// rescans its oplog for every query): 30,000 orders took 70 s to reach
	// the api with the ingestor tailing, against 10 s read back from its
	// saved position once inserted. The ingestor is stopped as an
	// orchestrator stops it (it saves its position) during the inserts and
	// started again after: the api gets the burst as fast as the ingestor
	// reads it.
	if err := rig.ing.stop(); err != nil {
		return r, fmt.Errorf("stop ingestor: %w", err)
	}
	rig.ing = nil
	start := time.Now()
	docs := make([]any, 0, 1000)
	for i := range r.orders {
		docs = append(docs, bson.D{{Key: "vendedor", Value: fmt.Sprintf("S-%04d", i%liveSellers)}, {Key: "producto", Value: "Tornillos M6"}, {Key: "cantidad", Value: i % 100}})
		if len(docs) == cap(docs) || i == r.orders-1 {
			if _, err := rig.orders.InsertMany(ctx, docs); err != nil {
				return r, err
			}
			docs = docs[:0]
		}
	}
	r.inserted = time.Since(start)
	e.logger.Info("burst inserted", "orders", r.orders, "took", r.inserted.Round(time.Millisecond))
	resumed := time.Now() // the api gets no order of the burst before
	if rig.ing, err = e.startRigIngestor(ctx, rig); err != nil {
		return r, err
	}
	logged := time.Now()
	if err := poll(3*time.Minute, 20*time.Millisecond, func() (bool, error) {
		d, err := getDashboard(dashURL)
		if err == nil && time.Since(logged) > 10*time.Second {
			logged = time.Now()
			captured, _ := e.streamMsgs(ctx, rig.stream)
			e.logger.Info("burst being applied", "applied", d.MetricasGlobales.TotalPedidosProcesados-want+r.orders, "of", r.orders,
				"events_in_stream", captured)
		}
		return err == nil && d.MetricasGlobales.TotalPedidosProcesados >= want, nil
	}); err != nil {
		return r, fmt.Errorf("api view after the burst: %w", err)
	}
	r.applied = time.Since(resumed)
	global := rig.metricsPrefix + ".global"
	if err := poll(time.Minute, 20*time.Millisecond, func() (bool, error) {
		m, err := metrics.GetLastMsgForSubject(ctx, global)
		if err != nil {
			return false, nil //nolint:nilerr // not published yet
		}
		var g live.GlobalMessage
		return json.Unmarshal(m.Data, &g) == nil && g.TotalPedidosProcesados >= want, nil
	}); err != nil {
		return r, fmt.Errorf("metric subject after the burst: %w", err)
	}
	// The totals go out after the sellers of the same update: once the
	// last totals are stored, so is every line.
	if info, err = metrics.Info(ctx); err != nil {
		return r, err
	}
	r.messages = info.State.LastSeq - seq0
	r.intervals = int(r.applied/live.DefaultInterval) + 1
	r.bound = r.intervals * (liveSellers + 1)
	if r.subjects, r.mismatches, r.mismatch, err = e.compareLastValues(ctx, rig, dashURL); err != nil {
		return r, err
	}
	r.late, r.live, err = e.lateJoiners(ctx, rig)
	return r, err
}

// metricStream waits for the api to have created its metric stream.
func (e *benchEnv) metricStream(ctx context.Context, name string) (jetstream.Stream, error) {
	var s jetstream.Stream
	err := poll(time.Minute, 20*time.Millisecond, func() (bool, error) {
		var err error
		s, err = e.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, nil
		}
		return err == nil, err
	})
	return s, err
}

// compareLastValues reads every subject's last message as a late joiner
// does and compares it with the dashboard: how many subjects, how many
// differ, and the first difference.
func (e *benchEnv) compareLastValues(ctx context.Context, rig *liveRig, dashURL string) (int, int, string, error) {
	d, err := getDashboard(dashURL)
	if err != nil {
		return 0, 0, "", err
	}
	cons, err := e.js.OrderedConsumer(ctx, rig.metricsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{rig.metricsPrefix + ".>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return 0, 0, "", err
	}
	sellers := map[string]live.SellerMessage{}
	var global *live.GlobalMessage
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return 0, 0, "", fmt.Errorf("late joiner: %w", err)
		}
		if strings.HasSuffix(m.Subject(), ".global") {
			global = &live.GlobalMessage{}
			if err := json.Unmarshal(m.Data(), global); err != nil {
				return 0, 0, "", err
			}
		} else {
			var s live.SellerMessage
			if err := json.Unmarshal(m.Data(), &s); err != nil {
				return 0, 0, "", err
			}
			sellers[s.Empleado] = s
		}
		md, err := m.Metadata()
		if err != nil {
			return 0, 0, "", err
		}
		if md.NumPending == 0 {
			break
		}
	}
	subjects, bad, first := 0, 0, ""
	differ := func(what string) {
		bad++
		if first == "" {
			first = what
		}
	}
	for _, s := range d.DetallePorVendedor {
		subjects++
		m, ok := sellers[s.Empleado]
		switch {
		case !ok:
			differ(s.Empleado + ": no message")
		case m.Seller != s || !m.EsEmpleado:
			differ(fmt.Sprintf("%s: subject %+v, dashboard %+v", s.Empleado, m.Seller, s))
		}
		delete(sellers, s.Empleado)
	}
	for code, m := range sellers {
		if m.EsEmpleado {
			subjects++
			differ(code + ": on its subject, not in the dashboard")
		}
	}
	subjects++
	switch {
	case global == nil:
		differ("no totals message")
	case global.Global != d.MetricasGlobales:
		differ(fmt.Sprintf("totals: subject %+v, dashboard %+v", global.Global, d.MetricasGlobales))
	}
	return subjects, bad, first, nil
}

// lateJoiners times single changes (an employee inserted after a quiet
// interval) from their commit until a consumer created right after the
// commit, and one following the stream all along, see the new totals.
func (e *benchEnv) lateJoiners(ctx context.Context, rig *liveRig) (late, following []time.Duration, err error) {
	global := rig.metricsPrefix + ".global"
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{global}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	employees := func(data []byte) int {
		var g live.GlobalMessage
		if json.Unmarshal(data, &g) != nil {
			return -1
		}
		return g.TotalEmpleados
	}
	var mu sync.Mutex
	seen := map[int]time.Time{}
	follower, err := e.js.OrderedConsumer(ctx, rig.metricsStream, cfg)
	if err != nil {
		return nil, nil, err
	}
	cc, err := follower.Consume(func(m jetstream.Msg) {
		n, at := employees(m.Data()), time.Now()
		mu.Lock()
		if _, ok := seen[n]; !ok {
			seen[n] = at
		}
		mu.Unlock()
	})
	if err != nil {
		return nil, nil, err
	}
	defer cc.Stop()
	d, err := getDashboard(rig.api.url + "/reportes/dashboard")
	if err != nil {
		return nil, nil, err
	}
	insert := fmt.Sprintf("INSERT INTO %s VALUES ($1, 'Empleado', 'vendedor', true)", rig.table)
	for i := 1; i <= lateChanges; i++ {
		time.Sleep(2 * live.DefaultInterval) // a quiet interval: the change goes out at once
		want := d.MetricasGlobales.TotalEmpleados + i
		if _, err := e.conn.Exec(ctx, insert, "L-"+strconv.Itoa(i)); err != nil {
			return nil, nil, err
		}
		commit := time.Now()
		cons, err := e.js.OrderedConsumer(ctx, rig.metricsStream, cfg)
		if err != nil {
			return nil, nil, err
		}
		for {
			m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
			if err != nil {
				return nil, nil, fmt.Errorf("late joiner of change %d: %w", i, err)
			}
			if employees(m.Data()) >= want {
				late = append(late, time.Since(commit))
				break
			}
		}
		if err := poll(10*time.Second, time.Millisecond, func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			at, ok := seen[want]
			if ok {
				following = append(following, at.Sub(commit))
			}
			return ok, nil
		}); err != nil {
			return nil, nil, fmt.Errorf("subscriber following the totals, change %d: %w", i, err)
		}
	}
	return late, following, nil
}

// poll calls done every interval until it reports true or fails, for at
// most timeout.
func poll(timeout, every time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		time.Sleep(every)
	}
}
