// Command ingestor captures employee changes from PostgreSQL and order
// changes from MongoDB and publishes them to NATS JetStream. See README.md.
//
//	ingestor                 run the capture (default)
//	ingestor slot status     show the replication slot and publication
//	ingestor slot drop       drop them (the next start takes a new snapshot)
//	ingestor backfill ...    read a table or collection again while capturing
//	ingestor --version
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/cdc/mongo"
	"github.com/reportes/reportes/pkg/cdc/postgres"
	"github.com/reportes/reportes/pkg/stream"
)

func main() {
	args := os.Args[1:]
	if code, done := commandLine(args, os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestor:", err)
		os.Exit(2)
	}
	logger := cfg.Logger().With("service", "ingestor")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case len(args) == 0:
		err = run(ctx, cfg, logger)
	case len(args) == 2 && args[0] == "slot":
		err = slotCommand(ctx, cfg, args[1], os.Stdout)
	case args[0] == "backfill":
		if err = backfillCommand(ctx, cfg, args[1:], os.Stdout); errors.Is(err, errBackfillFailed) {
			os.Exit(1) // the reason is printed
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: ingestor [slot status|slot drop|backfill ...|--version]")
		os.Exit(2)
	}
	if err != nil {
		logger.Error("ingestor stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	mode, err := mongo.ParseMode(cfg.MongoMode)
	if err != nil {
		return fmt.Errorf("MONGO_CAPTURE_MODE: %w", err)
	}
	reach := config.NewReach(cfg.NatsURL)
	closed := make(chan error, 1)
	nc, err := cfg.ConnectNATS("reportes-ingestor", logger, config.ReportTo(reach),
		config.OnClosed(func(err error) { closed <- err }))
	if err != nil {
		return err
	}
	defer nc.Close()
	checkpoints, err := prepare(ctx, cfg, nc, reach, logger)
	if err != nil {
		return err
	}
	pg, mg, err := newSources(cfg, mode, checkpoints, logger)
	if err != nil {
		return err
	}
	logger.Info("starting", "version", buildinfo.Version,
		"postgres", config.Redact(cfg.PostgresURL), "mongo", config.Redact(cfg.MongoURI), "nats", config.Redact(cfg.NatsURL),
		"stream", cfg.Stream, "table", cfg.EmployeesTable, "collection", cfg.MongoDB+"."+cfg.MongoCollection)

	srv := adminServer(reach, cfg.APIToken, pg, mg)
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.IngestorPort)))
	if err != nil {
		return fmt.Errorf("listen on INGESTOR_PORT=%d: %w", cfg.IngestorPort, err)
	}
	serveDebug, err := httpapi.ListenDebug(cfg.IngestorDebug, httpapi.WithBearerToken(cfg.APIToken), httpapi.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("INGESTOR_DEBUG_ADDR=%s: %w", cfg.IngestorDebug, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, src := range []source{pg, mg} {
		// Each source's events keep, when too large to publish whole, the
		// fields the source was told consumers need.
		open := stream.Publishers(nc, stream.WithSubjectPrefix(cfg.SubjectPrefix), stream.WithLogger(logger),
			stream.WithKeepOnOversize(src.KeepOnOversize()))
		g.Go(func() error {
			return cdc.Supervise(ctx, src, open, cdc.WithLogger(logger), cdc.WithMaxBackoff(10*time.Second))
		})
	}
	g.Go(func() error { return httpapi.Serve(ctx, srv, ln, 5*time.Second) })
	g.Go(func() error { return exitOnClose(ctx, closed) })
	if serveDebug != nil {
		g.Go(func() error { return serveDebug(ctx) })
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// exitOnClose ends the ingestor when the client closed its NATS connection
// for good (it does after some server errors, and does not reconnect):
// the sources resume from their acknowledged positions when a supervisor
// starts it again, and the message ids drop what is published twice.
func exitOnClose(ctx context.Context, closed <-chan error) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-closed:
		return fmt.Errorf("the NATS connection was closed and is not reconnected (%w); exiting so that it is started again", err)
	}
}

// source is a capture source as the ingestor runs it.
type source interface {
	cdc.Source
	KeepOnOversize() map[string][]string
}

// prepare makes sure the stream and the checkpoint bucket exist and opens
// the bucket. They may be unreachable for a while (NATS starting): it waits
// for them rather than crash-looping.
func prepare(ctx context.Context, cfg config.Config, nc *nats.Conn, reach *config.Reach, logger *slog.Logger) (*stream.Checkpoints, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	var checkpoints *stream.Checkpoints
	err = retry(ctx, logger, "prepare JetStream stream and checkpoint bucket", func() error {
		if _, down := reach.Problem(); down != nil {
			return down // rather than the deadline the calls below would meet
		}
		if _, err := stream.Ensure(ctx, js, stream.Config{Name: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix, Duplicates: cfg.Duplicates, Replicas: cfg.Replicas,
			History: stream.History(cfg.History), Logger: logger}); err != nil {
			return err
		}
		checkpoints, err = stream.OpenCheckpoints(ctx, js, cfg.CheckpointBucket, stream.WithCheckpointReplicas(cfg.Replicas))
		return err
	})
	return checkpoints, err
}

// newSources returns the PostgreSQL and MongoDB sources. Each is told the
// columns or fields the view reads (the EMPLOYEE_*_COLUMN and
// ORDER_SELLER_FIELD settings), which its events must keep.
func newSources(cfg config.Config, mode mongo.Mode, checkpoints *stream.Checkpoints, logger *slog.Logger) (*postgres.Source, *mongo.Source, error) {
	pg, err := postgres.New(postgres.Config{
		ConnString: cfg.PostgresURL, Tables: []string{cfg.EmployeesTable}, Slot: cfg.Slot, Publication: cfg.Publication,
		Keep: []string{cfg.CodeColumn, cfg.RoleColumn, cfg.ActiveColumn},
	}, checkpoints, postgres.WithLogger(logger.With("source", "postgres")))
	if err != nil {
		return nil, nil, err
	}
	mg, err := mongo.New(mongo.Config{
		URI: cfg.MongoURI, Database: cfg.MongoDB, Collection: cfg.MongoCollection, Mode: mode,
		Keep: []string{cfg.SellerField}, WatermarkCollection: cfg.WatermarkCollection,
	}, checkpoints, mongo.WithLogger(logger.With("source", "mongo")))
	if err != nil {
		return nil, nil, err
	}
	return pg, mg, nil
}

// readiness is the body of /healthz and /readyz.
type readiness struct {
	Status     string     `json:"status"`
	Error      string     `json:"error,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	ForSeconds *int       `json:"for_seconds,omitempty"`
}

// streamer is a source as /readyz sees it.
type streamer interface {
	Name() string
	Streaming() bool
}

func adminServer(reach *config.Reach, token string, sources ...streamer) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, readiness{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		code, body := ready(reach, sources)
		httpapi.WriteJSON(w, code, body)
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	return &http.Server{Handler: httpapi.RequireToken(token, mux), ReadHeaderTimeout: 5 * time.Second}
}

// ready answers /readyz: 503 while NATS cannot be reached (why, and since
// when) or while a source is not streaming yet.
func ready(reach *config.Reach, sources []streamer) (int, readiness) {
	if since, down := reach.Problem(); down != nil {
		utc, secs := since.UTC(), int(time.Since(since).Seconds())
		return http.StatusServiceUnavailable, readiness{Status: "not ready", Error: down.Error(), Since: &utc, ForSeconds: &secs}
	}
	for _, s := range sources {
		if !s.Streaming() {
			return http.StatusServiceUnavailable, readiness{Status: "not ready",
				Error: s.Name() + " source is not streaming yet (connecting or taking its snapshot)"}
		}
	}
	return http.StatusOK, readiness{Status: "ready"}
}

// retry calls fn until it succeeds or ctx ends, waiting 250ms, doubling up
// to 5s, after each failure.
func retry(ctx context.Context, logger *slog.Logger, what string, fn func() error) error {
	b := &backoff.ExponentialBackOff{InitialInterval: 250 * time.Millisecond, Multiplier: 2, MaxInterval: 5 * time.Second}
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, fn() },
		backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			logger.Warn("retrying", "what", what, "err", err, "backoff", wait)
		}))
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
