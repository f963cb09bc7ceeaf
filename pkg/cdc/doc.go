// Package cdc defines the change events reportes captures from its sources
// and the mechanism every source shares: the Source and Publisher
// contracts, the rule that derives message ids from source positions
// (Origin), the snapshot bracket (Snapshot) and the supervisor (Supervise).
// The backends (the postgres and mongo subpackages) hold only what is
// specific to their database; the JetStream transport is package stream.
//
// # Contract
//
// A source turns each change it reads into an [Event] and hands it to a
// [Publisher]. The Publisher publishes asynchronously with a Nats-Msg-Id
// equal to [Event.ID], which [Origin] derives from the event's source
// position, so publishing the same change twice (after a crash, a reconnect
// or a replay) is deduplicated by the stream's duplicate window. Callbacks
// registered with [Publisher.AfterAcked] run in publication order, only once
// JetStream has acknowledged every event published before them: sources
// acknowledge their own position (the replication slot's flushed LSN, a
// MongoDB resume token or oplog timestamp) from those callbacks and never
// earlier. When any publish fails the Publisher stops accepting events and
// reports the error; the source must then return, and [Supervise] restarts
// it with a fresh Publisher from its last acknowledged position, so that
// events reach the stream in source order.
//
// A snapshot (the initial read of a table or collection, one taken again
// when the position was lost, or one an operator asked for) is a backfill
// ([Backfiller]): read in chunks beside the stream, with watermarks in the
// source's log, and published as a [Snapshot] bracket: per collection a
// snapshot_begin marker, the rows, a snapshot_end marker; consumers drop
// the keys a snapshot no longer holds.
//
// Besides the change itself every event carries a per-key Version that grows
// with the source position. Consumers use it to ignore a stale copy of a change
// they have already superseded, which makes applying the stream idempotent.
package cdc
