package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
)

// TestOnClosed: a connection the client closes after a server error (a
// protocol line over the server's limit) is reported, with the error, and
// Reach says it cannot reach NATS.
func TestOnClosed(t *testing.T) {
	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	reach := NewReach(srv.URL())
	closed := make(chan error, 1)
	cfg := Config{NatsURL: srv.URL()}
	nc, err := cfg.ConnectNATS("test", slog.New(slog.DiscardHandler), ReportTo(reach), OnClosed(func(err error) { closed <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	devstack.Eventually(t, 10*time.Second, func() (bool, string) { return nc.IsConnected(), "not connected" })
	_ = nc.Publish(strings.Repeat("x", 10<<10), nil)
	_ = nc.Flush()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "control line") {
			t.Errorf("closed with %v, want the server's error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("not reported in 20s (closed: %v)", nc.IsClosed())
	}
	if _, p := reach.Problem(); p == nil || !strings.Contains(p.Error(), "cannot reach NATS at "+srv.URL()) {
		t.Errorf("reach says %v after the close, want that NATS cannot be reached", p)
	}
}
