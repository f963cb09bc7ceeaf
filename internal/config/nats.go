package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	metricDisconnects = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_nats_disconnects_total",
		Help: "Times a NATS connection of this process was lost (a server stopped, a network failure).",
	})
	metricReconnects = promauto.NewCounter(prometheus.CounterOpts{
		Name: "reportes_nats_reconnects_total",
		Help: "Times a NATS connection of this process was re-established, to the same server or another of the cluster.",
	})
)

// NATSOption configures ConnectNATS.
type NATSOption func(*natsOptions)

type natsOptions struct {
	reach  *Reach
	closed func(error)
}

// ReportTo makes the connection tell r whether NATS can be reached and,
// when it cannot, why. One Reach may follow the successive connections a
// process opens when the client closed the previous one.
func ReportTo(r *Reach) NATSOption { return func(o *natsOptions) { o.reach = r } }

// OnClosed calls fn, with the client's last error, when the connection is
// closed for good: by Close, or by the client itself after some server
// errors, which it does not reconnect from.
func OnClosed(fn func(error)) NATSOption { return func(o *natsOptions) { o.closed = fn } }

// ConnectNATS connects to c.NatsURL and keeps reconnecting for ever: the
// binaries ride out NATS restarts instead of exiting. While NATS cannot be
// reached it logs why once, and again when the reason changes, not at
// every attempt.
func (c Config) ConnectNATS(name string, logger *slog.Logger, opts ...NATSOption) (*nats.Conn, error) {
	o := natsOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reach == nil {
		o.reach = NewReach(c.NatsURL)
	}
	r := o.reach
	nopts := append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
	}, r.handlers(logger, c.NatsURL, o.closed)...)
	if c.NatsCreds != "" {
		nopts = append(nopts, nats.UserCredentials(c.NatsCreds))
	}
	if c.NatsTLSCA != "" {
		nopts = append(nopts, nats.RootCAs(c.NatsTLSCA))
	}
	if c.NatsTLSCert != "" {
		nopts = append(nopts, nats.ClientCert(c.NatsTLSCert, c.NatsTLSKey))
	}
	nc, err := nats.Connect(c.NatsURL, nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(c.NatsURL), err)
	}
	if nc.IsConnected() {
		r.up()
	}
	return nc, nil
}

// handlers are the client callbacks that keep r current and log what an
// operator needs: a disconnection, why reconnecting fails (once per
// reason), the reconnection, asynchronous errors.
func (r *Reach) handlers(logger *slog.Logger, url string, closed func(error)) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			r.down(err)
			if err != nil { // nil: the process closed the connection itself
				metricDisconnects.Inc()
				logger.Warn("disconnected from NATS", "url", Redact(url), "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if r.failed(err) {
				since, p := r.Problem()
				logger.Warn("NATS unreachable; retrying", "err", p, "since", since)
			}
		}),
		nats.ConnectHandler(func(*nats.Conn) { r.up() }),
		// A connection the client closed (on some server errors) does not
		// come back by itself: the process opens another.
		nats.ClosedHandler(func(nc *nats.Conn) {
			err := nc.LastError()
			if err == nil {
				err = nats.ErrConnectionClosed
			}
			r.down(err)
			if closed != nil {
				closed(err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			r.up()
			metricReconnects.Inc()
			logger.Info("reconnected to NATS", "url", Redact(nc.ConnectedUrl()), "server", nc.ConnectedServerName())
		}),
		// Errors no call returns: a slow consumer, an ordered consumer the
		// client could not recreate.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Warn("NATS asynchronous error", "subject", subject, "err", err)
		}),
	}
}

// Reach is whether NATS could be reached, as the client saw it: since when
// it cannot, and why its last attempt failed ("connection refused", "no
// such host", "i/o timeout"). Safe for concurrent use.
type Reach struct {
	url string // redacted

	mu    sync.Mutex
	isUp  bool
	since time.Time // when it went down, or when the first attempt began
	why   error
}

// NewReach follows the connections to url (a NATS_URL; it is shown
// redacted).
func NewReach(url string) *Reach {
	return &Reach{url: Redact(url), since: time.Now(), why: errors.New("not connected yet")}
}

// Problem is zero while connected. Otherwise it is since when NATS could
// not be reached and "cannot reach NATS at <url>: <why>".
func (r *Reach) Problem() (time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isUp {
		return time.Time{}, nil
	}
	return r.since, fmt.Errorf("cannot reach NATS at %s: %w", r.url, r.why)
}

func (r *Reach) up() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.isUp, r.why = true, nil
}

func (r *Reach) down(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isUp {
		r.isUp, r.since = false, time.Now()
	}
	if err == nil {
		err = errors.New("disconnected")
	}
	if r.why == nil {
		r.why = reason(err)
	}
}

// failed records why an attempt failed; it reports whether the reason
// differs from the last one.
func (r *Reach) failed(err error) bool {
	if errors.Is(err, nats.ErrNoServers) {
		return false // the first attempt's summary: the next says why
	}
	why := reason(err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isUp {
		r.isUp, r.since = false, time.Now()
	}
	changed := r.why == nil || r.why.Error() != why.Error()
	r.why = why
	return changed
}

// reason keeps what a dial error says about the server, without the
// addresses the URL already names.
func reason(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Timeout() {
		return errors.New("i/o timeout")
	}
	return err
}
