package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/cdc/postgres"
)

// waitWhenStalled lets an async publish wait for acknowledgements when the
// pending window is full, instead of failing after nats.go's default 200 ms:
// on a busy 2-core machine the server can pause that long while it writes.
var waitWhenStalled = jetstream.WithStallWait(time.Minute)

// publishLoop is the reference: a plain JetStream async-publish loop of n
// 200-byte messages to a file stream, waiting for every acknowledgement. It
// returns the loop's rate and the CPU per message of this process and the
// NATS server together.
func (e *benchEnv) publishLoop(ctx context.Context, n int) (rate, cpu float64, err error) {
	prefix := e.name("ref")
	stream, err := e.streamKeepingAll(ctx, prefix)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = e.js.DeleteStream(ctx, stream) }()
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, 0, err
	}
	payload := make([]byte, 200)
	cpu, err = cpuPerEvent(n, func() error {
		start := time.Now()
		for i := range n {
			if _, err := js.PublishAsync(prefix+".x", payload, jetstream.WithMsgID(fmt.Sprintf("ref-%d", i)), waitWhenStalled); err != nil {
				return err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(5 * time.Minute):
			return errors.New("reference publishes not acknowledged")
		}
		rate = float64(n) / time.Since(start).Seconds()
		return nil
	}, os.Getpid(), e.nats.cmd.Process.Pid)
	return rate, cpu, err
}

// pgRun is one timed PostgreSQL capture: the source's rate, the bare
// drain's, the share of a core the walsender used while each read, and the
// CPU per event of the source's walsender and of this process (where the
// source runs) and the NATS server together.
type pgRun struct {
	ours, drain       float64
	oursWal, drainWal float64
	walCPU, oursCPU   float64
}

// pgCapture commits rows (bulk: one transaction; otherwise one transaction
// per row) while the source is stopped, then times the source from start to
// the last event acknowledged by JetStream.
func (e *benchEnv) pgCapture(ctx context.Context, rows int, bulk bool) (pgRun, error) {
	name := e.name("pg")
	table := "public." + name
	if _, err := e.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (codigo text primary key, nombre text, rol text, activo boolean)", table)); err != nil {
		return pgRun{}, err
	}
	stream, err := e.stream(ctx, name)
	if err != nil {
		return pgRun{}, err
	}
	defer func() {
		_ = e.js.DeleteStream(ctx, stream)
		e.dropCapture(ctx, name)
		_, _ = e.conn.Exec(ctx, "DROP TABLE "+table)
	}()
	cp, err := e.checkpoints(ctx, name)
	if err != nil {
		return pgRun{}, err
	}
	src, err := postgres.New(postgres.Config{ConnString: e.pgURL, Tables: []string{table}, Slot: name, Publication: name}, cp)
	if err != nil {
		return pgRun{}, err
	}
	r, err := e.start(src, name)
	if err != nil {
		return pgRun{}, err
	}
	if err := e.waitMsgs(ctx, stream, 2, 2*time.Millisecond, time.Minute); err != nil {
		return pgRun{}, err
	}
	// Stopped before its snapshot is recorded as complete, the source would
	// take it again on the timed start, with the rows committed meanwhile.
	for deadline := time.Now().Add(time.Minute); !src.Streaming() || !backfilled(ctx, cp); {
		if time.Now().After(deadline) {
			return pgRun{}, fmt.Errorf("source %s not streaming after a minute", name)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	if err := r.stop(); err != nil {
		return pgRun{}, err
	}
	if bulk {
		_, err = e.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT 'S-'||g, 'Empleado '||g, 'vendedor', g %% 2 = 0 FROM generate_series(1, %d) g`, table, rows))
	} else {
		for i := range rows {
			if _, err = e.conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s VALUES ($1, 'Empleado', 'vendedor', true)`, table), fmt.Sprint("S-", i)); err != nil {
				break
			}
		}
	}
	if err != nil {
		return pgRun{}, err
	}
	// A first, untimed pass warms the caches both timed readers then share.
	if _, _, _, err := e.bareDrain(ctx, name, rows); err != nil {
		return pgRun{}, err
	}
	var run pgRun
	var drainPID int
	if run.drain, run.drainWal, drainPID, err = e.bareDrain(ctx, name, rows); err != nil {
		return pgRun{}, err
	}
	var wal *walsender
	run.oursCPU, err = cpuPerEvent(rows, func() error {
		if r, err = e.start(src, name); err != nil {
			return err
		}
		if wal, err = e.watchWalsender(ctx, name, drainPID); err != nil {
			return err
		}
		first, last, err := e.timeMsgs(ctx, stream, 2, uint64(2+rows), 5*time.Minute)
		run.ours = float64(rows-1) / last.Sub(first).Seconds()
		return err
	}, os.Getpid(), e.nats.cmd.Process.Pid)
	if r != nil {
		defer func() { _ = r.stop() }()
	}
	if err != nil {
		return pgRun{}, err
	}
	run.oursWal, err = wal.share()
	if err == nil {
		run.walCPU, err = wal.perEvent(rows)
	}
	return run, err
}

// walsender follows the CPU time of the walsender serving a slot.
type walsender struct {
	pid   int
	start time.Time
	cpu   time.Duration
}

// watchWalsender waits until a walsender other than the one of pid before
// (which may linger a moment after its client left) serves slot, and
// starts following its CPU time.
func (e *benchEnv) watchWalsender(ctx context.Context, slot string, before int) (*walsender, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var pid *int32
		if err := e.conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&pid); err != nil {
			return nil, fmt.Errorf("walsender of %s: %w", slot, err)
		}
		if pid != nil && int(*pid) != before {
			return watchPID(int(*pid))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no walsender serves slot %s after a minute", slot)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// watchPID starts following the CPU time of the walsender process pid.
func watchPID(pid int) (*walsender, error) {
	w := &walsender{pid: pid, start: time.Now()}
	var err error
	w.cpu, err = childCPU(pid)
	return w, err
}

// share returns the share of one core the walsender used since it was
// watched: near 1, PostgreSQL's decoding is what sets the pace.
func (w *walsender) share() (float64, error) {
	cpu, err := childCPU(w.pid)
	if err != nil {
		return 0, fmt.Errorf("walsender %d: %w", w.pid, err)
	}
	return (cpu - w.cpu).Seconds() / time.Since(w.start).Seconds(), nil
}

// perEvent returns the walsender's CPU since it was watched, in µs per
// event of n.
func (w *walsender) perEvent(n int) (float64, error) {
	cpu, err := childCPU(w.pid)
	if err != nil {
		return 0, fmt.Errorf("walsender %d: %w", w.pid, err)
	}
	return (cpu - w.cpu).Seconds() * 1e6 / float64(n), nil
}

// bareDrain reads the slot's pending changes with pglogrepl alone (no
// publishing, no acknowledgement, so the source then reads the same WAL).
// It is a plain reader, not a floor: the walsender works harder per row
// for it than for the source (the walsender row of the report).
func (e *benchEnv) bareDrain(ctx context.Context, slot string, rows int) (rate, walShare float64, pid int, err error) {
	cfg, err := pgconn.ParseConfig(e.pgURL)
	if err != nil {
		return 0, 0, 0, err
	}
	cfg.RuntimeParams["replication"] = "database"
	var conn *pgconn.PgConn
	for attempt := 0; ; attempt++ {
		if conn, err = pgconn.ConnectConfig(ctx, cfg); err != nil {
			return 0, 0, 0, err
		}
		err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names '" + slot + "'"},
		})
		if err == nil {
			break
		}
		conn.Close(ctx)
		// The walsender of the previous reader may not have exited yet.
		if attempt == 100 || !strings.Contains(err.Error(), "is active for PID") {
			return 0, 0, 0, err
		}
		time.Sleep(50 * time.Millisecond) // retry pacing
	}
	defer conn.Close(context.Background())
	wal, err := watchPID(int(conn.PID()))
	if err != nil {
		return 0, 0, 0, err
	}
	var first time.Time
	n := 0
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for n < rows {
		raw, err := conn.ReceiveMessage(rctx)
		if err != nil {
			return 0, 0, 0, err
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			return 0, 0, 0, err
		}
		msg, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return 0, 0, 0, err
		}
		if _, ok := msg.(*pglogrepl.InsertMessage); ok {
			if n == 0 {
				first = time.Now()
			}
			n++
		}
	}
	rate = float64(rows-1) / time.Since(first).Seconds()
	walShare, err = wal.share()
	return rate, walShare, wal.pid, err
}

func (e *benchEnv) postgresCapture(ctx context.Context, rep *report) error {
	var ref, refSmall, refSmallCPU []float64
	var bulk, small []pgRun
	for range e.o.runs {
		r, _, err := e.publishLoop(ctx, e.o.pgRows)
		if err != nil {
			return err
		}
		b, err := e.pgCapture(ctx, e.o.pgRows, true)
		if err != nil {
			return err
		}
		rs, rsCPU, err := e.publishLoop(ctx, e.o.pgTxns)
		if err != nil {
			return err
		}
		s, err := e.pgCapture(ctx, e.o.pgTxns, false)
		if err != nil {
			return err
		}
		ref, bulk, refSmall, small = append(ref, r), append(bulk, b), append(refSmall, rs), append(small, s)
		refSmallCPU = append(refSmallCPU, rsCPU)
		e.logger.Info("postgres capture run", "reference", int(r), "bulk", int(b.ours), "bare_drain_bulk", int(b.drain),
			"small_txns", int(s.ours), "bare_drain_small", int(s.drain), "walsender_small", s.oursWal, "walsender_drain_small", s.drainWal,
			"small_cpu_us", s.oursCPU, "reference_small_cpu_us", rsCPU, "walsender_small_cpu_us", s.walCPU)
	}
	pick := func(runs []pgRun, f func(pgRun) float64) []float64 {
		out := make([]float64, len(runs))
		for i, r := range runs {
			out[i] = f(r)
		}
		return out
	}
	ours := func(r pgRun) float64 { return r.ours }
	drain := func(r pgRun) float64 { return r.drain }
	rep.add(row{figure: "PostgreSQL logical decoding alone, bulk (rows/s)", ours: summarize(pick(bulk, drain)), unit: "",
		note: "a plain pglogrepl reader of the same WAL, no publishing"})
	rep.add(row{figure: "PostgreSQL logical decoding alone, one-row transactions (rows/s)", ours: summarize(pick(small, drain)),
		note: "bare pglogrepl drain of the same WAL, no publishing"})
	rep.add(row{
		figure: fmt.Sprintf("PostgreSQL capture, one %d-row transaction (events/s)", e.o.pgRows), ours: summarize(pick(bulk, ours)), ref: summarize(ref),
		refName: "JetStream async publish loop", ratios: ratios(pick(bulk, ours), ref), bar: 0.6, barText: ">= 60% of reference",
	})
	rep.add(row{
		figure: fmt.Sprintf("PostgreSQL capture, %d one-row transactions (events/s)", e.o.pgTxns), ours: summarize(pick(small, ours)), ref: summarize(refSmall),
		refName: "JetStream async publish loop", ratios: ratios(pick(small, ours), refSmall), bar: 0.6, barText: ">= 60% of reference",
	})
	rep.add(row{
		figure: fmt.Sprintf("PostgreSQL capture, %d one-row transactions, against a plain reader of the same WAL (events/s)", e.o.pgTxns), ours: summarize(pick(small, ours)), ref: summarize(pick(small, drain)),
		refName: "bare pglogrepl drain", ratios: ratios(pick(small, ours), pick(small, drain)), bar: 0.9, barText: "our check: >= 90% of the bare drain",
	})
	rep.add(row{
		figure: "PostgreSQL walsender busy during the one-row capture (share of one core)", ours: summarize(pick(small, func(r pgRun) float64 { return r.oursWal })),
		ref: summarize(pick(small, func(r pgRun) float64 { return r.drainWal })), refName: "during the bare drain",
		note: "CPU time of the walsender process serving the slot over the time it streamed, from /proc: near 1, PostgreSQL's own decoding sets the pace",
	})
	rep.add(row{
		figure: "PostgreSQL one-row capture: CPU per event of the source and the NATS server (µs)", ours: summarize(pick(small, func(r pgRun) float64 { return r.oursCPU })),
		ref: summarize(refSmallCPU), refName: "publish loop and the NATS server", ratios: ratios(pick(small, func(r pgRun) float64 { return r.oursCPU }), refSmallCPU),
		note: "CPU time of the bench process, where both run, and of the NATS server, from /proc, from the source's start to the last event acknowledged",
	})
	rep.add(row{
		figure: "PostgreSQL one-row capture: the walsender's CPU per transaction (µs)", ours: summarize(pick(small, func(r pgRun) float64 { return r.walCPU })),
		note: "PostgreSQL decoding and sending each transaction, on the same 2 cores: the publish loop has no PostgreSQL to share them with",
	})
	return nil
}

func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

// latestTS returns the newest oplog timestamp.
func latestTS(ctx context.Context, client *mongo.Client) (primitive.Timestamp, error) {
	var e struct {
		TS primitive.Timestamp `bson:"ts"`
	}
	err := client.Database("local").Collection("oplog.rs").FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&e)
	if err == mongo.ErrNoDocuments { //nolint:errorlint // sentinel returned as is by the driver
		return primitive.Timestamp{}, nil
	}
	return e.TS, err
}

// bareTail follows the oplog of ns from ts the way the source does (plain
// tailable cursors reopened when closed, polled every 10ms) and calls seen
// for every entry (its bytes are valid until seen returns), until seen
// returns true.
func bareTail(ctx context.Context, client *mongo.Client, ns string, ts primitive.Timestamp, seen func(n int, entry bson.Raw) bool) error {
	oplog := client.Database("local").Collection("oplog.rs")
	n := 0
	for {
		before := n
		// The query the source runs: the collection's entries and those of
		// transactions (applyOps on admin.$cmd).
		filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: ts}}}, {Key: "ns", Value: bson.D{{Key: "$in", Value: bson.A{ns, "admin.$cmd"}}}}}
		cur, err := oplog.Find(ctx, filter,
			options.Find().SetCursorType(options.Tailable).SetBatchSize(1000))
		if err != nil {
			return err
		}
		for {
			got := 0
			for cur.TryNext(ctx) {
				var e struct {
					TS primitive.Timestamp `bson:"ts"`
				}
				if err := cur.Decode(&e); err != nil {
					return err
				}
				ts = e.TS
				n++
				got++
				if seen(n, cur.Current) {
					_ = cur.Close(ctx)
					return nil
				}
			}
			if cur.Err() != nil || cur.ID() == 0 {
				break
			}
			if got == 0 {
				time.Sleep(10 * time.Millisecond) // the poll interval of the tail
			}
		}
		_ = cur.Close(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if n == before {
			time.Sleep(10 * time.Millisecond) // the poll interval of the tail, when caught up
		}
	}
}

// plainArg, as the first argument, makes the bench binary a plain MongoDB
// capture and nothing else (tailPublish), in a process of its own as the
// ingestor is, so the two meet the same scheduling.
const plainArg = "tail-publish"

// tailAndPublish times a plain capture of the oplog into JetStream, what
// one writes with the client libraries' own calls: the bare tail,
// publishing every entry's bytes as it is read with nats.go's JetStream
// PublishAsync (each with a message ID, as events carry one) and waiting
// for every acknowledgement, run by this binary in a process of its own.
// It converts nothing and keeps no position. The rate is taken from the
// server's stamps on the first and last message stored, as the ingestor's
// is; the CPU per document is the process's whole life's, start-up
// included.
func (e *benchEnv) tailAndPublish(ctx context.Context, mongoURI, ns string, ts primitive.Timestamp, n int) (rate, cpu float64, err error) {
	prefix := e.name("mgplain")
	stream, err := e.streamKeepingAll(ctx, prefix)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = e.js.DeleteStream(ctx, stream) }()
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, self, plainArg, mongoURI, ns, //nolint:gosec // this very binary
		strconv.FormatUint(uint64(ts.T), 10), strconv.FormatUint(uint64(ts.I), 10), strconv.Itoa(n), e.nats.url, prefix+".x")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("plain capture process: %w", err)
	}
	cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() * 1e6 / float64(n)
	first, last, err := e.timeMsgs(ctx, stream, 0, uint64(n), time.Minute)
	return float64(n-1) / last.Sub(first).Seconds(), cpu, err
}

// tailPublish is the plain capture's process: args are the MongoDB URI, the
// namespace, the oplog timestamp to read after (seconds, increment), the
// number of entries, the NATS URL and the subject to publish to.
func tailPublish(args []string) error {
	if len(args) != 7 {
		return fmt.Errorf("%s: want 7 arguments, got %d", plainArg, len(args))
	}
	var t, i uint32
	var n int
	if _, err := fmt.Sscan(args[2]+" "+args[3]+" "+args[4], &t, &i, &n); err != nil {
		return fmt.Errorf("%s: timestamp and count: %w", plainArg, err)
	}
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(args[0]))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(ctx) }()
	nc, err := nats.Connect(args[5])
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	var perr error
	err = bareTail(ctx, client, args[1], primitive.Timestamp{T: t, I: i}, func(k int, entry bson.Raw) bool {
		// The entry's bytes are the cursor's: the pending publish gets a copy.
		_, perr = js.PublishAsync(args[6], append([]byte(nil), entry...), jetstream.WithMsgID(fmt.Sprintf("%s-%d", args[1], k)), waitWhenStalled)
		return perr != nil || k >= n
	})
	if err = errors.Join(err, perr); err != nil {
		return err
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(5 * time.Minute):
		return errors.New("oplog entries published by the plain capture not acknowledged")
	}
}

// mongoRun is one timed MongoDB capture: the ingestor's rate, the bare
// tail's and the plain capture's, the CPU per document (µs) of the
// ingestor, the plain capture's process, the NATS server and FerretDB, and the time the oplog reader waited (s).
type mongoRun struct {
	ours, bare, plain                    float64
	ingCPU, plainCPU, natsCPU, ferretCPU float64
	wait                                 float64
}

// mongoCaptureRun inserts the documents into a FerretDB of the run's own,
// and times the bare tail, the ingestor and the plain capture reading them.
func (e *benchEnv) mongoCaptureRun(ctx context.Context, run int) (r mongoRun, err error) {
	name := e.name("mg")
	fdb, err := e.freshFerret(ctx, name)
	if err != nil {
		return r, err
	}
	defer fdb.stop() // the next run starts on an empty oplog
	coll := fdb.client.Database("bench").Collection(name)
	stream, err := e.stream(ctx, name)
	if err != nil {
		return r, err
	}
	// The ingestor takes its initial snapshots (one document) and saves
	// its positions; the timed runs resume from them. The document puts
	// an entry in the oplog: a snapshot of an empty oplog has no
	// position to resume from, and the ingestor would snapshot again.
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "vendedor", Value: "S-0000"}}); err != nil {
		return r, err
	}
	ing, err := e.startIngestor(ctx, name, fdb.URI, name, stream, true)
	if err != nil {
		return r, err
	}
	if err := ing.stop(); err != nil {
		return r, fmt.Errorf("stop ingestor: %w", err)
	}
	base, err := e.streamMsgs(ctx, stream)
	if err != nil {
		return r, err
	}
	ts, err := latestTS(ctx, fdb.client)
	if err != nil {
		return r, err
	}
	docs := make([]any, 0, 1000)
	for i := range e.o.mongoDocs {
		docs = append(docs, bson.D{{Key: "vendedor", Value: fmt.Sprintf("S-%04d", i%1000)}, {Key: "producto", Value: "Tornillos M6"}, {Key: "cantidad", Value: i}})
		if len(docs) == cap(docs) || i == e.o.mongoDocs-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				return r, err
			}
			docs = docs[:0]
		}
	}
	// A first, untimed pass warms the caches the timed readers share.
	if err := bareTail(ctx, fdb.client, "bench."+name, ts, func(n int, _ bson.Raw) bool { return n >= e.o.mongoDocs }); err != nil {
		return r, err
	}
	timeTail := func() (float64, error) {
		var first time.Time
		var c0 time.Duration
		err := bareTail(ctx, fdb.client, "bench."+name, ts, func(n int, _ bson.Raw) bool {
			if n == 1 {
				first = time.Now()
				c0, _ = childCPU(os.Getpid())
			}
			return n >= e.o.mongoDocs
		})
		if err != nil {
			return 0, err
		}
		took := time.Since(first)
		c1, err := childCPU(os.Getpid())
		r.ferretCPU = (c1 - c0).Seconds() * 1e6 / float64(e.o.mongoDocs-1)
		return float64(e.o.mongoDocs-1) / took.Seconds(), err
	}
	timeIngestor := func() (rate float64, err error) {
		ing, err := e.startIngestor(ctx, name, fdb.URI, name, stream, true)
		if err != nil {
			return 0, err
		}
		defer func() { _ = ing.stop() }()
		r.natsCPU, err = cpuPerEvent(e.o.mongoDocs, func() (err error) {
			r.ingCPU, err = cpuPerEvent(e.o.mongoDocs, func() error {
				first, last, err := e.timeMsgs(ctx, stream, base, base+uint64(e.o.mongoDocs), 5*time.Minute)
				rate = float64(e.o.mongoDocs-1) / last.Sub(first).Seconds()
				return err
			}, ing.cmd.Process.Pid)
			return err
		}, e.nats.cmd.Process.Pid)
		if err == nil {
			r.wait, err = ing.metric("reportes_mongo_oplog_reader_wait_seconds_total")
		}
		return rate, err
	}
	timePlain := func() (rate float64, err error) {
		rate, r.plainCPU, err = e.tailAndPublish(ctx, fdb.URI, "bench."+name, ts, e.o.mongoDocs)
		return rate, err
	}
	// The order of the three readers rotates between runs, so drift of
	// the machine during a run favours none of them.
	timed := []func() error{
		func() (err error) { r.bare, err = timeTail(); return err },
		func() (err error) { r.ours, err = timeIngestor(); return err },
		func() (err error) { r.plain, err = timePlain(); return err },
	}
	for i := range timed {
		if err := timed[(run+i)%len(timed)](); err != nil {
			return r, err
		}
	}
	_ = e.js.DeleteStream(ctx, stream)
	e.dropCapture(ctx, name)
	e.logger.Info("mongo capture run", "bare_tail", int(r.bare), "ingestor", int(r.ours), "plain_capture", int(r.plain),
		"ingestor_cpu_us", r.ingCPU, "plain_cpu_us", r.plainCPU, "nats_cpu_us", r.natsCPU, "ferretdb_cpu_us", r.ferretCPU)
	return r, nil
}

func (e *benchEnv) mongoCapture(ctx context.Context, rep *report) error {
	var ours, bare, plain, ingUS, plainUS, natsUS, ferretUS, waits []float64
	for run := range e.o.runs {
		r, err := e.mongoCaptureRun(ctx, run)
		if err != nil {
			return err
		}
		ours, bare, plain = append(ours, r.ours), append(bare, r.bare), append(plain, r.plain)
		ingUS, natsUS, ferretUS = append(ingUS, r.ingCPU), append(natsUS, r.natsCPU), append(ferretUS, r.ferretCPU)
		plainUS = append(plainUS, r.plainCPU)
		waits = append(waits, r.wait*1000)
	}
	rep.add(row{
		figure: fmt.Sprintf("MongoDB capture, %d documents through the FerretDB oplog (events/s)", e.o.mongoDocs), ours: summarize(ours), ref: summarize(bare),
		note:    "the ingestor binary, resuming from its saved position, to events stored in JetStream; the bare tail runs the same oplog query (the collection's entries and transactions' admin.$cmd entries)",
		refName: "bare oplog tail", ratios: ratios(ours, bare), bar: 0.9, barText: ">= 90% of reference",
	})
	rep.add(row{
		figure: "MongoDB capture against a plain capture (events/s)", ours: summarize(ours), ref: summarize(plain),
		refName: "bare tail publishing each entry", ratios: ratios(ours, plain), bar: 0.9, barText: ">= 90% of reference: the ingestor's own work is not the bottleneck",
		note: "the plain capture is the bare tail publishing every entry's bytes with nats.go's JetStream PublishAsync as it reads them, with a message ID, waiting for the acknowledgements, in a process of its own: it converts nothing and keeps no position, and pays what storing the events costs on the cores FerretDB needs",
	})
	rep.add(row{
		figure: "MongoDB capture: CPU per document of FerretDB (µs)", ours: summarize(ferretUS),
		note: "the bench process, where FerretDB runs, during the timed bare tail: the source alone keeps most of the 2 cores busy, so every µs capturing and storing an event takes elsewhere is taken from it",
	})
	rep.add(row{
		figure: "MongoDB capture: CPU per document of the ingestor process (µs)", ours: summarize(ingUS),
		ref: summarize(natsUS), refName: "NATS server storing the events",
		note: "from the ingestor's start of streaming to the last event stored; the CPU both take from FerretDB on the 2 cores",
	})
	rep.add(row{
		figure: "MongoDB capture: CPU per document, the ingestor against the plain capture (µs)", ours: summarize(ingUS),
		ref: summarize(plainUS), refName: "the plain capture's process", ratios: ratios(ingUS, plainUS),
		note: "the ingestor decodes, converts and keeps positions, and publishes with a lighter path than PublishAsync (one reply subscription, a ring of pending events); the plain capture's figure counts its whole life, start-up included",
	})
	rep.add(row{
		figure: "MongoDB capture: time the ingestor's oplog reader waited for publishing to take a batch (ms)", ours: summarize(waits), unit: "ms",
		note: "reportes_mongo_oplog_reader_wait_seconds_total at the end of each run: near 0, the ingestor took every batch as FerretDB returned it, and FerretDB set the pace",
	})
	return nil
}

// backfilled reports whether every backfill of the source (its snapshot)
// is over.
func backfilled(ctx context.Context, store cdc.BackfillStore) bool {
	list, err := cdc.Backfills(ctx, store, "")
	if err != nil {
		return false
	}
	for _, b := range list {
		if !b.Over() {
			return false
		}
	}
	return true
}
