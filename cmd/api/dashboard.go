package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/projection"
)

// dashboard adapts the view and its projector to what the HTTP API
// serves, and says in an operator's words why the stream cannot be read.
type dashboard struct {
	view    *projection.View
	proj    *projection.Projector
	natsURL string                    // NATS_URL, as configured
	conn    atomic.Pointer[nats.Conn] // the projector's connection: redial replaces it
	// refused is why the last probe could not open a TCP connection to
	// NATS; nil while it could or while connected. The client does not
	// keep the reason of its failed reconnects (it says "reconnecting").
	refused atomic.Pointer[error]
}

func newDashboard(view *projection.View, natsURL string, nc *nats.Conn) *dashboard {
	d := &dashboard{view: view, natsURL: natsURL}
	d.conn.Store(nc)
	return d
}

func (d *dashboard) JSON() []byte { return d.view.JSON() }

// Ready: caught up with the stream once and able to read it now.
func (d *dashboard) Ready() bool {
	h := d.proj.Health()
	return h.Ready && h.Err == nil
}

// Health is the projector's health, its error naming NATS as configured
// (redacted). It is called on every dashboard request: the slow parts
// run only when something is wrong.
func (d *dashboard) Health() httpapi.Health {
	h := d.proj.Health()
	out := httpapi.Health{Ready: h.Ready, Since: h.Since}
	if !h.Ready {
		out.Seq = d.view.Seq()
	}
	if h.Err != nil {
		out.Err = d.explain(h.Err)
	}
	return out
}

// explain rewrites the projector's "cannot reach NATS: reconnecting" as
// "cannot reach NATS at <url>: <why>"; other errors (a missing stream)
// already say what to do and keep their words.
func (d *dashboard) explain(err error) error {
	if d.conn.Load().IsConnected() {
		return err
	}
	why := errors.Unwrap(err)
	if p := d.refused.Load(); p != nil {
		why = *p
	}
	if why == nil {
		why = err
	}
	return fmt.Errorf("cannot reach NATS at %s: %w", config.Redact(d.natsURL), why)
}

// redial wraps connect so the dashboard follows the connection the
// projector opens when the client closed the previous one.
func (d *dashboard) redial(connect func() (*nats.Conn, error)) func() (*nats.Conn, error) {
	return func() (*nats.Conn, error) {
		nc, err := connect()
		if err == nil {
			d.conn.Store(nc)
		}
		return nc, err
	}
}

// watch logs the stream's problems when they start, change and end, not
// at every retry, and probes NATS while disconnected to learn why, until
// ctx ends.
func (d *dashboard) watch(ctx context.Context, logger *slog.Logger, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last httpapi.Health
	for {
		d.probe(ctx)
		h := d.Health()
		logChange(logger, last, h)
		last = h
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// logChange logs h when its problem differs from last's: once when the
// stream stops being readable, again when the reason changes, once when
// it is readable again.
func logChange(logger *slog.Logger, last, h httpapi.Health) {
	switch {
	case h.Err != nil && (last.Err == nil || h.Err.Error() != last.Err.Error()):
		logger.Error("the event stream cannot be read; the dashboard says so until it can",
			"err", h.Err, "since", h.Since, "view_ready", h.Ready)
	case h.Err == nil && last.Err != nil:
		logger.Info("the event stream can be read again", "after", time.Since(last.Since).Round(time.Millisecond))
	}
}

// probe records why NATS cannot be reached, when the client is not
// connected; it clears the reason otherwise.
func (d *dashboard) probe(ctx context.Context) {
	if d.conn.Load().IsConnected() {
		d.refused.Store(nil)
		return
	}
	if err := dialAny(ctx, d.natsURL); err != nil {
		d.refused.Store(&err)
		return
	}
	d.refused.Store(nil) // TCP reaches it: the client's own words are better
}

// dialAny opens and closes a TCP connection to one of the servers of a
// NATS_URL list; it returns the reason of the last failure ("connection
// refused", "no such host", "i/o timeout") when none answers.
func dialAny(ctx context.Context, servers string) error {
	dialer := net.Dialer{Timeout: time.Second}
	var last error
	for s := range strings.SplitSeq(servers, ",") {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "://") {
			s = "nats://" + s // nats.go takes host:port alone
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			continue
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "4222")
		}
		c, err := dialer.DialContext(ctx, "tcp", host)
		if err == nil {
			_ = c.Close()
			return nil
		}
		last = reason(err)
	}
	return last
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
