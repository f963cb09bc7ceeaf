package e2e

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
)

// replayFrom is the example of docs/operations.md ("Replay the change
// stream"), word for word: TestReplayExample checks both.

// replayFrom hands fn every change event from stream sequence seq on (or,
// with seq 0, from the first stored at or after since), in stream order,
// until ctx ends. An ordered consumer needs no acknowledgement and no
// cleanup: the server deletes it once the client is gone.
func replayFrom(ctx context.Context, nc *nats.Conn, seq uint64, since time.Time, fn func(jetstream.Msg)) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{"reportes.cdc.>"}}
	if seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	} else {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := js.OrderedConsumer(ctx, "REPORTES_CDC", cfg)
	if err != nil {
		return err
	}
	cc, err := cons.Consume(fn)
	if err != nil {
		return err
	}
	defer cc.Stop()
	<-ctx.Done()
	return nil
}

// TestReplayExample runs the documented replay, from a sequence and from
// a time, against a real NATS server, and checks the document still shows
// this very code.
func TestReplayExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("replay_test.go")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)## Replay the change stream.*?```go\n(.*?)```").FindSubmatch(doc)
	if block == nil || !strings.Contains(string(src), string(block[1])) {
		t.Fatal(`the Go example under "Replay the change stream" in docs/operations.md is not replayFrom of e2e/replay_test.go`)
	}

	srv, err := devstack.StartNATS(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "REPORTES_CDC", Subjects: []string{"reportes.cdc.>"}}); err != nil {
		t.Fatal(err)
	}
	var sixth time.Time
	for i := 1; i <= 10; i++ {
		if _, err := js.Publish(ctx, "reportes.cdc.mongo.inventory_db.orders", []byte(`{"n":`+strconv.Itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
		if i == 6 {
			st, _ := js.Stream(ctx, "REPORTES_CDC")
			msg, err := st.GetMsg(ctx, 6)
			if err != nil {
				t.Fatal(err)
			}
			sixth = msg.Time
		}
	}
	for _, tt := range []struct {
		seq   uint64
		since time.Time
		want  []uint64
	}{
		{4, time.Time{}, []uint64{4, 5, 6, 7, 8, 9, 10}},
		{0, sixth, []uint64{6, 7, 8, 9, 10}},
	} {
		got := replayed(t, nc, tt.seq, tt.since, len(tt.want))
		if !slices.Equal(got, tt.want) {
			t.Errorf("replay from seq %d, time %s: sequences %v, want %v", tt.seq, tt.since, got, tt.want)
		}
	}
}

// replayed runs replayFrom until it handed over n events, and returns
// their stream sequences.
func replayed(t *testing.T, nc *nats.Conn, seq uint64, since time.Time, n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seqs []uint64
	done := make(chan error, 1)
	go func() {
		done <- replayFrom(ctx, nc, seq, since, func(msg jetstream.Msg) {
			meta, err := msg.Metadata()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			seqs = append(seqs, meta.Sequence.Stream)
		})
	}()
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs) >= n, "not all replayed yet"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]uint64(nil), seqs...)
}
