package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Opener opens the Publisher one run of a source publishes through, and
// the function that releases it once the run is over. Every run gets a
// fresh one: a Publisher that failed takes nothing more.
type Opener func() (pub Publisher, release func(), err error)

// Option configures Supervise.
type Option func(*superviseOptions)

type superviseOptions struct {
	logger     *slog.Logger
	maxBackoff time.Duration
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *superviseOptions) { o.logger = l } }

// WithMaxBackoff bounds the wait between two runs (default 10s).
func WithMaxBackoff(d time.Duration) Option { return func(o *superviseOptions) { o.maxBackoff = d } }

// Supervise runs src with a fresh Publisher from open, restarting it with
// exponential backoff (100ms doubling up to the maximum, from 100ms again
// after a run that lasted longer than the maximum: the backoff stops a
// source that fails at once from spinning, and must not make a source that
// ran for a while wait longer after each rare fault, such as a stream
// leader change) after every failure, until ctx ends,
// which is a clean stop (nil). Because a restarted source resumes from its
// last acknowledged position, a failure never loses or reorders events; at
// worst it republishes some, which the stream deduplicates. An error
// wrapping ErrPermanent ends it with that error.
func Supervise(ctx context.Context, src Source, open Opener, opts ...Option) error {
	o := superviseOptions{logger: slog.New(slog.DiscardHandler), maxBackoff: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	b := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: o.maxBackoff}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		started := time.Now()
		err := runOnce(ctx, src, open)
		if errors.Is(err, ErrPermanent) {
			return struct{}{}, backoff.Permanent(fmt.Errorf("source %s: %w", src.Name(), err))
		}
		if time.Since(started) > o.maxBackoff {
			b.Reset()
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, wait time.Duration) {
		metricRestarts.WithLabelValues(src.Name()).Inc()
		o.logger.Error("source stopped; restarting from its last acknowledged position",
			"source", src.Name(), "err", err, "backoff", wait)
	}))
	if ctx.Err() != nil {
		return nil //nolint:nilerr // stopping on request is a clean exit
	}
	var permanent *backoff.PermanentError
	if errors.As(err, &permanent) {
		return permanent.Err
	}
	return err
}

func runOnce(ctx context.Context, src Source, open Opener) error {
	pub, release, err := open()
	if err != nil {
		return err
	}
	defer release()
	if err := src.Run(ctx, pub); err != nil {
		return err
	}
	return errors.New("source returned without error")
}
