package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

// testEvent is the n-th insert of an order, as a source would publish it.
func testEvent(n int) *cdc.Event {
	return &cdc.Event{
		ID: fmt.Sprintf("test:%d", n), Source: cdc.SourceMongo, Collection: "db.orders", Op: cdc.OpInsert,
		Key: fmt.Sprintf("k%d", n), Position: fmt.Sprint(n), Version: uint64(n), CommitTime: time.Unix(1_700_000_000, 0).UTC(),
		After: json.RawMessage(fmt.Sprintf(`{"_id":"k%d","vendedor":"S-%04d","producto":"Tornillos M6","cantidad":%d}`, n, n%1000, n)),
	}
}

// newPublisher returns a Publisher closed when the test ends.
func newPublisher(tb testing.TB, nc *nats.Conn, opts ...stream.PublisherOption) *stream.Publisher {
	tb.Helper()
	pub, err := stream.NewPublisher(nc, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pub.Close)
	return pub
}

// publishAll publishes the events numbered events with pub, one run of a
// source, and returns what Flush returns; a failed Publish fails the test.
func publishAll(t *testing.T, pub *stream.Publisher, events ...int) error {
	t.Helper()
	ctx := context.Background()
	for _, i := range events {
		if err := pub.Publish(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	return pub.Flush(ctx)
}

func TestPublisherRunsCallbacksInOrderAfterAcks(t *testing.T) {
	s := cdctest.New(t)
	pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Prefix), stream.WithMaxPending(64))
	ctx := context.Background()
	const n = 1000
	var (
		mu  sync.Mutex
		ran []int
	)
	for i := 1; i <= n; i++ {
		if err := pub.Publish(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if err := pub.AfterAcked(func() {
				mu.Lock()
				ran = append(ran, i)
				mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != n/7 {
		t.Fatalf("%d callbacks ran, want %d", len(ran), n/7)
	}
	for k, i := range ran {
		if i != 7*(k+1) {
			t.Fatalf("callback %d ran for event %d, want %d: callbacks out of order", k, i, 7*(k+1))
		}
	}
	evs := s.WaitEvents(n)
	for i, ev := range evs {
		if want := fmt.Sprintf("test:%d", i+1); ev.ID != want {
			t.Fatalf("stream message %d is event %s, want %s", i+1, ev.ID, want)
		}
	}
}

// TestPublisherDeduplicatesByEventID: a source's next run republishes
// from its last acknowledged position; what the stream holds is dropped.
func TestPublisherDeduplicatesByEventID(t *testing.T) {
	s := cdctest.New(t)
	for _, run := range [][]int{{1, 2}, {1, 2, 3}, {2, 3}} {
		pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Prefix))
		if err := publishAll(t, pub, run...); err != nil {
			t.Fatal(err)
		}
		pub.Close()
	}
	if got := cdctest.Summary(s.WaitEvents(3)); got != "insert:k1 insert:k2 insert:k3 " {
		t.Fatalf("stream holds %s", got)
	}
}

func TestPublisherStopsAtTheFirstFailure(t *testing.T) {
	s := cdctest.New(t)
	// No stream listens under this prefix: the server answers "no
	// responders" and the publish fails.
	pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Name+".nostream"))
	ctx := context.Background()
	if err := pub.Publish(ctx, testEvent(1)); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	// The refusal may already be in: then AfterAcked reports it instead.
	if err := pub.AfterAcked(func() { ran <- struct{}{} }); err != nil && !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("AfterAcked: %v", err)
	}
	if err := pub.Flush(ctx); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("Flush: %v, want the refusal of the event no stream stores", err)
	}
	if err := pub.Flush(ctx); err == nil {
		t.Fatal("Flush returned no error for an event no stream acknowledged")
	}
	select {
	case <-ran:
		t.Fatal("a callback ran although an event before it was not acknowledged")
	default:
	}
	if err := pub.Publish(ctx, testEvent(2)); err == nil {
		t.Fatal("Publish after a failure returned no error")
	}
}

func TestPublisherFailsOnBadOrMissingAcknowledgements(t *testing.T) {
	tests := []struct {
		name  string
		reply []byte // nil: never reply
		want  error
	}{
		{"no acknowledgement", nil, jetstream.ErrAsyncPublishTimeout},
		{"not an acknowledgement", []byte("+OK"), jetstream.ErrInvalidJSAck},
		{"acknowledgement without stream", []byte(`{"seq":1}`), jetstream.ErrInvalidJSAck},
		{"stream error", []byte(`{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`), &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := cdctest.New(t)
			// A plain subscriber stands where the stream would: it answers
			// what the test says, or nothing.
			prefix := s.Name + ".fake"
			sub, err := s.NC.Subscribe(prefix+".>", func(m *nats.Msg) {
				if tt.reply != nil {
					_ = m.Respond(tt.reply)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Unsubscribe() }()
			pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(prefix), stream.WithAckTimeout(300*time.Millisecond))
			ctx := context.Background()
			if err := pub.Publish(ctx, testEvent(1)); err != nil {
				t.Fatal(err)
			}
			err = pub.Flush(ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Flush: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "test:1") {
				t.Fatalf("error %q does not name the event", err)
			}
		})
	}
}

// BenchmarkPublish publishes order events with a position callback every
// 100 events, as a source does, against the test NATS server (in this
// process: its work is counted too).
func BenchmarkPublish(b *testing.B) {
	s := cdctest.New(b)
	pub := newPublisher(b, s.NC, stream.WithSubjectPrefix(s.Prefix))
	ctx := context.Background()
	evs := make([]*cdc.Event, 1000)
	for i := range evs {
		evs[i] = testEvent(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := *evs[i%len(evs)]
		ev.ID = fmt.Sprintf("bench:%d", i)
		if err := pub.Publish(ctx, &ev); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			if err := pub.AfterAcked(func() {}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

func TestPublisherInflightGauge(t *testing.T) {
	s := cdctest.New(t)
	// A plain subscriber stands where the stream would and holds its
	// acknowledgements until the test releases them.
	prefix := s.Name + ".held"
	held := make(chan *nats.Msg, 16)
	sub, err := s.NC.Subscribe(prefix+".>", func(m *nats.Msg) { held <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	gauge := func() float64 { return stream.Inflight(cdc.SourceMongo) }
	base := gauge()
	pub, err := stream.NewPublisher(s.NC, stream.WithSubjectPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if err := pub.Publish(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := gauge() - base; got != 3 {
		t.Fatalf("in flight after 3 publishes: %v, want 3", got)
	}
	for i := range 2 {
		m := <-held
		if err := m.Respond(fmt.Appendf(nil, `{"stream":"HELD","seq":%d}`, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); gauge()-base != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("in flight after 2 of 3 acknowledgements: %v, want 1", gauge()-base)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	// Closed with an event unacknowledged, the Publisher no longer counts
	// it: its source resumes from before it.
	pub.Close()
	if got := gauge() - base; got != 0 {
		t.Fatalf("in flight after Close: %v, want 0", got)
	}
}

// TestPublisherSubjectPerKey: every event goes out on its key's subject,
// markers on their own, so that a compacted stream (the default) keeps
// the last event of each key and both markers of the last snapshot.
func TestPublisherSubjectPerKey(t *testing.T) {
	ctx := context.Background()
	s := cdctest.New(t)
	name := "C_" + s.Name
	if _, err := stream.Ensure(ctx, s.JS, stream.Config{Name: name, SubjectPrefix: s.Name + ".compact"}); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Name+".compact"))
	marker := func(op cdc.Op, n int) *cdc.Event {
		return &cdc.Event{ID: fmt.Sprintf("m:%s:%d", op, n), Source: cdc.SourceMongo, Collection: "db.orders", Op: op,
			Snapshot: fmt.Sprintf("db.orders@%d", n), Version: uint64(n)}
	}
	var evs []*cdc.Event
	for round := range 3 {
		evs = append(evs, marker(cdc.OpSnapshotBegin, round))
		for k := range 10 {
			ev := testEvent(round*10 + k)
			ev.Key = fmt.Sprintf("k.%d *", k) // reserved characters in the key
			evs = append(evs, ev)
		}
		evs = append(evs, marker(cdc.OpSnapshotEnd, round))
	}
	for _, ev := range evs {
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := s.JS.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.Name+".compact.>"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 12 || info.State.LastSeq != uint64(len(evs)) || len(info.State.Subjects) != 12 {
		t.Fatalf("stream holds %d messages on %d subjects, last %d; want 10 keys and 2 markers of %d events",
			info.State.Msgs, len(info.State.Subjects), info.State.LastSeq, len(evs))
	}
	for _, ev := range evs[len(evs)-12:] {
		subj := cdc.Subject(s.Name+".compact", ev)
		msg, err := st.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			t.Fatalf("%s: %v", subj, err)
		}
		if got := msg.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
			t.Fatalf("%s holds %s, want the last event %s", subj, got, ev.ID)
		}
	}
}

// BenchmarkPublishHistory: what a subject per key and compaction cost the
// NATS server (in this process) per event: inserts of new keys and updates
// of 1,000 keys, against every event on one subject in a stream that keeps
// everything, as before subjects per key.
func BenchmarkPublishHistory(b *testing.B) {
	cases := []struct {
		name    string
		history stream.History
		keys    int // 0: a new key per event; 1: every event on one subject
	}{
		{"one subject, keep all", stream.HistoryAll, 1},
		{"new keys, keep all", stream.HistoryAll, 0},
		{"new keys, compact", stream.HistoryCompact, 0},
		{"1000 keys, compact", stream.HistoryCompact, 1000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := cdctest.New(b)
			prefix := s.Name + ".h"
			if _, err := stream.Ensure(context.Background(), s.JS, stream.Config{Name: "H_" + s.Name, SubjectPrefix: prefix, History: c.history}); err != nil {
				b.Fatal(err)
			}
			pub := newPublisher(b, s.NC, stream.WithSubjectPrefix(prefix))
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ev := testEvent(i)
				ev.ID = fmt.Sprintf("bench:%d", i)
				switch c.keys {
				case 1:
					ev.Key = "k"
				case 0:
				default:
					ev.Key = fmt.Sprintf("k%d", i%c.keys)
				}
				if err := pub.Publish(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			if err := pub.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestPublisherRepublishesWhatTheStreamHoldsOutOfOrder: a run stored
// events 1 and 3 but lost 2 (a publish lost while a later one got through,
// as across a reconnect or a leader change). The source's next run
// republishes 1 to 4: 2 is stored after 3 and 4, which the stream would
// otherwise keep as duplicates in front of it. The Publisher stops at 3,
// and the next one of the same Opener stores 3 and 4 again, after 2,
// under the ids of the next epoch (one, however many acknowledgements
// said so).
func TestPublisherRepublishesWhatTheStreamHoldsOutOfOrder(t *testing.T) {
	s := cdctest.New(t)
	ctx := context.Background()
	lossy := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Prefix))
	if err := publishAll(t, lossy, 1, 3, 4); err != nil {
		t.Fatal(err)
	}
	open := stream.Publishers(s.NC, stream.WithSubjectPrefix(s.Prefix))
	run := func(events ...int) ([]int, error) {
		pub, closePub, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer closePub()
		var acked []int
		for _, i := range events {
			if err := pub.Publish(ctx, testEvent(i)); err != nil {
				return acked, err
			}
			if err := pub.AfterAcked(func() { acked = append(acked, i) }); err != nil {
				return acked, err
			}
		}
		return acked, pub.Flush(ctx)
	}
	acked, err := run(1, 2, 3, 4)
	if !errors.Is(err, stream.ErrReordered) {
		t.Fatalf("the run republishing 1, 2, 3, 4 ended with %v, want ErrReordered", err)
	}
	if fmt.Sprint(acked) != "[1 2]" {
		t.Fatalf("acknowledged %v, want [1 2]: 3 is held before 2 and must be published again", acked)
	}
	if _, err := run(3, 4); err != nil {
		t.Fatal(err)
	}
	evs := s.WaitEvents(6)
	if got := cdctest.Summary(evs); got != "insert:k1 insert:k3 insert:k4 insert:k2 insert:k3 insert:k4 " {
		t.Fatalf("stream holds %s", got)
	}
	st, err := s.JS.Stream(ctx, "S_"+s.Name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Suffixed with the sequence of the detection: 2 stored at 4.
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "test:3~r4" {
		t.Fatalf("the copy stored again has message id %q, want test:3~r4", id)
	}
}

// TestPublisherFindsAReorderingInDuplicatesAlone: the run that stored the
// lost event 2 (after 3) ended before it saw 3 acknowledged; the next run
// republishes 2 and 3, both duplicates, in the wrong order in the stream.
func TestPublisherFindsAReorderingInDuplicatesAlone(t *testing.T) {
	s := cdctest.New(t)
	for _, run := range [][]int{{1, 3}, {2}} {
		pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Prefix))
		if err := publishAll(t, pub, run...); err != nil {
			t.Fatal(err)
		}
		pub.Close()
	}
	pub := newPublisher(t, s.NC, stream.WithSubjectPrefix(s.Prefix))
	if err := publishAll(t, pub, 2, 3); !errors.Is(err, stream.ErrReordered) {
		t.Fatalf("Flush: %v, want ErrReordered: 3 is stored before 2", err)
	}
}
