package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/stream"
)

const backfillUsage = `usage:
  ingestor backfill postgres [--table schema.table] [--where SQL] [--chunk-size N] [--detach]
  ingestor backfill mongo [--collection db.coll] [--filter JSON] [--chunk-size N] [--detach]
  ingestor backfill status [--json]`

// errBackfillFailed is returned when the backfill the command waited for
// failed; its reason was printed.
var errBackfillFailed = errors.New("backfill failed")

// backfillCommand requests a backfill from the running ingestor (through
// the checkpoint bucket, where the ingestor looks for requests every
// second) and follows it, or lists the backfills.
func backfillCommand(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(backfillUsage)
	}
	store, closeNATS, err := openBackfills(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeNATS()
	if args[0] == "status" {
		fs := flag.NewFlagSet("backfill status", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "print the backfills as JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return backfillStatus(ctx, store, out, *asJSON)
	}
	bf, detach, err := parseBackfill(cfg, args)
	if err != nil {
		return err
	}
	if err := store.Save(ctx, bf.Key(), bf); err != nil {
		return err
	}
	fmt.Fprintf(out, "backfill %s of %s %s requested\n", bf.ID, bf.Source, bf.Collection)
	if detach {
		fmt.Fprintln(out, "follow it with: ingestor backfill status")
		return nil
	}
	return followBackfill(ctx, store, bf, out, config.IsTerminal(out))
}

// parseBackfill reads the request of a backfill of one source.
func parseBackfill(cfg config.Config, args []string) (cdc.Backfill, bool, error) {
	source := args[0]
	fs := flag.NewFlagSet("backfill "+source, flag.ContinueOnError)
	chunk := fs.Int("chunk-size", cdc.DefaultChunkSize, "rows read at once")
	detach := fs.Bool("detach", false, "return once requested; follow with ingestor backfill status")
	var collection, filter *string
	switch source {
	case cdc.SourcePostgres:
		collection = fs.String("table", cfg.EmployeesTable, "the captured table to read again")
		filter = fs.String("where", "", "a SQL condition selecting the rows (a filtered backfill deletes nothing)")
	case cdc.SourceMongo:
		collection = fs.String("collection", cfg.MongoDB+"."+cfg.MongoCollection, "the captured collection to read again")
		filter = fs.String("filter", "", "a MongoDB filter document in Extended JSON (a filtered backfill deletes nothing)")
	default:
		return cdc.Backfill{}, false, fmt.Errorf("unknown backfill source %q\n%s", source, backfillUsage)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return cdc.Backfill{}, false, err
	}
	if fs.NArg() > 0 || *chunk <= 0 {
		return cdc.Backfill{}, false, errors.New(backfillUsage)
	}
	return cdc.NewBackfill(source, *collection, *filter, *chunk, cdc.ReasonRequested), *detach, nil
}

func openBackfills(ctx context.Context, cfg config.Config) (cdc.BackfillStore, func(), error) {
	nc, err := cfg.ConnectNATS("reportes-ingestor-backfill", cfg.Logger())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open jetstream: %w", err)
	}
	store, err := stream.OpenCheckpoints(ctx, js, cfg.CheckpointBucket, stream.WithCheckpointReplicas(cfg.Replicas))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return store, nc.Close, nil
}

// followBackfill prints the progress of bf until it is over: on a
// terminal a bar redrawn in place, otherwise a line every few seconds.
func followBackfill(ctx context.Context, store cdc.BackfillStore, bf cdc.Backfill, out io.Writer, tty bool) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var printed time.Time
	last := ""
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "\nstopped following; backfill %s goes on (ingestor backfill status)\n", bf.ID)
			return nil
		case <-tick.C:
		}
		var cur cdc.Backfill
		ok, err := store.Load(ctx, bf.Key(), &cur)
		if err != nil || !ok {
			continue // the bucket may be moving leaders; the next tick reads again
		}
		line := progress(cur, time.Now())
		switch {
		case tty:
			fmt.Fprintf(out, "\r\033[K%s", line)
		case line != last && time.Since(printed) >= 2*time.Second, cur.Over():
			fmt.Fprintln(out, line)
			printed = time.Now()
		}
		last = line
		if cur.Over() {
			if tty {
				fmt.Fprintln(out)
			}
			if cur.State == cdc.BackfillFailed {
				fmt.Fprintf(out, "backfill %s failed: %s\n", cur.ID, cur.Error)
				return errBackfillFailed
			}
			fmt.Fprintf(out, "backfill %s done: %d rows published, %d superseded by changes streamed meanwhile, in %s\n",
				cur.ID, cur.Rows, cur.Superseded, cur.Finished.Sub(cur.Started).Round(time.Millisecond))
			return nil
		}
	}
}

// progress renders where bf stands: rows, rate, ETA and a bar.
func progress(bf cdc.Backfill, now time.Time) string {
	if bf.State == cdc.BackfillRequested {
		return fmt.Sprintf("%s: waiting for the ingestor to start it", bf.ID)
	}
	done := bf.Rows + bf.Superseded
	elapsed := now.Sub(bf.Started)
	if bf.Over() {
		elapsed = bf.Finished.Sub(bf.Started)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	eta := "?"
	if bf.Estimate > done && rate > 0 {
		eta = (time.Duration(float64(bf.Estimate-done)/rate) * time.Second).Round(time.Second).String()
	} else if bf.Estimate > 0 {
		eta = "0s"
	}
	frac := 0.0
	if bf.Estimate > 0 {
		frac = min(1, float64(done)/float64(bf.Estimate))
	}
	const width = 30
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	return fmt.Sprintf("%s [%s] %3.0f%% %d/~%d rows, %.0f rows/s, ETA %s", bf.State, bar, frac*100, done, bf.Estimate, rate, eta)
}

// backfillStatus lists every backfill, newest last.
func backfillStatus(ctx context.Context, store cdc.BackfillStore, out io.Writer, asJSON bool) error {
	list, err := cdc.Backfills(ctx, store, "")
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "no backfills")
		return nil
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSOURCE\tCOLLECTION\tREASON\tSTATE\tROWS\tSUPERSEDED\tREQUESTED\tERROR")
	for _, b := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", b.ID, b.Source, b.Collection, b.Reason, b.State,
			b.Rows, b.Superseded, b.Requested.Format(time.RFC3339), b.Error)
	}
	return w.Flush()
}
