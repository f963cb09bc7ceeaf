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
	nc, err := nats.Connect(c.NatsURL,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("reconnected to NATS", "url", Redact(nc.ConnectedUrl()))
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(c.NatsURL), err)
	}
	return nc, nil
}
