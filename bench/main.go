// Command bench measures reportes against references run in the same
// invocation, and writes bench/results.md. It is what `make bench` runs; see
// the README's Benchmarks section. Figures are ratios to a reference measured
// on the same machine in the same run, medians of -runs runs with min and
// max, because shared machines are noisy. Nothing here fails on a slow
// machine: the bars are reported, not enforced.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/reportes/reportes/internal/devstack"
)

type benchOptions struct {
	runs        int
	pgRows      int
	pgTxns      int
	mongoDocs   int
	changes     int
	clients     int
	burst       int
	liveRuns    int
	viewOrders  []int
	rebuild     int
	historyKeys int
	// historyChanges are the numbers of changes after which the history
	// figure measures its stream, the first being the reference.
	historyChanges []int
	recountMax     int
	// backfillOrders are the orders the backfill figure reads again;
	// backfillChunk is the chunk size of its second backfill (0: none).
	backfillOrders      int
	backfillChunk       int
	backfillProfile     string
	backfillProfileSecs int
	wrkSecs             int
	storeEvents         int // order events the view store figure projects, over storeKeys keys
	storeKeys           int
	storeOrders         int // orders in the store its api replica mirrors
	apiBin              string
	ingestorBin         string
	projectorBin        string
	out                 string
	cpuprofile          string
	only                string
	hotpaths            string
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == serveNATSArg {
		if err := serveNATS(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "nats server:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 2 && os.Args[1] == broadcastArg {
		if err := serveBroadcast(); err != nil {
			fmt.Fprintln(os.Stderr, "sse broadcaster:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == plainArg {
		if err := tailPublish(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "plain capture:", err)
			os.Exit(1)
		}
		return
	}
	var o benchOptions
	var sizes, history string
	flag.IntVar(&o.runs, "runs", 5, "runs per figure (median, min and max are reported)")
	flag.IntVar(&o.pgRows, "pg-rows", 200_000, "rows of the bulk PostgreSQL capture")
	flag.IntVar(&o.pgTxns, "pg-txns", 60_000, "single-row transactions of the small-transaction capture")
	flag.IntVar(&o.mongoDocs, "mongo-docs", 20_000, "documents of the MongoDB capture")
	flag.IntVar(&o.changes, "changes", 300, "changes (one every 10ms) timed for freshness and fan-out")
	flag.IntVar(&o.clients, "clients", 10_000, "concurrent SSE clients of the fan-out figure")
	flag.IntVar(&o.burst, "burst", 100_000, "orders of the metric-subject burst")
	flag.IntVar(&o.liveRuns, "live-runs", 1, "runs of the fan-out and metric-subject figures (each is thousands of samples)")
	flag.StringVar(&sizes, "orders", "100000,1000000", "orders in the view for the read-cost and memory figures")
	flag.IntVar(&o.rebuild, "rebuild", 1_000_000, "order events in the stream for the rebuild figure")
	flag.IntVar(&o.historyKeys, "history-keys", 100_000, "orders the bounded-history figure changes over and over")
	flag.StringVar(&history, "history-changes", "250000,2500000", "changes after which the bounded-history figure measures its stream (the first is the reference; 1000000,10000000 takes about 6 minutes on 2 cores)")
	flag.IntVar(&o.recountMax, "recount-max", 1_000_000, "largest order count the original recount is timed at")
	flag.IntVar(&o.backfillOrders, "backfill-orders", 10_000, "orders the backfill figure reads again (the goal is for 1,000,000: on FerretDB each chunk costs a read of the whole collection, so that would take hours)")
	flag.IntVar(&o.backfillChunk, "backfill-chunk", 4096, "chunk size of the backfill figure's second backfill (0: none)")
	flag.StringVar(&o.backfillProfile, "backfill-profile", "", "write a CPU profile of the ingestor during the backfill figure's first backfill to this file")
	flag.IntVar(&o.backfillProfileSecs, "backfill-profile-seconds", 15, "length of that profile")
	flag.IntVar(&o.wrkSecs, "wrk-seconds", 5, "duration of each wrk run")
	flag.IntVar(&o.storeEvents, "store-events", 200_000, "order events the view store figure projects into PostgreSQL")
	flag.IntVar(&o.storeKeys, "store-keys", 100_000, "distinct order keys of those events")
	flag.IntVar(&o.storeOrders, "store-orders", 10_000_000, "orders in the view store the api replica of the view store figure mirrors")
	flag.StringVar(&o.apiBin, "api", "bin/api", "api binary")
	flag.StringVar(&o.ingestorBin, "ingestor", "bin/ingestor", "ingestor binary")
	flag.StringVar(&o.projectorBin, "projector", "bin/projector", "projector binary (VIEW_STORE=postgres)")
	flag.StringVar(&o.out, "out", "bench/results.md", "results file")
	flag.StringVar(&o.hotpaths, "hotpaths", "", "output of go test -bench to include in the results")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&o.only, "only", "", "comma-separated figures to measure (postgres,mongo,freshness,rebuild,history,read,fanout,burst,backfill,store,failover); empty: all")
	flag.Parse()
	var err error
	if o.viewOrders, err = numbers(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "bad -orders:", err)
		os.Exit(2)
	}
	if o.historyChanges, err = numbers(history); err != nil || len(o.historyChanges) < 2 {
		fmt.Fprintln(os.Stderr, "bad -history-changes: want two or more numbers:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(o, logger); err != nil {
		logger.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

func run(o benchOptions, logger *slog.Logger) error {
	ctx := context.Background()
	started := time.Now()
	dir, err := os.MkdirTemp("", "reportes-bench-")
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // the postgres user must traverse it
		return err
	}
	defer os.RemoveAll(dir)
	pg, err := devstack.StartPostgres(ctx, filepath.Join(dir, "pg"), 0)
	if err != nil {
		return err
	}
	defer func() { _ = pg.Stop() }()
	nats, err := startNATSProcess(ctx, filepath.Join(dir, "nats"))
	if err != nil {
		return err
	}
	defer nats.stop()
	ferret, err := devstack.StartFerret(ctx, filepath.Join(dir, "ferret"), 0)
	if err != nil {
		return err
	}
	defer ferret.Stop()
	env := &benchEnv{o: o, logger: logger, pg: pg, nats: nats, ferret: ferret, dir: dir}
	if err := env.connect(ctx); err != nil {
		return err
	}
	defer env.close()

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var rep report
	steps := []struct {
		key, name string
		fn        func(context.Context, *report) error
	}{
		{"postgres", "postgres capture", env.postgresCapture},
		{"mongo", "mongo capture", env.mongoCapture},
		{"freshness", "freshness", env.freshness},
		{"rebuild", "rebuild", env.rebuildFigure},
		{"history", "bounded history", env.historyFigure},
		{"read", "read cost and memory", env.readCost},
		{"fanout", "SSE fan-out", env.fanout},
		{"burst", "metric subjects", env.burst},
		{"backfill", "backfill", env.backfillFigure},
		{"store", "view store", env.storeFigure},
		{"failover", "ingestor takeover and NATS leader change", env.failoverFigure},
	}
	for _, s := range steps {
		if o.only != "" && !slices.Contains(strings.Split(o.only, ","), s.key) {
			continue
		}
		logger.Info("measuring", "what", s.name)
		t := time.Now()
		if err := s.fn(ctx, &rep); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		logger.Info("measured", "what", s.name, "took", time.Since(t).Round(time.Second))
	}
	rep.took = time.Since(started)
	md := rep.markdown(o)
	if o.hotpaths != "" {
		if hp, err := os.ReadFile(o.hotpaths); err == nil {
			md += "\n## Hot paths (go test -bench, -count 3)\n\n```\n" + string(hp) + "```\n"
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o750); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, []byte(md), 0o600); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

// numbers parses a comma-separated list of numbers.
func numbers(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// stats summarizes several runs of one figure.
type stats struct{ med, min, max float64 }

func summarize(xs []float64) stats {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return stats{med: s[len(s)/2], min: s[0], max: s[len(s)-1]}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return s[i]
}
