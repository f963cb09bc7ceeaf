package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

func (s *Source) runOplog(ctx context.Context, client *mongo.Client, pub *cdc.Publisher, st state, found bool) error {
	oplog := client.Database("local").Collection("oplog.rs")
	coll := client.Database(s.cfg.Database).Collection(s.cfg.Collection)

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
			s.cfg.Logger.Warn("no oplog position to resume from (the oplog was empty at the last snapshot); taking a new snapshot",
				"oldest", oldest)
		} else {
			s.cfg.Logger.Warn("oplog no longer holds the saved position (it rolled over while we were away); taking a new snapshot",
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
	snapID, err := s.snapshot(ctx, coll, pub, from.version(), from.String(), reason)
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

// edgeTS returns the oldest (dir 1) or newest (dir -1) oplog timestamp, or
// nil for an empty oplog.
func edgeTS(ctx context.Context, oplog *mongo.Collection, dir int) (*oplogTS, error) {
	var e oplogEntry
	err := oplog.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}})).Decode(&e)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read oplog (is this server a replica set member with local.oplog.rs?): %w", err)
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
func (s *Source) tail(ctx context.Context, client *mongo.Client, oplog *mongo.Collection, pub *cdc.Publisher, from oplogTS) error {
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
		if err := pub.AfterAcked(ctx, func() { s.acked.Store(next) }); err != nil {
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
	send := func(b entries) bool {
		select {
		case out <- b:
			return true
		default:
		}
		// The publishing side is still busy with the previous batch. The
		// wait is counted as it goes, so a stall shows while it lasts.
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
	pos := from
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
			filter := bson.D{
				{Key: "ts", Value: bson.D{{Key: "$gt", Value: primitive.Timestamp{T: pos.T, I: pos.I}}}},
				{Key: "ns", Value: bson.D{{Key: "$in", Value: bson.A{s.ns, "admin.$cmd"}}}},
			}
			var err error
			if cur, err = oplog.Find(ctx, filter, options.Find().SetCursorType(options.Tailable).SetBatchSize(oplogBatch)); err != nil {
				send(entries{err: fmt.Errorf("open oplog cursor after %s: %w", pos, err)})
				return
			}
		}
		var b entries
		size := 0
		full := func() bool { return len(b.list) >= oplogBatch || size >= s.batchBytes }
		for !full() && cur.TryNext(ctx) {
			// The driver may reuse the batch's memory: the entry, and
			// the documents it holds, get bytes of their own.
			e, err := decodeEntry(append(bson.Raw(nil), cur.Current...))
			if err != nil {
				send(entries{err: fmt.Errorf("decode oplog entry after %s: %w", pos, err)})
				return
			}
			b.list = append(b.list, e)
			size += len(cur.Current)
			pos = oplogTS{T: e.TS.T, I: e.TS.I}
		}
		if err := cur.Err(); err != nil {
			send(entries{err: fmt.Errorf("tail oplog after %s: %w", pos, err)})
			return
		}
		if cur.ID() == 0 && cur.RemainingBatchLength() == 0 {
			_ = cur.Close(ctx)
			cur = nil
		}
		if len(b.list) > 0 && !send(b) {
			return
		}
		if full() {
			timer.Reset(0) // a backlog: read on at once
		} else {
			// Caught up. Polling again at once would mostly find nothing, and
			// on servers that rescan the oplog per query (FerretDB) it costs
			// the CPU the rest of the pipeline needs.
			timer.Reset(s.cfg.PollInterval)
		}
	}
}

// entry publishes the changes one oplog entry describes. idx numbers the
// operations of an applyOps entry.
func (s *Source) entry(ctx context.Context, coll *mongo.Collection, pub *cdc.Publisher, e oplogEntry, idx int) error {
	pos := oplogTS{T: e.TS.T, I: e.TS.I}
	commit := e.Wall
	if commit.IsZero() {
		commit = time.Unix(int64(e.TS.T), 0)
	}
	id, position := oplogEventID(s.ns, pos, idx)
	ev := &cdc.Event{
		ID:         id,
		Source:     cdc.SourceMongo,
		Collection: s.ns,
		Position:   position,
		Version:    pos.version(),
		CommitTime: commit.UTC(),
	}
	var err error
	switch e.Op {
	case "i":
		ev.Op = cdc.OpInsert
		ev.Key, ev.After, err = documentJSON(e.O)
	case "u":
		ev.Op = cdc.OpUpdate
		ev.Key, ev.After, err = s.updatedDocument(ctx, coll, e)
	case "d":
		ev.Op = cdc.OpDelete
		ev.Key, ev.Before, err = documentJSON(e.O)
	case "c":
		ops, lerr := e.O.LookupErr("applyOps")
		if lerr != nil {
			// Other commands (create, drop index...) change no document.
			cdc.CountIgnored(cdc.SourceMongo, "c")
			return nil //nolint:nilerr // not an applyOps command: nothing to publish
		}
		inner, err := decodeApplyOps(ops)
		if err != nil {
			return fmt.Errorf("decode applyOps at %s: %w", pos, err)
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
	case "n":
		return nil // no-op entries the server writes to keep the oplog moving
	default:
		cdc.CountIgnored(cdc.SourceMongo, e.Op)
		s.cfg.Logger.Warn("oplog entry with an unknown operation; no document change published", "op", e.Op, "ts", pos)
		return nil
	}
	if e.NS != s.ns {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oplog entry %s (%s): %w", pos, e.Op, err)
	}
	setLastCommit(commit)
	cdc.CountRead(cdc.SourceMongo, 1)
	return pub.Publish(ctx, ev)
}

// oplogEventID returns the ID of the idx-th change of the oplog entry at pos
// (mongo:<ns>:<position>:<idx>) and the position, built without fmt: this
// runs for every document.
func oplogEventID(ns string, pos oplogTS, idx int) (id, position string) {
	var buf [128]byte
	b := append(append(buf[:0], "mongo:"...), ns...)
	b = append(b, ':')
	start := len(b)
	b = pos.append(b)
	end := len(b)
	id = string(strconv.AppendInt(append(b, ':'), int64(idx), 10))
	return id, id[start:end]
}

// updatedDocument returns the document after an update. Replacements and
// servers that log the whole new document as {$set: doc} carry it in the
// entry; for a diff (MongoDB 5+ "$v": 2) it is looked up, like change
// streams' updateLookup: the lookup may see a later state, which the later
// entries then repeat, so the result converges.
func (s *Source) updatedDocument(ctx context.Context, coll *mongo.Collection, e oplogEntry) (string, []byte, error) {
	if _, err := e.O.LookupErr("_id"); err == nil {
		return documentJSON(e.O) // a replacement
	}
	if set, err := e.O.LookupErr("$set"); err == nil && onlySet(e.O) {
		if doc, ok := set.DocumentOK(); ok {
			if _, err := doc.LookupErr("_id"); err == nil {
				return documentJSON(doc)
			}
		}
	}
	id, err := e.O2.LookupErr("_id")
	if err != nil {
		return "", nil, fmt.Errorf("update without o2._id: %w", err)
	}
	var doc bson.Raw
	err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
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
