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

// New creates the test's stream and bucket on the shared NATS server. The
// stream keeps every event, not only the last of each key: tests read back
// everything a source published.
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
	if _, err := stream.Ensure(ctx, s.JS, stream.Config{Name: s.stream, SubjectPrefix: s.Prefix,
		History: stream.HistoryAll}); err != nil {
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

// Fold applies evs the way the view does (docs/events.md): per key the
// event of the highest version wins, deletes remove the key and its version, and a
// snapshot_end removes the keys older than its snapshot_begin that nothing
// mentioned in between. It returns the rows of collection left, by key.
func Fold(evs []cdc.Event, collection string) map[string]cdc.Event {
	rows := map[string]cdc.Event{}
	versions := map[string]uint64{}
	var stale map[string]struct{}
	snapshot := ""
	for _, e := range evs {
		if e.Collection != collection {
			continue
		}
		switch e.Op {
		case cdc.OpSnapshotBegin:
			snapshot, stale = e.Snapshot, map[string]struct{}{}
			for k := range rows {
				if versions[k] < e.Version {
					stale[k] = struct{}{}
				}
			}
			continue
		case cdc.OpSnapshotEnd:
			if e.Snapshot == snapshot {
				for k := range stale {
					delete(rows, k)
				}
			}
			snapshot, stale = "", nil
			continue
		}
		delete(stale, e.Key)
		if v, ok := versions[e.Key]; ok && e.Version < v {
			continue
		}
		versions[e.Key] = e.Version
		if e.Op == cdc.OpDelete {
			// Forgotten, as the view forgets a deleted order: an older row
			// published after the delete would bring it back.
			delete(rows, e.Key)
			delete(versions, e.Key)
			continue
		}
		rows[e.Key] = e
	}
	return rows
}

// WaitBackfills polls until every backfill of source in the test's bucket
// is over, and returns them.
func (s *Stream) WaitBackfills(source string, timeout time.Duration) []cdc.Backfill {
	s.t.Helper()
	var list []cdc.Backfill
	devstack.Eventually(s.t, timeout, func() (bool, string) {
		var err error
		if list, err = cdc.Backfills(context.Background(), s.Checkpoints, source); err != nil {
			return false, err.Error()
		}
		for _, b := range list {
			if !b.Over() {
				return false, fmt.Sprintf("backfill %s %s: %d rows, %d chunks", b.ID, b.State, b.Rows, b.Chunks)
			}
		}
		return len(list) > 0, fmt.Sprintf("%d backfills", len(list))
	})
	return list
}

// WaitBackfill polls until the backfill bf is over and returns it.
func (s *Stream) WaitBackfill(bf cdc.Backfill, timeout time.Duration) cdc.Backfill {
	s.t.Helper()
	var cur cdc.Backfill
	devstack.Eventually(s.t, timeout, func() (bool, string) {
		ok, err := s.Checkpoints.Load(context.Background(), bf.Key(), &cur)
		if err != nil || !ok {
			return false, fmt.Sprintf("backfill %s not found (%v)", bf.ID, err)
		}
		return cur.Over(), fmt.Sprintf("backfill %s %s: %d rows, %d chunks", cur.ID, cur.State, cur.Rows, cur.Chunks)
	})
	return cur
}
