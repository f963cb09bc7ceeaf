package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/pkg/cdc"
)

// oplogEntry is the part of an oplog entry the tail reads.
type oplogEntry struct {
	TS   primitive.Timestamp `bson:"ts"`
	Op   string              `bson:"op"`
	NS   string              `bson:"ns"`
	O    bson.Raw            `bson:"o"`
	O2   bson.Raw            `bson:"o2"`
	Wall time.Time           `bson:"wall"`
}

func (s *Source) runOplog(ctx context.Context, client *mongo.Client, pub cdc.Publisher, st state, found bool) error {
	oplog := client.Database("local").Collection("oplog.rs")

	if err := checkOplog(ctx, client); err != nil {
		return err
	}
	reason := "initial"
	if found && st.SnapshotDone && st.OplogTS != nil {
		oldest, err := edgeTS(ctx, oplog, 1)
		if err != nil {
			return err
		}
		if oldest == nil || oldest.version() <= st.OplogTS.version() {
			s.acked.Store(&st)
			return s.tail(ctx, client, oplog, pub, *st.OplogTS)
		}
		reason = "position_lost"
		if *st.OplogTS == (oplogTS{}) {
			// The snapshot was taken while the oplog was empty and nothing
			// was tailed since: whether entries were pruned meanwhile
			// cannot be told, so the snapshot is taken again.
			s.logger.Warn("no oplog position to resume from (the oplog was empty at the last snapshot); taking a new snapshot",
				"oldest", oldest)
		} else {
			s.logger.Warn("oplog no longer holds the saved position (it rolled over while we were away); taking a new snapshot",
				"saved", st.OplogTS, "oldest", oldest)
		}
	} else if found {
		reason = "incomplete"
	}

	latest, err := edgeTS(ctx, oplog, -1)
	if err != nil {
		return err
	}
	from := oplogTS{}
	if latest != nil {
		from = *latest
	}
	snapID, err := s.snapshot(ctx, reason)
	if err != nil {
		return err
	}
	next := &state{Mode: ModeOplog, SnapshotDone: true, Snapshot: snapID, OplogTS: &from}
	if err := s.checkpoint.Save(ctx, s.checkpointKey(), next); err != nil {
		return err
	}
	s.acked.Store(next)
	return s.tail(ctx, client, oplog, pub, from)
}

// errNoOplog is the answer of a server without local.oplog.rs: not a
// replica set member, or a compatible server whose oplog was never created.
var errNoOplog = errors.New("local.oplog.rs does not exist (is this server a replica set member? FerretDB logs changes only once local.oplog.rs is created as a capped collection)")

// checkOplog makes sure the server has an oplog. Some compatible servers
// answer a read of a collection that does not exist with no documents,
// which would snapshot and then tail nothing for ever.
func checkOplog(ctx context.Context, client *mongo.Client) error {
	// authorizedCollections lets a user who may read the oplog but not list
	// the collections of local see it.
	names, err := client.Database("local").ListCollectionNames(ctx, bson.D{{Key: "name", Value: "oplog.rs"}},
		options.ListCollections().SetNameOnly(true).SetAuthorizedCollections(true))
	if err != nil {
		return fmt.Errorf("look for local.oplog.rs: %w", err)
	}
	if len(names) == 0 {
		return errNoOplog
	}
	return nil
}

// edgeTS returns the oldest (dir 1) or newest (dir -1) oplog timestamp, or
// nil for an empty oplog.
func edgeTS(ctx context.Context, oplog *mongo.Collection, dir int) (*oplogTS, error) {
	var e oplogEntry
	err := oplog.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}})).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read oplog: %w", err)
	}
	return &oplogTS{T: e.TS.T, I: e.TS.I}, nil
}

// oplogBatch is the batch size of the oplog cursor, and the most entries
// the reader hands to publishing at once.
const oplogBatch = 1000

// oplogBatchBytes bounds the entries the reader hands to publishing at
// once, in bytes: with the batch being published and the one read ahead,
// large documents then hold at most about twice this much, instead of a
// thousand of them each.
const oplogBatchBytes = 16 << 20

// entries is what the oplog reader hands to the publishing loop: a batch of
// entries in oplog order, or the error that ended the reading.
type entries struct {
	list []oplogEntry
	err  error
}

// tail follows the oplog from (exclusive). One goroutine reads the oplog
// while this one publishes the previous batch, so the server prepares the
// next batch while the last is converted and published: reading a backlog
// then goes at the pace of the server alone.
func (s *Source) tail(ctx context.Context, client *mongo.Client, oplog *mongo.Collection, pub cdc.Publisher, from oplogTS) error {
	s.startBackfills() // watermarks go after from, where the tail starts
	sv := &saver{s: s, last: s.acked.Load(), saved: time.Now()}
	coll := client.Database(s.cfg.Database).Collection(s.cfg.Collection)
	rctx, stop := context.WithCancel(ctx)
	batches := make(chan entries, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readOplog(rctx, oplog, from, batches)
	}()
	defer func() {
		stop()
		<-done
	}()
	s.streaming.Store(true)
	idle := time.NewTicker(time.Second) // saves positions while nothing arrives
	defer idle.Stop()
	for {
		var b entries
		select {
		case <-ctx.Done():
			return sv.final(pub)
		case <-idle.C:
			if err := pub.Err(); err != nil {
				return err
			}
			if err := sv.maybeSave(ctx, false); err != nil {
				return err
			}
			continue
		case b = <-batches:
		}
		if b.err != nil {
			if ctx.Err() != nil {
				return sv.final(pub)
			}
			return b.err
		}
		for _, e := range b.list {
			if err := s.entry(ctx, coll, pub, e, 0); err != nil {
				return err
			}
		}
		last := b.list[len(b.list)-1].TS
		next := &state{Mode: ModeOplog, SnapshotDone: true, Snapshot: sv.last.Snapshot, OplogTS: &oplogTS{T: last.T, I: last.I}}
		if err := pub.AfterAcked(func() { s.acked.Store(next) }); err != nil {
			return err
		}
		if err := pub.Err(); err != nil {
			return err
		}
		if err := sv.maybeSave(ctx, false); err != nil {
			return err
		}
	}
}

// readOplog reads the oplog after from and sends the entries of the
// collection (and of transactions) to out in batches, until ctx ends or
// reading fails (the error is sent). It uses plain tailable cursors polled
// every PollInterval, reopened whenever the server closes them: some
// compatible servers close a tailable cursor whose first batch is short,
// and misbehave with awaitData.
func (s *Source) readOplog(ctx context.Context, oplog *mongo.Collection, from oplogTS, out chan<- entries) {
	pos := from
	seen := &lookback{seen: map[oplogTS]struct{}{}, floor: from}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var cur *mongo.Cursor
	defer func() {
		if cur != nil {
			_ = cur.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if cur == nil {
			var err error
			if cur, err = s.openOplog(ctx, oplog, seen.from(pos)); err != nil {
				s.handOver(ctx, out, entries{err: err})
				return
			}
		}
		b, full, err := s.readBatch(ctx, cur, &pos, seen)
		if err != nil {
			s.handOver(ctx, out, entries{err: err})
			return
		}
		if cur.ID() == 0 && cur.RemainingBatchLength() == 0 {
			_ = cur.Close(ctx)
			cur = nil
		}
		if len(b.list) > 0 && !s.handOver(ctx, out, b) {
			return
		}
		if full {
			timer.Reset(0) // a backlog: read on at once
		} else {
			// Caught up. Polling again at once would mostly find nothing, and
			// on servers that rescan the oplog per query (FerretDB) it costs
			// the CPU the rest of the pipeline needs.
			timer.Reset(s.cfg.PollInterval)
		}
	}
}

// openOplog opens a tailable cursor on the entries after pos of the
// collection and of transactions.
func (s *Source) openOplog(ctx context.Context, oplog *mongo.Collection, pos oplogTS) (*mongo.Cursor, error) {
	filter := bson.D{
		{Key: "ts", Value: bson.D{{Key: "$gt", Value: primitive.Timestamp{T: pos.T, I: pos.I}}}},
		{Key: "ns", Value: bson.D{{Key: "$in", Value: bson.A{s.ns, s.watermarks, "admin.$cmd"}}}},
	}
	cur, err := oplog.Find(ctx, filter, options.Find().SetCursorType(options.Tailable).SetBatchSize(oplogBatch))
	if err != nil {
		return nil, fmt.Errorf("open oplog cursor after %s: %w", pos, err)
	}
	return cur, nil
}

// readBatch reads what cur holds now, up to a batch, moving pos past every
// entry read and leaving out the entries of the look-back window already
// handed over; full reports that the batch reached its bound.
func (s *Source) readBatch(ctx context.Context, cur *mongo.Cursor, pos *oplogTS, seen *lookback) (b entries, full bool, err error) {
	size := 0
	isFull := func() bool { return len(b.list) >= oplogBatch || size >= s.batchBytes }
	for !isFull() && cur.TryNext(ctx) {
		// The driver may reuse the batch's memory: the entry, and the
		// documents it holds, get bytes of their own.
		e, err := decodeEntry(append(bson.Raw(nil), cur.Current...))
		if err != nil {
			*pos = s.skipEntry(cur.Current, *pos, err)
			continue
		}
		ts := oplogTS{T: e.TS.T, I: e.TS.I}
		if !seen.add(ts, pos) {
			continue
		}
		b.list = append(b.list, e)
		size += len(cur.Current)
	}
	if err := cur.Err(); err != nil {
		return b, false, fmt.Errorf("tail oplog after %s: %w", *pos, err)
	}
	return b, isFull(), nil
}

// lookbackSeconds is how far before its position the tail reads the oplog
// again whenever it opens a cursor: from the start of the second before
// the position's. FerretDB stamps an entry (seconds, then a counter)
// before it commits it, so with two writers an entry can become visible
// after one stamped later, which a cursor opened after the later one would
// never return; one second covers a commit delayed by one to two seconds.
// MongoDB shows no entry past one not yet committed; the look-back costs
// it a re-read per cursor. On FerretDB, which ends a tail cursor at every
// poll, it is a re-read per poll: make bench measures it.
const lookbackSeconds = 1

// lookback remembers the entries handed over within lookbackSeconds of
// the position, so that re-reading them hands over only those that
// appeared late. It never reads at or before floor, where the tail
// started: the snapshot or an earlier run covered that.
type lookback struct {
	seen  map[oplogTS]struct{}
	floor oplogTS
	top   uint32 // the seconds of the position when seen was last pruned
}

// from is where a cursor opened at pos starts: lookbackSeconds earlier,
// and not before the floor.
func (l *lookback) from(pos oplogTS) oplogTS {
	if pos.T <= lookbackSeconds {
		return l.floor
	}
	if back := (oplogTS{T: pos.T - lookbackSeconds}); back.version() > l.floor.version() {
		return back
	}
	return l.floor
}

// add records ts, moves pos past it (never back), and reports whether it
// is new: not handed over before. An entry stamped before the look-back
// window that was not seen is new too (after a restart, or one that
// appeared later still); publishing it again would only repeat a message
// id the stream drops.
func (l *lookback) add(ts oplogTS, pos *oplogTS) bool {
	if _, ok := l.seen[ts]; ok {
		return false
	}
	l.seen[ts] = struct{}{}
	if ts.version() > pos.version() {
		*pos = ts
	}
	if pos.T > l.top {
		l.top = pos.T
		for old := range l.seen {
			if old.T+lookbackSeconds < pos.T {
				delete(l.seen, old)
			}
		}
	}
	return true
}

// handOver sends b to the publishing side, and reports false when ctx ended
// first. The time it waits for the publishing side, still busy with the
// previous batch, is counted as it goes, so a stall shows while it lasts.
func (s *Source) handOver(ctx context.Context, out chan<- entries, b entries) bool {
	select {
	case out <- b:
		return true
	default:
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case out <- b:
			metricReaderWait.Add(time.Since(start).Seconds())
			return true
		case <-ctx.Done():
			metricReaderWait.Add(time.Since(start).Seconds())
			return false
		case now := <-tick.C:
			metricReaderWait.Add(now.Sub(start).Seconds())
			start = now
		}
	}
}

// skipEntry logs and counts an oplog entry that cannot be decoded, and
// returns the position to read on from: stopping on it would restart the
// source on the same entry for ever. Its timestamp, when readable, moves the
// position past it, so a reopened cursor does not read it again.
func (s *Source) skipEntry(raw bson.Raw, pos oplogTS, err error) oplogTS {
	metricSkipped.WithLabelValues("malformed_entry").Inc()
	next := pos
	if t, i, ok := raw.Lookup("ts").TimestampOK(); ok && (oplogTS{T: t, I: i}).version() > pos.version() {
		next = oplogTS{T: t, I: i}
	}
	s.logger.Warn("oplog entry that cannot be decoded; skipped",
		"collection", s.ns, "after", pos, "ts", next, "bytes", len(raw), "err", err)
	return next
}

// entry publishes the changes one oplog entry describes. idx numbers the
// operations of an applyOps entry.
func (s *Source) entry(ctx context.Context, coll *mongo.Collection, pub cdc.Publisher, e oplogEntry, idx int) error {
	switch e.Op {
	case "i", "u", "d":
	case "c":
		return s.applyOps(ctx, coll, pub, e)
	case "n":
		return nil // no-op entries the server writes to keep the oplog moving
	default:
		cdc.CountIgnored(cdc.SourceMongo, cdc.Bound(e.Op))
		s.logger.Warn("oplog entry with an unknown operation; no document change published",
			"op", cdc.Bound(e.Op), "ts", oplogTS{T: e.TS.T, I: e.TS.I})
		return nil
	}
	if e.NS == s.watermarks {
		return s.watermark(ctx, pub, e)
	}
	if e.NS != s.ns {
		return nil
	}
	ev, lookup, err := oplogChange(s.origin, s.ns, e, idx)
	if err == nil && lookup.Type != 0 {
		ev.Key, ev.After, err = s.lookUp(ctx, coll, lookup)
	}
	if err != nil && !errors.Is(err, errUnusable) {
		return fmt.Errorf("oplog entry %s (%s): %w", ev.Position, ev.Op, err)
	}
	return s.publishChange(ctx, pub, ev, err)
}

// applyOps publishes the operations of a transaction's applyOps entry that
// concern the collection. Other commands (create, drop index...) change no
// document.
func (s *Source) applyOps(ctx context.Context, coll *mongo.Collection, pub cdc.Publisher, e oplogEntry) error {
	ops, err := e.O.LookupErr("applyOps")
	if err != nil {
		cdc.CountIgnored(cdc.SourceMongo, "c")
		return nil //nolint:nilerr // not an applyOps command: nothing to publish
	}
	inner, err := decodeApplyOps(ops)
	if err != nil {
		// The transaction cannot be read, now or on a retry.
		metricSkipped.WithLabelValues("malformed_entry").Inc()
		s.logger.Warn("transaction entry that cannot be decoded; skipped",
			"collection", s.ns, "ts", oplogTS{T: e.TS.T, I: e.TS.I}, "err", err)
		return nil
	}
	for i, op := range inner {
		if op.NS != s.ns {
			continue
		}
		op.TS, op.Wall = e.TS, e.Wall
		if err := s.entry(ctx, coll, pub, op, i+1); err != nil {
			return err
		}
	}
	return nil
}

// oplogChange returns the event of an insert, update or delete entry, and
// for an update that carries no whole document the _id to look the document
// up by (otherwise a zero value). It reads nothing but the entry, so that
// what reaches a message id can be fuzzed. An error wrapping errUnusable
// comes with the event as far as it could be built.
func oplogChange(origin cdc.Origin, ns string, e oplogEntry, idx int) (*cdc.Event, bson.RawValue, error) {
	pos := oplogTS{T: e.TS.T, I: e.TS.I}
	commit := e.Wall
	if commit.IsZero() {
		commit = time.Unix(int64(e.TS.T), 0)
	}
	id, position := oplogEventID(origin, pos, idx)
	ev := &cdc.Event{
		ID:         id,
		Source:     cdc.SourceMongo,
		Collection: ns,
		Position:   position,
		Version:    pos.version(),
		CommitTime: commit.UTC(),
	}
	var err error
	var lookup bson.RawValue
	switch e.Op {
	case "i":
		ev.Op = cdc.OpInsert
		ev.Key, ev.After, err = documentJSON(e.O)
	case "d":
		ev.Op = cdc.OpDelete
		ev.Key, ev.Before, err = documentJSON(e.O)
	case "u":
		ev.Op = cdc.OpUpdate
		if doc, ok := updatedDocument(e); ok {
			ev.Key, ev.After, err = documentJSON(doc)
		} else if lookup, err = e.O2.LookupErr("_id"); err != nil {
			err = fmt.Errorf("%w: update without o2._id: %w", errUnusable, err)
		}
	default:
		err = fmt.Errorf("%w: oplog operation %q is no document change", errUnusable, cdc.Bound(e.Op))
	}
	return ev, lookup, err
}

// oplogEventID returns the ID of the idx-th change of the oplog entry at pos
// (mongo:<ns>:<position>:<idx>) and the position, built without fmt: this
// runs for every document.
func oplogEventID(origin cdc.Origin, pos oplogTS, idx int) (id, position string) {
	var buf [24]byte
	return origin.Change(pos.append(buf[:0]), idx)
}

// updatedDocument returns the document after an update when the entry
// carries it: replacements, and servers that log the whole new document as
// {$set: doc}. For a diff (MongoDB 5+ "$v": 2) it must be looked up (lookUp).
func updatedDocument(e oplogEntry) (bson.Raw, bool) {
	if _, err := e.O.LookupErr("_id"); err == nil {
		return e.O, true // a replacement
	}
	if set, err := e.O.LookupErr("$set"); err == nil && onlySet(e.O) {
		if doc, ok := set.DocumentOK(); ok {
			if _, err := doc.LookupErr("_id"); err == nil {
				return doc, true
			}
		}
	}
	return nil, false
}

// lookUp returns the current document with the given _id, like change
// streams' updateLookup: the lookup may see a later state, which the later
// entries then repeat, so the result converges.
func (s *Source) lookUp(ctx context.Context, coll *mongo.Collection, id bson.RawValue) (string, []byte, error) {
	var doc bson.Raw
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Deleted since; the delete entry follows. Publishing the key alone
		// keeps the position moving without inventing a document.
		key, kerr := keyOf(id)
		return key, nil, kerr
	}
	if err != nil {
		return "", nil, fmt.Errorf("look up updated document: %w", err)
	}
	return documentJSON(doc)
}

// onlySet reports whether an update's o holds nothing but $set (and the
// update format version $v).
func onlySet(o bson.Raw) bool {
	els, err := o.Elements()
	if err != nil {
		return false
	}
	for _, el := range els {
		if k := el.Key(); k != "$set" && k != "$v" {
			return false
		}
	}
	return true
}

// watermark hands the watermark an oplog entry inserts to the Backfiller.
func (s *Source) watermark(ctx context.Context, pub cdc.Publisher, e oplogEntry) error {
	id, ok := e.O.Lookup("_id").StringValueOK()
	if e.Op != "i" || !ok || !s.backfill.IsWatermark(id) {
		return nil
	}
	ts := oplogTS{T: e.TS.T, I: e.TS.I}
	at := cdc.Position{Text: ts.String(), Version: ts.version(), Time: e.Wall.UTC()}
	if e.Wall.IsZero() {
		at.Time = time.Unix(int64(ts.T), 0).UTC()
	}
	return s.backfill.Watermark(ctx, pub, id, at)
}
