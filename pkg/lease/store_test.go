package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/lease"
)

func TestOpenCreatesTheBucketAndChecksItsTTL(t *testing.T) {
	n := startNATS(t)
	_, js := connect(t, n)
	ctx := context.Background()
	if _, err := lease.Open(ctx, js, "leases", 500*time.Millisecond); err == nil {
		t.Fatal("Open accepted a TTL below MinTTL")
	}
	s, err := lease.Open(ctx, js, "leases", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.TTL() != 2*time.Second {
		t.Fatalf("TTL %s", s.TTL())
	}
	kv, err := js.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 2*time.Second || st.History() != 1 || st.LimitMarkerTTL() != 2*time.Second {
		t.Fatalf("bucket TTL %s, history %d, limit marker TTL %s; want 2s, 1, 2s", st.TTL(), st.History(), st.LimitMarkerTTL())
	}
	if _, err := lease.Open(ctx, js, "leases", 2*time.Second); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := lease.Open(ctx, js, "leases", 3*time.Second); !errors.Is(err, lease.ErrBucketTTL) {
		t.Fatalf("open with another TTL: %v, want ErrBucketTTL", err)
	}
}

func TestAcquireRenewRelease(t *testing.T) {
	n := startNATS(t)
	_, s := openStore(t, n, 2*time.Second, "p")
	ctx := context.Background()
	a, err := s.Acquire(ctx, "source.pg", "a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "source.pg" || a.Holder() != "a" || a.Revision() == 0 || a.Err() != nil {
		t.Fatalf("lease %s of %s at revision %d (%v)", a.Name(), a.Holder(), a.Revision(), a.Err())
	}
	_, err = s.Acquire(ctx, "source.pg", "b")
	var held *lease.HeldError
	if !errors.Is(err, lease.ErrHeld) || !errors.As(err, &held) || held.Holder != "a" {
		t.Fatalf("second acquire: %v, want ErrHeld by a", err)
	}
	if h, err := s.Holder(ctx, "source.pg"); err != nil || h != "a" {
		t.Fatalf("Holder = %q, %v", h, err)
	}
	rev := a.Revision()
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Revision() <= rev {
		t.Fatalf("revision %d after renewal, was %d", a.Revision(), rev)
	}
	again, err := s.Acquire(ctx, "source.pg", "a")
	if err != nil {
		t.Fatalf("the holder could not take over its own lease: %v", err)
	}
	if again.Revision() <= a.Revision() {
		t.Fatalf("revision %d after the takeover, was %d", again.Revision(), a.Revision())
	}
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Release(ctx); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if err := again.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renewing a released lease: %v, want ErrLost", err)
	}
	if h, err := s.Holder(ctx, "source.pg"); err != nil || h != "" {
		t.Fatalf("Holder after release = %q, %v", h, err)
	}
	if _, err := s.Acquire(ctx, "bad name", "a"); err == nil {
		t.Fatal("acquired an invalid name")
	}
}

func TestALostLeaseNeitherRenewsNorReleases(t *testing.T) {
	n := startNATS(t)
	_, s := openStore(t, n, 2*time.Second, "p")
	ctx := context.Background()
	a, err := s.Acquire(ctx, "source.pg", "a")
	if err != nil {
		t.Fatal(err)
	}
	_, js := connect(t, n)
	kv, err := js.KeyValue(ctx, "leases")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "source.pg"); err != nil { // an operator frees the name
		t.Fatal(err)
	}
	b, err := s.Acquire(ctx, "source.pg", "b")
	if err != nil {
		t.Fatalf("acquire after the deletion: %v", err)
	}
	if b.Revision() <= a.Revision() {
		t.Fatalf("revision %d of the next holder, not above %d", b.Revision(), a.Revision())
	}
	if err := a.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renewing a lease another holder took: %v, want ErrLost", err)
	}
	if err := a.Release(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("releasing a lost lease: %v, want ErrLost", err)
	}
	if h, _ := s.Holder(ctx, "source.pg"); h != "b" {
		t.Fatalf("a lost lease's release removed b's lease: holder %q", h)
	}
	if !errors.Is(a.Err(), lease.ErrLost) || b.Err() != nil {
		t.Fatalf("Err of the lost lease %v, of the held one %v", a.Err(), b.Err())
	}
}

func TestExpiryLetsAnotherAcquire(t *testing.T) {
	const ttl = time.Second
	n := startNATS(t)
	_, s := openStore(t, n, ttl, "p")
	ctx := context.Background()
	a, err := s.Acquire(ctx, "x", "a")
	if err != nil {
		t.Fatal(err)
	}
	var b *lease.Lease
	eventually(t, 3*ttl, func() (bool, string) {
		b, err = s.Acquire(ctx, "x", "b")
		return err == nil, "b cannot acquire: " + errString(err)
	})
	// Expires is a lower bound of the key's expiry: b cannot have got it before.
	after := time.Since(a.Expires())
	t.Logf("b acquired the expired lease %s after its expiry time", after)
	if after < 0 {
		t.Fatalf("b acquired the lease %s before it could expire", -after)
	}
	if err := a.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renewing an expired lease: %v, want ErrLost", err)
	}
	if b.Revision() <= a.Revision() {
		t.Fatalf("revision %d of the next holder, not above %d", b.Revision(), a.Revision())
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
