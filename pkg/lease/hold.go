package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// The timing rules, as divisors of the TTL: a lease is renewed every TTL/3
// after its last write was sent and a failed renewal is retried every
// TTL/12; standbys and Shares poll every TTL/4, or every TTL/6 in a bucket
// without limit markers, where polling alone sees keys expire.
const (
	renewEvery         = 3
	retryEvery         = 12
	pollEvery          = 4
	pollEveryUnwatched = 6
)

// workWindow is how long after its last successful write a lease keeps its
// work running without renewing it: 2/3 of the TTL, which leaves the work
// TTL/3 to stop before the key can expire.
func workWindow(ttl time.Duration) time.Duration { return ttl * 2 / 3 }

// RunOption configures a Keeper or a Share.
type RunOption func(*runOptions)

type runOptions struct {
	minBackoff, maxBackoff time.Duration
}

func newRunOptions(opts []RunOption) runOptions {
	o := runOptions{minBackoff: 100 * time.Millisecond, maxBackoff: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithRestartBackoff sets the wait before work that returned is started
// again while the lease is still held: initial, doubling up to maximum, and
// from initial again after a run that lasted a minute (default 100ms and
// 10s).
func WithRestartBackoff(initial, maximum time.Duration) RunOption {
	return func(o *runOptions) { o.minBackoff, o.maxBackoff = initial, maximum }
}

// errStopped is the cause of the cancellation of work its owner stopped.
var errStopped = errors.New("lease: work stopped by its owner")

// holding runs work while it renews a lease. Its work ends when the lease
// is lost (a renewal says so or the work window passes without a successful
// one), when the parent context ends, or on stop.
type holding struct {
	lease     *Lease
	logger    *slog.Logger
	ctx       context.Context // the work's
	cancel    context.CancelCauseFunc
	stopRenew context.CancelFunc
	lostOnce  sync.Once
	lost      chan struct{} // closed when the lease is lost
	workDone  chan struct{} // closed when the work returned for good
	renewDone chan struct{} // closed when renewals ended
}

// startHolding starts renewing l and running work; logger should name the
// lease.
func startHolding(parent context.Context, l *Lease, work func(context.Context) error, o runOptions, logger *slog.Logger) *holding {
	wctx, cancel := context.WithCancelCause(withLease(parent, l))
	rctx, stopRenew := context.WithCancel(context.WithoutCancel(parent))
	h := &holding{
		lease: l, logger: logger,
		ctx: wctx, cancel: cancel, stopRenew: stopRenew,
		lost: make(chan struct{}), workDone: make(chan struct{}), renewDone: make(chan struct{}),
	}
	go h.renewLoop(rctx)
	go h.runWork(work, o)
	return h
}

// active reports whether the work may run: the lease is held and the work
// was not stopped.
func (h *holding) active() bool { return h.ctx.Err() == nil }

// finished reports whether the holding is over by itself: the lease was lost
// and the work returned.
func (h *holding) finished() bool {
	select {
	case <-h.lost:
	default:
		return false
	}
	select {
	case <-h.workDone:
		return true
	default:
		return false
	}
}

func (h *holding) lose(err error) {
	h.lostOnce.Do(func() {
		h.cancel(err)
		close(h.lost)
		h.logger.Warn("lease lost; work cancelled", "err", err)
	})
}

// stop cancels the work, waits for it to return (renewing the lease
// meanwhile), stops renewing and releases the lease unless it was lost.
func (h *holding) stop(ctx context.Context) {
	h.cancel(errStopped)
	<-h.workDone
	h.stopRenew()
	<-h.renewDone
	select {
	case <-h.lost:
		return
	default:
	}
	ttl := h.lease.store.ttl
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl/renewEvery)
	defer cancel()
	if err := h.lease.Release(rctx); err != nil {
		h.logger.Warn("release lease", "err", err)
		return
	}
	h.logger.Info("lease released")
}

// renewLoop renews the lease every TTL/3, retries failures every TTL/12,
// and declares the lease lost when a renewal says so or when the work
// window passes without a successful one.
func (h *holding) renewLoop(ctx context.Context) {
	defer close(h.renewDone)
	ttl := h.lease.store.ttl
	timer := time.NewTimer(0)
	defer timer.Stop()
	_, sent, _ := h.lease.state()
	next := sent.Add(ttl / renewEvery)
	for {
		_, sent, _ = h.lease.state()
		deadline := sent.Add(workWindow(ttl))
		timer.Reset(time.Until(earliest(next, deadline)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if !time.Now().Before(deadline) {
			h.lose(fmt.Errorf("%w: not renewed within %s of its last write", ErrLost, workWindow(ttl)))
			return
		}
		err := h.renew(ctx, deadline)
		switch {
		case err == nil:
			_, sent, _ = h.lease.state()
			next = sent.Add(ttl / renewEvery)
		case errors.Is(err, ErrLost):
			h.lose(err)
			return
		case ctx.Err() != nil:
			return
		default:
			h.logger.Warn("renew lease failed; retrying", "err", err, "deadline", time.Until(deadline))
			next = time.Now().Add(ttl / retryEvery)
		}
	}
}

func (h *holding) renew(ctx context.Context, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return h.lease.Renew(ctx)
}

// runWork runs work until its context ends, starting it again with backoff
// whenever it returns before.
func (h *holding) runWork(work func(context.Context) error, o runOptions) {
	defer close(h.workDone)
	b := &backoff.ExponentialBackOff{InitialInterval: o.minBackoff, Multiplier: 2, MaxInterval: o.maxBackoff,
		RandomizationFactor: backoff.DefaultRandomizationFactor}
	b.Reset()
	for {
		started := time.Now()
		err := work(h.ctx)
		if h.ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			b.Reset()
		}
		if err == nil {
			err = errors.New("work returned without error")
		}
		wait := b.NextBackOff()
		h.logger.Error("work stopped while the lease is held; restarting", "err", err, "backoff", wait)
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
