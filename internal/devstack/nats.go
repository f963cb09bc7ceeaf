package devstack

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded NATS server with JetStream.
type NATS struct {
	Server *server.Server
	dir    string
	port   int
	name   string
	// cluster is set for a member of a cluster (StartNATSCluster).
	cluster *server.ClusterOpts
	routes  []string
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
	n := &NATS{dir: dir, port: port, name: "reportes-dev"}
	return n, n.start()
}

// StartNATSCluster starts a JetStream cluster of size servers on loopback
// ports, storing under dir, and waits until JetStream has a meta leader.
func StartNATSCluster(dir string, size int) ([]*NATS, error) {
	ports, err := FreePorts(2 * size)
	if err != nil {
		return nil, err
	}
	routes := make([]string, size)
	for i := range size {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[size+i])
	}
	nodes := make([]*NATS, size)
	for i := range size {
		nodes[i] = &NATS{
			dir: filepath.Join(dir, strconv.Itoa(i)), port: ports[i], name: fmt.Sprintf("reportes-dev-%d", i),
			cluster: &server.ClusterOpts{Name: "reportes-dev", Host: "127.0.0.1", Port: ports[size+i]}, routes: routes,
		}
	}
	// Each server waits for the others' routes before it is ready.
	errs := make(chan error, size)
	for _, n := range nodes {
		go func() { errs <- n.start() }()
	}
	for range size {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !anyLeader(nodes) {
		if time.Now().After(deadline) {
			return nil, errors.New("the NATS cluster elected no JetStream meta leader in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nodes, nil
}

func anyLeader(nodes []*NATS) bool {
	for _, n := range nodes {
		if n.Server != nil && n.Server.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// ClusterURL is the comma-separated client URLs of nodes, as NATS_URL takes them.
func ClusterURL(nodes []*NATS) string {
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Name is the server's name (the one JetStream reports as a stream's leader).
func (n *NATS) Name() string { return n.name }

func (n *NATS) start() error {
	opts := &server.Options{
		ServerName: n.name,
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.dir,
		NoSigs:     true,
		NoLog:      true,
	}
	if n.cluster != nil {
		opts.Cluster = *n.cluster
		opts.Routes = server.RoutesFromStr(strings.Join(n.routes, ","))
	}
	s, err := server.NewServer(opts)
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

// Start starts a stopped server again on its port and store.
func (n *NATS) Start() error { return n.start() }
