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

	view, err := projection.NewView(schemaOf(cfg))
	if err != nil {
		return err
	}
	reach := config.NewReach(cfg.NatsURL)
	connect := func() (*nats.Conn, error) { return cfg.ConnectNATS("reportes-api", logger, config.ReportTo(reach)) }
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	// serving holds the projector and the view served, which a rebuild
	// replaces: everything reads them through it.
	var serving *projection.Serving
	served := func() *projection.View { return serving.View() }
	dash := newDashboard(reach)
	table, err := openViewTable(ctx, cfg, servedSource(served), logger)
	if err != nil {
		return err
	}
	lv := newLive(cfg, func() []byte { return served().JSON() }, func() *nats.Conn { return serving.Projector().Conn() }, dash.problem, logger)
	build := func(v *projection.View, extra ...projection.Option) (*projection.Projector, error) {
		return projection.NewProjector(nc, v, append(projectorOptions(cfg, logger, connect, table), extra...)...)
	}
	if serving, err = projection.NewServing(view, build, lv.add, projection.WithServingLogger(logger)); err != nil {
		return err
	}
	dash.serving = serving

	srv, ln, err := listen(cfg, dash, lv.hub, rebuilder{serving}, logger)
	if err != nil {
		return err
	}
	logger.Info("serving", "addr", ln.Addr().String(), "version", buildinfo.Version, "nats", config.Redact(cfg.NatsURL), "stream", cfg.Stream)
	serveDebug, err := httpapi.ListenDebug(cfg.DebugAddr, httpapi.WithBearerToken(cfg.APIToken), httpapi.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("DEBUG_ADDR=%s: %w", cfg.DebugAddr, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serving.Run(ctx) })
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

func schemaOf(cfg config.Config) projection.Schema {
	return projection.Schema{
		Employees: cfg.EmployeesTable, CodeField: cfg.CodeColumn, RoleField: cfg.RoleColumn, ActiveField: cfg.ActiveColumn,
		Orders: cfg.MongoDB + "." + cfg.MongoCollection, SellerField: cfg.SellerField, Title: cfg.Title,
	}
}

// servedSource is the view served now, as the copy in PostgreSQL reads it.
type servedSource func() *projection.View

func (s servedSource) Dashboard() projection.Dashboard { return s().Dashboard() }

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
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, nil, fmt.Errorf("listen on PORT=%d: %w", cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           httpapi.New(d, httpapi.WithLogger(logger), httpapi.WithBearerToken(cfg.APIToken), httpapi.WithStream(stream), httpapi.WithRebuild(rb)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 16,
	}
	return srv, ln, nil
}
