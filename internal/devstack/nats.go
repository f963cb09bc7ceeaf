package devstack

import (
	"errors"
	"fmt"

	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded NATS server with JetStream.
type NATS struct {
	Server *server.Server
	dir    string
	port   int
}

// StartNATS starts a JetStream-enabled server storing under dir, on port
// (0 picks a free one) of 127.0.0.1.
func StartNATS(dir string, port int) (*NATS, error) {
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	n := &NATS{dir: dir, port: port}
	return n, n.start()
}

func (n *NATS) start() error {
	s, err := server.NewServer(&server.Options{
		ServerName: "reportes-dev",
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return fmt.Errorf("configure nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return errors.New("embedded nats server did not become ready in 30s")
	}
	n.Server = s
	return nil
}

// URL returns the client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Stop shuts the server down.
func (n *NATS) Stop() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// Restart stops the server and starts it again on the same port and store.
func (n *NATS) Restart() error {
	n.Stop()
	return n.start()
}
