// Command projector keeps the dashboard view in PostgreSQL (VIEW_STORE=
// postgres): it applies the change event stream to the partitions of the
// view store it holds a lease on, and publishes what each commit changed
// for the API replicas. Run as many as you like with the same
// configuration: they share the partitions (VIEW_PARTITIONS) among
// themselves, and take over those of an instance that dies. See
// docs/scaling.md.
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
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/reportes/reportes/internal/buildinfo"
	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/lease"
	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/pgstore"
)

func main() {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(2)
	}
	logger := cfg.Logger().With("service", "projector")
	if err := run(cfg, logger); err != nil {
		logger.Error("projector stopped", "err", err)
		os.Exit(1)
	}
}

func run(cfg config.Config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reach := config.NewReach(cfg.NatsURL)
	connect := func() (*nats.Conn, error) {
		return cfg.ConnectNATS("reportes-projector", logger, config.ReportTo(reach))
	}
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	store, err := cfg.OpenViewStore(ctx, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	leases, err := lease.Open(ctx, js, cfg.LeaseBucket, cfg.LeaseTTL, lease.WithReplicas(cfg.Replicas), lease.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("LEASE_BUCKET=%s: %w", cfg.LeaseBucket, err)
	}
	w := &worker{cfg: cfg, connect: connect, store: store, logger: logger, running: map[int]*projection.Projector{}}
	member := lease.ProcessName()
	share, err := lease.NewShare(leases, "projector."+cfg.ViewSchema, store.Partitions(), member, w.partition)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.ProjectorPort)))
	if err != nil {
		return fmt.Errorf("listen on PROJECTOR_PORT=%d: %w", cfg.ProjectorPort, err)
	}
	logger.Info("projecting into PostgreSQL", "member", member, "partitions", store.Partitions(), "schema", cfg.ViewSchema,
		"addr", ln.Addr().String(), "version", buildinfo.Version, "stream", cfg.Stream)
	srv := &http.Server{Handler: httpapi.RequireToken(cfg.APIToken, w.routes(reach, share)), ReadHeaderTimeout: 5 * time.Second}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return share.Run(ctx) })
	g.Go(func() error { return httpapi.Serve(ctx, srv, ln, 5*time.Second) })
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// worker runs the partitions this instance holds.
type worker struct {
	cfg     config.Config
	connect func() (*nats.Conn, error)
	store   *pgstore.Store
	logger  *slog.Logger

	mu      sync.Mutex
	running map[int]*projection.Projector
}

// partition applies the stream to partition n until ctx ends (the lease
// was lost or given up, or the process stops).
func (w *worker) partition(ctx context.Context, n int) error {
	logger := w.logger.With("partition", n)
	// Each partition reads the stream on a connection of its own: the
	// server lets an ordered consumer's flow-control window grow to 32 MiB,
	// and several on one connection would pass the 64 MiB a client may
	// have pending, so the server would close the connection the leases
	// are renewed on.
	nc, err := w.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	part, err := w.store.Partition(ctx, n, nc.Publish)
	if err != nil {
		return err
	}
	proj, err := projection.NewTargetProjector(nc, part,
		projection.WithStream(w.cfg.Stream),
		projection.WithSubjectPrefix(w.cfg.SubjectPrefix),
		projection.WithDeadLetters(w.cfg.DeadLetter),
		projection.WithLogger(logger),
		projection.WithRedial(w.connect),
		projection.WithSubjectFilter(w.store.Keeps(n)),
		projection.WithBatchSize(pgBatch),
	)
	if err != nil {
		return err
	}
	logger.Info("partition taken", "seq", part.Seq())
	w.mu.Lock()
	w.running[n] = proj
	metricOwned.Set(float64(len(w.running)))
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, n)
		metricOwned.Set(float64(len(w.running)))
		w.mu.Unlock()
		logger.Info("partition given up", "seq", part.Seq())
	}()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return proj.Run(ctx) })
	g.Go(func() error { return part.Run(ctx) })
	return g.Wait()
}

var metricOwned = promauto.NewGauge(prometheus.GaugeOpts{
	Name: "reportes_projector_partitions_owned",
	Help: "Partitions of the PostgreSQL view store this projector holds a lease on and applies the stream to.",
})

// pgBatch is how many events a partition writes per transaction at most.
const pgBatch = 2048

// status is the body of /readyz.
type status struct {
	Ready      bool   `json:"ready"`
	Error      string `json:"error,omitempty"`
	Partitions []int  `json:"partitions"`
	CaughtUp   []int  `json:"caught_up"`
}

func (w *worker) status(reach *config.Reach, share *lease.Share) status {
	st := status{Partitions: share.Owned(), CaughtUp: []int{}}
	w.mu.Lock()
	for n, p := range w.running {
		if p.Ready() {
			st.CaughtUp = append(st.CaughtUp, n)
		}
	}
	w.mu.Unlock()
	slices.Sort(st.CaughtUp)
	_, down := reach.Problem()
	if down != nil {
		st.Error = down.Error()
	}
	st.Ready = down == nil && len(st.CaughtUp) == len(st.Partitions)
	return st
}

func (w *worker) routes(reach *config.Reach, share *lease.Share) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		st := w.status(reach, share)
		rw.Header().Set("Content-Type", "application/json")
		if !st.Ready {
			rw.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(rw).Encode(st)
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	return mux
}
