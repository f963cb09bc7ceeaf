package projection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// run builds r's view and swaps it in, or fails leaving the old one served.
func (s *Serving) run(ctx context.Context, r *Rebuild, info *jetstream.StreamInfo) {
	defer s.busy.Store(false)
	err := s.rebuildAndSwap(ctx, r, info)
	r.set(func(r *Rebuild) {
		r.finished, r.state, r.err = time.Now(), RebuildSwapped, err
		if err != nil {
			r.state = RebuildFailed
		}
	})
	if err != nil {
		metricRebuilds.WithLabelValues("failed").Inc()
		s.logger.Error("rebuild failed; the old view is still served", "rebuild", r.id, "err", err)
		return
	}
	metricRebuilds.WithLabelValues("swapped").Inc()
	metricRebuildProgress.Set(1)
	st := r.Status()
	s.logger.Info("rebuilt view swapped in", "rebuild", r.id, "base", st.Base, "base_seq", st.BaseSeq,
		"seq", st.Seq, "served_seq", st.ServedSeq, "applied", st.Applied, "took", time.Since(st.Started).Round(time.Millisecond))
}

func (s *Serving) rebuildAndSwap(ctx context.Context, r *Rebuild, info *jetstream.StreamInfo) error {
	start := time.Now()
	view, base, err := s.baseView(ctx, info, r.fromSeq)
	if err != nil {
		return err
	}
	s.logger.Info("rebuild replays the stream", "rebuild", r.id, "base", base, "base_seq", view.Seq(), "took", time.Since(start).Round(time.Millisecond))
	// The rebuild hooks tune a process whose only work is its first
	// replay; this one replays beside a served view.
	next, err := s.newServed(view, WithRebuildHooks(nil, nil))
	if err != nil {
		return fmt.Errorf("make the rebuild's projector: %w", err)
	}
	next.p.restored = true // the base is chosen: no snapshot is restored over it
	r.set(func(r *Rebuild) { r.base, r.baseSeq, r.next, r.replay = base, view.Seq(), next, time.Now() })
	if err := s.start(ctx, next); err != nil {
		return err
	}
	if err := catchUp(ctx, r, next); err != nil {
		next.stop()
		return err
	}
	return s.swap(ctx, r, next)
}

// baseView is the view a rebuild starts from: the latest snapshot that
// fits when it holds no event from fromSeq on, else an empty one fed from
// the stream's start. Either must not lack events the stream dropped.
func (s *Serving) baseView(ctx context.Context, info *jetstream.StreamInfo, fromSeq uint64) (*View, string, error) {
	cur := s.Projector()
	view, err := NewView(cur.view.schema)
	if err != nil {
		return nil, "", err
	}
	if cur.snaps != nil && fromSeq != 1 {
		snaps := newSnapshots(cur.snaps.bucket, cur.snaps.every, cur.opts.replicas, cur.opts.stream, cur.opts.subjectPrefix, view)
		ok, err := restoreLatest(ctx, snaps, cur.link.Load().js, info, view)
		switch {
		case err != nil: // the view is left empty
			s.logger.Warn("view snapshot not used by the rebuild; it replays the stream from its start", "err", err)
		case ok && (fromSeq == 0 || view.Seq() < fromSeq):
			return view, "snapshot", lacksHistory(view.Seq(), info)
		case ok: // it holds events to apply again
			if view, err = NewView(cur.view.schema); err != nil {
				return nil, "", err
			}
		}
	}
	return view, "stream", lacksHistory(0, info)
}

// restoreLatest restores the latest snapshot into view, and once more
// when a save replaced it while it was read: the served projector (and
// other replicas) save theirs meanwhile, and a read whose chunks a save
// purged fails. A read gets a deadline from the snapshot's size rather
// than hanging.
func restoreLatest(ctx context.Context, snaps *snapshots, js jetstream.JetStream, info *jetstream.StreamInfo, view *View) (bool, error) {
	for attempt := 1; ; attempt++ {
		before, size := snapshotObject(ctx, snaps, js)
		read := time.Duration(float64(size) / (20 << 20) * float64(time.Second)) // at 20 MB/s at least
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second+read)
		ok, err := snaps.restore(rctx, js, info, view)
		cancel()
		if err == nil || attempt == 3 {
			return ok, err
		}
		if after, _ := snapshotObject(ctx, snaps, js); after == before {
			return ok, err
		}
	}
}

// snapshotObject identifies the stored snapshot and says its size; "" when
// there is none or it cannot be read.
func snapshotObject(ctx context.Context, snaps *snapshots, js jetstream.JetStream) (string, uint64) {
	obj, err := snaps.store(ctx, js)
	if err != nil {
		return "", 0
	}
	meta, err := obj.GetInfo(ctx, snaps.name)
	if err != nil {
		return "", 0
	}
	return meta.NUID, meta.Size
}

// lacksHistory is an error when the stream no longer holds events right
// after base that a view may need: the rule of Projector.countMissed (a
// compacted stream drops only events a later one supersedes).
func lacksHistory(base uint64, info *jetstream.StreamInfo) error {
	first := info.State.FirstSeq
	if first <= base+1 {
		return nil
	}
	if why := lossOf(info); why != "" {
		return fmt.Errorf("%w: it starts at sequence %d, the new view would need it from %d, and %s (the served view has what they changed)",
			ErrLacksHistory, first, base+1, why)
	}
	return nil
}

// pollEvery is how often a rebuild looks at its new view.
const pollEvery = 20 * time.Millisecond

// errStopping: the API stops before the rebuild is done.
var errStopping = errors.New("the API is stopping")

// catchUp waits until next's projector caught up with the stream.
func catchUp(ctx context.Context, r *Rebuild, next *served) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !next.p.Ready() {
		metricRebuildProgress.Set(r.progress())
		select {
		case <-ctx.Done():
			return errStopping
		case <-next.done:
			return errors.New("the rebuild's projector stopped")
		case <-tick.C:
		}
	}
	metricRebuildProgress.Set(r.progress())
	return nil
}

// waitSeq waits until next's view is at seq() or past it, at most limit
// (0: no limit); it reports whether it got there.
func waitSeq(ctx context.Context, next *served, seq func() uint64, limit time.Duration) bool {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var deadline <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		deadline = t.C
	}
	for next.p.view.Seq() < seq() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
	return true
}

// nearLimit bounds the wait for the new view to draw level with the old
// one while both run, before the old one stops.
const nearLimit = 5 * time.Second

// swap stops the served projector and serves next's view in its place, at
// a sequence at least the old view's, and hands followers the difference.
func (s *Serving) swap(ctx context.Context, r *Rebuild, next *served) error {
	r.set(func(r *Rebuild) { r.state = RebuildSwapping })
	old := s.cur.Load()
	// Both follow the live stream: once next drew level, the old view
	// stands still only for the events of the moment it takes to stop.
	waitSeq(ctx, next, old.p.view.Seq, nearLimit)
	// Its view stands still from now on, and its updates all went out. The
	// new projector saves the snapshots now: the old one's last save would
	// only hold the swap up.
	old.p.retired.Store(true)
	old.stop()
	oldSeq := old.p.view.Seq()
	r.set(func(r *Rebuild) { r.served = oldSeq })
	if !waitSeq(ctx, next, func() uint64 { return oldSeq }, 0) {
		return errStopping
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := next.p.view.updateSince(old.p.view)
	next.cut = u.Seq
	s.cur.Store(next)
	if s.out != nil && (len(u.Sellers) > 0 || u.Totals != nil) {
		s.out(u)
	}
	return nil
}

// updateSince is the Update that takes a follower holding old's state to
// v's: the line of every seller whose line differs (one old has and v has
// not as no longer an employee's) and the totals when they differ, all
// labelled with v's sequence. old must not change meanwhile.
func (v *View) updateSince(old *View) Update {
	old.mu.RLock()
	before, totals, from := old.linesByCodeLocked(nil), old.totalsLocked(), old.seq
	old.mu.RUnlock()
	v.mu.RLock()
	defer v.mu.RUnlock()
	after := v.linesByCodeLocked(before)
	u := Update{From: from, Seq: v.seq, CommitTime: v.commit}
	codes := make([]string, 0, len(after))
	for code, line := range after {
		if prev, ok := before[code]; !ok || prev != line {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	for _, code := range codes {
		line := after[code]
		line.Seq = v.seq
		u.Sellers = append(u.Sellers, line)
	}
	if now := v.totalsLocked(); now != totals {
		u.Totals = &GlobalUpdate{Seq: v.seq, Global: now}
	}
	return u
}

// linesByCodeLocked is the line (Seq 0) of every employee's code, every
// seller code of the orders, and every code of also.
func (v *View) linesByCodeLocked(also map[string]SellerUpdate) map[string]SellerUpdate {
	seqs := make(map[string]uint64, len(v.employees)+len(v.sellerIdx)+len(also))
	codes := make([]string, 0, len(v.employees)+len(v.sellerIdx)+len(also))
	add := func(code string) {
		if _, dup := seqs[code]; !dup {
			seqs[code] = 0
			codes = append(codes, code)
		}
	}
	for _, e := range v.employees {
		add(e.code)
	}
	for code := range v.sellerIdx {
		add(code)
	}
	for code := range also {
		add(code)
	}
	out := make(map[string]SellerUpdate, len(codes))
	for _, line := range v.linesLocked(codes, seqs) {
		out[line.Empleado] = line
	}
	return out
}
