// Command api serves GET /reportes/dashboard from a view it rebuilds from the
// change event stream on start and then keeps current. See README.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/live"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/mirror"
	"github.com/reportes/reportes/pkg/projection/pgview"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(commandLine(os.Args[1:], os.Stdout, os.Stderr))
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(2)
	}
	logger := cfg.Logger().With("service", "api")
	if err := run(cfg, logger); err != nil {
		logger.Error("api stopped", "err", err)
		os.Exit(1)
	}
}

func run(cfg config.Config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reach := config.NewReach(cfg.NatsURL)
	connect := func() (*nats.Conn, error) { return cfg.ConnectNATS("reportes-api", logger, config.ReportTo(reach)) }
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	dash := newDashboard(reach)
	var sv served
	table, err := openViewTable(ctx, cfg, sourceFunc(func() projection.Dashboard { return sv.dashboard() }), logger)
	if err != nil {
		return err
	}
	lv := newLive(cfg, func() []byte { return dash.src.JSON() }, func() *nats.Conn { return sv.conn() }, dash.problem, logger)
	if cfg.ViewStore == "postgres" {
		sv, err = storeView(ctx, cfg, nc, lv.add, table, logger)
	} else {
		sv, err = memoryView(cfg, nc, connect, lv.add, table, logger)
	}
	if err != nil {
		return err
	}
	defer sv.close()
	dash.src = sv.src

	srv, ln, err := listen(cfg, dash, lv.hub, sv.rebuild, logger)
	if err != nil {
		return err
	}
	logger.Info("serving", "addr", ln.Addr().String(), "version", buildinfo.Version, "nats", config.Redact(cfg.NatsURL),
		"stream", cfg.Stream, "view_store", cfg.ViewStore)
	serveDebug, err := httpapi.ListenDebug(cfg.DebugAddr, httpapi.WithBearerToken(cfg.APIToken), httpapi.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("DEBUG_ADDR=%s: %w", cfg.DebugAddr, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sv.run(ctx) })
	g.Go(func() error { return dash.watch(ctx, logger, time.Second) })
	g.Go(func() error { return lv.run(ctx) })
	if table != nil {
		g.Go(func() error { return table.Run(ctx) })
	}
	g.Go(func() error { return httpapi.Serve(ctx, srv, ln, 10*time.Second) })
	if serveDebug != nil {
		g.Go(func() error { return serveDebug(ctx) })
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// served is the view a replica serves, in either store mode.
type served struct {
	src       source
	dashboard func() projection.Dashboard
	conn      func() *nats.Conn // to publish the metric updates on
	rebuild   httpapi.Rebuilder // nil when the view cannot be rebuilt here
	run       func(ctx context.Context) error
	close     func()
}

// memoryView is the view rebuilt from the stream in this process: a
// projector whose view a rebuild may replace.
func memoryView(cfg config.Config, nc *nats.Conn, connect func() (*nats.Conn, error), add func(projection.Update), table *pgview.Writer, logger *slog.Logger) (served, error) {
	view, err := projection.NewView(cfg.ViewModel())
	if err != nil {
		return served{}, err
	}
	build := func(v *projection.View, extra ...projection.Option) (*projection.Projector, error) {
		return projection.NewProjector(nc, v, append(projectorOptions(cfg, logger, connect, table), extra...)...)
	}
	serving, err := projection.NewServing(view, build, add, projection.WithServingLogger(logger))
	if err != nil {
		return served{}, err
	}
	return served{
		src:       servingSource{serving},
		dashboard: func() projection.Dashboard { return serving.View().Dashboard() },
		conn:      func() *nats.Conn { return serving.Projector().Conn() },
		rebuild:   rebuilder{serving},
		run:       serving.Run,
		close:     func() {},
	}, nil
}

// storeView is the mirror of the PostgreSQL view store that projectors
// (cmd/projector) keep: the per-seller rows only.
func storeView(ctx context.Context, cfg config.Config, nc *nats.Conn, add func(projection.Update), table *pgview.Writer, logger *slog.Logger) (served, error) {
	store, err := cfg.OpenViewStore(ctx, logger)
	if err != nil {
		return served{}, err
	}
	opts := []mirror.Option{mirror.WithUpdates(add), mirror.WithLogger(logger)}
	if table != nil {
		opts = append(opts, mirror.WithOnApplied(table.Changed))
	}
	m := mirror.New(store, cfg.Title, opts...)
	return served{
		src:       m,
		dashboard: m.Dashboard,
		conn:      func() *nats.Conn { return nc },
		run:       func(ctx context.Context) error { return m.Run(ctx, nc) },
		close:     store.Close,
	}, nil
}

// followers are those who follow the view's changes: the dashboard's
// event stream, and the metric-update subjects unless they are off.
type followers struct {
	hub      *live.Hub
	subjects *live.Subjects // nil when NATS_METRICS_PREFIX is empty
}

func newLive(cfg config.Config, dashboard func() []byte, conn func() *nats.Conn, problem func() (time.Time, error), logger *slog.Logger) *followers {
	f := &followers{hub: live.NewHub(dashboard, live.WithInterval(cfg.LiveInterval), live.WithLogger(logger), live.WithHealth(problem))}
	if cfg.MetricsPrefix != "" {
		f.subjects = live.NewSubjects(conn, live.StreamConfig{
			Name: cfg.MetricsStream, Prefix: cfg.MetricsPrefix, Duplicates: cfg.Duplicates, Replicas: cfg.Replicas,
		}, live.WithInterval(cfg.LiveInterval), live.WithLogger(logger))
	}
	return f
}

// add hands them an update of the view; it never blocks.
func (f *followers) add(u projection.Update) {
	f.hub.Add(u)
	if f.subjects != nil {
		f.subjects.Add(u)
	}
}

func (f *followers) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return f.hub.Run(ctx) })
	if f.subjects != nil {
		g.Go(func() error { return f.subjects.Run(ctx) })
	}
	return g.Wait()
}

// sourceFunc is the dashboard served now, as the copy in PostgreSQL reads it.
type sourceFunc func() projection.Dashboard

func (s sourceFunc) Dashboard() projection.Dashboard { return s() }

// openViewTable opens the copy of view in PostgreSQL (VIEW_TABLE); nil
// when there is none.
func openViewTable(ctx context.Context, cfg config.Config, view pgview.Source, logger *slog.Logger) (*pgview.Writer, error) {
	if cfg.ViewTable == "" {
		return nil, nil
	}
	table, err := pgview.New(ctx, cfg.ViewPostgresURL, cfg.ViewTable, view, pgview.WithLogger(logger))
	if err != nil {
		return nil, fmt.Errorf("VIEW_TABLE=%s: %w", cfg.ViewTable, err)
	}
	logger.Info("keeping a copy of the view in PostgreSQL", "table", cfg.ViewTable, "database", config.Redact(cfg.ViewPostgresURL))
	return table, nil
}

// projectorOptions configures the projector from cfg; table, when not
// nil, is told of every change.
func projectorOptions(cfg config.Config, logger *slog.Logger, connect func() (*nats.Conn, error), table *pgview.Writer) []projection.Option {
	opts := []projection.Option{
		projection.WithStream(cfg.Stream),
		projection.WithSubjectPrefix(cfg.SubjectPrefix),
		projection.WithDeadLetters(cfg.DeadLetter),
		projection.WithLogger(logger),
		projection.WithSnapshots(cfg.SnapshotBucket, cfg.SnapshotInterval),
		projection.WithReplicas(cfg.Replicas),
		// nats.go closes a connection for good on some server errors; the
		// view keeps following the stream on a new one.
		projection.WithRedial(connect),
	}
	if table != nil {
		opts = append(opts, projection.WithOnApplied(table.Changed))
	}
	if cfg.RebuildGCPercent != 0 {
		gc := &rebuildGC{percent: cfg.RebuildGCPercent}
		opts = append(opts, projection.WithRebuildHooks(gc.start, gc.ready))
	}
	return opts
}

// listen opens the API's port (PORT) and returns the server to run on it;
// stream serves the dashboard's events, rb the rebuilds.
func listen(cfg config.Config, d httpapi.Dashboard, stream http.Handler, rb httpapi.Rebuilder, logger *slog.Logger) (*http.Server, net.Listener, error) {
	opts := []httpapi.Option{httpapi.WithLogger(logger), httpapi.WithBearerToken(cfg.APIToken), httpapi.WithStream(stream)}
	if rb != nil {
		opts = append(opts, httpapi.WithRebuild(rb))
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, nil, fmt.Errorf("listen on PORT=%d: %w", cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           httpapi.New(d, opts...),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 16,
	}
	return srv, ln, nil
}
