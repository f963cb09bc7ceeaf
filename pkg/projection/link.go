package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// link is the projector's connection to NATS and the JetStream contexts
// made from it. It is replaced as a whole when the client closed the
// connection for good (a protocol error the server answered with -ERR), so
// the view keeps following the stream on a new one.
type link struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	legacy nats.JetStreamContext // for its push-based ordered consumer
	owned  bool                  // opened by the projector, closed by it
}

func newLink(nc *nats.Conn) (*link, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	legacy, err := nc.JetStream()
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	return &link{nc: nc, js: js, legacy: legacy}, nil
}

// WithRedial lets the projector open a new connection with dial when the
// client closed its connection for good: nats.go closes a connection,
// without reconnecting, when the server answers a protocol error. Without
// it such a projector keeps failing and says so in Health.
func WithRedial(dial func() (*nats.Conn, error)) Option {
	return func(o *projectorOptions) { o.redial = dial }
}

// Health is what the projector knows of its way to the stream, for probes
// and for saying how stale a view is.
type Health struct {
	// Ready: the view caught up with the stream at least once.
	Ready bool
	// Err says why the stream cannot be read now; nil when it can.
	Err error
	// Since is when the stream stopped being readable (the start of the
	// projector when it never was); zero when Err is nil.
	Since time.Time
}

// health records the projector's problems reaching the stream.
type health struct {
	downSince atomic.Int64            // unix nanos the connection was lost; 0 while connected
	streamErr atomic.Pointer[problem] // the last failure to read the stream while connected
}

type problem struct {
	err   error
	since time.Time
}

// Health reports whether the view is ready and whether the stream can be
// read now. It is cheap enough to call on every request.
func (p *Projector) Health() Health {
	h := Health{Ready: p.ready.Load()}
	nc := p.link.Load().nc
	if !nc.IsConnected() {
		err := nc.LastError()
		if err == nil {
			err = errors.New(strings.ToLower(nc.Status().String()))
		}
		h.Err = fmt.Errorf("cannot reach NATS: %w", err)
		if since := p.health.downSince.Load(); since != 0 {
			h.Since = time.Unix(0, since)
		} else {
			h.Since = p.started
		}
		return h
	}
	if pr := p.health.streamErr.Load(); pr != nil {
		h.Err, h.Since = pr.err, pr.since
	}
	return h
}

// Conn is the connection the projector reads the stream on now: it
// replaces one the client closed (WithRedial).
func (p *Projector) Conn() *nats.Conn { return p.link.Load().nc }

// streamFailed records err, a failure to read the stream while connected;
// nil records that the stream was read.
func (p *Projector) streamFailed(err error) {
	if err == nil {
		p.health.streamErr.Store(nil)
		return
	}
	since := time.Now()
	if prev := p.health.streamErr.Load(); prev != nil {
		since = prev.since
	}
	p.health.streamErr.Store(&problem{err: err, since: since})
}

// watch records when nc loses and regains its connection, until ctx ends
// or nc is closed.
func (p *Projector) watch(ctx context.Context, nc *nats.Conn) {
	changes := nc.StatusChanged()
	defer nc.RemoveStatusListener(changes)
	if !nc.IsConnected() {
		p.health.downSince.CompareAndSwap(0, time.Now().UnixNano())
	}
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-changes:
			if st == nats.CONNECTED {
				p.health.downSince.Store(0)
				continue
			}
			p.health.downSince.CompareAndSwap(0, time.Now().UnixNano())
			if st == nats.CLOSED {
				return
			}
		}
	}
}

// reopen replaces a connection the client closed with a new one from the
// redial option. It reports whether there is a new connection.
func (p *Projector) reopen(ctx context.Context) bool {
	old := p.link.Load()
	if !old.nc.IsClosed() || p.opts.redial == nil {
		return false
	}
	p.opts.logger.Warn("the NATS connection was closed by the client; opening a new one", "err", old.nc.LastError())
	nc, err := p.opts.redial()
	if err != nil {
		p.opts.logger.Error("open a new NATS connection", "err", err)
		return false
	}
	l, err := newLink(nc)
	if err != nil {
		nc.Close()
		p.opts.logger.Error("open a new NATS connection", "err", err)
		return false
	}
	l.owned = true
	p.link.Store(l)
	if old.owned {
		old.nc.Close()
	}
	go p.watch(ctx, nc)
	return true
}

// streamInfo finds the stream and reads its state, with errors that say
// what an operator can do about them.
func (p *Projector) streamInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	stream, err := js.Stream(ctx, p.opts.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s not found: the ingestor creates it (is it running, with the same NATS_STREAM?): %w", p.opts.stream, err)
	}
	if err != nil {
		return nil, fmt.Errorf("find stream %s: %w", p.opts.stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the state of stream %s: %w", p.opts.stream, err)
	}
	return info, nil
}
