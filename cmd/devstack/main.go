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
	"os/exec"
	"os/signal"
	"path/filepath"
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
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", "devstack")
	if err := run(*data, *ingestor, *api, *pgPort, *mongoPort, *natsPort, logger); err != nil {
		logger.Error("devstack stopped", "err", err)
		os.Exit(1)
	}
}

func set(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

func run(data, ingestorBin, apiBin string, pgPort, mongoPort, natsPort int, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read .env: %w", err)
	}
	data, err := filepath.Abs(data)
	if err != nil {
		return err
	}
	env := map[string]string{}

	if set("POSTGRES_URL") || set("SQL_HOST") {
		logger.Info("using the PostgreSQL the environment names")
	} else {
		port := pgPort
		if port != 0 && !free(port) {
			port = 0
		}
		pg, err := devstack.StartPostgres(ctx, filepath.Join(data, "postgres"), port)
		if err != nil {
			return err
		}
		defer func() { _ = pg.Stop() }()
		db := "empleados_db"
		if v := os.Getenv("SQL_DB"); v != "" {
			db = v
		}
		if err := pg.CreateDatabase(ctx, db); err != nil {
			return err
		}
		env["POSTGRES_URL"] = pg.URL(db)
	}
	if set("MONGO_URI") || set("MONGO_HOST") {
		logger.Info("using the MongoDB the environment names")
	} else {
		port := mongoPort
		if port != 0 && !free(port) {
			port = 0
		}
		f, err := devstack.StartFerret(ctx, filepath.Join(data, "ferretdb"), port)
		if err != nil {
			return err
		}
		defer f.Stop()
		env["MONGO_URI"] = f.URI
	}
	if set("NATS_URL") {
		logger.Info("using the NATS server the environment names")
	} else {
		port := natsPort
		if port != 0 && !free(port) {
			port = 0
		}
		n, err := devstack.StartNATS(filepath.Join(data, "nats"), port)
		if err != nil {
			return err
		}
		defer n.Stop()
		env["NATS_URL"] = n.URL()
	}
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if env["POSTGRES_URL"] != "" && env["MONGO_URI"] != "" {
		if err := devstack.Seed(ctx, cfg.PostgresURL, cfg.MongoURI, cfg.MongoDB, cfg.MongoCollection); err != nil {
			return err
		}
	}

	children := []*exec.Cmd{exec.Command(ingestorBin), exec.Command(apiBin)}
	for _, c := range children {
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			return fmt.Errorf("start %s (run make build first): %w", c.Path, err)
		}
	}
	fmt.Printf(`
reportes is running
  dashboard   http://localhost:%d/reportes/dashboard
  api health  http://localhost:%d/readyz   metrics http://localhost:%d/metrics
  ingestor    http://localhost:%d/metrics
  postgres    %s
  mongodb     %s
  nats        %s   (stream %s, subjects %s.>, metric updates %s.>)
Ctrl-C stops everything.

`, cfg.Port, cfg.Port, cfg.Port, cfg.IngestorPort, config.Redact(cfg.PostgresURL), config.Redact(cfg.MongoURI),
		config.Redact(cfg.NatsURL), cfg.Stream, cfg.SubjectPrefix, cfg.MetricsPrefix)

	exited := make(chan error, len(children))
	for _, c := range children {
		go func() {
			err := c.Wait()
			if err == nil {
				err = errors.New("exit status 0")
			}
			exited <- fmt.Errorf("%s exited: %w", c.Path, err)
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-exited:
	}
	for _, c := range children {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(20 * time.Second)
	for range len(children) - boolInt(runErr != nil) {
		select {
		case err := <-exited:
			logger.Info("stopped", "process", err)
		case <-deadline:
			for _, c := range children {
				_ = c.Process.Kill()
			}
		}
	}
	logger.Info("stopped")
	return runErr
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func free(port int) bool {
	p, err := devstack.FreePortCheck(port)
	return err == nil && p
}
