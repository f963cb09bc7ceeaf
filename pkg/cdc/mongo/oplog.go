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
		s.cfg.Logger.Warn("oplog no longer holds the saved position (it rolled over while we were away); taking a new snapshot",
			"saved", st.OplogTS, "oldest", oldest)
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

// oplogBatch is the batch size of the oplog cursor.
const oplogBatch = 1000

// tail follows the oplog from (exclusive). It uses plain tailable cursors
// polled every PollInterval, reopened whenever the server closes them:
// some compatible servers close a tailable cursor whose first batch is short,
// and misbehave with awaitData.
func (s *Source) tail(ctx context.Context, client *mongo.Client, oplog *mongo.Collection, pub *cdc.Publisher, from oplogTS) error {
	sv := &saver{s: s, last: s.acked.Load(), saved: time.Now()}
	coll := client.Database(s.cfg.Database).Collection(s.cfg.Collection)
	s.streaming.Store(true)
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
			return sv.final(pub)
		case <-timer.C:
		}
		if err := pub.Err(); err != nil {
			return err
		}
		if cur == nil {
			filter := bson.D{
				{Key: "ts", Value: bson.D{{Key: "$gt", Value: primitive.Timestamp{T: pos.T, I: pos.I}}}},
				{Key: "ns", Value: bson.D{{Key: "$in", Value: bson.A{s.ns, "admin.$cmd"}}}},
			}
			var err error
			cur, err = oplog.Find(ctx, filter, options.Find().SetCursorType(options.Tailable).SetBatchSize(oplogBatch))
			if err != nil {
				if ctx.Err() != nil {
					return sv.final(pub)
				}
				return fmt.Errorf("open oplog cursor after %s: %w", pos, err)
			}
		}
		n := 0
		for cur.TryNext(ctx) {
			var e oplogEntry
			if err := cur.Decode(&e); err != nil {
				return fmt.Errorf("decode oplog entry after %s: %w", pos, err)
			}
			if err := s.entry(ctx, coll, pub, e, 0); err != nil {
				return err
			}
			pos = oplogTS{T: e.TS.T, I: e.TS.I}
			n++
		}
		if err := cur.Err(); err != nil {
			if ctx.Err() != nil {
				return sv.final(pub)
			}
			return fmt.Errorf("tail oplog after %s: %w", pos, err)
		}
		if cur.ID() == 0 {
			_ = cur.Close(ctx)
			cur = nil
		}
		if n > 0 {
			next := &state{Mode: ModeOplog, SnapshotDone: true, Snapshot: sv.last.Snapshot, OplogTS: &oplogTS{T: pos.T, I: pos.I}}
			if err := pub.AfterAcked(ctx, func() { s.acked.Store(next) }); err != nil {
				return err
			}
		}
		if n >= oplogBatch {
			timer.Reset(0) // a backlog: read on at once
		} else {
			// Caught up. Polling again at once would mostly find nothing, and
			// on servers that rescan the oplog per query (FerretDB) it costs
			// the CPU the rest of the pipeline needs.
			timer.Reset(s.cfg.PollInterval)
		}
		if err := sv.maybeSave(ctx, false); err != nil {
			return err
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
	ev := &cdc.Event{
		ID:         fmt.Sprintf("mongo:%s:%s:%d", s.ns, pos, idx),
		Source:     cdc.SourceMongo,
		Collection: s.ns,
		Position:   pos.String(),
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
		var inner []oplogEntry
		if err := ops.Unmarshal(&inner); err != nil {
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
