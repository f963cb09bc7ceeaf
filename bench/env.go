package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

type benchEnv struct {
	o      benchOptions
	logger *slog.Logger
	dir    string
	pg     *devstack.Postgres
	nats   *natsProcess
	ferret *devstack.Ferret

	pgURL string
	conn  *pgx.Conn
	mongo *mongo.Client
	nc    *nats.Conn
	js    jetstream.JetStream
	seq   int

	rebuildStream, rebuildPrefix string
}

func (e *benchEnv) connect(ctx context.Context) error {
	if err := e.pg.CreateDatabase(ctx, "bench"); err != nil {
		return err
	}
	e.pgURL = e.pg.URL("bench")
	var err error
	if e.conn, err = pgx.Connect(ctx, e.pgURL); err != nil {
		return err
	}
	if e.mongo, err = mongo.Connect(ctx, options.Client().ApplyURI(e.ferret.URI)); err != nil {
		return err
	}
	if e.nc, err = nats.Connect(e.nats.url); err != nil {
		return err
	}
	e.js, err = jetstream.New(e.nc)
	return err
}

func (e *benchEnv) close() {
	e.nc.Close()
	_ = e.mongo.Disconnect(context.Background())
	e.conn.Close(context.Background())
}

// name returns a fresh identifier for one run's table, slot, stream...
func (e *benchEnv) name(kind string) string {
	e.seq++
	return fmt.Sprintf("b%d_%s", e.seq, kind)
}

// stream creates a stream for prefix.> as the ingestor does and returns its
// name.
func (e *benchEnv) stream(ctx context.Context, prefix string) (string, error) {
	return e.streamDeduplicating(ctx, prefix, 0)
}

// streamDeduplicating is stream with a deduplication window of its own (0:
// the ingestor's default).
func (e *benchEnv) streamDeduplicating(ctx context.Context, prefix string, window time.Duration) (string, error) {
	name := "S_" + strings.ReplaceAll(prefix, ".", "_")
	_, err := stream.Ensure(ctx, e.js, stream.Config{Name: name, SubjectPrefix: prefix, Duplicates: window})
	return name, err
}

// streamKeepingAll is stream for a reference that publishes everything on
// one subject: it keeps every event, where a compacted stream would keep
// the last.
func (e *benchEnv) streamKeepingAll(ctx context.Context, prefix string) (string, error) {
	name := "S_" + strings.ReplaceAll(prefix, ".", "_")
	_, err := stream.Ensure(ctx, e.js, stream.Config{Name: name, SubjectPrefix: prefix, History: stream.HistoryAll})
	return name, err
}

// checkpoints opens the checkpoint bucket of one run.
func (e *benchEnv) checkpoints(ctx context.Context, name string) (*stream.Checkpoints, error) {
	return stream.OpenCheckpoints(ctx, e.js, "P_"+name)
}

// waitMsgs polls the stream every so often until it stored n messages
// (its last sequence: a compacted stream holds fewer when keys repeat).
func (e *benchEnv) waitMsgs(ctx context.Context, stream string, n uint64, every, timeout time.Duration) error {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.LastSeq >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream %s: %d messages after %s, want %d", stream, info.State.LastSeq, timeout, n)
		}
		time.Sleep(every)
	}
}

// streamMsgs returns how many messages the stream stored (its last
// sequence).
func (e *benchEnv) streamMsgs(ctx context.Context, stream string) (uint64, error) {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// timeMsgs waits until the stream holds want messages and returns when the
// first message past from and the last one were stored, as the server
// stamped them: throughput is measured from the first event, so connection
// set-up is not counted. The stamps make the figure exact whatever the
// polling interval, so the stream is polled only every 50 ms: each poll is a
// JetStream API request the server answers on the cores the code under test
// uses (polling every 10 ms was a tenth of the server's CPU in a MongoDB
// capture run). Streams of the bench are fresh, so message n is sequence n.
func (e *benchEnv) timeMsgs(ctx context.Context, stream string, from, want uint64, timeout time.Duration) (time.Time, time.Time, error) {
	if err := e.waitMsgs(ctx, stream, want, 50*time.Millisecond, timeout); err != nil {
		return time.Time{}, time.Time{}, err
	}
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	first, err := s.GetMsg(ctx, from+1)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("stream %s: message %d: %w", stream, from+1, err)
	}
	last, err := s.GetMsg(ctx, want)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("stream %s: message %d: %w", stream, want, err)
	}
	return first.Time, last.Time, nil
}

// running is a source started in this process.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func (e *benchEnv) start(src cdc.Source, prefix string) (*running, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() {
		// Supervised like in the ingestor: a walsender of the previous run
		// that lingers a moment is retried, not fatal.
		r.done <- cdc.Supervise(ctx, src, stream.Publishers(e.nc, stream.WithSubjectPrefix(prefix)),
			cdc.WithLogger(e.logger), cdc.WithMaxBackoff(time.Second))
	}()
	return r, nil
}

func (r *running) stop() error {
	r.cancel()
	err := <-r.done
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ferretRun is a FerretDB instance of one run, with a client connected.
type ferretRun struct {
	*devstack.Ferret
	client *mongo.Client
}

// freshFerret starts a FerretDB of its own for one run, in a folder named
// name. FerretDB rescans its whole oplog for every query, so a run on the
// shared instance would pay for the runs before it: its figure would drift
// from run to run, and every run would take longer than the last.
func (e *benchEnv) freshFerret(ctx context.Context, name string) (*ferretRun, error) {
	fdb, err := devstack.StartFerret(ctx, filepath.Join(e.dir, name), 0)
	if err != nil {
		return nil, err
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(fdb.URI))
	if err != nil {
		fdb.Stop()
		return nil, err
	}
	return &ferretRun{Ferret: fdb, client: client}, nil
}

func (f *ferretRun) stop() {
	_ = f.client.Disconnect(context.Background())
	f.Stop()
}
