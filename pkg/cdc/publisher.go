package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrPublisherClosed is returned by a Publisher used after Close.
var ErrPublisherClosed = errors.New("publisher closed")

// Publisher publishes events to JetStream asynchronously, keeps at most a
// bounded number of them in flight, and runs acknowledgement callbacks in
// order. See the package documentation for the contract.
type Publisher struct {
	subjects map[[2]string]string // (source, collection) -> subject; Publish runs on one goroutine
	nc       *nats.Conn
	keep     map[string][]string
	js       jetstream.JetStream
	prefix   string
	logger   *slog.Logger

	queue chan entry
	done  chan struct{}

	mu     sync.Mutex
	err    error
	closed bool
}

type entry struct {
	fut    jetstream.PubAckFuture
	source string
	after  func()
	flush  chan struct{}
}

type publisherOptions struct {
	keep       map[string][]string
	prefix     string
	maxPending int
	ackTimeout time.Duration
	logger     *slog.Logger
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

// WithPublisherLogger sets the logger (default: discard).
func WithPublisherLogger(l *slog.Logger) PublisherOption {
	return func(o *publisherOptions) { o.logger = l }
}

// DefaultSubjectPrefix is the subject prefix of change events.
const DefaultSubjectPrefix = "reportes.cdc"

// NewPublisher returns a Publisher on nc. Close it when done.
func NewPublisher(nc *nats.Conn, opts ...PublisherOption) (*Publisher, error) {
	o := publisherOptions{prefix: DefaultSubjectPrefix, maxPending: 4096, ackTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(o.maxPending),
		jetstream.WithPublishAsyncTimeout(o.ackTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	p := &Publisher{
		subjects: map[[2]string]string{},
		nc:       nc,
		keep:     o.keep,
		js:       js,
		prefix:   o.prefix,
		logger:   o.logger,
		queue:    make(chan entry, o.maxPending),
		done:     make(chan struct{}),
	}
	go p.ackLoop()
	return p, nil
}

// Publish encodes ev and publishes it on its collection's subject with
// Nats-Msg-Id ev.ID. It returns once the message is handed to the
// connection; the acknowledgement is awaited in the background. Publish,
// AfterAcked and Flush are called from the source's one goroutine.
func (p *Publisher) Publish(ctx context.Context, ev *Event) error {
	if err := p.Err(); err != nil {
		return err
	}
	data := ev.AppendJSON(make([]byte, 0, 256+len(ev.After)+len(ev.Before)))
	var err error
	if limit := p.nc.MaxPayload() - 1024; limit > 0 && int64(len(data)) > limit {
		if data, err = p.shrink(ev, limit); err != nil {
			return err
		}
	}
	msg := &nats.Msg{Subject: p.subject(ev.Source, ev.Collection), Data: data}
	fut, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ID), jetstream.WithStallWait(time.Minute))
	if err != nil {
		err = fmt.Errorf("publish event %s: %w", ev.ID, err)
		p.fail(err)
		return err
	}
	return p.enqueue(ctx, entry{fut: fut, source: ev.Source})
}

// AfterAcked runs fn once every event published before this call has been
// acknowledged. fn runs on the Publisher's own goroutine and must not block;
// it never runs once the Publisher has failed.
func (p *Publisher) AfterAcked(ctx context.Context, fn func()) error {
	return p.enqueue(ctx, entry{after: fn})
}

// Flush waits until every event published so far has been acknowledged and
// returns the Publisher's error, if any.
func (p *Publisher) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	if err := p.enqueue(ctx, entry{flush: ch}); err != nil {
		return err
	}
	select {
	case <-ch:
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pending returns the number of events awaiting acknowledgement.
func (p *Publisher) Pending() int { return len(p.queue) }

// Err returns the error that stopped the Publisher, if any.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close stops the Publisher after the callbacks already queued have run
// (or been skipped because of a failure).
func (p *Publisher) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.queue)
	}
	p.mu.Unlock()
	<-p.done
}

func (p *Publisher) enqueue(ctx context.Context, e entry) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrPublisherClosed
	}
	select {
	case p.queue <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Publisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
		p.logger.Error("publisher stopped", "err", err)
	}
}

func (p *Publisher) ackLoop() {
	defer close(p.done)
	for e := range p.queue {
		switch {
		case e.fut != nil:
			select {
			case ack := <-e.fut.Ok():
				metricPublished.WithLabelValues(e.source).Inc()
				if ack.Duplicate {
					metricDuplicates.WithLabelValues(e.source).Inc()
				}
			case err := <-e.fut.Err():
				metricPublishErrors.WithLabelValues(e.source).Inc()
				p.fail(fmt.Errorf("acknowledge event %s: %w", e.fut.Msg().Header.Get(jetstream.MsgIDHeader), err))
			}
		case e.after != nil:
			if p.Err() == nil {
				e.after()
			}
		case e.flush != nil:
			close(e.flush)
		}
	}
}

// shrink reduces an oversized event to the fields declared with
// WithKeepOnOversize.
func (p *Publisher) shrink(ev *Event, limit int64) ([]byte, error) {
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
		"id", ev.ID, "collection", ev.Collection, "key", ev.Key, "bytes", size)
	return data, nil
}

func (p *Publisher) subject(source, collection string) string {
	k := [2]string{source, collection}
	if s, ok := p.subjects[k]; ok {
		return s
	}
	s := Subject(p.prefix, source, collection)
	p.subjects[k] = s
	return s
}
