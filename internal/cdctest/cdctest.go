// Package cdctest runs a cdc.Source in a test against the test's NATS
// server, through a stream.Publisher, and reads back what it published, so
// that the tests of every source share one harness.
package cdctest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

// Stream is a stream and checkpoint bucket of the test's own, and the source
// running into it.
type Stream struct {
	t           testing.TB
	Name        string // unique to the test; also usable as a slot or database name
	Prefix      string
	NC          *nats.Conn
	JS          jetstream.JetStream
	Checkpoints *stream.Checkpoints
	stream      string
	cancel      context.CancelFunc
	done        chan error
}

// New creates the test's stream and bucket on the shared NATS server.
func New(t testing.TB) *Stream {
	t.Helper()
	stack := devstack.Shared(t)
	ctx := context.Background()
	name := devstack.Name(t)
	s := &Stream{t: t, Name: name, Prefix: name + ".cdc", stream: "S_" + name}
	var err error
	if s.NC, err = nats.Connect(stack.NATS.URL()); err != nil {
		t.Fatal(err)
	}
	if s.JS, err = jetstream.New(s.NC); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Ensure(ctx, s.JS, stream.Config{Name: s.stream, SubjectPrefix: s.Prefix}); err != nil {
		t.Fatal(err)
	}
	if s.Checkpoints, err = stream.OpenCheckpoints(ctx, s.JS, "P_"+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Stop()
		s.NC.Close()
	})
	return s
}

// Start runs src with a fresh Publisher until Stop.
func (s *Stream) Start(src cdc.Source, opts ...stream.PublisherOption) {
	s.t.Helper()
	pub, err := stream.NewPublisher(s.NC, append([]stream.PublisherOption{stream.WithSubjectPrefix(s.Prefix)}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() {
		defer pub.Close()
		s.done <- src.Run(ctx, pub)
	}()
}

// Stop stops the source gracefully and returns what Run returned.
func (s *Stream) Stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("source did not stop in 30s")
		return nil
	}
}

// Exited waits for the source to stop by itself and returns its error.
func (s *Stream) Exited(timeout time.Duration) error {
	select {
	case err := <-s.done:
		s.cancel = nil
		return err
	case <-time.After(timeout):
		return errors.New("the source kept running")
	}
}

// Events returns every event in the stream.
func (s *Stream) Events() []cdc.Event {
	s.t.Helper()
	ctx := context.Background()
	st, err := s.JS.Stream(ctx, s.stream)
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []cdc.Event
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			s.t.Fatal(err)
		}
		var ev cdc.Event
		if err := cdc.Decode(m.Data, &ev); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// WaitEvents polls until the stream holds n events and fails the test if
// it then holds more.
func (s *Stream) WaitEvents(n int) []cdc.Event {
	s.t.Helper()
	var evs []cdc.Event
	devstack.Eventually(s.t, 30*time.Second, func() (bool, string) {
		evs = s.Events()
		return len(evs) >= n, fmt.Sprintf("%d events of %d: %s", len(evs), n, Summary(evs))
	})
	if len(evs) != n {
		s.t.Fatalf("got %d events, want %d: %s", len(evs), n, Summary(evs))
	}
	return evs
}

// Summary renders events as "op:key " pairs.
func Summary(evs []cdc.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s:%s ", e.Op, e.Key)
	}
	return b.String()
}
