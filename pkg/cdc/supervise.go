package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Source is a change capture source: it reads changes and hands them to pub
// until ctx ends or something fails. Run returns nil or ctx's error on a
// clean stop and any other error when it must be restarted.
type Source interface {
	Name() string
	Run(ctx context.Context, pub *Publisher) error
}

// Supervise runs src with a fresh Publisher, restarting it with exponential
// backoff (up to maxBackoff) after every failure, until ctx ends. Because a
// restarted source resumes from its last acknowledged position, a failure
// never loses or reorders events; at worst it republishes some, which the
// stream deduplicates.
func Supervise(ctx context.Context, nc *nats.Conn, src Source, logger *slog.Logger, maxBackoff time.Duration, opts ...PublisherOption) error {
	backoff := 100 * time.Millisecond
	for {
		started := time.Now()
		err := runOnce(ctx, nc, src, opts)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopping on request is a clean exit
		}
		if errors.Is(err, ErrPermanent) {
			return fmt.Errorf("source %s: %w", src.Name(), err)
		}
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		metricRestarts.WithLabelValues(src.Name()).Inc()
		logger.Error("source stopped; restarting from its last acknowledged position",
			"source", src.Name(), "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func runOnce(ctx context.Context, nc *nats.Conn, src Source, opts []PublisherOption) error {
	pub, err := NewPublisher(nc, opts...)
	if err != nil {
		return err
	}
	defer pub.Close()
	err = src.Run(ctx, pub)
	if err == nil {
		err = errors.New("source returned without error")
	}
	return err
}

// ErrPermanent marks a failure that restarting cannot heal: a wrong
// password, a missing grant, database or table. Supervise returns an error
// wrapping it instead of restarting the source, so the process exits with
// the reason rather than retrying for ever.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err with ErrPermanent (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}
