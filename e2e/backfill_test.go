package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
)

// TestBackfillUnderLoad: `ingestor backfill` of each source, in small
// chunks, while the mixed workload runs and the ingestor is killed with
// SIGKILL in the middle: the command reports the backfill done, the
// backfill resumed instead of starting over, and the dashboard equals the
// recount. Before the MongoDB backfill the stream is given an order that
// does not exist (as if its delete had been lost): the full backfill's
// snapshot_end removes it.
func TestBackfillUnderLoad(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	w := newWorkload(e, 22)
	for range 8 {
		w.hire(t)
	}
	w.orders(t, 600)
	e.start("ingestor")
	e.start("api")
	e.converges(120 * time.Second)

	e.publishGhostOrder(t)
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		got, err := e.dashboard()
		want := e.recount()
		return err == nil && got.MetricasGlobales.TotalPedidosProcesados == want.MetricasGlobales.TotalPedidosProcesados+1,
			"the view counts the order that does not exist"
	})

	for _, source := range []string{cdc.SourceMongo, cdc.SourcePostgres} {
		chunk := "60"
		if source == cdc.SourcePostgres {
			for range 100 {
				w.hire(t)
			}
			chunk = "10"
		}
		cli, out := e.command(t, "ingestor", "backfill", source, "--chunk-size", chunk)
		bf := e.waitBackfill(t, source, func(b cdc.Backfill) bool { return b.Chunks >= 3 }, w)
		e.kill("ingestor", syscall.SIGKILL)
		for range 20 {
			w.step(t)
		}
		e.start("ingestor")
		done := make(chan error, 1)
		go func() { done <- cli.Wait() }()
		e.stepUntil(t, w, done, 300*time.Second)
		if !strings.Contains(out.String(), "done:") {
			t.Fatalf("ingestor backfill %s output:\n%s", source, out.String())
		}
		final := e.waitBackfill(t, source, func(b cdc.Backfill) bool { return b.ID == bf.ID && b.Over() }, nil)
		t.Logf("backfill %s: %d rows published, %d superseded, %d chunks; resumed after %d chunks; output ends: %s",
			source, final.Rows, final.Superseded, final.Chunks, bf.Chunks, tail(strings.TrimSpace(out.String()), 160))
		if final.State != cdc.BackfillDone || final.Rows == 0 {
			t.Fatalf("backfill %s: %+v", source, final)
		}
	}
	e.converges(120 * time.Second)
	report(t, "backfill", w, 2, e)
}

// command runs a binary with the deployment's environment and returns it
// running, with its output.
func (e *env) command(t *testing.T, binary string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, binary), args...)
	cmd.Env = os.Environ()
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &bytes.Buffer{}
	w := &syncWriter{w: out, mu: &e.mu}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, out
}

// stepUntil runs workload steps until done reports the command's exit,
// which must be a success.
func (e *env) stepUntil(t *testing.T, w *workload, done <-chan error, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("command failed: %v", err)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("command still running after %s", timeout)
		}
		w.step(t)
	}
}

// waitBackfill runs workload steps (when w is set) until the newest
// backfill of source satisfies ok, and returns it.
func (e *env) waitBackfill(t *testing.T, source string, ok func(cdc.Backfill) bool, w *workload) cdc.Backfill {
	t.Helper()
	nc, err := nats.Connect(e.stack.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), e.vars["NATS_CHECKPOINT_BUCKET"])
	if err != nil {
		t.Fatal(err)
	}
	var last cdc.Backfill
	devstack.Eventually(t, 180*time.Second, func() (bool, string) {
		if w != nil {
			w.step(t)
		}
		keys, _ := kv.Keys(context.Background())
		last = cdc.Backfill{}
		for _, k := range keys {
			if !strings.HasPrefix(k, cdc.BackfillKey(source, "")) {
				continue
			}
			entry, err := kv.Get(context.Background(), k)
			var b cdc.Backfill
			if err == nil && json.Unmarshal(entry.Value(), &b) == nil && b.Requested.After(last.Requested) {
				last = b
			}
		}
		return ok(last), fmt.Sprintf("backfill of %s: %+v", source, last)
	})
	return last
}

// publishGhostOrder publishes an insert of an order that is in no source,
// at a version older than any backfill to come.
func (e *env) publishGhostOrder(t *testing.T) {
	t.Helper()
	nc, err := nats.Connect(e.stack.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ev := cdc.Event{ID: "ghost:1", Source: cdc.SourceMongo, Collection: e.schema.Orders, Op: cdc.OpInsert, Key: "ghost",
		Position: "1.1", Version: 1, CommitTime: time.Now().UTC(), After: json.RawMessage(`{"_id":"ghost","vendedor":"S-001"}`)}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(context.Background(), cdc.Subject(e.vars["NATS_SUBJECT_PREFIX"], &ev), data); err != nil {
		t.Fatal(err)
	}
}
