package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Keeper holds one name for as long as it can and runs work while it holds
// it: the holder of a source's capture, with standbys running Keepers of the
// same name.
type Keeper struct {
	store  *Store
	name   string
	holder string
	work   func(context.Context) error
	opts   runOptions
	logger *slog.Logger
	cur    atomic.Pointer[holding]
}

// NewKeeper returns a Keeper of name for holder (unique among live
// processes, see the package documentation) running work while it holds
// the lease.
func NewKeeper(store *Store, name, holder string, work func(ctx context.Context) error, opts ...RunOption) (*Keeper, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if holder == "" || work == nil {
		return nil, fmt.Errorf("keeper of %s: holder and work are required", name)
	}
	return &Keeper{store: store, name: name, holder: holder, work: work, opts: newRunOptions(opts),
		logger: store.logger.With("lease", name, "holder", holder)}, nil
}

// Run tries to acquire the lease until ctx ends: at once when a watch sees
// the key deleted or expired, and every TTL/4 otherwise (TTL/6 in a bucket
// without limit markers). While it holds the
// lease it renews it every TTL/3 and runs work with a context (carrying the
// lease, see FromContext) that is cancelled when the lease is lost or not
// renewed within 2/3 of the TTL of its last write; work that returns before
// is started again with backoff. Once work returned after a loss, Run tries
// to acquire the lease again. When ctx ends Run cancels the work, waits for
// it, releases the lease so that a standby takes over at once, and returns
// nil.
func (k *Keeper) Run(ctx context.Context) error {
	change := k.store.changes(ctx, k.name)
	for ctx.Err() == nil {
		l, err := k.acquire(ctx)
		if err == nil {
			k.hold(ctx, l)
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrHeld) {
			k.logger.Debug("lease held elsewhere; standing by", "err", err)
		} else {
			k.logger.Warn("acquire lease", "err", err)
		}
		wait(ctx, change, k.store.poll)
	}
	return nil //nolint:nilerr // ctx ended: the process stops, which is no error of the keeper's
}

func (k *Keeper) acquire(ctx context.Context) (*Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, k.store.ttl/renewEvery)
	defer cancel()
	return k.store.Acquire(ctx, k.name, k.holder)
}

// hold runs the work under l until the lease is lost or ctx ends.
func (k *Keeper) hold(ctx context.Context, l *Lease) {
	k.logger.Info("lease acquired", "revision", l.Revision())
	h := startHolding(ctx, l, k.work, k.opts, k.logger)
	k.cur.Store(h)
	defer k.cur.Store(nil)
	select {
	case <-h.lost:
	case <-ctx.Done():
	}
	h.stop(ctx)
}

// Held reports whether the Keeper holds the lease and its work may run.
func (k *Keeper) Held() bool {
	h := k.cur.Load()
	return h != nil && h.active()
}

// Lease returns the lease the Keeper holds, or nil.
func (k *Keeper) Lease() *Lease {
	if h := k.cur.Load(); h != nil && h.active() {
		return h.lease
	}
	return nil
}

// Holder returns who holds the Keeper's name, or "" when no one does.
func (k *Keeper) Holder(ctx context.Context) (string, error) { return k.store.Holder(ctx, k.name) }
