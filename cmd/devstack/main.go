// Command devstack runs reportes locally with one command (make run): it
// starts whatever the environment does not point elsewhere (a private
// PostgreSQL cluster, an embedded NATS JetStream server and an embedded
// FerretDB, all under -data), loads the original service's sample data into
// the local databases, then runs the ingestor and api binaries with the
// environment that connects them, and stops everything on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/devstack"
)

func main() {
	data := flag.String("data", ".data", "folder for the local services' data")
	ingestor := flag.String("ingestor", "bin/ingestor", "ingestor binary")
	api := flag.String("api", "bin/api", "api binary")
	pgPort := flag.Int("pg-port", 5433, "port of the local PostgreSQL (0: any free port)")
	mongoPort := flag.Int("mongo-port", 27017, "port of the local FerretDB (0: any free port)")
	natsPort := flag.Int("nats-port", 4223, "port of the local NATS server (0: any free port)")
	wait := flag.Duration("wait", 2*time.Minute, "how long the ingestor and the API may take to answer /healthz")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", "devstack")
	if err := run(*data, *ingestor, *api, *pgPort, *mongoPort, *natsPort, *wait, logger); err != nil {
		logger.Error("devstack stopped", "err", err)
		os.Exit(1)
	}
}

func set(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

func run(data, ingestorBin, apiBin string, pgPort, mongoPort, natsPort int, wait time.Duration, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read .env: %w", err)
	}
	data, err := filepath.Abs(data)
	if err != nil {
		return err
	}
	// Read once before starting anything: a bad value or a taken port is
	// reported in a second, not after PostgreSQL has started.
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if err := checkPorts(cfg); err != nil {
		return err
	}
	env, stopServices, err := startServices(ctx, data, pgPort, mongoPort, natsPort, logger)
	defer stopServices()
	if err != nil {
		return err
	}
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	if cfg, err = config.Load(); err != nil {
		return err
	}
	if env["POSTGRES_URL"] != "" && env["MONGO_URI"] != "" {
		if err := devstack.Seed(ctx, cfg.PostgresURL, cfg.MongoURI, cfg.MongoDB, cfg.MongoCollection); err != nil {
			return err
		}
	}
	return supervise(ctx, cfg, []*child{
		{name: "ingestor", bin: ingestorBin, portVar: "INGESTOR_PORT", port: cfg.IngestorPort},
		{name: "api", bin: apiBin, portVar: "PORT", port: cfg.Port},
	}, wait, logger)
}

// startServices starts the local services the environment does not name
// and returns the variables that point the binaries at them. Their ports
// move to free ones when taken: only the binaries connect to them, and
// they are given the address. stop stops what was started, also on error.
func startServices(ctx context.Context, data string, pgPort, mongoPort, natsPort int, logger *slog.Logger) (env map[string]string, stop func(), err error) {
	env = map[string]string{}
	var stops []func()
	stop = func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	if set("POSTGRES_URL") || set("SQL_HOST") {
		logger.Info("using the PostgreSQL the environment names")
	} else {
		pg, err := devstack.StartPostgres(ctx, filepath.Join(data, "postgres"), freeOrAny(pgPort))
		if err != nil {
			return nil, stop, err
		}
		stops = append(stops, func() { _ = pg.Stop() })
		db := "empleados_db"
		if v := os.Getenv("SQL_DB"); v != "" {
			db = v
		}
		if err := pg.CreateDatabase(ctx, db); err != nil {
			return nil, stop, err
		}
		env["POSTGRES_URL"] = pg.URL(db)
	}
	if set("MONGO_URI") || set("MONGO_HOST") {
		logger.Info("using the MongoDB the environment names")
	} else {
		f, err := devstack.StartFerret(ctx, filepath.Join(data, "ferretdb"), freeOrAny(mongoPort))
		if err != nil {
			return nil, stop, err
		}
		stops = append(stops, f.Stop)
		env["MONGO_URI"] = f.URI
	}
	if set("NATS_URL") {
		logger.Info("using the NATS server the environment names")
	} else {
		n, err := devstack.StartNATS(filepath.Join(data, "nats"), freeOrAny(natsPort))
		if err != nil {
			return nil, stop, err
		}
		stops = append(stops, n.Stop)
		env["NATS_URL"] = n.URL()
	}
	return env, stop, nil
}

// freeOrAny returns port, or 0 (any free port) when it is taken.
func freeOrAny(port int) int {
	if port != 0 && !free(port) {
		return 0
	}
	return port
}

func printBanner(cfg config.Config) {
	fmt.Printf(`
reportes is running
  live page   http://localhost:%d/
  dashboard   http://localhost:%d/reportes/dashboard   events http://localhost:%d/reportes/dashboard/stream
  api health  http://localhost:%d/readyz   metrics http://localhost:%d/metrics
  ingestor    http://localhost:%d/metrics
  postgres    %s
  mongodb     %s
  nats        %s   (stream %s, subjects %s.>; metric updates %s.> in stream %s)
Ctrl-C stops everything.

`, cfg.Port, cfg.Port, cfg.Port, cfg.Port, cfg.Port, cfg.IngestorPort, config.Redact(cfg.PostgresURL), config.Redact(cfg.MongoURI),
		config.Redact(cfg.NatsURL), cfg.Stream, cfg.SubjectPrefix, cfg.MetricsPrefix, cfg.MetricsStream)
}

func free(port int) bool {
	p, err := devstack.FreePortCheck(port)
	return err == nil && p
}
