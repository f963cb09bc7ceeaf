// Package cdc defines the change events reportes captures from its sources and
// the machinery every source shares to deliver them to NATS JetStream.
//
// # Contract
//
// A source (see the postgres and mongo subpackages) turns each change it reads
// into an [Event] and hands it to a [Publisher]. The Publisher publishes
// asynchronously with a Nats-Msg-Id equal to [Event.ID], which is derived from
// the event's source position, so publishing the same change twice (after a
// crash, a reconnect or a replay) is deduplicated by the stream's duplicate
// window. Callbacks registered with [Publisher.AfterAcked] run in publication
// order, only once JetStream has acknowledged every event published before
// them: sources acknowledge their own position (the replication slot's flushed
// LSN, a MongoDB resume token or oplog timestamp) from those callbacks and
// never earlier. When any publish fails the Publisher stops accepting events
// and reports the error; the source must then restart from its last
// acknowledged position, so that events reach the stream in source order.
//
// Besides the change itself every event carries a per-key Version that grows
// with the source position. Consumers use it to ignore a stale copy of a change
// they have already superseded, which makes applying the stream idempotent.
package cdc
