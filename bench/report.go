package main

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type row struct {
	figure   string
	ours     stats
	ref      stats
	refName  string
	ratios   []float64
	diff     stats
	unit     string
	bar      float64 // minimum ratio
	maxRatio float64 // maximum ratio
	absBar   float64 // maximum (ms, MB) of ours, or of diff when set
	absMin   float64 // minimum of ours
	barText  string
	note     string
}

type report struct {
	rows []row
	took time.Duration
}

func (r *report) add(x row) { r.rows = append(r.rows, x) }

func num(v float64, unit string) string {
	switch {
	case unit == "ms" || unit == "MB" || unit == "KB":
		return fmt.Sprintf("%.1f", v)
	case unit == "count":
		return thousands(int(v + 0.5))
	case v >= 1000:
		return thousands(int(v + 0.5))
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func span(s stats, unit string) string { return spanWith(num(s.med, unit), s, unit) }

// spanWith is span with the median already formatted as med.
func spanWith(med string, s stats, unit string) string {
	if s.min == s.max {
		return med
	}
	return fmt.Sprintf("%s [%s–%s]", med, num(s.min, unit), num(s.max, unit))
}

// ratioSpan is span for the row's ratios, with as many decimals on the
// median as it takes for the figure shown to fall on the same side of the
// row's bars as the median: 0.896 against a bar of 0.90 reads 0.896 beside
// "no", not 0.90.
func (x row) ratioSpan() string {
	rs := summarize(x.ratios)
	med := num(rs.med, "")
	if rs.med < 1000 {
		for d := 2; d <= 6; d++ {
			p := math.Pow(10, float64(d))
			shown := math.Round(rs.med*p) / p
			if (x.bar <= 0 || (rs.med >= x.bar) == (shown >= x.bar)) &&
				(x.maxRatio <= 0 || (rs.med <= x.maxRatio) == (shown <= x.maxRatio)) {
				med = strconv.FormatFloat(rs.med, 'f', d, 64)
				break
			}
		}
	}
	return spanWith(med, rs, "")
}

func (x row) met() string {
	ok := true
	checked := false
	if len(x.ratios) > 0 {
		rs := summarize(x.ratios)
		if x.bar > 0 {
			ok, checked = ok && rs.med >= x.bar, true
		}
		if x.maxRatio > 0 {
			ok, checked = ok && rs.med <= x.maxRatio, true
		}
	}
	if x.absBar > 0 {
		v := x.ours.med
		if x.diff != (stats{}) {
			v = x.diff.med
		}
		ok, checked = ok && v <= x.absBar, true
	}
	if x.absMin > 0 {
		ok, checked = ok && x.ours.med >= x.absMin, true
	}
	switch {
	case !checked:
		return ""
	case ok:
		return "yes"
	}
	return "**no**"
}

func (r *report) markdown(o benchOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\n")
	fmt.Fprintf(&b, "Written by `make bench` on %s (%s/%s, %d cores, %s) in %s. Medians of %d runs, [min–max] across runs; every ratio compares runs made in the same invocation.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), r.took.Round(time.Second), o.runs)
	b.WriteString("| Figure | reportes | Reference | Ratio | Bar | Met |\n|---|---|---|---|---|---|\n")
	for _, x := range r.rows {
		ref := ""
		if x.refName != "" {
			ref = x.refName + ": " + span(x.ref, x.unit)
		}
		ratio := ""
		if len(x.ratios) > 0 {
			ratio = x.ratioSpan()
		}
		if x.diff != (stats{}) {
			ratio = fmt.Sprintf("%+.1f ms [%+.1f–%+.1f]", x.diff.med, x.diff.min, x.diff.max)
		}
		fig := x.figure
		if x.note != "" {
			fig += "<br>_" + x.note + "_"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", fig, span(x.ours, x.unit), ref, ratio, x.barText, x.met())
	}
	b.WriteString(profileNotes)
	return b.String()
}

const profileNotes = `
## Profile notes

- Rebuild and projection: a CPU profile of decoding and applying an order event
  showed encoding/json reflection dominating (decode 4.4 µs, apply 4.9 µs, 36
  allocations per event, about 100k events/s). Decoding with a reusable
  fastjson parser and reading the seller with it brought that to 1.7 µs +
  0.9 µs and 13 allocations (BenchmarkDecodeEvent, BenchmarkApplyOrder,
  BenchmarkDecodeAndApply in pkg/projection).
- Rebuild, second round: events are now decoded in one pass over the raw
  bytes (no tree, after/before kept raw, sources/collections/ops interned):
  decode 1.7 µs -> 0.85 µs, 6 allocations (FuzzDecoders holds it to the
  tree decoder). The view is applied in batches of 256 on a second goroutine
  while the next batch is decoded, and the GC runs at GOGC=400 until the view
  is ready. Measured from outside, the api process then spends about 5 µs of
  CPU per event during a rebuild, of which decode and apply are under 2 µs;
  the rest is the NATS client's per-message work (parsing, ordered-consumer
  bookkeeping, metadata), and on 2 cores the NATS server needs the other core.
- Rebuild, third round: a profile of the consuming goroutine showed the
  ordered consumer's Messages iterator arming a heartbeat timer and walking
  its channels on every Next; consuming with its Consume callback instead
  saved about 0.5 µs per event (measured against a separate NATS server
  process, 1M events). The seller is now found by rawjson.Lookup, one walk over
  the order document without a tree (fuzzed against encoding/json), and
  numbers are checked by their grammar instead of json.Valid: decode and
  apply went from 1.7 to 1.3 µs per event (BenchmarkDecodeAndApply).
  What is left is the NATS client's own work per message (about 2.5 µs with
  the Nats-Msg-Id header every event carries: parsing, copying, decoding the
  header) and, on the other core, the server's; the bare consumer of the
  same stream is the ceiling, and the figure above is measured against it.
  Until this round the bench filled the rebuild stream without the
  Nats-Msg-Id header the ingestor sets on every event; with it, a bare
  consumer reads about half as fast, which is the honest reference.
- MongoDB capture: timing the ingestor binary showed it using about a fifth
  of a core while the run waited on FerretDB: it asked for the next oplog
  batch only after publishing the previous one. A reader goroutine now
  fetches ahead: 9,500 -> 11,000 documents/s on the same backlog. The
  bench's own polling of the stream's count every millisecond (a JetStream
  API request each) also took CPU from the source; it polls every 10 ms.
  Converting one inserted order cost about 2.5 µs (BenchmarkOplogInsert),
  half of it the driver's reflection-based decoding of the oplog entry; the
  entry is now read in one walk over its BSON with bsoncore (fuzzed against
  the driver's decoding, which fuzzing showed panicking on some malformed
  documents): 2.45 -> 1.4 µs, 28 -> 17 allocations. The event's ID and
  position were formatted with fmt for every document (a twentieth of the
  ingestor's CPU in a profile of the binary); they are now appended with
  strconv, and the benchmark builds them as the source does. The CPU row
  below the capture figure shows what is left: the ingestor process spends
  about 15 µs per document (publishing with nats.go and handling its
  acknowledgements, the driver's reads, GC, waking goroutines) and the NATS
  server about as much storing the events; together a third of a core that
  FerretDB would otherwise have.
- Rebuild, fourth round (perf on the api process during a rebuild): the
  string scanner was a tenth of the process's CPU, reading one byte at a
  time; it now skips plain bytes eight at a time (decoding 600 -> 490 ns).
  Decode copied after/before out of the message, which the view never keeps
  (now shared), the order key's ObjectID form was parsed for each of two
  lookups (now once), and msg.Metadata built the whole metadata from the
  reply subject per message for the one sequence the view needs (now read
  in place; about a sixteenth of the CPU). Decode and apply: about 1.55 ->
  1.2 µs per event; the api's CPU per event against the bare consumer's went
  from about 1.6x to 1.4x. The rest of the process's time is the NATS
  client (about a quarter) and the orders map's cache misses (a fifth).
- PostgreSQL capture: perf of the receive loop showed pgconn arming a
  context watcher (context.AfterFunc and its channel) for every message
  received with a cancellable context: a third of the loop's CPU with
  one-row transactions. The loop now receives with context.Background and
  keeps its deadline on the connection (cancelling moves it to now):
  same-invocation A/B, bulk 0.62 -> 0.81 and one-row 0.47 -> 0.57 of the
  publish loop. The bare drain reference keeps receiving with a deadline
  context: given the same change it measured about half as fast (bulk) in
  back-to-back runs, for a reason not pinned down, and the faster figure is
  the fairer floor.
- View snapshots: encoding 1M orders takes about 20 ms and restoring them
  about 280 ms, mostly map inserts (BenchmarkSnapshot); a restarted api is
  ready in under half a second instead of replaying the stream for 4 s.
- Dashboard GET: the JSON is rendered once per change of the view and served
  from a cached byte slice (BenchmarkServeCachedDashboard: a few ns, no
  allocation); rendering 1,000 sellers costs under a millisecond
  (BenchmarkRenderDashboard) and happens at most once per applied change.
- Capture: sources publish asynchronously with up to 4,096 events in flight
  and acknowledge their source position from the acknowledgement callbacks,
  so capture is never one round trip per event.
- Publishing, fifth round: reading the CPU of each process from /proc
  during the captures showed the source and the NATS server each spending
  about 9-11 µs per event, against 4.5 and 6.5 µs in the plain publish
  loop, and the walsender busy only half the time with one-row
  transactions: PostgreSQL was not the limit, the publishing was. A profile
  put nats.go's asynchronous publish (a future, two channels, a timer and a
  map entry per event, and every acknowledgement decoded with
  encoding/json) at a fifth of the source's CPU. The Publisher now speaks
  JetStream's reply protocol itself: one inbox, a reply subject per event,
  a ring of the events in flight with a watermark, acknowledgements read
  with the package's JSON scanner, and a reused message and buffer.
  BenchmarkPublish 9.0 -> 6.2 µs and 48 -> 23 allocations per event;
  same-invocation A/B: PG bulk +35%, one-row transactions +30%, ingestor
  CPU per MongoDB document 11-16 -> 7-10 µs.
- PostgreSQL, the bare drain: with the walsender's CPU now reported, the
  drain turned out not to be the floor it was taken for. The walsender is
  90% busy for it and about half busy for the source, which reads the same
  WAL 1.5-1.8x faster. Receiving in the drain the way the source does (a
  deadline on the connection) made it no faster (bulk slower, as in the
  fourth round). The drain stays as a plain reader of the same WAL.
- Measuring: the bench polled the stream's StreamInfo every 10 ms to time
  the captures, which was a tenth of the NATS server's CPU in a MongoDB run
  and grew from run to run (the server's CPU per document went 17 -> 30 µs
  across one invocation). Captures are now timed from the stream's own
  stamps of the first and last event, polling every 50 ms, and every run
  drops its checkpoint bucket; the server's CPU per document stays flat.
- Rebuild, fifth round: the NATS server's CPU, read from /proc during each
  rebuild, was about 0.4 µs per event higher for the api than for the bare
  consumer. The api's consumer filtered on the prefix, which is the
  stream's only subject; the server then matches every message against the
  filter while the bare consumer takes the unfiltered path. The api now
  filters only when the stream holds more than the prefix (and skips
  anything else it is delivered): the server's CPU per event during a
  rebuild went 4.2 -> 3.7 µs (alternating runs, 1M events). The bench also
  drains each /readyz answer, so its 5 ms polling reuses one connection
  instead of opening one per poll (about a tenth of a core between the two
  processes during a rebuild).
- Publishing, sixth round: batch publishing, measured before building it.
  A paced publisher of 200-byte messages against a NATS server process like
  the bench's (10,000 messages/s in writes of 25, as the ingestor sends
  MongoDB events) showed the server spending 17-24.5 µs of CPU per message
  with an acknowledgement each, 1 µs less without the Nats-Msg-Id header,
  12-17 µs with no acknowledgement at all, and 12.3-20 µs with JetStream's
  fast batches (server 2.14+, one flow acknowledgement per 500 messages).
  What the server spends per message depends most on how many arrive per
  read: 55 µs at 5 per write, 24.5 at 25, 19 at 100. Unpaced, fast batches
  saved nothing (10.6 against 9.6 µs). Meanwhile FerretDB, in the bench
  process, spent 90-350 µs of CPU per document serving a tail (counting the
  query that opens it; more each run as its oplog grows) against 17-20 µs
  for the ingestor and the NATS server together, and 4-22% more while it
  served the ingestor than the bare tail: batches would save a few percent
  of the capture's CPU, through a new protocol (not in nats.go 1.55, absent
  before server 2.14) on the path that guarantees nothing is lost. Not
  built. The one-row PostgreSQL rows now show the CPU per event of the
  source with the NATS server against the publish loop's with it, and the
  walsender's per transaction: the source costs about what the loop does,
  and the walsender's 6-14 µs per transaction is what the loop never pays.
- PostgreSQL capture, second round: a CPU profile of the source during the
  one-row capture put a quarter of its time in allocation, 14% in
  pglogrepl.Parse (a message, every column and a copy of every value
  allocated: 14 allocations per one-row transaction) and a few percent each
  in formatting the LSN with fmt and in looking up metric labels for every
  event. BEGIN, COMMIT, INSERT, UPDATE and DELETE are now decoded in place
  (FuzzPgoutput holds them to pglogrepl; relations and the rest still go
  through it): 400 ns and 14 allocations -> 24 ns and none per one-row
  transaction; the LSN is formatted with strconv-style appends, the metric
  children are cached per source, and the row's JSON is built in one
  buffer sized up front. BenchmarkOneRowTransactions: 46 -> 26
  allocations per transaction. Alternating runs of the PostgreSQL figures:
  bulk 0.83-0.86 -> 0.90-0.93 of the publish loop; one-row within the
  noise (0.65-0.71 -> 0.70-0.73), where the NATS server and the walsender
  spend most of the CPU. Metering the NATS server alone during the one-row
  capture: 7.5-8.5 µs per event for the source's events against 5.7-6.3
  for the loop's, while the bench process (source or loop) spent about the
  same on either; the server gets the source's events at 90k/s instead of
  150k/s, fewer per read, which costs it more per message.
- MongoDB capture, the reader's wait: the oplog reader now counts the time
  it waits for the publishing side to take a batch
  (reportes_mongo_oplog_reader_wait_seconds_total), and the bench reads it
  from the ingestor after each run. It was 0 in every run, including those
  at 0.57-0.86 of the bare tail: the ingestor is not the bottleneck, and
  the ratio is the CPU the ingestor and the NATS server take from FerretDB,
  whose JSON storage and garbage collector dominate a profile of the bench
  process.
- Rebuild, sixth round: consumers of a 1M-event stream, measured in a
  standalone program against a NATS server process (five alternating
  rounds): the jetstream package's pull-based ordered consumer read
  217k-318k events/s, nats.go's push-based ordered consumer 259k-394k
  (1.17-1.48x in every round), with less CPU per event in the client
  (2.0-3.1 against 2.3-3.4 µs) and in the server (2.6-4.2 against 3.1-5.1
  µs): the server pushes with flow control instead of answering pull
  requests, and the client skips the pull bookkeeping. The api now
  consumes with the push-based one. Paired rebuilds of the old and the new
  api binary in one invocation, in both orders: 1.18 and 1.05 of the old
  one, about a tenth faster once the order is accounted for. The bare
  reference is now the push-based consumer too; the row under the rebuild
  figure compares the two bare consumers. perf of the api during a rebuild
  now: nats.go's parsing and delivery about a sixth, the orders map's
  lookups and inserts an eighth, the JSON string scanner a tenth, the rest
  of decoding a tenth, reading the sequences from the reply subject a
  twentieth, allocation and GC most of what is left.
- Rebuild, seventh round: BenchmarkRebuildPipeline now measures the
  projector's side of a rebuild (1M distinct orders through the pipeline,
  reply subjects included) in CPU per event, and its profile put a fifth of
  the time in rawjson.Lookup, half of it skipping the whole order document
  before walking its members for the seller; a sixth in copying id, key,
  position, commit time and collection to strings; and a tenth in the
  orders map. Lookup now checks the document and finds the key in one walk;
  commit_time and version are read in place (FuzzTimeValue, FuzzUintValue
  hold them to time.Parse and strconv.ParseUint); a collection's name is
  allocated once; a change's seller list shares the interned codes; the
  reply subject is read from its end (140 -> 70 ns); ObjectIDs are decoded
  by table. BenchmarkDecodeEvent 592 -> 530 ns and 5 -> 3 allocations,
  BenchmarkApplyOrder 636 -> 500 ns. Paired rebuilds of the old and the
  new api binary, alternating, four runs each: the api's CPU per event
  3.63 and 3.74 -> 3.32 and 3.42 µs, with the bare consumer at 2.8 in
  every round. Sizing the orders map up front saved another 3% in the
  benchmark and was not built: the only count known before a rebuild is
  the stream's order events, and a stream where orders are updated a few
  times each would keep a map several times too large. The rebuild's peak
  memory now has its own row: with the garbage collector relaxed until the
  view is ready, about three times the view's steady memory, which the
  Kubernetes manifests now bound with GOMEMLIMIT. Relaxing it half as much
  (GOGC 200 instead of 400), alternating, three runs each: peak 198-238
  against 267-344 MB, for 3% more CPU per event (3.35-3.55 against
  3.24-3.47 µs). Kept at 400: GOMEMLIMIT bounds the peak where memory is
  tight, and a replica that restarts reads a snapshot instead.
- Rebuild, eighth round: perf of the NATS server during a rebuild put a
  quarter of its CPU in its garbage collector marking. The bench filled the
  stream in 14 s and timed the rebuilds within the next minute, while the
  server still held all 1M message IDs in its deduplication table (2
  minutes by default; about 145 bytes of its heap per ID, measured with
  and without IDs). A stream rebuilt from in production has held most of
  its events for longer than its window, so the bench's filled streams
  now deduplicate within 30 s, the measured rebuilds start once that has
  passed, and one pair of runs right after the fill has a row of its own.
  Alternating invocations, three runs each, table held and expired: the
  server's CPU per event delivered 3.95 and 4.15 against 2.76 and 2.66
  µs, the bare consumer 295k and 304k against 353k and 357k events/s, the
  api 248k and 230k against 304k and 308k. The api's own CPU per event
  did not change (3.4-3.6 µs). docs/operations.md now tells operators what
  the window costs the NATS server after a fast snapshot or re-capture.
- MongoDB capture, the gap: timing each batch inside the ingestor's oplog
  reader, FerretDB answered each getMore of 1,000 entries in 100-130 ms
  while decoding them took about 1 ms; the bare tail in the same runs
  read 1,000 entries per 86-108 ms. While the ingestor streamed (perf,
  all processes), FerretDB used 72% of the 2 cores, the NATS server 5.5%
  and the ingestor 5%, and 17% stayed idle: FerretDB prepares each batch
  on a path that does not use both cores, and the ingestor and the server,
  busy in bursts as each batch is published, slow that path down without
  the machine running out of cores. Running the ingestor with GOGC=400 or
  GOMAXPROCS=1, alternating with the default, two invocations of five runs
  each: 0.84-0.89 of the bare tail by default, 0.86-0.88 with one
  processor, 0.87-0.88 with GOGC=400, within the noise. Not changed.
- MongoDB capture, the stream's writes: strace of the NATS server during a
  capture counted 20,013 pwrite64 calls for 20,000 events: a one-replica
  file stream writes every event to its file before acknowledging it (the
  server's default), against a few hundred reads of the socket. The
  ingestor sends an oplog batch in about 50 writes of 20 events
  (/proc/<pid>/io). Converting a whole batch before publishing any of it
  left the writes as small (the connection's flusher wakes after a few
  events), with one processor they grew to 30-40 events, and neither moved
  the server's CPU per event: not kept. The same binaries against a
  stream created in async persist mode, where the server writes in
  batches after acknowledging (a row of the bench for one invocation, on
  a machine at less than half its usual speed): 0.81 [0.79-0.82] of the
  bare tail against 0.87 [0.76-0.91] by default, the server's CPU per
  document 24 against 22.5 µs; two earlier three-run invocations had
  given 0.96 and 1.03 against 0.83 and 0.85. The server's write per event
  is not what the gap is made of, and the row was dropped again. The
  ingestor keeps the default in any case: an event the server
  acknowledged must survive the server's crash, since the source moves
  past it (docs/operations.md, The stream).
- MongoDB capture, a plain capture beside it: a CPU profile of the bench
  process, where FerretDB runs, during the captures showed FerretDB
  reading every oplog row from SQLite and unmarshalling it in Go (half its
  CPU) with its garbage collector close behind; during the timed bare tail
  it used 120-170 µs of CPU per document, 1.4 of the 2 cores, on a machine
  at half its usual speed. New rows time a plain capture in a process of
  its own: the bare tail publishing each entry's bytes with nats.go's
  JetStream PublishAsync as it reads them and waiting for the
  acknowledgements, converting nothing. Two invocations (3 and 5 runs):
  it reached 0.84 and 0.85 of the bare tail, and the ingestor 1.05 and
  1.01 of it, spending 0.65 and 0.68 of its CPU per document (11.5
  against 17.5 µs): the ingestor's publisher (one reply subscription, a
  ring of pending events) costs less than PublishAsync's futures, and
  pays for the decoding and converting. Storing the events at all is
  what separates any capture from the bare tail on these 2 cores. (A
  first version ran the plain capture inside the bench process, beside
  FerretDB: there it reached 0.88-0.92 of the bare tail and the ingestor
  0.90-0.99 of it, the two sharing one Go scheduler.) Profiles of the
  ingestor showed its work spread over the driver, the NATS client,
  system calls and the scheduler, with converting an entry to its event
  (1.5 µs, BenchmarkOplogInsert) a small
  part of it. Nothing was changed in the ingestor. The capture runs
  shared one FerretDB until then, whose oplog grew by 20,000 entries a
  run; FerretDB reads its whole oplog for every query, so each run took
  longer than the one before and FerretDB's CPU per document drifted up
  within an invocation (98 to 124 µs). Each run now starts a FerretDB of
  its own, as the freshness runs did: the MongoDB section went from 2m47s
  to 1m10s on the same slow machine, with the same ratios (0.84 of the
  bare tail, 0.91 of the floor).
- MongoDB capture, converting: a memory profile of BenchmarkOplogInsert
  put most of its 19 allocations per order in the driver's Elements (a
  slice per document and a string per key and per string value). The
  document is now walked in place, keys and strings are escaped from
  their bytes (rawjson.AppendString takes either), and FuzzExtJSON now holds
  the output to the driver's own Extended JSON: 1.55 -> 1.19 µs, 712 ->
  396 bytes and 19 -> 9 allocations per order, same machine and hour.
- SSE fan-out: a CPU profile of the api (DEBUG_ADDR) with 10,000 clients
  and one change every 10 ms put half its CPU in the write system calls,
  a tenth in setting the connection's write deadline before every flush,
  and the rest in the scheduler, channel operations and net/http's
  chunked writer. The deadline is now moved ahead only once less than
  half of its 10 s is left (1% of the CPU). The api then spends about
  14 µs per event delivered to one client, against 13 for the trivial
  broadcaster; 10,000 clients at 10 events/s are 100,000 deliveries/s,
  about 1.4 cores for the server and as much for the clients on these 2
  cores, so the reference's p99 is itself above the 100 ms goal. A heap
  profile showed each client's sender keeping a buffer as large as the
  largest thing it had been sent, the whole dashboard (12 KB with 100
  sellers, 150 KB with 1,000): events now go straight into net/http's
  response buffer, 44.8 -> 32.5 KB per client with 100 sellers. What is
  left is net/http's: about 10 KB of bufio buffers and two goroutines
  per connection (the handler's and its background read's, 18 KB of
  stacks). Under 20 KB would take serving the stream on a hijacked
  connection; not done.
- Metric subjects, the burst: with the ingestor tailing FerretDB during
  the inserts, 30,000 orders reached the api in 70 s, the capture rate
  falling from 1,400/s to 200/s as the oplog grew (FerretDB rescans it
  for every query), against 10 s when the ingestor read them back from
  its saved position after the inserts. The figure stops the ingestor
  during the inserts; the tail on FerretDB under a burst is not
  investigated further here.
- View store (VIEW_STORE=postgres): one projector process applies about
  50-60k events/s with 1 or 2 partitions, spending about 5 µs of its own
  CPU, 6 µs of PostgreSQL's and 2.5 µs of the NATS server's per event at 1
  partition. Every partition has an ordered consumer of the whole stream
  and skips the other partitions' subjects in the client
  (projection.WithSubjectFilter), so the NATS server's CPU per event grows
  with the partitions one process holds (about 2.5, 4.5 and 9.5 µs for 1, 2
  and 4), and so does the projector's: on 2 cores 4 partitions in one
  process reach about 33k events/s. With all partitions on one connection
  the server closed it two or three times per run ("Slow Consumer
  Detected: MaxPending of 67108864 Exceeded": it lets each push consumer's
  flow-control window grow to 32 MiB, and four exceed the 64 MiB a client
  may have pending), and the lease renewals on that connection timed out;
  each partition now reads on a connection of its own, and the runs see
  no disconnect. Not done: partitioned subjects the server filters (a
  subject transform with partition()) would remove the per-partition cost
  of reading the whole stream.
- Failover, freshness across a stream-leader change: the first run's p99
  was 734 ms [32-5116]. Its logs were the profile: every leader change
  doubled the source supervisor's and the api projector's backoff (100 ms
  up to 1.6 s), which started again only after a run of a minute, and the
  api's consumer on the stopped server waited for two missed heartbeats.
  The backoffs now start again after a run longer than their maximum, and
  the api replaces its consumer on the stream's leader-elected advisory:
  p99 37.8 ms [33.5-42.8] over 5 windows (-only failover).
- MongoDB capture on FerretDB: the oplog tail reads the second before its
  position again on every cursor (FerretDB stamps entries before it
  commits them, so one can appear after a later one; see
  pkg/cdc/mongo/oplog.go). FerretDB ends a tail cursor at every poll, so
  that is a re-read per poll: against the bare tail the capture went from
  0.88 to about 0.8 (3 runs, noisy), against the plain capture it stays
  about 1.0. Not tuned further.
`
