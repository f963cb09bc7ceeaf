package stream

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/rawjson"
)

// ErrPublisherClosed is returned by a Publisher used after Close.
var ErrPublisherClosed = errors.New("publisher closed")

var _ cdc.Publisher = (*Publisher)(nil)

// Publisher publishes events to JetStream asynchronously, keeps at most a
// bounded number of them in flight, and runs acknowledgement callbacks in
// order: it is the cdc.Publisher of the sources. See the package
// documentation for the contract.
//
// It speaks JetStream's publish protocol on the core connection: every
// event is published with a reply subject of its own under one inbox, and
// the stream's acknowledgement arrives there. The acknowledgements of one
// stream arrive in publication order, so keeping them is a ring of the
// events in flight and a watermark below which every event is
// acknowledged; nats.go's asynchronous publish keeps a future, a timer and
// a map entry per event and decodes every acknowledgement by reflection,
// which was a fifth of a source's CPU per event.
// make bench: BenchmarkPublish 9.0 -> 6.2 µs, 48 -> 23 allocs/event vs PublishAsync (bench/results.md, "Publishing, fifth round").
type Publisher struct {
	nc         *nats.Conn
	keep       map[string][]string
	prefix     string
	logger     *slog.Logger
	ackTimeout time.Duration
	ids        *idEpoch // shared by the Publishers of one Opener
	idSuffix   string   // appended to every Nats-Msg-Id: "" in epoch 0

	// Used by Publish only, which runs on the source's one goroutine.
	subjects map[[2]string]string // (source, collection) -> its subject
	subject  []byte               // the subject of the event being published
	msg      nats.Msg             // reused: PublishMsg copies what it sends
	msgID    []string             // msg's Nats-Msg-Id header value
	buf      []byte

	inbox  string             // acknowledgements arrive on inbox + sequence
	sub    *nats.Subscription // of inbox + "*"
	status chan nats.Status
	slots  chan struct{} // one per event in flight
	dead   chan struct{} // closed at the first failure
	stop   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu       sync.Mutex
	ring     []inflight // event seq lives at ring[seq%len(ring)]
	next     uint64     // sequence of the next event published; the first is 1
	acked    uint64     // every event up to acked is acknowledged
	waiters  []waiter   // AfterAcked and Flush, in the order they were called
	counters map[string]*sourceCounters
	err      error
	closed   bool
	// maxStored is the highest stream sequence of the events acknowledged
	// in order so far, stored or duplicates; reordered is set once one was
	// found stored below it.
	maxStored uint64
	reordered bool
}

// idEpoch is the stream sequence at which a Publisher last found the
// stream holding its events out of publication order (ErrReordered), 0
// before. From then on the Publishers of the same Opener suffix every
// message id with it, so JetStream stores the republished events again,
// after everything stored before, instead of dropping them as duplicates
// of copies stored out of order. A sequence, not a count: the suffix of
// one repair is never that of another, in another process either.
type idEpoch struct{ n atomic.Uint64 }

// ErrReordered stops a Publisher that republished an event the stream
// already held from before an event published ahead of it (in the order of
// this Publisher's acknowledgements): a publish was lost while a later one
// was stored (a connection lost with
// publishes in flight and the later ones sent again after the reconnect,
// or a stream leader change). The stream then holds events of one key out
// of order, and with one message kept per subject the older one would win.
// The source restarts from its last acknowledged position, and the next
// Publisher of the same Opener publishes under new message ids (see
// idEpoch), storing every event from there again in order.
var ErrReordered = errors.New("the stream holds this event before an event published ahead of it")

// inflight is an event published and not yet acknowledged in order.
type inflight struct {
	id       string
	counters *sourceCounters
	sent     time.Time
	acked    bool
	dup      bool   // acknowledged as a duplicate
	stored   uint64 // the stream sequence of its stored copy
	snapshot bool   // a snapshot row or marker: not ordered by position
}

// waiter runs fn once every event up to seq is acknowledged.
type waiter struct {
	seq uint64
	fn  func()
}

// sourceCounters are the metrics a source's acknowledgements count, looked
// up once per source instead of once per event.
type sourceCounters struct {
	published, duplicates, errors, reordered prometheus.Counter
	inflight                                 prometheus.Gauge
}

type publisherOptions struct {
	keep       map[string][]string
	prefix     string
	maxPending int
	ackTimeout time.Duration
	logger     *slog.Logger
	ids        *idEpoch
}

// PublisherOption configures a Publisher.
type PublisherOption func(*publisherOptions)

// WithSubjectPrefix sets the subject prefix events are published under
// (default "reportes.cdc").
func WithSubjectPrefix(prefix string) PublisherOption {
	return func(o *publisherOptions) { o.prefix = prefix }
}

// WithMaxPending bounds the events published but not yet acknowledged
// (default 4096). Publish blocks while the bound is reached, which bounds the
// memory the ingestor uses when JetStream is slow or away.
func WithMaxPending(n int) PublisherOption {
	return func(o *publisherOptions) { o.maxPending = n }
}

// WithAckTimeout sets how long a publish may wait for its acknowledgement
// before the Publisher fails (default 10s).
func WithAckTimeout(d time.Duration) PublisherOption {
	return func(o *publisherOptions) { o.ackTimeout = d }
}

// WithKeepOnOversize names, per collection, the top-level fields of After
// that must survive when an event is too large for a NATS message (the
// server's max_payload, 1 MiB by default). Such an event is published with
// only those fields (and _id) in After, no Before, and Truncated set, instead
// of failing the publish and stalling the source on it for ever.
func WithKeepOnOversize(fields map[string][]string) PublisherOption {
	return func(o *publisherOptions) { o.keep = fields }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) PublisherOption {
	return func(o *publisherOptions) { o.logger = l }
}

// Publishers returns the cdc.Opener that opens a Publisher on nc with opts
// for every run of a source (see cdc.Supervise).
func Publishers(nc *nats.Conn, opts ...PublisherOption) cdc.Opener {
	ids := &idEpoch{}
	opts = append(slices.Clip(opts), func(o *publisherOptions) { o.ids = ids })
	return func() (cdc.Publisher, func(), error) {
		p, err := NewPublisher(nc, opts...)
		if err != nil {
			return nil, nil, err
		}
		return p, p.Close, nil
	}
}

// NewPublisher returns a Publisher on nc. Close it when done.
func NewPublisher(nc *nats.Conn, opts ...PublisherOption) (*Publisher, error) {
	o := publisherOptions{prefix: cdc.DefaultSubjectPrefix, maxPending: 4096, ackTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxPending < 1 {
		return nil, fmt.Errorf("publisher: max pending %d, want at least 1", o.maxPending)
	}
	if o.ackTimeout <= 0 {
		return nil, fmt.Errorf("publisher: ack timeout %s, want more than 0", o.ackTimeout)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.ids == nil {
		o.ids = &idEpoch{}
	}
	p := &Publisher{
		ids:        o.ids,
		idSuffix:   idSuffix(o.ids.n.Load()),
		nc:         nc,
		keep:       o.keep,
		prefix:     o.prefix,
		logger:     o.logger,
		ackTimeout: o.ackTimeout,
		subjects:   map[[2]string]string{},
		msgID:      []string{""},
		inbox:      nc.NewRespInbox() + ".",
		slots:      make(chan struct{}, o.maxPending),
		dead:       make(chan struct{}),
		stop:       make(chan struct{}),
		ring:       make([]inflight, o.maxPending),
		next:       1,
		counters:   map[string]*sourceCounters{},
	}
	p.msg.Header = nats.Header{jetstream.MsgIDHeader: p.msgID}
	var err error
	if p.sub, err = nc.Subscribe(p.inbox+"*", p.onAck); err != nil {
		return nil, fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	// At most maxPending acknowledgements are ever outstanding.
	if err := p.sub.SetPendingLimits(-1, -1); err != nil {
		_ = p.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe to acknowledgements: %w", err)
	}
	p.status = nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	p.wg.Add(1)
	go p.watch()
	return p, nil
}

// Publish encodes ev and publishes it on its collection's subject with
// Nats-Msg-Id ev.ID. It returns once the message is handed to the
// connection, keeping only ev.ID; the acknowledgement is awaited in the
// background. It blocks
// while the maximum of events in flight is reached. Publish, AfterAcked
// and Flush are called from the source's one goroutine.
func (p *Publisher) Publish(ctx context.Context, ev *cdc.Event) error {
	p.buf = ev.AppendJSON(p.buf[:0])
	data := p.buf
	var err error
	if limit := p.nc.MaxPayload() - 1024; limit > 0 && int64(len(data)) > limit {
		if data, err = p.shrink(ev, limit); err != nil {
			return err
		}
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.dead:
		return p.Err()
	case <-p.stop:
		return ErrPublisherClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	if err := p.stoppedLocked(); err != nil {
		p.mu.Unlock()
		return err
	}
	seq := p.next
	p.next++
	counters := p.countersLocked(ev.Source)
	counters.inflight.Inc()
	p.ring[seq%uint64(len(p.ring))] = inflight{id: ev.ID, counters: counters, sent: time.Now(), snapshot: ev.Snapshot != ""}
	p.mu.Unlock()

	p.subject = cdc.AppendSubject(p.subject[:0], p.collectionSubject(ev.Source, ev.Collection), ev)
	p.msg.Subject = string(p.subject)
	p.msg.Reply = p.inbox + strconv.FormatUint(seq, 10)
	p.msg.Data = data
	p.msgID[0] = ev.ID
	if p.idSuffix != "" {
		p.msgID[0] = ev.ID + p.idSuffix
	}
	err = p.nc.PublishMsg(&p.msg)
	if cap(p.buf) > 1<<20 {
		p.buf = nil // an outsized event: do not keep its buffer
	}
	if err != nil {
		err = fmt.Errorf("publish event %s: %w", ev.ID, err)
		p.fail(err)
		return err
	}
	return nil
}

// AfterAcked runs fn once every event published before this call has been
// acknowledged: on the goroutine that receives acknowledgements, or at once
// when nothing is in flight. fn must not block nor call the Publisher; it
// never runs once the Publisher has failed.
func (p *Publisher) AfterAcked(fn func()) error {
	return p.wait(fn)
}

// Flush waits until every event published so far has been acknowledged and
// returns the Publisher's error, if any.
func (p *Publisher) Flush(ctx context.Context) error {
	done := make(chan struct{})
	if err := p.wait(func() { close(done) }); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-p.dead:
		return p.Err()
	case <-p.stop:
		return ErrPublisherClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait queues fn behind the events published so far, or runs it now when
// they are all acknowledged.
func (p *Publisher) wait(fn func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stoppedLocked(); err != nil {
		return err
	}
	p.waiters = append(p.waiters, waiter{seq: p.next - 1, fn: fn})
	p.releaseLocked()
	return nil
}

// stoppedLocked returns why the Publisher takes nothing more, if it does not.
func (p *Publisher) stoppedLocked() error {
	switch {
	case p.err != nil:
		return p.err
	case p.closed:
		return ErrPublisherClosed
	}
	return nil
}

// Err returns the error that stopped the Publisher, if any.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close stops the Publisher. Callbacks of events not yet acknowledged never
// run, and acknowledgements arriving later are ignored: the source that
// published them resumes from its last acknowledged position.
func (p *Publisher) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	_ = p.sub.Unsubscribe()
	p.nc.RemoveStatusListener(p.status)
	p.mu.Lock()
	defer p.mu.Unlock()
	for ; p.acked+1 < p.next; p.acked++ {
		p.ring[(p.acked+1)%uint64(len(p.ring))].counters.inflight.Dec()
	}
}

// onAck handles the stream's reply to one publish.
func (p *Publisher) onAck(m *nats.Msg) {
	seq, err := strconv.ParseUint(m.Subject[len(p.inbox):], 10, 64)
	if err != nil {
		return // not a reply to this Publisher
	}
	duplicate, stored, ackErr := readAck(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq <= p.acked || seq >= p.next {
		return // a late reply of an event already timed out, or a stranger's
	}
	e := &p.ring[seq%uint64(len(p.ring))]
	if e.acked {
		return
	}
	if ackErr != nil {
		e.counters.errors.Inc()
		p.failLocked(fmt.Errorf("acknowledge event %s: %w", e.id, ackErr))
		return
	}
	e.acked, e.dup, e.stored = true, duplicate, stored
	e.counters.published.Inc()
	if duplicate {
		e.counters.duplicates.Inc()
	}
	freed := 0
	for p.acked+1 < p.next {
		head := &p.ring[(p.acked+1)%uint64(len(p.ring))]
		if !head.acked || p.reorderedLocked(head) {
			break
		}
		head.counters.inflight.Dec()
		*head = inflight{}
		p.acked++
		freed++
	}
	for range freed {
		<-p.slots
	}
	p.releaseLocked()
}

// reorderedLocked reports (and fails the Publisher) when e, the next event
// in publication order, is a duplicate of a copy stored below an event
// acknowledged before it. A duplicate of the event just before it (the
// same event published twice in a row) is no reordering. Snapshot rows and
// markers take no part: a backfill reads a chunk again after a restart
// under the same ids, and its rows are ordered by their versions (the
// watermark's), not by where the stream holds them.
func (p *Publisher) reorderedLocked(e *inflight) bool {
	if e.snapshot {
		return false
	}
	if !e.dup || e.stored == 0 || e.stored >= p.maxStored {
		p.maxStored = max(p.maxStored, e.stored)
		return false
	}
	if !p.reordered {
		p.reordered = true
		p.ids.n.Store(p.maxStored)
		e.counters.reordered.Inc()
		p.logger.Warn("the stream holds events out of publication order; republishing from the last acknowledged position under new message ids",
			"event", e.id, "stored_at", e.stored, "after", p.maxStored, "id_suffix", idSuffix(p.maxStored))
	}
	p.failLocked(fmt.Errorf("acknowledge event %s (stored at %d, before %d): %w", e.id, e.stored, p.maxStored, ErrReordered))
	return true
}

// idSuffix is what the message ids end with after the repair at epoch.
func idSuffix(epoch uint64) string {
	if epoch == 0 {
		return ""
	}
	return "~r" + strconv.FormatUint(epoch, 10)
}

// releaseLocked runs the callbacks and completes the flushes whose events
// are all acknowledged.
func (p *Publisher) releaseLocked() {
	if p.err != nil {
		return
	}
	n := 0
	for _, w := range p.waiters {
		if w.seq > p.acked {
			break
		}
		w.fn()
		n++
	}
	if n > 0 {
		clear(p.waiters[:n])
		p.waiters = p.waiters[n:]
	}
}

// watch fails the Publisher when the oldest event in flight waited longer
// than the acknowledgement timeout, or when the connection is lost with
// events in flight: their acknowledgements may never arrive.
func (p *Publisher) watch() {
	defer p.wg.Done()
	tick := time.NewTicker(min(max(p.ackTimeout/10, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case st, ok := <-p.status:
			if !ok {
				return
			}
			p.mu.Lock()
			if n := p.next - 1 - p.acked; n > 0 {
				p.failLocked(fmt.Errorf("connection to NATS %s with %d events unacknowledged: %w", strings.ToLower(st.String()), n, nats.ErrDisconnected))
			}
			p.mu.Unlock()
		case now := <-tick.C:
			p.mu.Lock()
			if p.acked+1 < p.next {
				head := &p.ring[(p.acked+1)%uint64(len(p.ring))]
				if waited := now.Sub(head.sent); waited > p.ackTimeout {
					head.counters.errors.Inc()
					p.failLocked(fmt.Errorf("acknowledge event %s: no acknowledgement in %s: %w", head.id, waited.Round(time.Millisecond), jetstream.ErrAsyncPublishTimeout))
				}
			}
			p.mu.Unlock()
		}
	}
}

func (p *Publisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failLocked(err)
}

func (p *Publisher) failLocked(err error) {
	if p.err != nil {
		return
	}
	p.err = err
	p.waiters = nil
	close(p.dead)
	p.logger.Error("publisher stopped", "err", err)
}

func (p *Publisher) countersLocked(source string) *sourceCounters {
	c, ok := p.counters[source]
	if !ok {
		c = &sourceCounters{
			published:  metricPublished.WithLabelValues(source),
			duplicates: metricDuplicates.WithLabelValues(source),
			errors:     metricPublishErrors.WithLabelValues(source),
			reordered:  metricReordered.WithLabelValues(source),
			inflight:   metricInflight.WithLabelValues(source),
		}
		p.counters[source] = c
	}
	return c
}

// readAck reads JetStream's reply to a publish: {"stream":...,"seq":...}
// with "duplicate":true when the Nats-Msg-Id was seen in the duplicate
// window, {"error":{...}} when the stream refused the message, and an empty
// message with status 503 when no stream stores the subject.
func readAck(m *nats.Msg) (duplicate bool, seq uint64, err error) {
	if len(m.Data) == 0 {
		if status := m.Header.Get("Status"); status == "503" {
			return false, 0, fmt.Errorf("no stream stores subject (no responders): %w", jetstream.ErrNoStreamResponse)
		} else if status != "" {
			return false, 0, fmt.Errorf("reply with status %s %s: %w", status, m.Header.Get("Description"), jetstream.ErrInvalidJSAck)
		}
	}
	ack, _, err := rawjson.Lookup(m.Data, nil)
	if err != nil {
		return false, 0, fmt.Errorf("%w: %q", jetstream.ErrInvalidJSAck, m.Data)
	}
	if raw, ok, _ := rawjson.Member(ack, "error"); ok && string(raw) != "null" {
		var apiErr jetstream.APIError
		if err := json.Unmarshal(raw, &apiErr); err != nil {
			return false, 0, fmt.Errorf("%w: %q", jetstream.ErrInvalidJSAck, m.Data)
		}
		return false, 0, &apiErr
	}
	if raw, ok, _ := rawjson.Member(ack, "stream"); !ok || len(raw) < 3 || raw[0] != '"' {
		return false, 0, fmt.Errorf("%w: %q", jetstream.ErrInvalidJSAck, m.Data)
	}
	// The sequence is the stored copy's: the original's for a duplicate.
	if raw, ok, _ := rawjson.Member(ack, "seq"); ok {
		seq, _ = strconv.ParseUint(string(raw), 10, 64)
	}
	raw, ok, _ := rawjson.Member(ack, "duplicate")
	return ok && string(raw) == "true", seq, nil
}

// shrink reduces an oversized event to the fields declared with
// WithKeepOnOversize.
func (p *Publisher) shrink(ev *cdc.Event, limit int64) ([]byte, error) {
	size := len(ev.After) + len(ev.Before)
	small := *ev
	small.Before, small.Truncated = nil, true
	small.After = nil
	if len(ev.After) > 0 {
		var doc map[string]json.RawMessage
		if json.Unmarshal(ev.After, &doc) == nil {
			kept := map[string]json.RawMessage{}
			for _, f := range append([]string{"_id"}, p.keep[ev.Collection]...) {
				if v, ok := doc[f]; ok {
					kept[f] = v
				}
			}
			small.After, _ = json.Marshal(kept)
		}
	}
	data := small.AppendJSON(nil)
	if int64(len(data)) > limit {
		small.After = nil
		data = small.AppendJSON(nil)
	}
	metricTruncated.WithLabelValues(ev.Source).Inc()
	p.logger.Warn("event too large for a NATS message; published with the declared fields only",
		"id", ev.ID, "collection", ev.Collection, "key", cdc.Bound(ev.Key), "bytes", size)
	return data, nil
}

func (p *Publisher) collectionSubject(source, collection string) string {
	k := [2]string{source, collection}
	if s, ok := p.subjects[k]; ok {
		return s
	}
	s := cdc.CollectionSubject(p.prefix, source, collection)
	p.subjects[k] = s
	return s
}
