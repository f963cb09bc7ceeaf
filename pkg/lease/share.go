package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Share spreads partitions numbered 0 to n-1 among the members running a
// Share of the same prefix on the same store, each partition being a lease
// "<prefix>.partition.<n>" held by one member, which runs the partition's
// work while it holds it.
type Share struct {
	store      *Store
	prefix     string
	partitions int
	member     string
	work       func(context.Context, int) error
	opts       runOptions
	logger     *slog.Logger

	mu       sync.Mutex
	owned    map[int]*holding // written under mu by Run only, active or winding down
	presence *holding         // Run's only
}

// NewShare returns the Share of partitions partitions among the members of
// prefix, for member (a valid name, see ValidName and Sanitize, unique
// among live processes), running work for each partition it owns.
func NewShare(store *Store, prefix string, partitions int, member string,
	work func(ctx context.Context, partition int) error, opts ...RunOption) (*Share, error) {
	switch {
	case !ValidName(prefix):
		return nil, fmt.Errorf("share prefix %q is not a valid key-value key", prefix)
	case !ValidName(member):
		return nil, fmt.Errorf("share member %q is not a valid key-value key (see Sanitize)", member)
	case partitions < 1:
		return nil, fmt.Errorf("share %s: %d partitions, want at least 1", prefix, partitions)
	case work == nil:
		return nil, fmt.Errorf("share %s: work is required", prefix)
	}
	return &Share{store: store, prefix: prefix, partitions: partitions, member: member, work: work,
		opts: newRunOptions(opts), logger: store.logger.With("share", prefix, "member", member),
		owned: make(map[int]*holding)}, nil
}

// Run takes part in the share until ctx ends. It keeps a presence lease
// "<prefix>.member.<member>" and, every TTL/4 (TTL/6 in a bucket without
// limit markers) and at once when a watch sees
// a lease of the share appear or disappear, counts the live members M,
// sorted by name, and takes its quota of the partitions: ceil(P/M) for the
// first P mod M members, floor(P/M) for the others, so that the quotas add
// up to P. It acquires free partitions (and its own, after a restart) up to
// its quota, and beyond it stops the work of its highest partitions, waits
// for it to return and releases them. Each owned partition runs work(ctx, n)
// as a Keeper runs its work: its context is cancelled when the partition's
// lease is lost or released, and work that returns before is started again
// with backoff. When ctx ends Run stops every work, releases every lease and
// returns nil.
func (s *Share) Run(ctx context.Context) error {
	change := s.store.changes(ctx, s.prefix+".>")
	defer s.stopAll(ctx)
	for ctx.Err() == nil {
		s.step(ctx)
		wait(ctx, change, s.store.poll)
	}
	return nil
}

// Owned returns the partitions the member owns and runs, in order.
func (s *Share) Owned() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activeLocked()
}

func (s *Share) activeLocked() []int {
	var out []int
	for p, h := range s.owned {
		if h.active() {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Share) memberKey(m string) string { return s.prefix + ".member." + m }

func (s *Share) partitionKey(p int) string { return s.prefix + ".partition." + strconv.Itoa(p) }

func (s *Share) step(ctx context.Context) {
	s.reap()
	if err := s.keepPresence(ctx); err != nil {
		s.logger.Warn("keep presence", "err", err)
	}
	lctx, cancel := context.WithTimeout(ctx, s.store.ttl/renewEvery)
	holders, err := s.store.holders(lctx, s.prefix+".>")
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("list share", "err", err)
		}
		return
	}
	target := s.quota(holders)
	s.shrink(ctx, target)
	s.grow(ctx, target, holders)
}

// reap forgets the partitions whose lease was lost once their work returned.
func (s *Share) reap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, h := range s.owned {
		if h.finished() {
			delete(s.owned, p)
		}
	}
}

func (s *Share) keepPresence(ctx context.Context) error {
	if s.presence != nil && !s.presence.finished() {
		return nil
	}
	s.presence = nil
	l, err := s.acquire(ctx, s.memberKey(s.member))
	if err != nil {
		return err
	}
	s.presence = startHolding(ctx, l, parkUntilDone, s.opts, s.logger.With("lease", l.Name()))
	return nil
}

func parkUntilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (s *Share) acquire(ctx context.Context, key string) (*Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, s.store.ttl/renewEvery)
	defer cancel()
	return s.store.Acquire(ctx, key, s.member)
}

// quota returns how many partitions the member should own given the
// holders of the share's leases.
func (s *Share) quota(holders map[string]string) int {
	members := []string{s.member}
	for k := range holders {
		if m, ok := strings.CutPrefix(k, s.memberKey("")); ok && m != s.member {
			members = append(members, m)
		}
	}
	slices.Sort(members)
	return quota(s.partitions, len(members), slices.Index(members, s.member))
}

// quota is the share of the member at index i of m sorted members among p
// partitions.
func quota(p, m, i int) int {
	if i < p%m {
		return p/m + 1
	}
	return p / m
}

// shrink stops and releases the highest partitions beyond target.
func (s *Share) shrink(ctx context.Context, target int) {
	s.mu.Lock()
	active := s.activeLocked()
	s.mu.Unlock()
	if len(active) <= target {
		return
	}
	extra := active[target:]
	s.logger.Info("giving up partitions beyond the quota", "quota", target, "partitions", extra)
	s.stopPartitions(ctx, extra)
}

func (s *Share) stopPartitions(ctx context.Context, parts []int) {
	var wg sync.WaitGroup
	for _, p := range parts {
		h := s.owned[p]
		wg.Go(func() { h.stop(ctx) })
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		delete(s.owned, p)
	}
}

// grow acquires partitions that are free, or held by the member's own
// name, until the member owns target.
func (s *Share) grow(ctx context.Context, target int, holders map[string]string) {
	s.mu.Lock()
	n := len(s.activeLocked())
	s.mu.Unlock()
	for p := 0; p < s.partitions && n < target && ctx.Err() == nil; p++ {
		if s.owned[p] != nil {
			continue
		}
		if h, ok := holders[s.partitionKey(p)]; ok && h != s.member {
			continue
		}
		err := s.take(ctx, p)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrHeld):
			s.logger.Debug("partition taken by another member", "partition", p, "err", err)
		default:
			s.logger.Warn("acquire partition", "partition", p, "err", err)
			return
		}
	}
}

func (s *Share) take(ctx context.Context, p int) error {
	l, err := s.acquire(ctx, s.partitionKey(p))
	if err != nil {
		return err
	}
	s.logger.Info("partition acquired", "partition", p, "revision", l.Revision())
	h := startHolding(ctx, l, func(ctx context.Context) error { return s.work(ctx, p) }, s.opts,
		s.logger.With("lease", l.Name()))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owned[p] = h
	return nil
}

// stopAll stops every partition, then the presence.
func (s *Share) stopAll(ctx context.Context) {
	parts := make([]int, 0, len(s.owned))
	for p := range s.owned {
		parts = append(parts, p)
	}
	s.stopPartitions(ctx, parts)
	if s.presence != nil {
		s.presence.stop(ctx)
		s.presence = nil
	}
}
