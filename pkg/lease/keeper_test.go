package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/lease"
)

func newKeeper(t *testing.T, s *lease.Store, holder string, r *runs, opts ...lease.RunOption) *lease.Keeper {
	t.Helper()
	k, err := lease.NewKeeper(s, "source.pg", holder, r.work, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitWorking waits until the Keeper's work runs and returns that run.
func waitWorking(t *testing.T, k *lease.Keeper, r *runs, timeout time.Duration) workRun {
	t.Helper()
	var w workRun
	eventually(t, timeout, func() (bool, string) {
		var ok bool
		w, ok = r.last()
		return ok && w.end.IsZero() && k.Held(), "the keeper's work does not run"
	})
	return w
}

func TestKeeperStopsWorkBeforeItsLeaseCanExpire(t *testing.T) {
	const ttl = 2 * time.Second
	n := startNATS(t)
	_, s := openStore(t, n, ttl, "a")
	r := &runs{}
	k := newKeeper(t, s, "a", r)
	run(t, k.Run)
	w := waitWorking(t, k, r, 5*ttl)
	if w.lease == nil || w.lease != k.Lease() || w.lease.Holder() != "a" {
		t.Fatalf("the work runs under lease %v, want the keeper's", w.lease)
	}
	// Let a renewal happen, then take NATS away.
	rev := w.lease.Revision()
	eventually(t, ttl, func() (bool, string) {
		return w.lease.Revision() > rev, "the lease is not renewed"
	})
	n.Stop()
	stopped := time.Now()
	eventually(t, ttl, func() (bool, string) {
		w, _ = r.last()
		return !w.end.IsZero(), "the work still runs"
	})
	if k.Held() {
		t.Fatal("Held after the work was cancelled")
	}
	margin := w.lease.Expires().Sub(w.end)
	t.Logf("work cancelled %s after NATS stopped, %s after the last renewal, %s before the lease could expire",
		w.end.Sub(stopped), w.end.Sub(w.lease.Expires().Add(-ttl)), margin)
	if margin < ttl/4 {
		t.Fatalf("work stopped only %s before its lease could expire", margin)
	}
	if !errors.Is(w.cause, lease.ErrLost) {
		t.Fatalf("work cancelled because %v, want ErrLost", w.cause)
	}
	restart := time.Now()
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	w = waitWorking(t, k, r, 3*ttl)
	t.Logf("the keeper works again %s after NATS was restarted", w.start.Sub(restart))
}

func TestKeeperTakeoverWhenTheHolderDies(t *testing.T) {
	testTakeover(t, startNATS(t))
}

// TestKeeperTakeoverWithoutLimitMarkers: in a bucket an operator created
// without limit markers, expiries make no watch event and polling finds them.
func TestKeeperTakeoverWithoutLimitMarkers(t *testing.T) {
	n := startNATS(t)
	_, js := connect(t, n)
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{
		Bucket: "leases", TTL: 2 * time.Second, History: 1}); err != nil {
		t.Fatal(err)
	}
	testTakeover(t, n)
}

func testTakeover(t *testing.T, n *devstack.NATS) {
	const ttl = 2 * time.Second
	ncA, sa := openStore(t, n, ttl, "a")
	_, sb := openStore(t, n, ttl, "b")
	ra, rb := &runs{}, &runs{}
	a, b := newKeeper(t, sa, "a", ra), newKeeper(t, sb, "b", rb)
	run(t, a.Run)
	waitWorking(t, a, ra, 5*ttl)
	run(t, b.Run)
	eventually(t, ttl, func() (bool, string) {
		h, err := b.Holder(context.Background())
		return h == "a" && err == nil, "b does not see a hold the lease"
	})
	if b.Held() {
		t.Fatal("both keepers hold the lease")
	}
	ncA.Close() // a's process dies: no more renewals, no release
	died := time.Now()
	wb := waitWorking(t, b, rb, 5*ttl)
	took := wb.start.Sub(died)
	t.Logf("b took over %s after a died (TTL %s, renew interval %s)", took, ttl, ttl/3)
	wa, _ := ra.last()
	if wa.end.IsZero() || !wa.end.Before(wb.start) {
		t.Fatalf("a's work (cancelled at %v) overlapped b's (started at %v)", wa.end, wb.start)
	}
	t.Logf("a's work stopped %s before b's started", wb.start.Sub(wa.end))
}

func TestKeeperGracefulStopHandsOverAtOnce(t *testing.T) {
	const ttl = 2 * time.Second
	n := startNATS(t)
	_, sa := openStore(t, n, ttl, "a")
	_, sb := openStore(t, n, ttl, "b")
	ra, rb := &runs{}, &runs{}
	a, b := newKeeper(t, sa, "a", ra), newKeeper(t, sb, "b", rb)
	stopA := run(t, a.Run)
	waitWorking(t, a, ra, 5*ttl)
	run(t, b.Run)
	eventually(t, ttl, func() (bool, string) {
		h, err := sb.Holder(context.Background(), "source.pg")
		return h == "a" && err == nil, "b does not see a hold the lease"
	})
	// Let b's watch settle so that the handover does not depend on polling.
	eventually(t, ttl, func() (bool, string) {
		return !b.Held() && len(rb.snapshot()) == 0, "b works"
	})
	stopping := time.Now()
	stopA()
	wb := waitWorking(t, b, rb, 5*ttl)
	took := wb.start.Sub(stopping)
	t.Logf("b took over %s after a was asked to stop", took)
	if took >= ttl {
		t.Fatalf("graceful handover took %s: a's lease expired instead of being released", took)
	}
	wa, _ := ra.last()
	if !wa.end.Before(wb.start) || !errors.Is(wa.cause, context.Canceled) {
		t.Fatalf("a's work ended at %v (%v), b's started at %v", wa.end, wa.cause, wb.start)
	}
}

func TestKeeperRestartsFailingWorkWhileHolding(t *testing.T) {
	const ttl = 2 * time.Second
	n := startNATS(t)
	_, s := openStore(t, n, ttl, "a")
	r := &runs{fails: 3}
	k := newKeeper(t, s, "a", r, lease.WithRestartBackoff(10*time.Millisecond, 50*time.Millisecond))
	run(t, k.Run)
	waitWorking(t, k, r, 5*ttl)
	all := r.snapshot()
	if len(all) != 4 {
		t.Fatalf("%d runs, want 3 failures then one that runs", len(all))
	}
	for _, w := range all[1:] {
		if w.lease != all[0].lease {
			t.Fatal("work was restarted under another lease: the keeper let its lease go")
		}
	}
}

// TestKeeperLearnsAtItsNextRenewalThatItsLeaseWasTaken: an operator deletes
// the key and another process takes the name; the holder's work is
// cancelled at its next renewal, and it stands by until the name is free.
func TestKeeperLearnsAtItsNextRenewalThatItsLeaseWasTaken(t *testing.T) {
	const ttl = 2 * time.Second
	n := startNATS(t)
	_, sa := openStore(t, n, ttl, "a")
	_, js := connect(t, n)
	_, sb := openStore(t, n, ttl, "b")
	r := &runs{}
	k := newKeeper(t, sa, "a", r)
	run(t, k.Run)
	waitWorking(t, k, r, 5*ttl)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "source.pg"); err != nil {
		t.Fatal(err)
	}
	b, err := sb.Acquire(ctx, "source.pg", "b")
	if err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	var w workRun
	eventually(t, ttl, func() (bool, string) {
		w, _ = r.last()
		return !w.end.IsZero(), "a still works"
	})
	t.Logf("a's work cancelled %s after b took the lease (%v)", w.end.Sub(taken), w.cause)
	if !errors.Is(w.cause, lease.ErrLost) {
		t.Fatalf("a's work cancelled %s after b took the lease, because %v", w.end.Sub(taken), w.cause)
	}
	if h, _ := k.Holder(ctx); h != "b" || k.Held() {
		t.Fatalf("holder %q, a holds: %v", h, k.Held())
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitWorking(t, k, r, ttl/2)
}
