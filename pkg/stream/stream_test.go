package stream_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/stream"
)

func testJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(devstack.Shared(t).NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestEnsureStreamCreatesACompactedStream(t *testing.T) {
	js := testJetStream(t)
	name := devstack.Name(t)
	s, err := stream.Ensure(context.Background(), js, stream.Config{Name: "S_" + name, SubjectPrefix: name + ".cdc"})
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if !slices.Equal(got.Subjects, []string{name + ".cdc.>"}) || got.Retention != jetstream.LimitsPolicy ||
		got.Storage != jetstream.FileStorage || got.MaxAge != 0 || got.MaxMsgs > 0 || got.MaxBytes > 0 ||
		got.MaxMsgsPerSubject != 1 || got.Duplicates != stream.DefaultDuplicates {
		t.Fatalf("created stream %+v, want file storage of %s.cdc.> keeping the last event of each subject for ever, deduplicating within %s", got, name, stream.DefaultDuplicates)
	}
	if stream.Keeps(got) != stream.HistoryCompact || stream.Lossy(got) != "" {
		t.Fatalf("Keeps %s, Lossy %q; want compact and nothing lossy", stream.Keeps(got), stream.Lossy(got))
	}
}

// TestEnsureStreamHistory: NATS_HISTORY=all creates a stream that keeps
// every event; an existing stream keeps what it keeps either way.
func TestEnsureStreamHistory(t *testing.T) {
	js := testJetStream(t)
	ctx := context.Background()
	name := devstack.Name(t)
	cfg := stream.Config{Name: "S_" + name, SubjectPrefix: name + ".cdc", History: stream.HistoryAll}
	s, err := stream.Ensure(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.MaxMsgsPerSubject > 0 || stream.Keeps(got) != stream.HistoryAll {
		t.Fatalf("max messages per subject %d, want none", got.MaxMsgsPerSubject)
	}
	cfg.History = stream.HistoryCompact
	if s, err = stream.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxMsgsPerSubject; got > 0 {
		t.Fatalf("an existing stream got max messages per subject %d; it keeps its own", got)
	}
	lossy := stream.Lossy(jetstream.StreamConfig{MaxAge: time.Hour, MaxBytes: 1 << 30, MaxMsgs: 10, AllowMsgTTL: true})
	if lossy != "max age 1h0m0s, max bytes 1073741824, max messages 10, per-message TTLs allowed" {
		t.Fatalf("Lossy = %q", lossy)
	}
}

func TestEnsureStreamKeepsWhatAnOperatorSet(t *testing.T) {
	js := testJetStream(t)
	ctx := context.Background()
	name := devstack.Name(t)
	cfg := stream.Config{Name: "S_" + name, SubjectPrefix: name + ".cdc", Duplicates: time.Minute}

	// An operator creates the stream with settings of their own (the
	// persist mode can only be chosen at creation), then edits it.
	operator := jetstream.StreamConfig{
		Name: cfg.Name, Subjects: []string{name + ".cdc.>", name + ".other.>"}, Storage: jetstream.FileStorage,
		MaxBytes: 64 << 20, Compression: jetstream.S2Compression, PersistMode: jetstream.AsyncPersistMode,
	}
	if _, err := js.CreateStream(ctx, operator); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want jetstream.StreamConfig, window time.Duration) {
		t.Helper()
		cfg.Duplicates = window
		s, err := stream.Ensure(ctx, js, cfg)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := info.Config
		if got.Duplicates != window {
			t.Errorf("%s: duplicate window %s, want the configured %s", when, got.Duplicates, window)
		}
		if got.MaxBytes != want.MaxBytes || got.MaxAge != want.MaxAge || got.Compression != want.Compression ||
			got.PersistMode != want.PersistMode || !slices.Equal(got.Subjects, want.Subjects) {
			t.Errorf("%s: max bytes %d, max age %s, compression %s, persist mode %s, subjects %v; want the operator's %d, %s, %s, %s, %v",
				when, got.MaxBytes, got.MaxAge, got.Compression, got.PersistMode, got.Subjects,
				want.MaxBytes, want.MaxAge, want.Compression, want.PersistMode, want.Subjects)
		}
	}
	check("on the operator's stream", operator, time.Minute)

	info, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	edited := info.CachedInfo().Config
	edited.MaxAge = 30 * 24 * time.Hour
	if _, err := js.UpdateStream(ctx, edited); err != nil {
		t.Fatal(err)
	}
	operator.MaxAge = edited.MaxAge
	check("after an edit and a new NATS_DUPLICATE_WINDOW", operator, 2*time.Minute)
}

func TestEnsureStreamAddsItsSubjectUnlessCovered(t *testing.T) {
	js := testJetStream(t)
	ctx := context.Background()
	name := devstack.Name(t)
	for _, tt := range []struct {
		have, want []string
	}{
		{have: []string{name + ".a.>"}, want: []string{name + ".a.>", name + ".cdc.>"}},
		{have: []string{name + ".>"}, want: []string{name + ".>"}},
		{have: []string{name + ".*.>"}, want: []string{name + ".*.>"}},
	} {
		sname := "S_" + name + "_" + strings.NewReplacer(".", "_", "*", "star", ">", "gt").Replace(tt.have[0])
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: sname, Subjects: tt.have}); err != nil {
			t.Fatal(err)
		}
		s, err := stream.Ensure(ctx, js, stream.Config{Name: sname, SubjectPrefix: name + ".cdc"})
		if err != nil {
			t.Fatalf("stream on %v: %v", tt.have, err)
		}
		if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, tt.want) {
			t.Errorf("stream on %v: subjects %v after Ensure, want %v", tt.have, got, tt.want)
		}
		_ = js.DeleteStream(ctx, sname)
	}
}

func TestEnsureStreamRefusesAStreamThatForgets(t *testing.T) {
	js := testJetStream(t)
	ctx := context.Background()
	name := devstack.Name(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S_" + name, Subjects: []string{name + ".cdc.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	_, err := stream.Ensure(ctx, js, stream.Config{Name: "S_" + name, SubjectPrefix: name + ".cdc"})
	if err == nil || !strings.Contains(err.Error(), "limits retention") {
		t.Fatalf("Ensure on a work-queue stream: %v, want an error naming the retention it needs", err)
	}
}

func TestCovers(t *testing.T) {
	for _, tt := range []struct {
		filter, subject string
		want            bool
	}{
		{"a.b.>", "a.b.>", true},
		{"a.>", "a.b.>", true},
		{">", "a.b.>", true},
		{"a.*.>", "a.b.>", true},
		{"a.b.*", "a.b.>", false},
		{"a.b", "a.b.>", false},
		{"a.c.>", "a.b.>", false},
		{"a.b.>", "a.>", false},
		{"a.*", "a.>", false},
		{"a.*", "a.b", true},
		{"a.b.c", "a.b.c", true},
	} {
		if got := stream.Covers(tt.filter, tt.subject); got != tt.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.filter, tt.subject, got, tt.want)
		}
	}
}

func TestOpenCheckpointsKeepsTheOperatorsBucket(t *testing.T) {
	js := testJetStream(t)
	ctx := context.Background()
	bucket := "P_" + devstack.Name(t)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Description: "made by hand", History: 20, MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.OpenCheckpoints(ctx, js, bucket); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 20 {
		t.Fatalf("bucket after OpenCheckpoints: history %d; want the operator's 20", st.History())
	}
	if cfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config; cfg.MaxBytes != 1<<20 || cfg.Description != "made by hand" {
		t.Fatalf("bucket after OpenCheckpoints: max bytes %d, description %q; want the operator's", cfg.MaxBytes, cfg.Description)
	}
}

// TestReplicasReachTheServer: the replicas asked for are what the server is
// asked to create; a single server refuses more than one, by name.
func TestReplicasReachTheServer(t *testing.T) {
	js := testJetStream(t)
	ctx := context.Background()
	name := devstack.Name(t)
	_, err := stream.Ensure(ctx, js, stream.Config{Name: "S_" + name, SubjectPrefix: name + ".cdc", Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Errorf("stream of 3 replicas on a single server: %v, want the server's refusal naming replicas", err)
	}
	_, err = stream.OpenCheckpoints(ctx, js, "P_"+name, stream.WithCheckpointReplicas(3))
	if err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Errorf("bucket of 3 replicas on a single server: %v, want the server's refusal naming replicas", err)
	}
	if _, err := stream.OpenCheckpoints(ctx, js, "P_"+name, stream.WithCheckpointReplicas(1)); err != nil {
		t.Fatal(err)
	}
}
