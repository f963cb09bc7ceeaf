package cdc

import (
	"context"
	"errors"
	"fmt"
)

// Source is a change capture source: it reads changes and hands them to pub
// until ctx ends or something fails. Run returns nil or ctx's error on a
// clean stop and any other error when it must be restarted; an error
// wrapping ErrPermanent when restarting cannot help.
type Source interface {
	Name() string
	Run(ctx context.Context, pub Publisher) error
}

// Publisher is what a source publishes through (stream.Publisher is the
// JetStream one). See the package documentation for the contract.
type Publisher interface {
	// Publish hands ev over for publication; it returns before JetStream
	// acknowledged it, and keeps nothing of ev but copies: the source may
	// reuse ev at once.
	Publish(ctx context.Context, ev *Event) error
	// AfterAcked runs fn once every event published before the call has
	// been acknowledged, in the order of the calls; never once the
	// Publisher failed. fn must not block nor call the Publisher.
	AfterAcked(fn func()) error
	// Flush waits until every event published so far is acknowledged.
	Flush(ctx context.Context) error
	// Err returns the failure that stopped the Publisher, if any.
	Err() error
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
