package lease_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/lease"
)

// startNATS starts a JetStream server of the test's own.
func startNATS(t *testing.T) *devstack.NATS {
	t.Helper()
	n, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

// connect opens a connection that keeps reconnecting quickly.
func connect(t *testing.T, n *devstack.NATS) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// openStore connects to n and opens the bucket "leases" with ttl.
func openStore(t *testing.T, n *devstack.NATS, ttl time.Duration, who string) (*nats.Conn, *lease.Store) {
	t.Helper()
	nc, js := connect(t, n)
	s, err := lease.Open(context.Background(), js, "leases", ttl, lease.WithLogger(testLogger(t).With("process", who)))
	if err != nil {
		t.Fatal(err)
	}
	return nc, s
}

type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// testLogger logs to the test until it ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// run runs fn(ctx) in a goroutine; the returned stop cancels ctx and waits
// for fn to return, failing the test if it takes longer than 10s. The test
// stops it at its end.
func run(t *testing.T, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("run did not return within 10s of its cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond every 10ms until it holds, failing after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	devstack.Eventually(t, timeout, cond)
}

// runs records the runs of a work function.
type runs struct {
	mu    sync.Mutex
	list  []*workRun
	fails int // how many runs still to fail at once
}

type workRun struct {
	lease      *lease.Lease
	start, end time.Time
	cause      error
}

// work runs until ctx ends, or fails at once while fails is positive.
func (r *runs) work(ctx context.Context) error {
	w := &workRun{lease: lease.FromContext(ctx), start: time.Now()}
	r.mu.Lock()
	r.list = append(r.list, w)
	fail := r.fails > 0
	r.fails--
	r.mu.Unlock()
	if !fail {
		<-ctx.Done()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w.end, w.cause = time.Now(), context.Cause(ctx)
	if fail {
		return context.DeadlineExceeded
	}
	return nil
}

func (r *runs) snapshot() []workRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]workRun, len(r.list))
	for i, w := range r.list {
		out[i] = *w
	}
	return out
}

func (r *runs) last() (workRun, bool) {
	s := r.snapshot()
	if len(s) == 0 {
		return workRun{}, false
	}
	return s[len(s)-1], true
}
