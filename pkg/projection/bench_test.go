package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reportes/reportes/pkg/cdc"
)

func orderEvent(i int) []byte {
	ev := cdc.Event{
		ID: fmt.Sprintf("mongo:inventory_db.orders:%d.1:0", i), Source: cdc.SourceMongo, Collection: "inventory_db.orders",
		Op: cdc.OpInsert, Key: fmt.Sprintf("%024x", i), Position: fmt.Sprintf("%d.1", i), Version: uint64(i),
		CommitTime: time.Unix(1_700_000_000, 0).UTC(),
		After:      json.RawMessage(fmt.Sprintf(`{"_id":{"$oid":"%024x"},"vendedor":"S-%04d","producto":"Tornillos M6","cantidad":100}`, i, i%1000)),
	}
	data, _ := json.Marshal(ev)
	return data
}

// BenchmarkDecodeEvent: decoding one order event from its wire form.
func BenchmarkDecodeEvent(b *testing.B) {
	data := orderEvent(1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ev cdc.Event
	for b.Loop() {
		if err := cdc.Decode(data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyOrder: applying a decoded order insert to a view that
// already holds 100k orders over 1,000 sellers.
func BenchmarkApplyOrder(b *testing.B) {
	v, _ := NewView(DefaultSchema())
	evs := make([]cdc.Event, 200_000)
	for i := range evs {
		if err := cdc.Decode(orderEvent(i), &evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100_000 {
		_, _ = v.Apply(&evs[i], uint64(i+1))
	}
	b.ReportAllocs()
	i := 100_000
	for b.Loop() {
		_, _ = v.Apply(&evs[i%len(evs)], uint64(i+1))
		i++
	}
}

// BenchmarkDecodeAndApply: the projector's whole per-event cost.
func BenchmarkDecodeAndApply(b *testing.B) {
	v, _ := NewView(DefaultSchema())
	data := make([][]byte, 100_000)
	for i := range data {
		data[i] = orderEvent(i)
	}
	b.ReportAllocs()
	var ev cdc.Event
	i := 0
	for b.Loop() {
		if err := cdc.Decode(data[i%len(data)], &ev); err != nil {
			b.Fatal(err)
		}
		_, _ = v.Apply(&ev, uint64(i+1))
		i++
	}
}

func viewWithSellers(b *testing.B, sellers, orders int) *View {
	v, _ := NewView(DefaultSchema())
	seq := uint64(0)
	for i := range sellers {
		seq++
		ev := cdc.Event{ID: "e", Source: cdc.SourcePostgres, Collection: "public.empleados", Op: cdc.OpInsert,
			Key: fmt.Sprintf("S-%04d", i), After: json.RawMessage(fmt.Sprintf(`{"codigo":"S-%04d","rol":"vendedor","activo":true}`, i))}
		_, _ = v.Apply(&ev, seq)
	}
	var ev cdc.Event
	for i := range orders {
		seq++
		_ = cdc.Decode(orderEvent(i), &ev)
		_, _ = v.Apply(&ev, seq)
	}
	return v
}

// BenchmarkRenderDashboard: rendering the JSON after a change (cache miss),
// 1,000 sellers.
func BenchmarkRenderDashboard(b *testing.B) {
	v := viewWithSellers(b, 1000, 10_000)
	ev := cdc.Event{ID: "x", Source: cdc.SourceMongo, Collection: "inventory_db.orders", Op: cdc.OpInsert, Key: "k",
		After: json.RawMessage(`{"vendedor":"S-0001"}`)}
	b.ReportAllocs()
	seq := uint64(1 << 40)
	for b.Loop() {
		seq++
		ev.Version = seq
		_, _ = v.Apply(&ev, seq)
		if len(v.JSON()) == 0 {
			b.Fatal("empty")
		}
	}
}

// BenchmarkServeCachedDashboard: what a GET costs when nothing changed.
func BenchmarkServeCachedDashboard(b *testing.B) {
	v := viewWithSellers(b, 1000, 10_000)
	_ = v.JSON()
	b.ReportAllocs()
	for b.Loop() {
		if len(v.JSON()) == 0 {
			b.Fatal("empty")
		}
	}
}

// BenchmarkSnapshot: encoding and restoring a view of 1,000,000 orders over
// 1,000 sellers.
func BenchmarkSnapshot(b *testing.B) {
	v, _ := NewView(DefaultSchema())
	for i := range 1_000_000 {
		var ev cdc.Event
		if err := cdc.Decode(orderEvent(i), &ev); err != nil {
			b.Fatal(err)
		}
		_, _ = v.Apply(&ev, uint64(i+1))
	}
	data, _ := v.Snapshot()
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			v.Snapshot()
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			w, _ := NewView(DefaultSchema())
			if _, err := w.Restore(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRebuildPipeline: the projector's side of a rebuild, per event:
// 1,000,000 distinct order inserts (over 1,000 sellers) handed to the
// pipeline as the NATS client delivers them, reply subject included, and
// applied to an empty view. What nats.go and the NATS server spend is
// measured by make bench, not here.
func BenchmarkRebuildPipeline(b *testing.B) {
	const n = 1_000_000
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		msgs[i] = &nats.Msg{
			Subject: cdc.DefaultSubjectPrefix + ".mongo.inventory_db.orders",
			Reply:   fmt.Sprintf("$JS.ACK.CDC.c.1.%d.%d.1764201600000000000.%d", i+1, i+1, n-i-1),
			Data:    orderEvent(i),
		}
	}
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as cmd/api sets it for a rebuild (REBUILD_GC_PERCENT's default)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for b.Loop() {
		v, _ := NewView(DefaultSchema())
		p := &Projector{view: v, dest: viewTarget{v}, opts: projectorOptions{subjectPrefix: cdc.DefaultSubjectPrefix, logger: slog.New(slog.DiscardHandler), batchSize: defaultBatchSize}}
		pl := p.newPipeline(context.Background(), func(err error) { b.Fatal(err) })
		for _, m := range msgs {
			if err := pl.add(m); err != nil {
				b.Fatal(err)
			}
		}
		pl.close()
		if got := v.Seq(); got != n {
			b.Fatalf("view at seq %d, want %d", got, n)
		}
	}
	// On 2 cores the NATS server competes for the CPU: what the pipeline
	// spends on both its goroutines, not its elapsed time, bounds a rebuild.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
