package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnectNATS connects to c.NatsURL and keeps reconnecting for ever: the
// binaries ride out NATS restarts instead of exiting.
func (c Config) ConnectNATS(name string, logger *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", "url", Redact(nc.ConnectedUrl()))
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
	if c.NatsCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NatsCreds))
	}
	if c.NatsTLSCA != "" {
		opts = append(opts, nats.RootCAs(c.NatsTLSCA))
	}
	if c.NatsTLSCert != "" {
		opts = append(opts, nats.ClientCert(c.NatsTLSCert, c.NatsTLSKey))
	}
	nc, err := nats.Connect(c.NatsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(c.NatsURL), err)
	}
	return nc, nil
}
