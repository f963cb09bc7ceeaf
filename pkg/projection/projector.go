package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

// Projector feeds a View from the event stream: it replays the stream from
// its first message (rebuilding the view), then follows it. It uses an
// ordered consumer, which the NATS client recreates at the next expected
// sequence after a gap or a disconnect, so the view sees every event once
// and in order; View.Apply's idempotency covers the rest.
type Projector struct {
	link       atomic.Pointer[link]
	dest       Target // what events are applied to: view, or another store
	view       *View  // nil when the projector feeds another Target
	health     health
	started    time.Time
	opts       projectorOptions
	ready      atomic.Bool
	rebuilding atomic.Bool // the rebuild began (and its hook was called)
	target     atomic.Uint64
	snaps      *snapshots // nil without WithSnapshots
	restored   bool       // a restore was attempted
	missed     uint64     // events up to this sequence were counted as missed

	retired atomic.Bool // replaced by a rebuilt view (Serving): no last snapshot on stop
}

type projectorOptions struct {
	onApplied     func()
	onRebuild     func()
	onReady       func()
	stream        string
	subjectPrefix string
	onUpdate      func(Update)
	deadLetter    string
	logger        *slog.Logger
	snapBucket    string
	snapEvery     time.Duration
	replicas      int
	redial        func() (*nats.Conn, error)
	keep          func(subject string) bool
	batchSize     int
}

// Option configures a Projector.
type Option func(*projectorOptions)

// WithStream sets the stream name (default stream.DefaultName).
func WithStream(name string) Option { return func(o *projectorOptions) { o.stream = name } }

// WithSubjectPrefix sets the change events' subject prefix.
func WithSubjectPrefix(p string) Option { return func(o *projectorOptions) { o.subjectPrefix = p } }

// WithUpdates hands fn, once the view has caught up, the Update of every
// batch it applies: the lines of the sellers it touched and the totals, at
// the batch's sequence. fn runs on the projector's goroutine and must not
// block (package live coalesces and publishes them).
func WithUpdates(fn func(Update)) Option {
	return func(o *projectorOptions) { o.onUpdate = fn }
}

// WithDeadLetters publishes every event the view could not fully apply to
// subject, with the reason (empty disables; they are logged and counted
// either way).
func WithDeadLetters(subject string) Option {
	return func(o *projectorOptions) { o.deadLetter = subject }
}

// WithSnapshots keeps a snapshot of the view in the JetStream object store
// bucket, saved every interval once the view is ready and when Run stops,
// and starts from the latest one instead of replaying the whole stream; the
// events after it are replayed as usual. A snapshot that does not fit (an
// earlier stream of the same name, another schema, a corrupt object) is
// logged and ignored: the view is then rebuilt from the stream. Empty bucket
// or interval 0 disables snapshots.
func WithSnapshots(bucket string, interval time.Duration) Option {
	return func(o *projectorOptions) { o.snapBucket, o.snapEvery = bucket, interval }
}

// WithReplicas sets the replicas of the snapshot bucket when the projector
// creates it (default 1); an existing bucket keeps its own.
func WithReplicas(n int) Option { return func(o *projectorOptions) { o.replicas = n } }

// WithOnApplied calls fn after every batch of events applied to the view
// (from the applying goroutine; fn must not block).
func WithOnApplied(fn func()) Option { return func(o *projectorOptions) { o.onApplied = fn } }

// WithRebuildHooks calls start once, when the projector first finds the
// view behind the stream before it was ever ready (it is about to replay
// the stream, or the events after a restored snapshot), and ready once, when
// the view first catches up, after start if start was called. That is where
// a process tunes its runtime for the rebuild (cmd/api raises the GC
// percent): a library must not. Either may be nil; neither may block (ready
// may run on the goroutine applying events).
func WithRebuildHooks(start, ready func()) Option {
	return func(o *projectorOptions) { o.onRebuild, o.onReady = start, ready }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *projectorOptions) { o.logger = l } }

// WithSubjectFilter makes the projector apply only the events whose
// subject keep accepts: the others are not decoded, and reach the Target
// as entries that carry only their sequence (no collection), so that it
// still records how far it read. That is how a partition of the view
// skips the keys of the others at the cost of a subject test.
func WithSubjectFilter(keep func(subject string) bool) Option {
	return func(o *projectorOptions) { o.keep = keep }
}

// WithBatchSize bounds the events handed to the Target at once (default
// 256). A store that pays per transaction wants larger batches; a batch
// is handed over as soon as the stream has nothing more pending either way.
func WithBatchSize(n int) Option { return func(o *projectorOptions) { o.batchSize = n } }

// Target is what a Projector applies the stream to: the in-memory View,
// or a store elsewhere (a partition of the PostgreSQL view store).
type Target interface {
	// Seq is the stream sequence of the last event applied; the projector
	// reads from the next one.
	Seq() uint64
	// Apply applies entries, consecutive in stream order, filling in their
	// Change and Err as View.ApplyBatch does; entries at or below Seq are
	// ignored. After an error nothing of the batch may count as applied:
	// the projector then reads again after Seq.
	Apply(ctx context.Context, entries []Entry) error
}

// viewTarget is the View as a Target.
type viewTarget struct{ *View }

func (t viewTarget) Apply(_ context.Context, entries []Entry) error {
	t.ApplyBatch(entries)
	return nil
}

// NewProjector returns a Projector feeding view.
func NewProjector(nc *nats.Conn, view *View, opts ...Option) (*Projector, error) {
	p, err := newProjector(nc, viewTarget{view}, opts)
	if err != nil {
		return nil, err
	}
	p.view = view
	if o := p.opts; o.snapBucket != "" && o.snapEvery > 0 {
		p.snaps = newSnapshots(o.snapBucket, o.snapEvery, o.replicas, o.stream, o.subjectPrefix, view)
	}
	return p, nil
}

// NewTargetProjector returns a Projector feeding t instead of a View:
// WithUpdates, WithSnapshots and View do not apply to it (t publishes
// what it changed itself).
func NewTargetProjector(nc *nats.Conn, t Target, opts ...Option) (*Projector, error) {
	return newProjector(nc, t, opts)
}

func newProjector(nc *nats.Conn, t Target, opts []Option) (*Projector, error) {
	o := projectorOptions{stream: stream.DefaultName, subjectPrefix: cdc.DefaultSubjectPrefix, batchSize: defaultBatchSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.batchSize <= 0 {
		o.batchSize = defaultBatchSize
	}
	l, err := newLink(nc)
	if err != nil {
		return nil, err
	}
	p := &Projector{dest: t, opts: o, started: time.Now()}
	p.link.Store(l)
	return p, nil
}

// Ready reports whether the view has caught up with the stream as it was
// when the projector started (or the last time it checked).
func (p *Projector) Ready() bool { return p.ready.Load() }

// View returns the view the projector feeds (nil for another Target).
func (p *Projector) View() *View { return p.view }

// Run consumes until ctx ends; it returns nil then. It retries when the
// stream is not there yet (the ingestor creates it).
func (p *Projector) Run(ctx context.Context) error {
	if p.snaps != nil {
		saver := make(chan struct{})
		go func() {
			defer close(saver)
			p.saveSnapshots(ctx)
		}()
		defer func() { <-saver }()
	}
	go p.watch(ctx, p.link.Load().nc)
	defer func() {
		if l := p.link.Load(); l.owned {
			l.nc.Close()
		}
	}()
	retry := newRetryBackoff()
	for {
		start := time.Now()
		err := p.consume(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopping on request is a clean exit
		}
		if time.Since(start) > retry.MaxInterval {
			retry.Reset() // a consumer that ran for a while: a new failure
		}
		if p.reopen(ctx) {
			retry.Reset()
			continue
		}
		if errors.Is(err, errLeaderElected) {
			p.opts.logger.Info("the stream elected a new leader; following it with a new consumer")
			retry.Reset()
			continue
		}
		wait := retry.NextBackOff()
		p.opts.logger.Warn("projector stopped; retrying", "err", err, "backoff", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// newRetryBackoff returns the wait between consumers that failed in a row:
// 100ms, doubling up to 5s, without jitter (a projector retries alone, not
// in a herd).
func newRetryBackoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}
	b.Reset()
	return b
}

// consume follows the stream with one ordered consumer, from the event
// after the last one the view applied, until ctx ends (nil) or the consumer
// must be replaced (the reason).
func (p *Projector) consume(ctx context.Context) error {
	l := p.link.Load()
	info, err := p.streamInfo(ctx, l.js)
	p.streamFailed(err)
	if err != nil {
		return err
	}
	p.restoreOnce(ctx, info)
	p.countMissed(info)
	p.catchUpTo(info.State.LastSeq)
	// A server that restarted has lost the consumer (it is held in memory):
	// after any reconnect this consumer ends, and Run starts a new one
	// after the last applied sequence at once instead of after two missed
	// heartbeats.
	reconnected := l.nc.StatusChanged(nats.CONNECTED)
	defer l.nc.RemoveStatusListener(reconnected)
	c := &consumer{failed: make(chan error, 1), closed: make(chan struct{})}
	// In a cluster the consumer lives on one server: when the stream elects
	// a new leader, that server may be the one gone, and the client would
	// notice only after two missed heartbeats. A new consumer is cheap.
	if unwatch := watchLeader(l.nc, p.opts.stream, c); unwatch != nil {
		defer unwatch()
	}
	pl := p.newPipeline(ctx, c.fail)
	defer pl.close()
	if err := p.subscribe(l, info, pl, c); err != nil {
		return err
	}
	err = c.wait(ctx, reconnected)
	c.stop(p.opts.logger)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	return nil
}

// restoreOnce loads the latest snapshot into a view that applied nothing
// yet, the first time the projector reads the stream.
func (p *Projector) restoreOnce(ctx context.Context, info *jetstream.StreamInfo) {
	if p.snaps == nil {
		return
	}
	p.snaps.consuming(info)
	if !p.restored && p.dest.Seq() == 0 {
		p.restored = true
		p.restoreSnapshot(ctx, info)
	}
}

// countMissed records the events the stream no longer holds, before its
// first, that the view never applied and may have needed.
func (p *Projector) countMissed(info *jetstream.StreamInfo) {
	first := info.State.FirstSeq
	next := max(p.dest.Seq(), p.missed) + 1
	if first <= next {
		return
	}
	p.missed = first - 1
	why := lossOf(info)
	if why == "" {
		return // compaction: each key's last event is still there
	}
	// The stream's limits (max age, bytes, messages) or a purge dropped
	// events before this view applied them: it cannot count them, and says
	// so instead of starting at the first event left.
	metricMissed.Add(float64(first - next))
	p.opts.logger.Error("the stream no longer holds events this view needs; the view lacks what they changed (restore a view snapshot taken before they were dropped, or re-snapshot the sources into a new stream)",
		"stream", p.opts.stream, "first_missing", next, "last_missing", first-1, "reason", why)
}

// lossOf says why the events a stream no longer holds, before its first,
// may be ones a view needs, or "" when they cannot be. A stream that keeps
// the last event of each subject (events have a subject per key, see
// cdc.Subject) drops only events that a later one of the same key
// supersedes: there a gap loses nothing, unless limits, per-message TTLs
// or a purge deleted a key's last event. Limits and TTLs are settings and
// count as a possible loss; a purge leaves no trace but an emptied stream,
// and a partial purge of a compacted stream cannot be told from
// compaction (docs/operations.md).
func lossOf(info *jetstream.StreamInfo) string {
	cfg := info.Config
	if stream.Keeps(cfg) != stream.HistoryCompact {
		return "the stream keeps every event: a limit or a purge dropped these"
	}
	if lossy := stream.Lossy(cfg); lossy != "" {
		return "the stream keeps the last event of each key, but its limits (" + lossy + ") may have dropped a key's last one"
	}
	if info.State.Msgs == 0 {
		return "the stream keeps the last event of each key and holds none: it was purged"
	}
	return ""
}

// catchUpTo sets the stream's last sequence as the view's target: the view
// is ready once it applied it, at once when it already has; otherwise, the
// first time, the rebuild starts.
func (p *Projector) catchUpTo(last uint64) {
	p.target.Store(last)
	if last <= p.dest.Seq() {
		p.markReady()
	} else if !p.ready.Load() && p.rebuilding.CompareAndSwap(false, true) && p.opts.onRebuild != nil {
		p.opts.onRebuild()
	}
}

// consumer is one ordered consumer of the stream, feeding a pipeline.
type consumer struct {
	sub    *nats.Subscription
	failed chan error    // the first error of a callback
	closed chan struct{} // closed after the subscription's last callback
}

// subscribe starts c, an ordered consumer after the last event the view
// applied, delivering to pl.
func (p *Projector) subscribe(l *link, info *jetstream.StreamInfo, pl *pipeline, c *consumer) error {
	// The ordered consumer is nats.go's push-based one: the server pushes
	// the stream with flow control, and the client recreates the consumer
	// after the next expected sequence on a gap or when two heartbeats are
	// missed (a deleted consumer). Rebuilding 1M events, the api reads about
	// a tenth faster with it than with the pull-based ordered consumer of
	// the jetstream package, and the NATS server spends less per message.
	from := nats.DeliverAll()
	if seq := p.dest.Seq(); seq > 0 {
		from = nats.StartSequence(seq + 1)
	}
	// Any error ends this consumer and Run starts a new one after the last
	// applied sequence.
	sub, err := l.legacy.Subscribe(p.filter(info), func(msg *nats.Msg) {
		if err := pl.add(msg); err != nil {
			c.fail(err)
		}
	}, nats.OrderedConsumer(), nats.IdleHeartbeat(heartbeat), nats.BindStream(p.opts.stream), from)
	if err != nil {
		return fmt.Errorf("create ordered consumer: %w", err)
	}
	c.sub = sub
	// The subscription closes after its last callback: when stopped, or
	// when the client gives up recreating the consumer (the reason goes to
	// the connection's error handler).
	closeOnce := sync.OnceFunc(func() { close(c.closed) })
	sub.SetClosedHandler(func(string) { closeOnce() })
	if !sub.IsValid() {
		closeOnce() // closed before the handler was set
	}
	// A filtered consumer with nothing to deliver (the stream holds only
	// other subjects past the view) sends no batch to say it caught up.
	if pending, err := sub.InitialConsumerPending(); err == nil && pending == 0 {
		p.markReady()
	}
	return nil
}

// filter is the consumer's subject filter. A filter equal to the stream's
// only subject selects every message, but the server still matches each
// message against it: a tenth of its work per message in a rebuild. The
// consumer filters only when the stream holds more than the prefix; add
// skips anything else that arrives (the stream's subjects widened later).
func (p *Projector) filter(info *jetstream.StreamInfo) string {
	if all := p.opts.subjectPrefix + ".>"; !slices.Equal(info.Config.Subjects, []string{all}) {
		return all
	}
	return ""
}

func (c *consumer) fail(err error) {
	select {
	case c.failed <- err:
	default:
	}
}

// wait returns nil when ctx ends, else why the consumer must be replaced.
func (c *consumer) wait(ctx context.Context, reconnected <-chan nats.Status) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-c.failed:
		return err
	case <-c.closed:
		return errors.New("ordered consumer closed by the client (see the NATS error log)")
	case <-reconnected:
		return errors.New("reconnected to NATS; a new consumer resumes after the last applied event")
	}
}

// errLeaderElected ends a consumer when its stream elected a new leader.
var errLeaderElected = errors.New("the stream elected a new leader; a new consumer resumes after the last applied event")

// watchLeader fails c when JetStream advises that stream elected a new
// leader, and returns what stops watching (nil when it cannot watch: the
// consumer then relies on its heartbeats).
func watchLeader(nc *nats.Conn, stream string, c *consumer) func() {
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."+stream, func(*nats.Msg) { c.fail(errLeaderElected) })
	if err != nil {
		return nil
	}
	return func() { _ = sub.Unsubscribe() }
}

// stop ends the consumer and waits for its last callback, at most
// stopTimeout.
func (c *consumer) stop(logger *slog.Logger) {
	_ = c.sub.Unsubscribe()
	select {
	case <-c.closed:
	case <-time.After(stopTimeout):
		logger.Warn("consumer did not stop in time", "timeout", stopTimeout)
	}
}

// heartbeat is how often the server tells an idle ordered consumer where
// it stands; two missed ones make the client recreate the consumer.
const heartbeat = time.Second

// stopTimeout bounds the wait for the consumer's last callback on stop.
const stopTimeout = 5 * time.Second

// defaultBatchSize bounds how many events are decoded ahead of the view.
const defaultBatchSize = 256

type batch struct {
	entries []Entry
	data    [][]byte
	// caughtUp: the consumer had no message left to deliver after the last
	// entry. A filtered consumer may never deliver the stream's last
	// message, so this, not the stream's last sequence, tells it caught up.
	caughtUp bool
}

// pipeline decodes messages on the consumer's delivery goroutine while
// another goroutine applies the previous batch to the view: rebuilding from
// millions of events uses both cores. A batch is handed over when full or as
// soon as the stream has nothing more pending, so following the live stream
// adds no latency.
type pipeline struct {
	prefix string // of the subjects of events, with its trailing dot
	keep   func(subject string) bool
	size   int
	full   chan *batch
	free   chan *batch
	done   chan struct{}

	mu sync.Mutex // the consumer may overlap two callbacks across a reset
	b  *batch
}

// A batch the Target fails to apply goes to fail, and the batches after it
// are dropped: the next consumer reads them again after the Target's Seq.
func (p *Projector) newPipeline(ctx context.Context, fail func(error)) *pipeline {
	n := p.opts.batchSize
	pl := &pipeline{
		prefix: p.opts.subjectPrefix + ".", keep: p.opts.keep, size: n,
		full: make(chan *batch, 2), free: make(chan *batch, 3), done: make(chan struct{}),
	}
	for range 3 {
		pl.free <- &batch{entries: make([]Entry, 0, n), data: make([][]byte, 0, n)}
	}
	pl.b = <-pl.free
	go func() {
		defer close(pl.done)
		var failed bool
		for b := range pl.full {
			if !failed {
				if err := p.applyBatch(ctx, b); err != nil {
					failed = true
					fail(err)
				}
			}
			b.entries, b.data, b.caughtUp = b.entries[:0], b.data[:0], false
			pl.free <- b
		}
	}()
	return pl
}

// add decodes msg into the current batch. After an error, or once closed,
// it takes nothing more: the next consumer starts after the last event
// taken, so nothing is skipped.
func (pl *pipeline) add(msg *nats.Msg) error {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	b := pl.b
	if b == nil {
		return nil
	}
	seq, pending, ok := ackSequence(msg.Reply)
	if !ok {
		meta, err := msg.Metadata()
		if err != nil {
			pl.stopLocked()
			return fmt.Errorf("message metadata: %w", err)
		}
		seq, pending = meta.Sequence.Stream, meta.NumPending
	}
	b.entries = append(b.entries, Entry{Seq: seq})
	e := &b.entries[len(b.entries)-1]
	// A message outside the prefix is no event of ours: the view records
	// only its sequence.
	if strings.HasPrefix(msg.Subject, pl.prefix) && (pl.keep == nil || pl.keep(msg.Subject)) {
		if err := cdc.Decode(msg.Data, &e.Event); err != nil {
			// Applied as an event of no collection: the view records its
			// sequence, and it goes to the dead letters with the reason.
			e.Event = cdc.Event{ID: "invalid"}
			if meta, merr := msg.Metadata(); merr == nil {
				e.Event.CommitTime = meta.Timestamp
			}
			e.Err = err
		}
	}
	b.data = append(b.data, msg.Data)
	if len(b.entries) == pl.size || pending == 0 {
		b.caughtUp = pending == 0
		metricPending.Set(float64(pending))
		pl.full <- b
		pl.b = <-pl.free
	}
	return nil
}

// ackSequence reads the stream sequence and the number of messages pending
// from a JetStream message's reply subject, as msg.Metadata does, without
// building the rest of the metadata (a sixteenth of the rebuild's CPU). The
// subject is $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.
// <consumer seq>.<time>.<pending>, or with <domain>.<account hash> after ACK
// and more tokens at the end; ok is false for any other form, which
// msg.Metadata then reads.
func ackSequence(reply string) (seq, pending uint64, ok bool) {
	const prefix = "$JS.ACK."
	if !strings.HasPrefix(reply, prefix) {
		return 0, 0, false
	}
	var s, p string
	if strings.Count(reply, ".") == 8 {
		// The usual form, read from its end: names hold no dots.
		var tokens [4]string // pending, time, consumer seq, stream seq
		end := len(reply)
		for k := range tokens {
			i := strings.LastIndexByte(reply[:end], '.')
			tokens[k], end = reply[i+1:end], i
		}
		s, p = tokens[3], tokens[0]
	} else {
		tokens := strings.SplitN(reply[len(prefix):], ".", 10)
		if len(tokens) < 10 {
			return 0, 0, false
		}
		s, p = tokens[5], tokens[8]
	}
	seq, err1 := strconv.ParseUint(s, 10, 64)
	pending, err2 := strconv.ParseUint(p, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return seq, pending, true
}

// close applies what is left and waits for the applying goroutine.
func (pl *pipeline) close() {
	pl.mu.Lock()
	pl.stopLocked()
	pl.mu.Unlock()
	<-pl.done
}

func (pl *pipeline) stopLocked() {
	if pl.b == nil {
		return
	}
	if len(pl.b.entries) > 0 {
		pl.full <- pl.b
	}
	pl.b = nil
	close(pl.full)
}

func (p *Projector) applyBatch(ctx context.Context, b *batch) error {
	var from uint64 // where the batch's Update starts, when one is wanted
	updates := p.opts.onUpdate != nil && p.view != nil
	if updates {
		from = p.view.Seq()
	}
	if err := p.dest.Apply(ctx, b.entries); err != nil {
		return fmt.Errorf("apply events %d-%d: %w", b.entries[0].Seq, b.entries[len(b.entries)-1].Seq, err)
	}
	metricApplied.Add(float64(len(b.entries)))
	ready := p.ready.Load()
	now := time.Now()
	for i := range b.entries {
		e := &b.entries[i]
		if e.Err != nil {
			p.deadLetter(b.data[i], e.Seq, e.Err.Error())
		}
		if ready && !e.Event.CommitTime.IsZero() {
			metricLag.Observe(now.Sub(e.Event.CommitTime).Seconds())
		}
	}
	last := b.entries[len(b.entries)-1].Seq
	if ready && updates {
		p.opts.onUpdate(p.view.updateOf(b.entries, from))
	}
	if b.caughtUp || last >= p.target.Load() {
		p.markReady()
	}
	if p.opts.onApplied != nil {
		p.opts.onApplied()
	}
	return nil
}

func (p *Projector) markReady() {
	metricReady.Set(1)
	if !p.ready.Swap(true) {
		p.opts.logger.Info("view caught up with the stream", "seq", p.dest.Seq())
		if p.opts.onUpdate != nil && p.view != nil {
			p.opts.onUpdate(p.view.fullUpdate())
		}
		if p.opts.onReady != nil {
			p.opts.onReady()
		}
	}
}

// DeadLetter is what the projector publishes for an event it could not
// fully apply.
type DeadLetter struct {
	Seq    uint64          `json:"seq"`
	Reason string          `json:"reason"`
	Event  json.RawMessage `json:"event"`
}

func (p *Projector) deadLetter(data []byte, seq uint64, reason string) {
	metricDeadLetters.Inc()
	p.opts.logger.Warn("event not fully applied", "seq", seq, "reason", reason)
	if p.opts.deadLetter == "" {
		return
	}
	ev := json.RawMessage(data)
	if !json.Valid(data) {
		ev, _ = json.Marshal(string(data))
	}
	body, _ := json.Marshal(DeadLetter{Seq: seq, Reason: reason, Event: ev})
	if err := p.link.Load().nc.Publish(p.opts.deadLetter, body); err != nil {
		p.opts.logger.Error("publish dead letter", "seq", seq, "err", err)
	}
}

func (p *Projector) restoreSnapshot(ctx context.Context, info *jetstream.StreamInfo) {
	start := time.Now()
	ok, err := p.snaps.restore(ctx, p.link.Load().js, info, p.view)
	switch {
	case err != nil:
		metricSnapshots.WithLabelValues("restore_failed").Inc()
		p.opts.logger.Warn("view snapshot not used; rebuilding from the stream", "err", err)
	case !ok:
		p.opts.logger.Info("no view snapshot yet; rebuilding from the stream", "bucket", p.snaps.bucket)
	default:
		metricSnapshots.WithLabelValues("restored").Inc()
		p.opts.logger.Info("view restored from its snapshot", "seq", p.view.Seq(), "stream_last_seq", info.State.LastSeq,
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// saveSnapshots saves a snapshot every interval once the view is ready,
// and a last one when ctx ends.
func (p *Projector) saveSnapshots(ctx context.Context) {
	t := time.NewTicker(p.snaps.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if p.ready.Load() && !p.retired.Load() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), snapshotStopTimeout)
				p.saveSnapshot(sctx)
				cancel()
			}
			return
		case <-t.C:
			if p.ready.Load() {
				p.saveSnapshot(ctx)
			}
		}
	}
}

// snapshotStopTimeout bounds the last save when the projector stops.
const snapshotStopTimeout = 10 * time.Second

func (p *Projector) saveSnapshot(ctx context.Context) {
	start := time.Now()
	js := p.link.Load().js
	seq, size, err := p.snaps.save(ctx, js, p.view)
	switch {
	case err != nil:
		metricSnapshots.WithLabelValues("save_failed").Inc()
		p.opts.logger.Warn("view snapshot not saved", "err", err)
	case seq > 0:
		metricSnapshots.WithLabelValues("saved").Inc()
		metricSnapshotBytes.Set(float64(size))
		p.opts.logger.Debug("view snapshot saved", "seq", seq, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
		n, err := p.snaps.sweep(ctx, js, time.Now().Add(-orphanAge))
		if n > 0 {
			metricSnapshots.WithLabelValues("orphan_purged").Add(float64(n))
			p.opts.logger.Info("purged snapshot chunks no object refers to", "bucket", p.snaps.bucket, "objects", n)
		}
		if err != nil {
			p.opts.logger.Warn("snapshot chunks not swept", "err", err)
		}
	}
}
