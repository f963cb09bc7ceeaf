package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// liveSellers is how many employees the live figures' dashboard holds
// (about 12 KB of JSON). The burst's orders are spread over them: the
// coalescing bounds the messages per subject, so what it saves is the
// orders each seller gets per interval.
const liveSellers = 100

// liveRig is what the live figures (fan-out, metric subjects) run on, as
// deployed: the ingestor binary capturing an employees table and a FerretDB
// of their own into a fresh stream, and the api binary following that
// stream with its metric-update subjects on, in a stream of their own.
type liveRig struct {
	name, table, stream          string
	metricsStream, metricsPrefix string
	ferret                       *ferretRun
	orders                       *mongo.Collection
	ing                          *ingestorProc
	api                          *apiProc
}

// startRig creates the table with employees sellers S-0000, S-0001...
// (rol vendedor, active), puts one order of S-0000 in the collection (an
// oplog position to start from), and starts the ingestor and then the api,
// which is ready once it has applied the ingestor's snapshots. apiEnv
// (NAME=value) wins over the rig's settings.
func (e *benchEnv) startRig(ctx context.Context, kind string, employees int, apiEnv ...string) (r *liveRig, err error) {
	name := e.name(kind)
	r = &liveRig{name: name, table: "public." + name, metricsPrefix: name + "_metrics", metricsStream: strings.ToUpper(name) + "_METRICS"}
	defer func() {
		if err != nil {
			r.stop(ctx, e)
		}
	}()
	if _, err := e.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (codigo text primary key, nombre text, rol text, activo boolean)", r.table)); err != nil {
		return r, err
	}
	if _, err := e.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT 'S-'||lpad(g::text, 4, '0'), 'Empleado', 'vendedor', true
		FROM generate_series(0, $1::int - 1) g`, r.table), employees); err != nil {
		return r, err
	}
	if r.ferret, err = e.freshFerret(ctx, name); err != nil {
		return r, err
	}
	r.orders = r.ferret.client.Database("bench").Collection(name)
	if _, err := r.orders.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-0000"}}); err != nil {
		return r, err
	}
	if r.stream, err = e.stream(ctx, name); err != nil {
		return r, err
	}
	if r.ing, err = e.startRigIngestor(ctx, r); err != nil {
		return r, err
	}
	env := append([]string{"EMPLOYEES_TABLE=" + r.table, "MONGO_DB=bench", "MONGO_COLLECTION=" + name,
		"NATS_METRICS_PREFIX=" + r.metricsPrefix, "NATS_METRICS_STREAM=" + r.metricsStream}, apiEnv...)
	if r.api, err = e.startAPI(r.stream, name, env...); err != nil {
		return r, err
	}
	return r, nil
}

// startRigIngestor is startIngestor on the rig's own employees table.
func (e *benchEnv) startRigIngestor(ctx context.Context, r *liveRig) (*ingestorProc, error) {
	return e.startIngestor(ctx, r.name, r.ferret.URI, r.name, r.stream, true, "EMPLOYEES_TABLE="+r.table)
}

// addr is the api's host:port.
func (r *liveRig) addr() string { return strings.TrimPrefix(r.api.url, "http://") }

// stop stops what startRig started and removes what it created.
func (r *liveRig) stop(ctx context.Context, e *benchEnv) {
	ctx = context.WithoutCancel(ctx)
	if r.api != nil {
		r.api.stop()
		r.api = nil
	}
	if r.ing != nil {
		_ = r.ing.stop()
		r.ing = nil
	}
	if r.ferret != nil {
		r.ferret.stop()
		r.ferret = nil
	}
	if r.stream != "" {
		_ = e.js.DeleteStream(ctx, r.stream)
	}
	_ = e.js.DeleteStream(ctx, r.metricsStream)
	e.dropCapture(ctx, r.name)
	_, _ = e.conn.Exec(ctx, "DROP TABLE IF EXISTS "+r.table)
}

// msf is a duration in milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// metric returns the value of the unlabelled metric name on the api's
// /metrics (the same exposition as the ingestor's).
func (a *apiProc) metric(name string) (float64, error) {
	return (&ingestorProc{url: a.url}).metric(name)
}
