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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/cdc/mongo"
	"github.com/reportes/reportes/pkg/cdc/postgres"
	"github.com/reportes/reportes/pkg/lease"
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
	checkpoints, leases, err := prepare(ctx, cfg, nc, reach, logger)
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

	holder := lease.ProcessName()
	keepers := map[string]*lease.Keeper{}
	open := func(src source) cdc.Opener {
		// Each source's events keep, when too large to publish whole, the
		// fields the source was told consumers need.
		return stream.Publishers(nc, stream.WithSubjectPrefix(cfg.SubjectPrefix), stream.WithLogger(logger),
			stream.WithKeepOnOversize(src.KeepOnOversize()))
	}
	for _, src := range []source{pg, mg} {
		if keepers[src.Name()], err = capture(leases, cfg, holder, src, open(src), logger); err != nil {
			return err
		}
	}
	srv := adminServer(reach, cfg.APIToken, holder, keepers, pg, mg)
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.IngestorPort)))
	if err != nil {
		return fmt.Errorf("listen on INGESTOR_PORT=%d: %w", cfg.IngestorPort, err)
	}
	serveDebug, err := httpapi.ListenDebug(cfg.IngestorDebug, httpapi.WithBearerToken(cfg.APIToken), httpapi.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("INGESTOR_DEBUG_ADDR=%s: %w", cfg.IngestorDebug, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, k := range keepers {
		g.Go(func() error { return k.Run(ctx) })
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

// capture returns what captures src while this process holds its lease,
// "ingestor.<stream>.<source>": exactly one of the ingestors that share a
// configuration captures each source at a time, the others stand by and
// take over when its lease expires (docs/operations.md, Failover).
func capture(leases *lease.Store, cfg config.Config, holder string, src source, open cdc.Opener, logger *slog.Logger) (*lease.Keeper, error) {
	name := "ingestor." + lease.Sanitize(cfg.Stream) + "." + src.Name()
	leader, starts := metricLeader.WithLabelValues(src.Name()), metricCaptures.WithLabelValues(src.Name())
	return lease.NewKeeper(leases, name, holder, func(ctx context.Context) error {
		starts.Inc()
		leader.Set(1)
		defer leader.Set(0)
		logger.Info("capturing: this ingestor holds the source's lease", "source", src.Name(), "lease", name)
		return cdc.Supervise(ctx, src, open, cdc.WithLogger(logger), cdc.WithMaxBackoff(10*time.Second))
	})
}

var metricLeader = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "reportes_ingestor_leader",
	Help: "1 while this ingestor holds the source's lease and captures it, 0 while it stands by.",
}, []string{"source"})

var metricCaptures = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "reportes_ingestor_captures_total",
	Help: "Times this ingestor started capturing the source: at start, and each time it took the source's lease again (a takeover, or its own after NATS came back).",
}, []string{"source"})

// prepare makes sure the stream, the checkpoint bucket and the lease bucket
// exist and opens the buckets. They may be unreachable for a while (NATS
// starting): it waits for them rather than crash-looping.
func prepare(ctx context.Context, cfg config.Config, nc *nats.Conn, reach *config.Reach, logger *slog.Logger) (*stream.Checkpoints, *lease.Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("open jetstream: %w", err)
	}
	var checkpoints *stream.Checkpoints
	var leases *lease.Store
	err = retry(ctx, logger, "prepare JetStream stream and buckets", func() error {
		if _, down := reach.Problem(); down != nil {
			return down // rather than the deadline the calls below would meet
		}
		if _, err := stream.Ensure(ctx, js, stream.Config{Name: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix, Duplicates: cfg.Duplicates, Replicas: cfg.Replicas,
			History: stream.History(cfg.History), Logger: logger}); err != nil {
			return err
		}
		if checkpoints, err = stream.OpenCheckpoints(ctx, js, cfg.CheckpointBucket, stream.WithCheckpointReplicas(cfg.Replicas)); err != nil {
			return err
		}
		leases, err = lease.Open(ctx, js, cfg.LeaseBucket, cfg.LeaseTTL, lease.WithReplicas(cfg.Replicas), lease.WithLogger(logger))
		if err != nil {
			return fmt.Errorf("LEASE_BUCKET=%s: %w", cfg.LeaseBucket, err)
		}
		return nil
	})
	return checkpoints, leases, err
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
	// Holder names this process among the ingestors; Sources says, per
	// source, "leader" when it captures it, or "standby" and who does.
	Holder  string            `json:"holder,omitempty"`
	Sources map[string]string `json:"sources,omitempty"`
}

// streamer is a source as /readyz sees it.
type streamer interface {
	Name() string
	Streaming() bool
}

func adminServer(reach *config.Reach, token, holder string, keepers map[string]*lease.Keeper, sources ...streamer) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, readiness{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, req *http.Request) {
		code, body := ready(req.Context(), reach, keepers, sources)
		body.Holder = holder
		httpapi.WriteJSON(w, code, body)
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	return &http.Server{Handler: httpapi.RequireToken(token, mux), ReadHeaderTimeout: 5 * time.Second}
}

// ready answers /readyz: 503 while NATS cannot be reached (why, and since
// when) or while a source this ingestor leads is not streaming yet. A
// standby, which leads no source, is ready: it is there to take over.
func ready(ctx context.Context, reach *config.Reach, keepers map[string]*lease.Keeper, sources []streamer) (int, readiness) {
	if since, down := reach.Problem(); down != nil {
		utc, secs := since.UTC(), int(time.Since(since).Seconds())
		return http.StatusServiceUnavailable, readiness{Status: "not ready", Error: down.Error(), Since: &utc, ForSeconds: &secs}
	}
	out := readiness{Status: "ready", Sources: map[string]string{}}
	leads := 0
	for _, s := range sources {
		if k := keepers[s.Name()]; k != nil && !k.Held() {
			who, _ := k.Holder(ctx)
			out.Sources[s.Name()] = "standby (captured by " + who + ")"
			continue
		}
		leads++
		out.Sources[s.Name()] = "leader"
		if !s.Streaming() {
			out.Status, out.Error = "not ready", s.Name()+" source is not streaming yet (connecting or taking its snapshot)"
			return http.StatusServiceUnavailable, out
		}
	}
	if leads == 0 {
		out.Status = "standby"
	}
	return http.StatusOK, out
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
