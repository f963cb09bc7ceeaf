package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Errors of Serving.Rebuild, for callers to answer each its own way.
var (
	// ErrRebuildRunning: one rebuild at a time.
	ErrRebuildRunning = errors.New("a rebuild is already running")
	// ErrNotReady: the served view has not caught up with the stream yet;
	// it is being built already.
	ErrNotReady = errors.New("the view has not caught up with the stream yet")
	// ErrBadStart: the start asked for is not in the stream.
	ErrBadStart = errors.New("no such start in the stream")
	// ErrLacksHistory: the stream no longer holds events the new view
	// would need, and no snapshot covers them; the served view still has
	// what they changed, a rebuild would lose it.
	ErrLacksHistory = errors.New("the stream no longer holds the events a rebuild needs")
)

var (
	metricRebuilds = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_projection_rebuilds_total",
		Help: "Rebuilds of the view beside the served one, by result: swapped (the new view is served) or failed.",
	}, []string{"result"})
	metricRebuildProgress = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "reportes_projection_rebuild_progress",
		Help: "Fraction (0 to 1) of the events of the last rebuild applied to its new view; 1 once swapped.",
	})
)

func init() {
	for _, r := range []string{"swapped", "failed"} {
		metricRebuilds.WithLabelValues(r)
	}
}

// RebuildFrom says which events a rebuild must apply again. The new view
// always starts from a state at or before that point and is fed the stream
// from there, never an empty view from the middle of the stream: that view
// would lack what the earlier events hold (the employees hired and the
// orders placed before it). Zero: from the latest view snapshot that fits,
// else from the stream's start.
type RebuildFrom struct {
	// Seq: apply again every event from this stream sequence on. The new
	// view starts from the latest snapshot when it is older than Seq,
	// otherwise from the stream's start. 1 is a full replay.
	Seq uint64
	// Time: the same from the first event stored at or after Time.
	Time time.Time
}

// States of a rebuild.
const (
	RebuildReplaying = "replaying" // the new view catches up with the stream
	RebuildSwapping  = "swapping"  // it caught up; the old projector stops and the new view takes over
	RebuildSwapped   = "swapped"   // the new view is served
	RebuildFailed    = "failed"    // the old view is still served; Error says why
)

// RebuildStatus is what a rebuild did so far.
type RebuildStatus struct {
	ID    uint64 `json:"id"`
	State string `json:"state"`
	// Base is where the new view started: "snapshot" (at BaseSeq) or
	// "stream" (its start, BaseSeq 0).
	Base    string `json:"base"`
	BaseSeq uint64 `json:"base_seq"`
	// FromSeq is the first event asked to be applied again (0: none asked).
	FromSeq uint64 `json:"from_seq,omitempty"`
	// Seq is the new view's sequence, Target the stream's last sequence it
	// catches up with; Applied and Total count the events from the base.
	Seq        uint64   `json:"seq"`
	Target     uint64   `json:"target"`
	Applied    uint64   `json:"applied"`
	Total      uint64   `json:"total"`
	Rate       float64  `json:"rate"` // events applied per second
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// ServedSeq is the served view's sequence when the swap began.
	ServedSeq uint64     `json:"served_seq,omitempty"`
	Started   time.Time  `json:"started"`
	Finished  *time.Time `json:"finished,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// Rebuild is one rebuild of the view.
type Rebuild struct {
	id      uint64
	fromSeq uint64
	started time.Time

	mu       sync.Mutex
	state    string
	base     string
	baseSeq  uint64
	next     *served // the new view's projector, once made
	replay   time.Time
	served   uint64
	finished time.Time
	err      error
}

// Status reports the rebuild now.
func (r *Rebuild) Status() RebuildStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := RebuildStatus{ID: r.id, State: r.state, Base: r.base, BaseSeq: r.baseSeq, FromSeq: r.fromSeq, ServedSeq: r.served, Started: r.started}
	if r.next != nil {
		st.Seq, st.Target = r.next.p.view.Seq(), r.next.p.target.Load()
		st.Applied, st.Total = sub(st.Seq, r.baseSeq), sub(max(st.Target, st.Seq), r.baseSeq)
		end := time.Now()
		if !r.finished.IsZero() {
			end = r.finished
		}
		if secs := end.Sub(r.replay).Seconds(); secs > 0 {
			st.Rate = float64(st.Applied) / secs
		}
		if st.Rate > 0 && r.state == RebuildReplaying {
			eta := float64(st.Total-st.Applied) / st.Rate
			st.ETASeconds = &eta
		}
	}
	if !r.finished.IsZero() {
		f := r.finished
		st.Finished = &f
	}
	if r.err != nil {
		st.Error = r.err.Error()
	}
	return st
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// progress is the fraction of the rebuild's events applied.
func (r *Rebuild) progress() float64 {
	st := r.Status()
	if st.Total == 0 {
		return 1
	}
	return float64(st.Applied) / float64(st.Total)
}

func (r *Rebuild) set(fn func(r *Rebuild)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

// LastRebuild is the running rebuild or the last one; nil before the first.
func (s *Serving) LastRebuild() *Rebuild { return s.rebuild.Load() }

// Rebuild starts building a new view beside the served one, from the
// latest snapshot or the stream as from says, and returns at once; the
// rebuild swaps the new view in when it caught up (see Serving). It
// returns ErrRebuildRunning while another runs, ErrNotReady before the
// served view is ready, and errors wrapping ErrBadStart or ErrLacksHistory
// when from cannot be honoured.
func (s *Serving) Rebuild(ctx context.Context, from RebuildFrom) (*Rebuild, error) {
	if !s.busy.CompareAndSwap(false, true) {
		return nil, ErrRebuildRunning
	}
	r, info, err := s.prepare(ctx, from)
	if err != nil {
		s.busy.Store(false)
		return nil, err
	}
	runCtx, err := s.runContext()
	if err != nil {
		s.busy.Store(false)
		return nil, err
	}
	s.rebuild.Store(r)
	metricRebuildProgress.Set(0)
	s.logger.Info("rebuilding the view beside the served one", "rebuild", r.id, "from_seq", r.fromSeq, "stream_last_seq", info.State.LastSeq)
	go s.run(runCtx, r, info)
	return r, nil
}

// prepare checks that a rebuild can start and resolves from.
func (s *Serving) prepare(ctx context.Context, from RebuildFrom) (*Rebuild, *jetstream.StreamInfo, error) {
	cur := s.Projector()
	if !cur.Ready() {
		return nil, nil, ErrNotReady
	}
	js := cur.link.Load().js
	info, err := cur.streamInfo(ctx, js)
	if err != nil {
		return nil, nil, err
	}
	seq, err := startSeq(ctx, js, info, cur.opts.subjectPrefix, from)
	if err != nil {
		return nil, nil, err
	}
	if seq == 1 || cur.snaps == nil { // from the stream's start: known now
		if err := lacksHistory(0, info); err != nil {
			return nil, nil, err
		}
	}
	r := &Rebuild{id: s.ids.Add(1), fromSeq: seq, started: time.Now(), state: RebuildReplaying}
	return r, info, nil
}

// startSeq is the first sequence from asks to apply again; 0 when it asks
// for none in particular.
func startSeq(ctx context.Context, js jetstream.JetStream, info *jetstream.StreamInfo, prefix string, from RebuildFrom) (uint64, error) {
	last := info.State.LastSeq
	switch {
	case from.Seq != 0 && !from.Time.IsZero():
		return 0, fmt.Errorf("%w: give a sequence or a time, not both", ErrBadStart)
	case from.Seq > last:
		return 0, fmt.Errorf("%w: sequence %d is past the stream's last, %d", ErrBadStart, from.Seq, last)
	case from.Seq != 0:
		return from.Seq, nil
	case from.Time.IsZero():
		return 0, nil
	case from.Time.After(info.State.LastTime):
		return 0, fmt.Errorf("%w: no event stored at or after %s (the last is of %s)", ErrBadStart,
			from.Time.UTC().Format(time.RFC3339Nano), info.State.LastTime.UTC().Format(time.RFC3339Nano))
	}
	seq, err := seqAtTime(ctx, js, info.Config.Name, prefix, from.Time)
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// seqAtTime is the sequence of the first event under prefix stored at or
// after t, read with an ephemeral consumer that starts there.
func seqAtTime(ctx context.Context, js jetstream.JetStream, stream, prefix string, t time.Time) (uint64, error) {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ".>"}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
	})
	if err != nil {
		return 0, fmt.Errorf("find the first event at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
	if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("%w: no event stored at or after %s", ErrBadStart, t.Format(time.RFC3339Nano))
	}
	if err != nil {
		return 0, fmt.Errorf("find the first event at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return 0, fmt.Errorf("find the first event at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return meta.Sequence.Stream, nil
}
