package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

// historyEmployees is how many employees the history figure's stream holds.
const historyEmployees = 1000

// historyState is what the history figure measures of its stream after a
// number of changes.
type historyState struct {
	changes   int
	msgs      uint64
	bytes     uint64  // the stream's own count of the bytes it holds
	diskBytes int64   // the stream's folder on disk
	serverMB  float64 // the NATS server's resident memory, settled
	readyMs   []float64
}

// historyFigure: the stream's size and a fresh api's time to ready after
// e.o.historyChanges[0] and then [1] changes to the same e.o.historyKeys
// orders, published through the ingestor's publisher (per-key subjects,
// the event format) into a stream created as the ingestor creates it
// (compacted). It runs a NATS server of its own, so that the server's
// memory per live key is read from a process that holds nothing else.
func (e *benchEnv) historyFigure(ctx context.Context, rep *report) error {
	dir := filepath.Join(e.dir, "history-nats")
	srv, err := startNATSProcess(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	shared := e.nats
	e.nats = srv // the api processes started below connect to it
	defer func() { e.nats = shared }()
	nc, err := nats.Connect(srv.url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	const name, prefix = "HISTORY", "history.cdc"
	// A short deduplication window, so that the IDs the server holds for
	// it are gone when its memory is read.
	const window = time.Second
	if _, err := stream.Ensure(ctx, js, stream.Config{Name: name, SubjectPrefix: prefix, Duplicates: window}); err != nil {
		return err
	}
	base, err := (&apiProc{cmd: srv.cmd}).rssMB()
	if err != nil {
		return err
	}
	pub, err := stream.NewPublisher(nc, stream.WithSubjectPrefix(prefix), stream.WithMaxPending(8192))
	if err != nil {
		return err
	}
	defer pub.Close()
	fill := historyFill{pub: pub, keys: e.o.historyKeys}
	var states []historyState
	for _, n := range e.o.historyChanges {
		start := time.Now()
		if err := fill.upTo(ctx, n); err != nil {
			return err
		}
		e.logger.Info("history stream filled", "changes", n, "took", time.Since(start).Round(time.Second))
		time.Sleep(window + time.Second) // the deduplication IDs expire
		st, err := e.historyMeasure(ctx, js, srv, dir, name, prefix, n)
		if err != nil {
			return err
		}
		states = append(states, st)
	}
	addHistoryRows(rep, states, base, e.o.historyKeys)
	return nil
}

// historyFill publishes the history figure's events.
type historyFill struct {
	pub  *stream.Publisher
	keys int
	done int // changes published so far
}

// upTo publishes the employees first, then order changes until n of them
// were published in all, and waits for their acknowledgements. Change i
// sets order i % keys to a seller of its own.
func (f *historyFill) upTo(ctx context.Context, n int) error {
	ev := cdc.Event{Source: cdc.SourceMongo, Collection: "inventory_db.orders", CommitTime: time.Unix(1_795_000_000, 0).UTC()}
	if f.done == 0 {
		emp := cdc.Event{Source: cdc.SourcePostgres, Collection: "public.empleados", Op: cdc.OpSnapshot, Position: "0/1", Version: 1,
			CommitTime: ev.CommitTime, Snapshot: "bench@0/1"}
		for i := range historyEmployees {
			emp.ID, emp.Key = fmt.Sprintf("pg:bench:0/1:public.empleados:S-%04d", i), fmt.Sprintf("S-%04d", i)
			emp.After = json.RawMessage(fmt.Sprintf(`{"codigo":"S-%04d","nombre":"Empleado %d","rol":"vendedor","activo":true}`, i, i))
			if err := f.pub.Publish(ctx, &emp); err != nil {
				return err
			}
		}
	}
	after := make([]byte, 0, 128)
	for ; f.done < n; f.done++ {
		i := f.done
		k := i % f.keys
		ev.Op = cdc.OpUpdate
		if i < f.keys {
			ev.Op = cdc.OpInsert
		}
		ev.ID = "mongo:inventory_db.orders:" + strconv.Itoa(i+1) + ".1:0"
		ev.Position, ev.Version = ev.ID[len("mongo:inventory_db.orders:"):len(ev.ID)-2], uint64(i+1)<<32|1
		ev.Key = fmt.Sprintf("%024x", k)
		after = fmt.Appendf(after[:0], `{"_id":{"$oid":"%024x"},"vendedor":"S-%04d","producto":"Tornillos M6","cantidad":%d}`, k, (i/f.keys+k)%historyEmployees, i%100)
		ev.After = after
		if err := f.pub.Publish(ctx, &ev); err != nil {
			return err
		}
	}
	return f.pub.Flush(ctx)
}

// historyMeasure reads the stream's size and the server's memory, and
// times fresh api processes from start to ready.
func (e *benchEnv) historyMeasure(ctx context.Context, js jetstream.JetStream, srv *natsProcess, dir, name, prefix string, changes int) (historyState, error) {
	st := historyState{changes: changes}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return st, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return st, err
	}
	st.msgs, st.bytes = info.State.Msgs, info.State.Bytes
	if st.diskBytes, err = dirBytes(filepath.Join(dir, "jetstream")); err != nil {
		return st, err
	}
	if st.serverMB, err = (&apiProc{cmd: srv.cmd}).rssMB(); err != nil {
		return st, err
	}
	for run := range e.o.runs + 1 {
		start := time.Now()
		api, err := e.startAPIPolling(name, prefix, 5*time.Millisecond)
		if err != nil {
			return st, err
		}
		took := time.Since(start)
		d, err := getDashboard(api.url + "/reportes/dashboard")
		api.stop()
		if err != nil {
			return st, err
		}
		if got := d.MetricasGlobales.TotalPedidosProcesados; got != e.o.historyKeys {
			return st, fmt.Errorf("after %d changes the view holds %d orders, want %d", changes, got, e.o.historyKeys)
		}
		if run > 0 { // the first start warms the page cache and the server's block caches
			st.readyMs = append(st.readyMs, float64(took.Microseconds())/1000)
		}
	}
	e.logger.Info("history measured", "changes", changes, "msgs", st.msgs, "bytes", st.bytes, "disk_bytes", st.diskBytes,
		"server_mb", st.serverMB, "ready_ms", st.readyMs)
	return st, nil
}

// addHistoryRows reports the last state against the first.
func addHistoryRows(rep *report, states []historyState, baseMB float64, keys int) {
	first, last := states[0], states[len(states)-1]
	mb := func(b float64) float64 { return b / 1e6 }
	growth := float64(last.changes) / float64(first.changes)
	perMsg := float64(first.bytes) / float64(first.msgs)
	rep.add(row{figure: fmt.Sprintf("Bounded history: stream size after %s changes to the same %s orders (MB)", thousands(last.changes), thousands(keys)),
		ours: summarize([]float64{mb(float64(last.bytes))}), ref: summarize([]float64{mb(float64(first.bytes))}),
		refName: "after " + thousands(first.changes), ratios: []float64{float64(last.bytes) / float64(first.bytes)}, unit: "MB",
		maxRatio: 1.5, barText: fmt.Sprintf("<= 1.5 while changes grow %.0fx", growth),
		note: fmt.Sprintf("a stream as the ingestor creates it (NATS_HISTORY=compact): %d then %d messages, one per key; on disk %.1f then %.1f MB; keeping every event it would hold about %.0f MB (%.0f bytes per message)",
			first.msgs, last.msgs, mb(float64(first.diskBytes)), mb(float64(last.diskBytes)), mb(perMsg*float64(last.changes+historyEmployees)), perMsg)})
	rep.add(row{figure: fmt.Sprintf("Bounded history: a fresh api process from start to ready after %s changes to the same %s orders (ms)", thousands(last.changes), thousands(keys)),
		ours: summarize(last.readyMs), ref: summarize(first.readyMs), refName: "after " + thousands(first.changes),
		ratios: ratios(last.readyMs, first.readyMs), unit: "ms", maxRatio: 1.5, barText: fmt.Sprintf("<= 1.5 while changes grow %.0fx", growth),
		note: "view snapshots off: the whole compacted stream is replayed; one start before the timed ones is not counted"})
	perKey := func(s historyState) float64 { return (s.serverMB - baseMB) * 1e6 / float64(s.msgs) }
	rep.add(row{figure: "Bounded history: NATS server resident memory per live key (bytes)",
		ours: summarize([]float64{perKey(last)}), ref: summarize([]float64{perKey(first)}), refName: "after " + thousands(first.changes),
		ratios: []float64{perKey(last) / perKey(first)},
		note:   fmt.Sprintf("growth of a NATS server process of its own over its reading with the empty stream (%.0f MB), per message held, once the deduplication IDs expired: %.0f then %.0f MB", baseMB, first.serverMB, last.serverMB)})
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
