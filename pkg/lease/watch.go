package lease

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// changes watches the keys matching filter and signals (coalescing) when
// one appears or disappears: deleted, purged, or expired in a bucket with
// limit markers. Renewals, which rewrite a key already seen, do not signal.
// The watch is set up in the background and set up again after a failure,
// every poll interval, so that callers keep polling meanwhile. It ends with
// ctx.
func (s *Store) changes(ctx context.Context, filter string) <-chan struct{} {
	c := make(chan struct{}, 1)
	go s.watch(ctx, filter, c)
	return c
}

func (s *Store) watch(ctx context.Context, filter string, c chan<- struct{}) {
	for ctx.Err() == nil {
		w, err := s.kv.Watch(ctx, filter, jetstream.MetaOnly())
		if err == nil {
			drain(ctx, w, c)
		} else if ctx.Err() == nil {
			s.logger.Warn("cannot watch leases; polling only", "filter", filter, "err", err)
		}
		wait(ctx, nil, s.poll)
	}
}

func drain(ctx context.Context, w jetstream.KeyWatcher, c chan<- struct{}) {
	defer func() { _ = w.Stop() }()
	seen := make(map[string]bool)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			put := e.Operation() == jetstream.KeyValuePut
			if put == seen[e.Key()] {
				continue
			}
			if put {
				seen[e.Key()] = true
			} else {
				delete(seen, e.Key())
			}
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// wait returns when ctx ends, change signals, or every passes.
func wait(ctx context.Context, change <-chan struct{}, every time.Duration) {
	t := time.NewTimer(every)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-change:
	case <-t.C:
	}
}
