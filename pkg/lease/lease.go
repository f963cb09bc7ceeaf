package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lease is a name held by a holder. Its methods are safe for concurrent use;
// Renew and Release are serialised.
type Lease struct {
	store  *Store
	name   string
	holder string

	op sync.Mutex // serialises Renew and Release

	mu    sync.Mutex
	rev   uint64
	sent  time.Time // when the last successful write was sent
	ended error     // why the lease is no longer held, nil while it is
}

func (s *Store) newLease(name, holder string, rev uint64, sent time.Time) *Lease {
	return &Lease{store: s, name: name, holder: holder, rev: rev, sent: sent}
}

// Name returns the leased name.
func (l *Lease) Name() string { return l.name }

// Holder returns the holder the lease was acquired for.
func (l *Lease) Holder() string { return l.holder }

// Revision returns the revision of the key's last write by this lease. It
// grows with every acquisition and renewal, and any later holder of the
// name gets a greater one, so it can serve as a fencing token.
func (l *Lease) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

// Expires returns the earliest time, on this process's clock, at which the
// key may expire if it is not renewed: the TTL after the last successful
// write was sent.
func (l *Lease) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent.Add(l.store.ttl)
}

// Err returns nil while the lease may be held, and an error wrapping ErrLost
// once a renewal found it lost or it was released.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

func (l *Lease) state() (rev uint64, sent time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev, l.sent, l.ended
}

func (l *Lease) wrote(rev uint64, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rev, l.sent = rev, sent
}

func (l *Lease) end(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended == nil {
		l.ended = err
	}
	return l.ended
}

// Renew rewrites the key on the revision last written, pushing its expiry
// one TTL past the moment the request is sent. When the key was rewritten
// by another holder, deleted or expired, it returns an error wrapping
// ErrLost and the lease is over; any other error (NATS unreachable, a
// timeout) leaves it as it was, to be renewed again. When a timed-out
// renewal did reach the server, the next one finds the key rewritten with
// the lease's own holder and takes it over, as Acquire would.
func (l *Lease) Renew(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	rev, _, err := l.state()
	if err != nil {
		return err
	}
	sent := time.Now()
	next, err := l.store.kv.Update(ctx, l.name, []byte(l.holder), rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return l.reclaim(ctx, rev)
	}
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", l.name, err)
	}
	l.wrote(next, sent)
	return nil
}

// reclaim handles a renewal that found the key at another revision than
// rev: the key is still the lease's when it holds its own holder string.
func (l *Lease) reclaim(ctx context.Context, rev uint64) error {
	e, err := l.store.kv.Get(ctx, l.name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return l.end(fmt.Errorf("renew lease %s: %w: the key expired or was deleted", l.name, ErrLost))
	case err != nil:
		return fmt.Errorf("renew lease %s: %w", l.name, err)
	case string(e.Value()) != l.holder || e.Revision() < rev:
		return l.end(fmt.Errorf("renew lease %s: %w: %s holds it", l.name, ErrLost, e.Value()))
	}
	sent := time.Now()
	next, err := l.store.kv.Update(ctx, l.name, []byte(l.holder), e.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return l.end(fmt.Errorf("renew lease %s: %w: the key keeps changing", l.name, ErrLost))
	}
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", l.name, err)
	}
	l.wrote(next, sent)
	return nil
}

// errReleased ends a released lease.
var errReleased = fmt.Errorf("%w: released", ErrLost)

// Release deletes the key if it is still at the revision last written, so
// that it never deletes a lease another holder took, and hands the name to
// the next Acquire at once. Releasing a released lease does nothing; one
// that was lost returns an error wrapping ErrLost. After a failure other
// than a loss the lease is still held and Release may be called again.
func (l *Lease) Release(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	rev, _, err := l.state()
	if errors.Is(err, errReleased) {
		return nil
	}
	if err != nil {
		return err
	}
	err = l.store.kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return l.end(fmt.Errorf("release lease %s: %w: it was rewritten or expired", l.name, ErrLost))
	}
	if err != nil {
		return fmt.Errorf("release lease %s: %w", l.name, err)
	}
	_ = l.end(errReleased) // the first end wins; a release ends nothing that ended before
	return nil
}

type leaseKey struct{}

// FromContext returns the lease a Keeper's or a Share's work runs under, or
// nil outside such work. Work can fence its writes with its Revision.
func FromContext(ctx context.Context) *Lease {
	l, _ := ctx.Value(leaseKey{}).(*Lease)
	return l
}

func withLease(ctx context.Context, l *Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}
