package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reportes/reportes/internal/devstack"
)

// serveNATSArg, as the first argument, makes the bench binary a NATS
// server and nothing else: the bench runs NATS in a process of its own, as
// it runs in production, so the server's work and the code under test do
// not share one Go runtime.
const serveNATSArg = "serve-nats"

// serveNATS runs an embedded NATS server with JetStream in dir on port
// until SIGTERM.
func serveNATS(dir, port string) error {
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return fmt.Errorf("port %q: %w", port, err)
	}
	s, err := devstack.StartNATS(dir, p)
	if err != nil {
		return err
	}
	defer s.Stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return nil
}

// natsProcess is a NATS server started by startNATSProcess.
type natsProcess struct {
	cmd *exec.Cmd
	url string
}

// startNATSProcess starts this binary as a NATS server and waits until it
// accepts JetStream requests.
func startNATSProcess(ctx context.Context, dir string) (*natsProcess, error) {
	port, err := devstack.FreePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, serveNATSArg, dir, fmt.Sprint(port)) //nolint:gosec // this very binary
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nats server process: %w", err)
	}
	n := &natsProcess{cmd: cmd, url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(n.url)
		if err == nil {
			nc.Close()
			return n, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			n.stop()
			return nil, errors.Join(errors.New("nats server process not ready in 30s"), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *natsProcess) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	_ = n.cmd.Wait()
}
