package cdc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Snapshot publishes one read of a source's collections consistent with
// one source position. Each collection read is a bracket: a snapshot_begin
// marker, its rows as snapshot events, a snapshot_end marker; consumers
// replace what they knew of the collection with what the bracket holds
// (docs/events.md). Both sources take their snapshots through it:
//
//	snap := cdc.NewSnapshot(pub, origin, at, reason)
//	b, err := snap.Begin(ctx, collection) // for each collection
//	err = b.Row(ctx, key, after)          // for each row
//	err = b.End(ctx)
//	err = snap.Flush(ctx)                 // every event acknowledged
//
// A bracket stays open while other events are published, so a chunked
// backfill (DBLog-style watermarks) can publish the rows of each chunk as it
// reads them between the changes it streams, and End the bracket after the
// last chunk.
type Snapshot struct {
	pub    Publisher
	origin Origin
	at     Position
	name   string
}

// Position is a source position as events carry it: its text
// (Event.Position), the version it orders changes by (Event.Version) and
// the time of the change (Event.CommitTime). A snapshot's events carry the
// position its read is consistent with and the time the read started.
type Position struct {
	Text    string
	Version uint64
	Time    time.Time
}

// NewSnapshot returns the snapshot of origin taken at for reason (initial,
// position_lost, incomplete), whose events pub publishes, and counts it in
// reportes_cdc_snapshots_total. It publishes nothing yet.
func NewSnapshot(pub Publisher, origin Origin, at Position, reason string) *Snapshot {
	metricSnapshots.WithLabelValues(origin.Source(), reason).Inc()
	return &Snapshot{pub: pub, origin: origin, at: at, name: origin.SnapshotName(at.Text)}
}

// resumeSnapshot returns the snapshot of origin begun at at, for a backfill
// that goes on publishing it after a restart: unlike NewSnapshot it counts
// nothing.
func resumeSnapshot(pub Publisher, origin Origin, at Position) *Snapshot {
	return &Snapshot{pub: pub, origin: origin, at: at, name: origin.SnapshotName(at.Text)}
}

// Name returns the name the snapshot's events carry (Event.Snapshot).
func (s *Snapshot) Name() string { return s.name }

// Flush waits until every event of the snapshot is acknowledged.
func (s *Snapshot) Flush(ctx context.Context) error {
	if err := s.pub.Flush(ctx); err != nil {
		return fmt.Errorf("publish snapshot: %w", err)
	}
	return nil
}

// Bracket is the part of a snapshot that holds one collection.
type Bracket struct {
	snap       *Snapshot
	collection string
	rows       int
	ev         Event // the event being published, reused (see Publisher)
}

// Begin publishes the snapshot_begin marker of collection.
func (s *Snapshot) Begin(ctx context.Context, collection string) (*Bracket, error) {
	b := &Bracket{snap: s, collection: collection}
	return b, b.marker(ctx, OpSnapshotBegin)
}

// resume returns the bracket of collection whose snapshot_begin marker was
// published earlier.
func (s *Snapshot) resume(collection string) *Bracket {
	return &Bracket{snap: s, collection: collection}
}

// Row publishes the row of the collection with key, whose content is after,
// and counts it in reportes_cdc_events_read_total.
func (b *Bracket) Row(ctx context.Context, key string, after json.RawMessage) error {
	ev := b.event(OpSnapshot)
	ev.ID, ev.Key, ev.After = b.snap.origin.SnapshotRow(b.snap.at.Text, b.collection, key), key, after
	CountRead(b.snap.origin.Source(), 1)
	if err := b.snap.pub.Publish(ctx, ev); err != nil {
		return err
	}
	b.rows++
	return nil
}

// rowAt publishes a row read at a later position than the snapshot's own:
// a chunk of a backfill, read between two watermarks, carries the position
// of the second one, so that it supersedes every change before it. Its id
// stays the snapshot's, so reading the chunk again after a restart
// publishes the same ids.
func (b *Bracket) rowAt(ctx context.Context, key string, after json.RawMessage, at Position) error {
	ev := b.event(OpSnapshot)
	ev.ID, ev.Key, ev.After = b.snap.origin.SnapshotRow(b.snap.at.Text, b.collection, key), key, after
	ev.Position, ev.Version, ev.CommitTime = at.Text, at.Version, at.Time
	CountRead(b.snap.origin.Source(), 1)
	if err := b.snap.pub.Publish(ctx, ev); err != nil {
		return err
	}
	b.rows++
	return nil
}

// Rows returns how many rows the bracket published.
func (b *Bracket) Rows() int { return b.rows }

// End publishes the snapshot_end marker of the collection.
func (b *Bracket) End(ctx context.Context) error { return b.marker(ctx, OpSnapshotEnd) }

func (b *Bracket) marker(ctx context.Context, op Op) error {
	ev := b.event(op)
	ev.ID = b.snap.origin.SnapshotMarker(b.snap.at.Text, b.collection, op)
	return b.snap.pub.Publish(ctx, ev)
}

func (b *Bracket) event(op Op) *Event {
	s := b.snap
	b.ev = Event{
		Source: s.origin.Source(), Collection: b.collection, Op: op,
		Position: s.at.Text, Version: s.at.Version, CommitTime: s.at.Time, Snapshot: s.name,
	}
	return &b.ev
}
