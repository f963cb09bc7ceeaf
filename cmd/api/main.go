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

	schema := projection.Schema{
		Employees: cfg.EmployeesTable, CodeField: cfg.CodeColumn, RoleField: cfg.RoleColumn, ActiveField: cfg.ActiveColumn,
		Orders: cfg.MongoDB + "." + cfg.MongoCollection, SellerField: cfg.SellerField, Title: cfg.Title,
	}
	view, err := projection.NewView(schema)
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
	dash := newDashboard(view, reach)
	opts := []projection.Option{
		projection.WithStream(cfg.Stream),
		projection.WithSubjectPrefix(cfg.SubjectPrefix),
		projection.WithMetricUpdates(cfg.MetricsPrefix),
		projection.WithDeadLetters(cfg.DeadLetter),
		projection.WithLogger(logger),
		projection.WithSnapshots(cfg.SnapshotBucket, cfg.SnapshotInterval),
		projection.WithReplicas(cfg.Replicas),
		// nats.go closes a connection for good on some server errors; the
		// view keeps following the stream on a new one.
		projection.WithRedial(connect),
	}
	var table *pgview.Writer
	if cfg.ViewTable != "" {
		if table, err = pgview.New(ctx, cfg.ViewPostgresURL, cfg.ViewTable, view, pgview.WithLogger(logger)); err != nil {
			return fmt.Errorf("VIEW_TABLE=%s: %w", cfg.ViewTable, err)
		}
		opts = append(opts, projection.WithOnApplied(table.Changed))
		logger.Info("keeping a copy of the view in PostgreSQL", "table", cfg.ViewTable, "database", config.Redact(cfg.ViewPostgresURL))
	}
	proj, err := projection.NewProjector(nc, view, opts...)
	if err != nil {
		return err
	}
	dash.proj = proj

	addr := net.JoinHostPort("", strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on PORT=%d: %w", cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           httpapi.New(dash, logger, httpapi.WithBearerToken(cfg.APIToken)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 16,
	}
	logger.Info("serving", "addr", ln.Addr().String(), "version", buildinfo.Version, "nats", config.Redact(cfg.NatsURL), "stream", cfg.Stream)

	serveDebug, err := httpapi.ListenDebug(cfg.DebugAddr, cfg.APIToken, logger)
	if err != nil {
		return fmt.Errorf("DEBUG_ADDR=%s: %w", cfg.DebugAddr, err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return proj.Run(ctx) })
	g.Go(func() error { return dash.watch(ctx, logger, time.Second) })
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
