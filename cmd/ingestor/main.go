// Command ingestor captures employee changes from PostgreSQL and order
// changes from MongoDB and publishes them to NATS JetStream. See README.md.
//
//	ingestor                 run the capture (default)
//	ingestor slot status     show the replication slot and publication
//	ingestor slot drop       drop them (the next start takes a new snapshot)
//	ingestor --version
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/cdc/mongo"
	"github.com/reportes/reportes/pkg/cdc/postgres"
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
	default:
		fmt.Fprintln(os.Stderr, "usage: ingestor [slot status|slot drop|--version]")
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
	nc, err := cfg.ConnectNATS("reportes-ingestor", logger, config.ReportTo(reach))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	// The stream and bucket may be unreachable for a while (NATS starting):
	// wait for them rather than crash-looping.
	var checkpoints *cdc.Checkpoints
	if err := retry(ctx, logger, "prepare JetStream stream and checkpoint bucket", func() error {
		if _, down := reach.Problem(); down != nil {
			return down // rather than the deadline the calls below would meet
		}
		if _, err := cdc.EnsureStream(ctx, js, cdc.StreamConfig{Name: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix, Duplicates: cfg.Duplicates, Replicas: cfg.Replicas}); err != nil {
			return err
		}
		checkpoints, err = cdc.OpenCheckpoints(ctx, js, cfg.CheckpointBucket, cdc.WithCheckpointReplicas(cfg.Replicas))
		return err
	}); err != nil {
		return err
	}

	pg, err := postgres.New(postgres.Config{
		ConnString: cfg.PostgresURL, Tables: []string{cfg.EmployeesTable},
		Slot: cfg.Slot, Publication: cfg.Publication, Logger: logger.With("source", "postgres"),
	}, checkpoints)
	if err != nil {
		return err
	}
	mg, err := mongo.New(mongo.Config{
		URI: cfg.MongoURI, Database: cfg.MongoDB, Collection: cfg.MongoCollection, Mode: mode,
		Logger: logger.With("source", "mongo"),
	}, checkpoints)
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
	pubOpts := []cdc.PublisherOption{
		cdc.WithSubjectPrefix(cfg.SubjectPrefix), cdc.WithPublisherLogger(logger),
		cdc.WithKeepOnOversize(map[string][]string{
			cfg.EmployeesTable:                      {cfg.CodeColumn, cfg.RoleColumn, cfg.ActiveColumn},
			cfg.MongoDB + "." + cfg.MongoCollection: {strings.Split(cfg.SellerField, ".")[0]},
		}),
	}
	serveDebug, err := httpapi.ListenDebug(cfg.IngestorDebug, cfg.APIToken, logger)
	if err != nil {
		return fmt.Errorf("INGESTOR_DEBUG_ADDR=%s: %w", cfg.IngestorDebug, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cdc.Supervise(ctx, nc, pg, logger, 10*time.Second, pubOpts...) })
	g.Go(func() error { return cdc.Supervise(ctx, nc, mg, logger, 10*time.Second, pubOpts...) })
	g.Go(func() error { return httpapi.Serve(ctx, srv, ln, 5*time.Second) })
	if serveDebug != nil {
		g.Go(func() error { return serveDebug(ctx) })
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

func adminServer(reach *config.Reach, token string, sources ...interface {
	Name() string
	Streaming() bool
}) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if since, down := reach.Problem(); down != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"status": "not ready", "error": down.Error(),
				"since": since.UTC(), "for_seconds": int(time.Since(since).Seconds()),
			})
			return
		}
		for _, s := range sources {
			if !s.Streaming() {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"status":"not ready","error":"` + s.Name() + ` source is not streaming yet (connecting or taking its snapshot)"}` + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	return &http.Server{Handler: httpapi.RequireToken(token, mux), ReadHeaderTimeout: 5 * time.Second}
}

func retry(ctx context.Context, logger *slog.Logger, what string, fn func() error) error {
	backoff := 250 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("retrying", "what", what, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
