package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/stream"
)

// start runs a dashboard as main wires it, against NATS at natsURL.
func start(t *testing.T, natsURL string) *dashboard {
	t.Helper()
	cfg := config.Config{NatsURL: natsURL}
	logger := slog.New(slog.DiscardHandler)
	reach := config.NewReach(natsURL)
	connect := func() (*nats.Conn, error) {
		return cfg.ConnectNATS("reportes-api-test", logger, config.ReportTo(reach))
	}
	nc, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	view, err := projection.NewView(projection.DefaultSchema())
	if err != nil {
		t.Fatal(err)
	}
	d := newDashboard(reach)
	build := func(v *projection.View, extra ...projection.Option) (*projection.Projector, error) {
		return projection.NewProjector(nc, v, append([]projection.Option{projection.WithRedial(connect)}, extra...)...)
	}
	serving, err := projection.NewServing(view, build, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	d.src = servingSource{serving}
	go func() { _ = serving.Run(ctx); done <- struct{}{} }()
	go func() { _ = d.watch(ctx, logger, 20*time.Millisecond); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return d
}

// healthSays waits until the dashboard's health matches.
func healthSays(t *testing.T, d *dashboard, ready bool, err string) httpapi.Health {
	t.Helper()
	var h httpapi.Health
	devstack.Eventually(t, 20*time.Second, func() (bool, string) {
		h = d.Health()
		got := ""
		if h.Err != nil {
			got = h.Err.Error()
		}
		return h.Ready == ready && got == err, fmt.Sprintf("health %+v, want ready %v and error %q", h, ready, err)
	})
	return h
}

// TestHealthNamesNATS: with NATS unreachable the dashboard's health names
// NATS's redacted URL and why, not "reconnecting", and not "catching up".
func TestHealthNamesNATS(t *testing.T) {
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, fmt.Sprintf("nats://reportes:s3cret@127.0.0.1:%d", port))
	h := healthSays(t, d, false, fmt.Sprintf("cannot reach NATS at nats://reportes:xxxxx@127.0.0.1:%d: connection refused", port))
	if h.Since.IsZero() || time.Since(h.Since) > time.Minute {
		t.Errorf("since = %s, want the start", h.Since)
	}
}

// TestHealthFollowsNATS: ready once the stream is read, unreachable with
// its reason while NATS is down, clear again once it is back.
func TestHealthFollowsNATS(t *testing.T) {
	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: stream.DefaultName, Subjects: []string{cdc.DefaultSubjectPrefix + ".>"},
	}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	d := start(t, srv.URL())
	healthSays(t, d, true, "")
	if !d.Ready() {
		t.Error("Ready = false with the stream read")
	}
	srv.Stop()
	h := healthSays(t, d, true, "cannot reach NATS at "+srv.URL()+": connection refused")
	if d.Ready() || h.Since.IsZero() {
		t.Errorf("NATS down: Ready %v, since %s", d.Ready(), h.Since)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	healthSays(t, d, true, "")
}

// TestLogChange: a problem is logged when it starts, when it changes and
// when it ends, not at every check.
func TestLogChange(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	down := httpapi.Health{Ready: true, Err: errors.New("cannot reach NATS at nats://x:4222: connection refused"), Since: time.Now()}
	missing := httpapi.Health{Ready: true, Err: errors.New("stream S not found"), Since: time.Now()}
	ok := httpapi.Health{Ready: true}
	for _, step := range []struct {
		last, h httpapi.Health
		logged  string
	}{
		{ok, ok, ""},
		{ok, down, "level=ERROR"},
		{down, down, ""},
		{down, missing, "stream S not found"},
		{missing, ok, "can be read again"},
	} {
		buf.Reset()
		logChange(logger, step.last, step.h)
		if got := buf.String(); step.logged == "" && got != "" || !strings.Contains(got, step.logged) {
			t.Errorf("%v -> %v logged %q, want %q", step.last.Err, step.h.Err, got, step.logged)
		}
	}
}
