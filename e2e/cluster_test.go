package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
)

// TestNATSClusterLosesLeader: the services on a three-node JetStream
// cluster with NATS_REPLICAS=3; the node leading the change stream stops
// during the mixed workload and comes back: nothing is lost or doubled (the
// dashboard equals the recount), no process is restarted, and the processes
// that were connected to it log their reconnection and count it.
func TestNATSClusterLosesLeader(t *testing.T) {
	t.Parallel() // an isolated deployment: its own database, FerretDB, stream and ports
	e := newEnv(t)
	nodes, err := devstack.StartNATSCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.Server != nil && n.Server.Running() {
				n.Stop()
			}
		}
	})
	e.vars["NATS_URL"] = devstack.ClusterURL(nodes)
	e.vars["NATS_REPLICAS"] = "3"
	w := newWorkload(e, 5)
	for range 10 {
		w.hire(t)
	}
	w.orders(t, 200)
	e.start("ingestor")
	e.start("api")
	e.converges(90 * time.Second)

	leader := streamLeader(t, e, nodes)
	clients := connectedClients(t, leader)
	t.Logf("stopping %s, the stream's leader, with clients %v connected", leader.Name(), clients)
	for i := range 200 * chaos() {
		w.step(t)
		switch i {
		case 50:
			leader.Stop()
		case 120:
			if err := leader.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.converges(120 * time.Second)
	for _, name := range []string{"ingestor", "api"} {
		if !strings.Contains(clients, "reportes-"+name) {
			continue
		}
		e.mu.Lock()
		logged := strings.Contains(e.procs[name].out.String(), "reconnected to NATS")
		e.mu.Unlock()
		if !logged {
			t.Errorf("%s was connected to the stopped node and did not log its reconnection", name)
		}
		if n := e.metric(name, "reportes_nats_reconnects_total"); n < 1 {
			t.Errorf("%s counts %v reconnections, want at least 1", name, n)
		}
	}
}

// streamLeader returns the node leading the deployment's change stream.
func streamLeader(t *testing.T, e *env, nodes []*devstack.NATS) *devstack.NATS {
	t.Helper()
	nc, err := nats.Connect(devstack.ClusterURL(nodes))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var name string
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		s, err := js.Stream(context.Background(), e.vars["NATS_STREAM"])
		if err != nil {
			return false, err.Error()
		}
		info, err := s.Info(context.Background())
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
			return false, "no leader yet"
		}
		if len(info.Cluster.Replicas) != 2 {
			return false, "the stream does not have 3 replicas"
		}
		name = info.Cluster.Leader
		return true, ""
	})
	for _, n := range nodes {
		if n.Name() == name {
			return n
		}
	}
	t.Fatalf("no node is named %s", name)
	return nil
}

// connectedClients lists the names of the clients connected to node.
func connectedClients(t *testing.T, node *devstack.NATS) string {
	t.Helper()
	cz, err := node.Server.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cz.Conns {
		names = append(names, c.Name)
	}
	return strings.Join(names, ",")
}
