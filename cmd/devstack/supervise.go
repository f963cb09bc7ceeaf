package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/devstack"
)

// child is one of the binaries devstack runs, and the port where it
// answers /healthz.
type child struct {
	name, bin, portVar string
	port               int
	cmd                *exec.Cmd
}

// exit is a child that stopped, with why.
type exit struct {
	child *child
	err   error
}

// checkPorts stops make run before anything starts when a port of the
// binaries is taken (often by a reportes still running). Unlike the local
// databases, which quietly move to a free port because only the binaries
// connect to them, these are the addresses the user opens, so the user
// chooses: the message says how.
func checkPorts(cfg config.Config) error {
	if cfg.Port == cfg.IngestorPort {
		return fmt.Errorf("PORT and INGESTOR_PORT are both %d: give one of them another port, like INGESTOR_PORT=%d make run", cfg.Port, suggestPort())
	}
	for _, p := range []struct {
		name string
		port int
	}{{"PORT", cfg.Port}, {"INGESTOR_PORT", cfg.IngestorPort}} {
		// The binaries listen on every interface: check the same address.
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(p.port)))
		if err != nil {
			return fmt.Errorf("port %d (%s) is in use, by another reportes still running or another program; stop it, or choose another port: %s=%d make run: %w",
				p.port, p.name, p.name, suggestPort(), err)
		}
		if err := l.Close(); err != nil {
			return err
		}
	}
	return nil
}

// suggestPort is a port free right now, for the messages.
func suggestPort() int {
	p, err := devstack.FreePort()
	if err != nil {
		return 18002
	}
	return p
}

// supervise runs the children, prints the banner once every one answers
// /healthz, and stops them all when one exits or on ctx (Ctrl-C). A child
// that exits, or does not come up within wait, before the banner stops
// the others and make run with an error naming it.
func supervise(ctx context.Context, cfg config.Config, children []*child, wait time.Duration, logger *slog.Logger) error {
	exited := make(chan exit, len(children))
	var started []*child
	defer func() { stopChildren(started, exited, logger) }()
	for _, c := range children {
		c.cmd = exec.Command(c.bin)
		c.cmd.Stdout, c.cmd.Stderr = os.Stdout, os.Stderr
		if err := c.cmd.Start(); err != nil {
			return fmt.Errorf("start %s (run make build first): %w", c.bin, err)
		}
		started = append(started, c)
		go func() { exited <- exit{child: c, err: c.cmd.Wait()} }()
	}
	if gone, err := waitUp(ctx, children, exited, wait); err != nil {
		started = others(started, gone)
		if errors.Is(err, context.Canceled) {
			return nil // Ctrl-C while starting
		}
		return err
	}
	printBanner(cfg)
	select {
	case <-ctx.Done():
		return nil
	case e := <-exited:
		started = others(started, e.child)
		return fmt.Errorf("%s exited: %w", e.child.name, exitErr(e.err))
	}
}

// waitUp polls every child's /healthz until all answer 200, a child exits
// (gone; its own log, above, says why) or wait runs out.
func waitUp(ctx context.Context, children []*child, exited <-chan exit, wait time.Duration) (gone *child, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	up := map[*child]bool{}
	for len(up) < len(children) {
		select {
		case e := <-exited:
			return e.child, fmt.Errorf("%s exited before it was up (%w): its log is above", e.child.name, exitErr(e.err))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%s did not answer /healthz within %s (-wait): %w", notUp(children, up), wait, ctx.Err())
			}
			return nil, ctx.Err()
		case <-tick.C:
		}
		for _, c := range children {
			if !up[c] && healthy(ctx, client, c.port) {
				up[c] = true
			}
		}
	}
	return nil, nil
}

func healthy(ctx context.Context, client *http.Client, port int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// notUp names the children not up yet, with their ports.
func notUp(children []*child, up map[*child]bool) string {
	s := ""
	for _, c := range children {
		if !up[c] {
			if s != "" {
				s += " and "
			}
			s += fmt.Sprintf("%s (%s=%d)", c.name, c.portVar, c.port)
		}
	}
	return s
}

// stopChildren sends SIGTERM to the children still running and waits for
// them, killing those that take more than 20s.
func stopChildren(running []*child, exited <-chan exit, logger *slog.Logger) {
	for _, c := range running {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(20 * time.Second)
	for len(running) > 0 {
		select {
		case e := <-exited:
			running = others(running, e.child)
			logger.Info("stopped", "process", e.child.name, "exit", exitErr(e.err))
		case <-deadline:
			for _, c := range running {
				_ = c.cmd.Process.Kill()
			}
		}
	}
	logger.Info("stopped")
}

func others(children []*child, c *child) []*child {
	var rest []*child
	for _, o := range children {
		if o != c {
			rest = append(rest, o)
		}
	}
	return rest
}

// exitErr is why a child stopped; a child never exits on its own with 0.
func exitErr(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}
