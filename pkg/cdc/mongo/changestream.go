package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/reportes/reportes/pkg/cdc"
)

// changeEvent is the part of a change stream event the source reads.
type changeEvent struct {
	OperationType string              `bson:"operationType"`
	ClusterTime   primitive.Timestamp `bson:"clusterTime"`
	WallTime      time.Time           `bson:"wallTime"`
	DocumentKey   bson.Raw            `bson:"documentKey"`
	NS            struct {
		Coll string `bson:"coll"`
	} `bson:"ns"`
	FullDocument bson.Raw `bson:"fullDocument"`
}

// errHistoryLost matches the errors of a resume token the server no longer
// has: ChangeStreamHistoryLost (286) and ChangeStreamFatalError (280).
func errHistoryLost(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && (se.HasErrorCode(286) || se.HasErrorCode(280))
}

// changeScope is the state's Scope of a change stream of the database
// filtered to the collection and its watermarks. A resume token of the
// collection's own stream (saved before watermarks existed) is not reused.
const changeScope = "database"

func (s *Source) runChangeStream(ctx context.Context, client *mongo.Client, pub cdc.Publisher, st state, found bool) error {
	db := client.Database(s.cfg.Database)
	opts := options.ChangeStream().SetFullDocument(options.UpdateLookup)
	// One stream of the database, filtered to the collection and the
	// watermark collection: the watermarks come in order with the changes.
	pipeline := mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "ns.coll", Value: bson.D{{Key: "$in",
		Value: bson.A{s.cfg.Collection, s.cfg.WatermarkCollection}}}}}}}}
	if found && st.Scope != changeScope {
		found = false
		s.logger.Warn("the saved resume token is of the collection's own change stream; taking a new snapshot once")
	}

	reason := "initial"
	if found && st.SnapshotDone && len(st.ResumeToken) > 0 {
		var token bson.Raw
		if err := bson.UnmarshalExtJSON(st.ResumeToken, false, &token); err != nil {
			return fmt.Errorf("decode saved resume token: %w", err)
		}
		cs, err := db.Watch(ctx, pipeline, opts.SetResumeAfter(token))
		if err == nil {
			s.acked.Store(&st)
			return s.follow(ctx, cs, pub, st.Snapshot)
		}
		if !errHistoryLost(err) {
			return fmt.Errorf("resume change stream: %w", err)
		}
		reason = "position_lost"
		s.logger.Warn("the saved resume token is no longer in the oplog (expired while we were away); taking a new snapshot", "err", err)
	} else if found {
		reason = "incomplete"
	}

	// Open the stream first: changes made during the snapshot are then
	// delivered after it.
	sess, err := client.StartSession()
	if err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	cs, err := db.Watch(mongo.NewSessionContext(ctx, sess), pipeline, opts)
	if err != nil {
		return fmt.Errorf("open change stream: %w", err)
	}
	snapID, err := s.snapshot(ctx, reason)
	if err != nil {
		_ = cs.Close(ctx)
		return err
	}
	token, err := bson.MarshalExtJSON(cs.ResumeToken(), false, false)
	if err != nil {
		return fmt.Errorf("encode resume token: %w", err)
	}
	next := &state{Mode: ModeChangeStream, Scope: changeScope, SnapshotDone: true, Snapshot: snapID, ResumeToken: token}
	if err := s.checkpoint.Save(ctx, s.checkpointKey(), next); err != nil {
		return err
	}
	s.acked.Store(next)
	return s.follow(ctx, cs, pub, snapID)
}

func (s *Source) follow(ctx context.Context, cs *mongo.ChangeStream, pub cdc.Publisher, snapID string) error {
	defer cs.Close(context.WithoutCancel(ctx))
	s.startBackfills() // the stream is open: it carries every watermark written from now on
	sv := &saver{s: s, last: s.acked.Load(), saved: time.Now()}
	s.streaming.Store(true)
	for {
		if err := pub.Err(); err != nil {
			return err
		}
		if !cs.TryNext(ctx) {
			if ctx.Err() != nil {
				return sv.final(pub)
			}
			if err := cs.Err(); err != nil {
				return fmt.Errorf("change stream: %w", err)
			}
			if err := sv.maybeSave(ctx, false); err != nil {
				return err
			}
			continue
		}
		tokenRaw := cs.ResumeToken()
		var ce changeEvent
		if err := cs.Decode(&ce); err != nil {
			// The same event would come again after a restart: it is
			// skipped, and the resume token moves past it.
			metricSkipped.WithLabelValues("malformed_entry").Inc()
			s.logger.Warn("change event that cannot be decoded; skipped", "collection", s.ns, "bytes", len(cs.Current), "err", err)
		} else if err := s.change(ctx, pub, ce, tokenRaw); err != nil {
			return err
		}
		token, err := bson.MarshalExtJSON(tokenRaw, false, false)
		if err != nil {
			return fmt.Errorf("encode resume token: %w", err)
		}
		next := &state{Mode: ModeChangeStream, Scope: changeScope, SnapshotDone: true, Snapshot: snapID, ResumeToken: token}
		if err := pub.AfterAcked(func() { s.acked.Store(next) }); err != nil {
			return err
		}
		if err := sv.maybeSave(ctx, false); err != nil {
			return err
		}
	}
}

func (s *Source) change(ctx context.Context, pub cdc.Publisher, ce changeEvent, token bson.Raw) error {
	pos := oplogTS{T: ce.ClusterTime.T, I: ce.ClusterTime.I}
	if ce.NS.Coll == s.cfg.WatermarkCollection {
		return s.changeWatermark(ctx, pub, ce, pos)
	}
	data, _ := token.LookupErr("_data")
	tokenID, ok := data.StringValueOK()
	if !ok {
		tokenID = pos.String()
	}
	ev := &cdc.Event{
		// A resume token holds the document's key: bounded, so that a large
		// _id makes no large Nats-Msg-Id. The same change always has the
		// same token, so a republish is deduplicated.
		ID:         s.origin.ID(cdc.Bound(tokenID)),
		Source:     cdc.SourceMongo,
		Collection: s.ns,
		Position:   tokenID,
		Version:    pos.version(),
		CommitTime: ce.WallTime.UTC(),
	}
	if ev.CommitTime.IsZero() || ce.WallTime.IsZero() {
		ev.CommitTime = time.Unix(int64(pos.T), 0).UTC()
	}
	switch ce.OperationType {
	case "insert":
		ev.Op = cdc.OpInsert
	case "update", "replace":
		ev.Op = cdc.OpUpdate
	case "delete":
		ev.Op = cdc.OpDelete
	case "drop", "rename", "dropDatabase", "invalidate":
		// The collection as we knew it is gone: forget the position so the
		// restart takes a new snapshot, whose markers let consumers drop
		// what no longer exists.
		if err := s.checkpoint.Delete(ctx, s.checkpointKey()); err != nil {
			return err
		}
		return fmt.Errorf("collection %s: %s event; restarting with a new snapshot", s.ns, ce.OperationType)
	default:
		cdc.CountIgnored(cdc.SourceMongo, cdc.Bound(ce.OperationType))
		s.logger.Info("change event that changes no document; skipped", "operation", cdc.Bound(ce.OperationType))
		return nil
	}
	return s.publishChange(ctx, pub, ev, changeDocument(ev, ce))
}

// changeDocument fills in the key and document of a change event; its
// errors wrap errUnusable (see publishChange).
func changeDocument(ev *cdc.Event, ce changeEvent) error {
	id, err := ce.DocumentKey.LookupErr("_id")
	if err != nil {
		return fmt.Errorf("%w: change event without documentKey._id: %w", errUnusable, err)
	}
	if ev.Key, err = keyOf(id); err != nil {
		return err
	}
	if ev.Op == cdc.OpDelete {
		ev.Before = json.RawMessage(mustJSON(ce.DocumentKey))
		return nil
	}
	if len(ce.FullDocument) > 0 {
		_, ev.After, err = documentJSON(ce.FullDocument)
	}
	return err
}

func mustJSON(d bson.Raw) []byte {
	out, err := bson.MarshalExtJSON(d, false, false)
	if err != nil {
		return nil
	}
	return out
}

func setLastCommit(t time.Time) {
	cdc.SetLastCommit(cdc.SourceMongo, float64(t.UnixNano())/1e9)
}

// changeWatermark hands the watermark a change event inserts to the
// Backfiller.
func (s *Source) changeWatermark(ctx context.Context, pub cdc.Publisher, ce changeEvent, pos oplogTS) error {
	id, ok := ce.DocumentKey.Lookup("_id").StringValueOK()
	if ce.OperationType != "insert" || !ok || !s.backfill.IsWatermark(id) {
		return nil
	}
	at := cdc.Position{Text: pos.String(), Version: pos.version(), Time: ce.WallTime.UTC()}
	if ce.WallTime.IsZero() {
		at.Time = time.Unix(int64(pos.T), 0).UTC()
	}
	return s.backfill.Watermark(ctx, pub, id, at)
}
